// A light, read-only tree of one YAML document, built from yaml-cpp's parser events. It replaces
// YAML::Load's YAML::Node tree, which cost more than the parse itself (a node, its node_data, a
// shared_ptr and a std::string each, measured: 1000 services x 100 backends, 5 MB of YAML, took
// about 320 MB at peak) and made the text be scanned twice (once by load_one_document's bounds
// pass). Here the bounds pass builds this tree as it goes: one scan, about 20 bytes a node plus
// the scalars' text.
//
// It keeps what the config walk reads of a YAML::Node, with the same meaning: the kind (null,
// scalar, sequence, mapping), a scalar's text, items and key/value pairs in file order (a key
// written twice stays twice, so the walk can report it), and the mark (0-based line and column)
// of each node. An alias (*name) is the node its anchor (&name) marks, not a copy: it has that
// node's mark, and an anchor on a collection can be named inside itself (a cycle), exactly as in
// YAML::Node. Tags are not kept (yaml-cpp already applied them: "!!str null" is a scalar, plain
// "null" a null node); YAML merge keys ("<<") are an ordinary key, as yaml-cpp 0.7 reads them.
#pragma once

#include <yaml-cpp/eventhandler.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fulcrum::config::detail {

class Tree;

// One node of a Tree: a handle (the tree and an index) that is cheap to copy. A default Node is a
// null node without a place, like YAML::Node().
class Node {
public:
    Node() = default;
    bool is_null() const;
    bool is_scalar() const;
    bool is_sequence() const;
    bool is_mapping() const;
    // The text of a scalar; empty for anything else.
    std::string_view scalar() const;
    // Items of a sequence, pairs of a mapping, 0 otherwise.
    std::size_t size() const;
    Node item(std::size_t i) const;   // of a sequence, i < size()
    Node key(std::size_t i) const;    // of pair i of a mapping, i < size()
    Node value(std::size_t i) const;  // of pair i of a mapping, i < size()
    // 0-based, as yaml-cpp's Mark; -1 for a node without a place (Node()).
    int line() const;
    int column() const;
    // Equal for the same node, also when reached through an alias (as YAML::Node::id()).
    std::uint32_t id() const { return index_; }

private:
    friend class Tree;
    Node(const Tree* tree, std::uint32_t index) : tree_(tree), index_(index) {}
    const Tree* tree_ = nullptr;
    std::uint32_t index_ = 0;
};

// The nodes of one document. Built by TreeBuilder; immutable afterwards. Not copyable (Nodes point
// into it), movable.
class Tree {
public:
    Tree() = default;
    Tree(const Tree&) = delete;
    Tree& operator=(const Tree&) = delete;
    Tree(Tree&&) = default;
    Tree& operator=(Tree&&) = default;

    // The document's top node; Node() if the document had none.
    Node root() const { return has_root_ ? Node(this, root_) : Node(); }

private:
    friend class Node;
    friend class TreeBuilder;
    enum class Kind : std::uint8_t { null, scalar, sequence, mapping };
    struct Entry {
        Kind kind;
        int line, column;
        // A scalar: its text in text_; a sequence: its items in children_; a mapping: its keys
        // and values, alternating, in children_ (count = pairs).
        std::uint32_t first = 0, count = 0;
    };
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> children_;
    std::string text_;
    std::uint32_t root_ = 0;
    bool has_root_ = false;
};

// Builds a Tree from the events of one document (YAML::Parser::HandleNextDocument). Anchors are
// yaml-cpp's per-document numbers, given out in order from 1. The fast scanner (yaml_fast.h) feeds
// it through the plain calls below, which take 0-based marks and have no anchors.
class TreeBuilder : public YAML::EventHandler {
public:
    // The tree; call once, after the document's events.
    Tree take();

    void add_null(int line, int column) { attach(add(Tree::Kind::null, line, column, YAML::NullAnchor)); }
    void add_scalar(int line, int column, std::string_view text);
    void open_sequence(int line, int column) { open(Tree::Kind::sequence, line, column, YAML::NullAnchor); }
    void open_mapping(int line, int column) { open(Tree::Kind::mapping, line, column, YAML::NullAnchor); }
    void close();

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override;
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override;
    void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  const std::string& value) override;
    void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value style) override;
    void OnSequenceEnd() override { close(); }
    void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value style) override;
    void OnMapEnd() override { close(); }

private:
    std::uint32_t add(Tree::Kind kind, int line, int column, YAML::anchor_t anchor);
    // Puts a finished node (or an alias's node) in the collection being built, or makes it the root.
    void attach(std::uint32_t index);
    void open(Tree::Kind kind, int line, int column, YAML::anchor_t anchor);

    Tree tree_;
    // The collections being built, innermost last, each with where its children start in pending_.
    struct Open {
        std::uint32_t index;
        std::size_t first_pending;
    };
    std::vector<Open> open_;
    std::vector<std::uint32_t> pending_;  // children of the open collections, in order
    std::vector<std::uint32_t> anchors_;  // anchor number -> node index
};

}  // namespace fulcrum::config::detail
