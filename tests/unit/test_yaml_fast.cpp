// The fast scanner (src/config/yaml_fast.h) must build, for every text it accepts, exactly the tree
// yaml-cpp builds (kind, text, mark of every node, and the node count the walk's bounds use), and
// must give up on everything outside its subset, so that load_one_document falls back to yaml-cpp.
// Checked over the shipped configs, every test config, generated large configs and edge cases.
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_fast.h"
#include "config/yaml_load.h"
#include "yaml_tree_vs_node.h"
#include "read_file.h"

using fulcrum::config::detail::fast_tree;
using fulcrum::test::tree_vs_node;
using fulcrum::test::tree_vs_tree;

using fulcrum::test::read_file;

namespace {

// "" if the fast scanner accepts `text` and its tree is yaml-cpp's (YAML::Load's, and the tree of
// the yaml-cpp event path with the same node count); else what differs.
std::string fast_vs_yaml_cpp(const std::string& text)
{
    auto fast = fast_tree(text);
    if (!fast) return "the fast scanner gave up";
    fulcrum::config::detail::Errors errors("t.yaml");
    auto slow = fulcrum::config::detail::load_one_document_yaml_cpp(text, errors);
    if (!slow) return "yaml-cpp refused it";
    std::string d = tree_vs_tree(fast->tree.root(), slow->root());
    if (!d.empty()) return "against the event path: " + d;
    std::size_t nodes = fulcrum::test::count_nodes(slow->root());
    if (fast->nodes != nodes)
        return "node count " + std::to_string(fast->nodes) + ", yaml-cpp " + std::to_string(nodes);
    d = tree_vs_node(fast->tree.root(), YAML::Load(text));
    return d.empty() ? "" : "against YAML::Load: " + d;
}

const std::string kHead = "interfaces: [{name: eth0}]\ntunnel: {source_v4: 198.18.0.1}\n";

// The shape of bench/daemon_bench.py's and fulcrum-reload-bench's files, services x backends.
std::string generated(int services, int backends)
{
    std::string y = "# generated\ninterfaces:\n  - name: eth0\n    mode: native\ntunnel:\n  source_v4: 198.18.0.1\n"
                    "defaults:\n  healthcheck: {type: tcp, interval: 120s, timeout: 5s, start_up: true}\nservices:\n";
    for (int s = 0; s < services; ++s) {
        y += "  - name: svc" + std::to_string(s) + "\n    vip: 198.19." + std::to_string(s / 200) + "." +
             std::to_string(s % 200 + 1) + "\n    port: 80\n    protocol: tcp\n    table_size: 65537\n    backends:\n";
        for (int b = 0; b < backends; ++b)
            y += "      - address: 10." + std::to_string(s / 256) + "." + std::to_string(s % 256) + "." +
                 std::to_string(b + 1) + "\n        weight: " + std::to_string(100 + b % 3) + "\n";
    }
    return y;
}

}  // namespace

TEST_CASE("the fast scanner reads the shipped configs, to yaml-cpp's tree", "[config][yaml]")
{
    for (const char* file : {"/config/fulcrum.example.yaml", "/config/lab.yaml"}) {
        INFO(file);
        CHECK(fast_vs_yaml_cpp(read_file(std::string(FULCRUM_SOURCE_DIR) + file)) == "");
    }
}

TEST_CASE("the fast scanner reads generated large configs, to yaml-cpp's tree", "[config][yaml]")
{
    CHECK(fast_vs_yaml_cpp(generated(40, 25)) == "");
    // The same in flow style, as the system tests write services, with CRLF line ends.
    std::string flow = kHead + "services:\n";
    for (int s = 0; s < 30; ++s) {
        flow += "  - {name: s" + std::to_string(s) + ", vip: 198.19.0." + std::to_string(s + 1) +
                ", port: 80, protocol: tcp,\n     backends: [";
        for (int b = 0; b < 10; ++b) flow += (b ? ", " : "") + std::string("{address: 10.0.0.") + std::to_string(b + 1) + "}";
        flow += "]}\n";
    }
    CHECK(fast_vs_yaml_cpp(flow) == "");
    std::string crlf;
    for (char c : generated(5, 5)) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    CHECK(fast_vs_yaml_cpp(crlf) == "");
}

