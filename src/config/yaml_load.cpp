// Bounded reading of one YAML document (see yaml_load.h).
#include "config/yaml_load.h"

#include "config/yaml_fast.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <optional>
#include <sstream>
#include <vector>

namespace fulcrum::config::detail {
namespace {

struct TooManyNodes {};

// Counts documents and nodes, and hands the first document's events to `builder` (see
// kMaxConfigBytes for what the pass itself holds). Later documents are only counted: they are an
// error, reported after the whole text is read, so a syntax error anywhere still comes first.
class Counter : public YAML::EventHandler {
public:
    TreeBuilder builder;
    std::vector<YAML::Mark> document_starts;
    std::vector<YAML::Mark> roots;  // each document's first node (where yaml-cpp places the document)
    std::size_t nodes = 0;
    std::optional<YAML::Mark> over_limit;  // the first node past kMaxYamlNodes

    void OnDocumentStart(const YAML::Mark& mark) override { document_starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override
    {
        node(mark);
        if (building()) builder.OnNull(mark, anchor);
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override
    {
        node(mark);
        if (building()) builder.OnAlias(mark, anchor);
    }
    void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  const std::string& value) override
    {
        node(mark);
        if (building()) builder.OnScalar(mark, tag, anchor, value);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value style) override
    {
        node(mark);
        if (building()) builder.OnSequenceStart(mark, tag, anchor, style);
    }
    void OnSequenceEnd() override
    {
        if (building()) builder.OnSequenceEnd();
    }
    void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value style) override
    {
        node(mark);
        if (building()) builder.OnMapStart(mark, tag, anchor, style);
    }
    void OnMapEnd() override
    {
        if (building()) builder.OnMapEnd();
    }

    // yaml-cpp 0.7 starts a document at a token no rule takes (a ',' outside [ ] or { }), reports
    // it as an empty document and leaves the token in place: the next document starts at the
    // same place, for ever. A document always consumes at least one token otherwise.
    bool stuck() const
    {
        std::size_t n = document_starts.size();
        return n >= 2 && document_starts[n - 1].pos == document_starts[n - 2].pos;
    }

private:
    bool building() const { return document_starts.size() == 1; }

    // Past the limit the pass stops at once (the parser is dropped): counting on would cost time.
    void node(const YAML::Mark& mark)
    {
        if (roots.size() < document_starts.size()) roots.push_back(mark);
        if (++nodes > kMaxYamlNodes) {
            over_limit = mark;
            throw TooManyNodes{};
        }
    }
};

}  // namespace

std::optional<Tree> load_one_document(const std::string& text, Errors& errors)
{
    if (text.size() > kMaxConfigBytes) {
        errors.add(Spot{1, 1, ""}, "expected a file of at most " + std::to_string(kMaxConfigBytes / (1024 * 1024)) +
                                       " MiB (" + std::to_string(kMaxConfigBytes) + " bytes), got " +
                                       std::to_string(text.size()) + " bytes");
        return std::nullopt;
    }
    // The subset our own scanner reads gives yaml-cpp's tree (yaml_fast.h); everything else,
    // every error included, is yaml-cpp's.
    if (std::optional<FastTree> fast = fast_tree(text)) {
        errors.limit_visits(fast->nodes);
        return std::move(fast->tree);
    }
    return load_one_document_yaml_cpp(text, errors);
}

std::optional<Tree> load_one_document_yaml_cpp(const std::string& text, Errors& errors)
{
    if (text.size() > kMaxConfigBytes) {
        errors.add(Spot{1, 1, ""}, "expected a file of at most " + std::to_string(kMaxConfigBytes / (1024 * 1024)) +
                                       " MiB (" + std::to_string(kMaxConfigBytes) + " bytes), got " +
                                       std::to_string(text.size()) + " bytes");
        return std::nullopt;
    }
    Counter counter;
    try {
        std::istringstream in(text);
        YAML::Parser parser(in);
        while (parser.HandleNextDocument(counter)) {
            if (counter.stuck()) {
                errors.add(spot_of(counter.document_starts.back(), ""),
                           "invalid YAML: expected a value or the end of the file here (is a ',' outside "
                           "[ ] or { }?)");
                return std::nullopt;
            }
        }
    } catch (const TooManyNodes&) {
        // counter.over_limit says where; reported below.
    }
    if (counter.over_limit) {
        errors.add(spot_of(*counter.over_limit, ""),
                   "expected at most " + std::to_string(kMaxYamlNodes) +
                       " YAML nodes (values, keys, lists and mappings) in the file; this is one more");
        return std::nullopt;
    }
    if (counter.document_starts.size() > 1) {
        errors.add(spot_of(counter.roots.size() > 1 ? counter.roots[1] : counter.document_starts[1], ""),
                   "expected one YAML document, found " + std::to_string(counter.document_starts.size()));
        return std::nullopt;
    }
    if (counter.document_starts.empty()) return Tree();
    errors.limit_visits(counter.nodes);
    return counter.builder.take();
}

}  // namespace fulcrum::config::detail
