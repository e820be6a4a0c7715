// Bounded reading of one YAML document (see yaml_load.h).
#include "config/yaml_load.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <sstream>
#include <vector>

namespace fulcrum::config::detail {
namespace {

struct TooManyNodes {};

// Counts documents and nodes without building anything (see kMaxConfigBytes for what the pass
// itself holds).
class Counter : public YAML::EventHandler {
public:
    std::vector<YAML::Mark> document_starts;
    std::vector<YAML::Mark> roots;  // each document's first node (where yaml-cpp places the document)
    std::size_t nodes = 0;
    std::optional<YAML::Mark> over_limit;  // the first node past kMaxYamlNodes

    void OnDocumentStart(const YAML::Mark& mark) override { document_starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override
    {
        node(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override
    {
        node(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override
    {
        node(mark);
    }
    void OnMapEnd() override {}

    // yaml-cpp 0.7 starts a document at a token no rule takes (a ',' outside [ ] or { }), reports
    // it as an empty document and leaves the token in place: the next document starts at the
    // same place, for ever. A document always consumes at least one token otherwise.
    bool stuck() const
    {
        std::size_t n = document_starts.size();
        return n >= 2 && document_starts[n - 1].pos == document_starts[n - 2].pos;
    }

private:
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

std::optional<YAML::Node> load_one_document(const std::string& text, Errors& errors)
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
    if (counter.document_starts.empty()) return YAML::Node();
    errors.limit_visits(counter.nodes);
    // One document, already read without a syntax error: YAML::Load builds just that one.
    return YAML::Load(text);
}

}  // namespace fulcrum::config::detail