TEST_CASE("the fast scanner's tree is yaml-cpp's on every test config it reads", "[config][yaml]")
{
    // tests/system/configs/bad: files written to fail, many in the subset (the schema errors).
    std::size_t read_fast = 0, files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(std::string(FULCRUM_SOURCE_DIR) + "/tests/system/configs/bad")) {
        if (entry.path().extension() != ".yaml") continue;
        ++files;
        const std::string text = read_file(entry.path());
        INFO(entry.path().string());
        if (!fast_tree(text)) continue;
        ++read_fast;
        CHECK(fast_vs_yaml_cpp(text) == "");
    }
    INFO(read_fast << " of " << files << " read by the fast scanner");
    CHECK(files >= 50);
    CHECK(read_fast * 2 >= files);  // the comparison is not vacuous
}

TEST_CASE("the fast scanner's edge cases are yaml-cpp's tree", "[config][yaml]")
{
    const std::vector<std::string> texts = {
        "a: 1\n",
        "a: 1",
        // Nulls: at the next key, at the dedent, before comments, at the end with and without a newline.
        "a:\nb: ~\nc: null\nd: Null\ne: NULL\nf: 'null'\ng: \"~\"\n",
        "a:\n  b:\nc: 1\n",
        "a:\n  b:\n\n# comment\n\nc: 1\n",
        "a:\n",
        "a:",
        "a:\n  b:\n",
        "a:\n  b:\n  # trailing comment\n",
        "a:\n  - \n  -\n  - x\n  -\n",
        "a:\n- \n- x\nb: 1\n",
        "a:\n  -\nb:\n",
        // Indentless sequences, nested sequences of mappings.
        "services:\n- name: a\n  backends:\n  - address: x\n  - address: y\n- name: b\nother: 1\n",
        "a:\n  - b: 1\n    c:\n      - d\n      - e\n    f: g\n  - h\n",
        "a:\n  -   b: 1\n      c: 2\n  -    x\n",
        "a:\n  -\n    b: 1\n  -\n    - c\n",
        // Plain scalars: spaces inside, trailing spaces, ':' and '#' inside, IPv6, negative numbers, UTF-8.
        "a: hello world  \nb: x:y\nc: a#b\nd: ::1\ne: fd00::1:2\nf: -1\ng: --x\nh: 10.0.0.1/24\n",
        "key with spaces: v\nk2  : v2\n\"quoted key\": 1\n'single': 2\n",
        "a: caf\xc3\xa9 # comment \xe2\x9c\x93\nb: \xe2\x82\xac\n",
        "a: 'it''s'\nb: ''\nc: \"\"\nd: '  spaced  '\ne: \"with # hash\"\nf: 'x: y'\n",
        "a: ~x\nb: nullx\nc: NuLL\nd: true\n",
        // Comments and blank lines everywhere.
        "# head\n\n---\n# after the marker\na: 1 # c\n   \n# c\nb:    # c\n  c: 2\n\n",
        "--- # a comment on the marker\na: 1\n",
        "---\na: 1\n",
        "a: 1\n\n\n   \n  \nb: 2\n",
        "a: x\n# col 0 comment after a plain scalar\nb: y\n",
        // Flow collections.
        "a: [1, 2, 3]\nb: {x: 1, y: [a, b], z: {}}\nc: []\nd: {}\ne: [[1, 2], [3]]\n",
        "a: {x: , y: }\nb: {x:, y: 1}\nc: {k: ~, l: null, m: 'null'}\n",
        "a: [\n  1,\n  2]\nb: {\n  x: 1,  # comment\n\n  y: [a,\nb]}\nc: ['q'\n  ]\nd: {x: [1]\n}\n",
        // Ends of the file without a final newline, after spaces or a comment.
        "a:\n    b:\n  ",
        "a:\n  b:\n  ",
        "a:\n  b:\n   ",
        "a:\n  - x\n  -\n  ",
        "a:\n- x\n-\n# c",
        "a:\n  b:\n# c",
        "a: ['q', \"d\", 'it''s', x y]\nb: {'k': v, \"k2\": [1]}\n",
        "- nope\n",  // (root sequence: given up; listed below too)
    };
    for (std::size_t i = 0; i + 1 < texts.size(); ++i) {
        INFO(texts[i]);
        CHECK(fast_vs_yaml_cpp(texts[i]) == "");
    }
}

