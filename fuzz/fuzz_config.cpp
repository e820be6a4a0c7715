// libFuzzer target for the config parser (src/config): any bytes, read as a YAML file, must yield
// either a Config or errors, never both or neither, and every error must point at a place in the
// file (LINE:COLUMN, 1-based) so that `fulcrumd --check` always tells the operator where to look.
// The parser's own YAML tree (yaml_tree.h) must also be, node for node, the YAML::Node tree that
// YAML::Load builds of the same text (the tree the parser walked before). A text the fast scanner
// (yaml_fast.h) reads must be one yaml-cpp reads, to the same tree, marks and node count; the
// seeds (config/, tests/system/configs, fuzz/corpus) are mostly in its subset, so mutations walk
// along its edges.
// A broken contract aborts, which libFuzzer reports as a crash and saves as a reproducer.
// Built only in a clang build dir with -Dfuzz=true (fuzz/meson.build); run by tests/run_all
// ("fuzz/config") and, for longer, by `./run fuzz SECONDS` (bench/README.md).
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_fast.h"
#include "config/yaml_load.h"
#include "yaml_tree_vs_node.h"

namespace {

constexpr const char* kName = "fuzz.yaml";

[[noreturn]] void broken(const char* what, const std::string& detail)
{
    std::fprintf(stderr, "fuzz_config: contract broken: %s\n  %s\n", what, detail.c_str());
    std::abort();
}

bool starts_with(const std::string& s, std::string_view prefix)
{
    return std::string_view(s).substr(0, prefix.size()) == prefix;
}

// True if yaml-cpp alone reads the text without a syntax error. Then an "invalid YAML" error can
// only come from an exception escaping the schema walk (a bug there, misreported as syntax).
// Events only, not YAML::LoadAll: on a ',' where a document starts, yaml-cpp 0.7 reports an empty
// document without consuming the ',', so LoadAll never ends (and fills memory); a document that
// starts where the previous one started is that loop, and yaml-cpp does not read such a text.
bool yaml_reads(const std::string& text)
{
    struct Starts : YAML::EventHandler {
        std::vector<std::size_t> at;
        void OnDocumentStart(const YAML::Mark& m) override { at.push_back(static_cast<std::size_t>(m.pos)); }
        void OnDocumentEnd() override {}
        void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
        void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
        void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
        void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
        void OnSequenceEnd() override {}
        void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
        void OnMapEnd() override {}
    } starts;
    try {
        std::istringstream in(text);
        YAML::Parser parser(in);
        while (parser.HandleNextDocument(starts)) {
            std::size_t n = starts.at.size();
            if (n >= 2 && starts.at[n - 1] == starts.at[n - 2]) return false;
        }
        return true;
    } catch (const YAML::Exception&) {
        return false;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    const fulcrum::config::ParseResult result = fulcrum::config::parse_text(text, kName);

    if (result.config.has_value() == !result.errors.empty())
        broken("a config together with errors, or neither",
               std::to_string(result.errors.size()) + " error(s), config " +
                   (result.config ? "set" : "unset"));
    if (result.config && result.config->file != kName) broken("the config names another file", result.config->file);

    const bool syntax_ok = yaml_reads(text);
    int previous_line = 0, previous_column = 0;
    for (const auto& e : result.errors) {
        const std::string shown = e.to_string();
        if (e.file != kName) broken("an error names another file", shown);
        if (e.message.empty()) broken("an error without a message", shown);
        // The one error with no place to point at: a file with no YAML content at all (Error's
        // "0 when the whole file is concerned"); it must then be the only error.
        const bool whole_file = e.line == 0 && e.column == 0 && result.errors.size() == 1 &&
                                e.message == "expected a mapping with interfaces and services, got an empty file";
        if (!whole_file && (e.line < 1 || e.column < 1)) broken("an error without a position", shown);
        if (!whole_file && !starts_with(shown, std::string(kName) + ":" + std::to_string(e.line) + ":" +
                                                   std::to_string(e.column) + ": "))
            broken("an error that does not print FILE:LINE:COLUMN", shown);
        // The catch-all of parse_text: an exception that is neither yaml-cpp's nor expected.
        if (starts_with(e.message, "cannot read the configuration")) broken("an unexpected exception", shown);
        if (syntax_ok && starts_with(e.message, "invalid YAML"))
            broken("a schema-walk exception reported as a YAML syntax error", shown);
        if (std::pair(e.line, e.column) < std::pair(previous_line, previous_column))
            broken("errors out of file order", shown);
        previous_line = e.line;
        previous_column = e.column;
    }
    // Only a text load_one_document accepts (one document, within bounds, readable) is given to
    // YAML::Load, which never ends on some others (see yaml_reads).
    {
        fulcrum::config::detail::Errors errors(kName);
        std::optional<fulcrum::config::detail::Tree> tree;
        try {
            tree = fulcrum::config::detail::load_one_document(text, errors);
        } catch (const YAML::Exception&) {
        }
        if (tree) {
            const std::string difference = fulcrum::test::tree_vs_node(tree->root(), YAML::Load(text));
            if (!difference.empty()) broken("the YAML tree differs from YAML::Load's", difference);
        }
    }
    if (auto fast = fulcrum::config::detail::fast_tree(text)) {
        if (!syntax_ok) broken("the fast scanner read a text yaml-cpp refuses", "");
        fulcrum::config::detail::Errors errors(kName);
        std::optional<fulcrum::config::detail::Tree> slow;
        try {
            slow = fulcrum::config::detail::load_one_document_yaml_cpp(text, errors);
        } catch (const YAML::Exception& e) {
            broken("the fast scanner read a text yaml-cpp throws on", e.what());
        }
        if (!slow) broken("the fast scanner read a text yaml-cpp's path refuses", "");
        const std::string difference = fulcrum::test::tree_vs_tree(fast->tree.root(), slow->root());
        if (!difference.empty()) broken("the fast scanner's tree differs from yaml-cpp's", difference);
        const std::size_t nodes = fulcrum::test::count_nodes(slow->root());
        if (fast->nodes != nodes)
            broken("the fast scanner counts other nodes than yaml-cpp",
                   std::to_string(fast->nodes) + " against " + std::to_string(nodes));
    }
    for (const auto& w : result.warnings)
        if (w.line < 1 || w.column < 1 || !starts_with(w.message, "warning: "))
            broken("a warning without a position or the \"warning: \" prefix", w.to_string());
    return 0;
}
