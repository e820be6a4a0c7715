// The light YAML tree and its builder (see yaml_tree.h).
#include "config/yaml_tree.h"

#include <yaml-cpp/exceptions.h>

#include <utility>

namespace fulcrum::config::detail {

bool Node::is_null() const
{
    return !tree_ || tree_->entries_[index_].kind == Tree::Kind::null;
}

bool Node::is_scalar() const
{
    return tree_ && tree_->entries_[index_].kind == Tree::Kind::scalar;
}

bool Node::is_sequence() const
{
    return tree_ && tree_->entries_[index_].kind == Tree::Kind::sequence;
}

bool Node::is_mapping() const
{
    return tree_ && tree_->entries_[index_].kind == Tree::Kind::mapping;
}

std::string_view Node::scalar() const
{
    if (!is_scalar()) return {};
    const Tree::Entry& e = tree_->entries_[index_];
    return std::string_view(tree_->text_).substr(e.first, e.count);
}

std::size_t Node::size() const
{
    return is_sequence() || is_mapping() ? tree_->entries_[index_].count : 0;
}

Node Node::item(std::size_t i) const
{
    return Node(tree_, tree_->children_[tree_->entries_[index_].first + i]);
}

Node Node::key(std::size_t i) const
{
    return Node(tree_, tree_->children_[tree_->entries_[index_].first + 2 * i]);
}

Node Node::value(std::size_t i) const
{
    return Node(tree_, tree_->children_[tree_->entries_[index_].first + 2 * i + 1]);
}

int Node::line() const
{
    return tree_ ? tree_->entries_[index_].line : -1;
}

int Node::column() const
{
    return tree_ ? tree_->entries_[index_].column : -1;
}

Tree TreeBuilder::take()
{
    return std::move(tree_);
}

std::uint32_t TreeBuilder::add(Tree::Kind kind, int line, int column, YAML::anchor_t anchor)
{
    auto index = static_cast<std::uint32_t>(tree_.entries_.size());
    tree_.entries_.push_back(Tree::Entry{kind, line, column});
    // yaml-cpp numbers a document's anchors 1, 2, 3... as it meets them; 0 is "no anchor".
    if (anchor != YAML::NullAnchor) {
        if (anchors_.size() <= anchor) anchors_.resize(anchor + 1);
        anchors_[anchor] = index;
    }
    return index;
}

void TreeBuilder::attach(std::uint32_t index)
{
    if (!open_.empty()) {
        pending_.push_back(index);
    } else if (!tree_.has_root_) {
        tree_.root_ = index;
        tree_.has_root_ = true;
    }
}

void TreeBuilder::OnNull(const YAML::Mark& mark, YAML::anchor_t anchor)
{
    attach(add(Tree::Kind::null, mark.line, mark.column, anchor));
}

void TreeBuilder::OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor)
{
    // yaml-cpp's parser refuses an unknown alias itself ("the referenced anchor is not defined");
    // this only guards the index.
    if (anchor >= anchors_.size()) throw YAML::ParserException(mark, "the referenced anchor is not defined");
    attach(anchors_[anchor]);
}

void TreeBuilder::OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                           const std::string& value)
{
    std::uint32_t index = add(Tree::Kind::scalar, mark.line, mark.column, anchor);
    Tree::Entry& e = tree_.entries_[index];
    e.first = static_cast<std::uint32_t>(tree_.text_.size());
    e.count = static_cast<std::uint32_t>(value.size());
    tree_.text_ += value;
    attach(index);
}

void TreeBuilder::add_scalar(int line, int column, std::string_view text)
{
    std::uint32_t index = add(Tree::Kind::scalar, line, column, YAML::NullAnchor);
    Tree::Entry& e = tree_.entries_[index];
    e.first = static_cast<std::uint32_t>(tree_.text_.size());
    e.count = static_cast<std::uint32_t>(text.size());
    tree_.text_ += text;
    attach(index);
}

void TreeBuilder::OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                                  YAML::EmitterStyle::value)
{
    open(Tree::Kind::sequence, mark.line, mark.column, anchor);
}

void TreeBuilder::OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                             YAML::EmitterStyle::value)
{
    open(Tree::Kind::mapping, mark.line, mark.column, anchor);
}

void TreeBuilder::open(Tree::Kind kind, int line, int column, YAML::anchor_t anchor)
{
    // The anchor is known from here on, so the collection's own items may name it (as in yaml-cpp).
    open_.push_back(Open{add(kind, line, column, anchor), pending_.size()});
}

void TreeBuilder::close()
{
    Open done = open_.back();
    open_.pop_back();
    // The children of a collection are pending_'s tail: they are moved out together, so each
    // collection's children sit side by side in children_.
    Tree::Entry& e = tree_.entries_[done.index];
    std::size_t n = pending_.size() - done.first_pending;
    e.first = static_cast<std::uint32_t>(tree_.children_.size());
    e.count = static_cast<std::uint32_t>(e.kind == Tree::Kind::mapping ? n / 2 : n);
    tree_.children_.insert(tree_.children_.end(), pending_.begin() + static_cast<std::ptrdiff_t>(done.first_pending),
                           pending_.end());
    pending_.resize(done.first_pending);
    attach(done.index);
}

}  // namespace fulcrum::config::detail