TEST_CASE("the fast scanner gives up on everything outside its subset", "[config][yaml]")
{
    const std::vector<std::string> texts = {
        "",
        "# only a comment\n",
        "---\n",
        "- a\n- b\n",
        "hello\n",
        "  a: 1\n",
        "{a: 1}\n",
        // Anchors, aliases, tags, merge keys, complex keys.
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: !local x\n",
        "base: &b {port: 80}\ns:\n  <<: *b\n",
        "? a\n: 1\n",
        "[a, b]: 1\n",
        // Block scalars, multi-line plain and quoted scalars.
        "a: |\n  text\n",
        "a: >\n  text\n",
        "a: plain\n  continued\n",
        "a: plain\n   # a comment indented past the mapping is folded in by yaml-cpp\nb: 1\n",
        "- a\n",
        "a:\n  - x\n    y\n",
        "a: 'one\n  two'\n",
        "a: \"one\n  two\"\n",
        "a:\n  value on its own line\n",
        // Escapes, tabs, control bytes, CR alone, BOM and other encodings.
        "a: \"x\\ny\"\n",
        "a: \"\\\"\"\n",
        "a:\t1\n",
        "a: 1\t\n",
        "a: 1 #\tc\n",
        "a: x\x01y\n",
        "a: 1\rb: 2\n",
        "\xef\xbb\xbf" "a: 1\n",
        std::string("a\0: 1\n", 6),
        // Directives, document markers later in the file, several documents.
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n---\nb: 2\n",
        "a: 1\n...\n",
        "a: [1,\n---\n]\n",
        // Structure yaml-cpp refuses or reads otherwise.
        "a: b: c\n",
        "a: 1\n b: 2\n",
        "a: 1\n  b: 2\n",
        "a:\n  b: 1\n c: 2\n",
        "a: 1\n- b\n",
        "a:\n  - x\n  b: 1\n",
        "- - a\n",
        "a: - b\n",
        "a: [1, , 2]\n",
        "a: [1, 2, ]\n",
        "a: {x: 1, }\n",
        "a: {x}\n",
        "a: [x: 1]\n",
        "a: [x\n]\n",
        "a: [\n  1,\n  2\n]\n",
        "a: [1, 2\n",
        "a: [1] x\n",
        "a: [1]# no space\n",
        "a: 'x'# no space\n",
        "a: 'x' y\n",
        "a: {'k':v}\n",
        "a: [x # comment inside a flow scalar\n]\n",
        "a: ,\n",
        "a: @x\n",
        "a: `x\n",
        "a: %x\n",
        "a: ?x\n",
        "a: -\n",
        "a:b\n",
        "a #b: 1\n",
        std::string(1100, 'k') + ": 1\n",
    };
    for (const std::string& text : texts) {
        INFO(text);
        CHECK_FALSE(fast_tree(text).has_value());
    }
    // Nesting past kMaxFastDepth, block and flow.
    std::string deep_block;
    for (std::size_t i = 0; i < fulcrum::config::detail::kMaxFastDepth + 1; ++i)
        deep_block += std::string(2 * i, ' ') + "k:\n";
    deep_block += std::string(2 * (fulcrum::config::detail::kMaxFastDepth + 1), ' ') + "k: 1\n";
    CHECK_FALSE(fast_tree(deep_block).has_value());
    const std::string deep_flow = "a: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
    CHECK_FALSE(fast_tree(deep_flow).has_value());
    // Within the bound it reads them.
    std::string nested = "a: " + std::string(20, '[') + "1" + std::string(20, ']') + "\n";
    CHECK(fast_vs_yaml_cpp(nested) == "");
}

TEST_CASE("load_one_document takes the fast path or yaml-cpp's, with the same errors", "[config][yaml]")
{
    auto errors = [](const std::string& text) {
        std::vector<std::string> out;
        for (const auto& e : fulcrum::config::parse_text(text, "t.yaml").errors) out.push_back(e.to_string());
        return out;
    };
    // A file the fast scanner gives up on still reads (through yaml-cpp).
    const std::string anchored = kHead + "services:\n  - &s {name: a, vip: 198.18.0.10, port: 80, protocol: tcp, backends: []}\n";
    REQUIRE_FALSE(fast_tree(anchored).has_value());
    CHECK(fulcrum::config::parse_text(anchored, "t.yaml").config.has_value());
    // Schema errors in a file the fast scanner reads are those of the same file read by yaml-cpp
    // (a tab in a final comment changes nothing for yaml-cpp and makes the fast scanner give up).
    const std::string bad = kHead + "services:\n  - name: a\n    vip: 198.18.0.10\n    port: 99999\n    protocol:\n"
                                    "    backends:\n      - address: 198.19.0.1\n        wieght: 5\n      -\n";
    std::string with_tab = bad;
    with_tab.replace(with_tab.find('\n'), 1, " #\t\n");
    REQUIRE(fast_tree(bad).has_value());
    REQUIRE_FALSE(fast_tree(with_tab).has_value());
    const std::vector<std::string> fast = errors(bad);
    CHECK(fast.size() >= 4);
    CHECK(fast == errors(with_tab));
}
