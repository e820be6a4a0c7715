// The config parser reads YAML through its own light tree (src/config/yaml_tree.h), built from
// yaml-cpp's events, instead of YAML::Load's YAML::Node tree. These tests hold it to YAML::Node:
// node for node on every shape of YAML the parser may meet, and, at the parser's surface, the
// exact errors that YAML features gave when the parser walked YAML::Node (captured from the
// parser of main before the change).
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_load.h"
#include "config_errors.h"
#include "yaml_tree_vs_node.h"
#include "read_file.h"

using fulcrum::config::parse_text;
using fulcrum::test::errors_of;
using fulcrum::test::tree_vs_node;

using fulcrum::test::read_file;

namespace {

const std::string kHead = "interfaces: [{name: eth0}]\ntunnel: {source_v4: 198.18.0.1}\n";  // 2 lines

// "" if the parser's tree of `text` is YAML::Load's tree of it.
std::string compared(const std::string& text)
{
    fulcrum::config::detail::Errors errors("t.yaml");
    auto tree = fulcrum::config::detail::load_one_document(text, errors);
    if (!tree) return "no tree (an error)";
    return tree_vs_node(tree->root(), YAML::Load(text));
}

}  // namespace

TEST_CASE("the YAML tree is YAML::Load's tree, node for node", "[config][yaml]")
{
    const std::vector<std::string> texts = {
        "",
        "# only a comment\n",
        "---\n",
        "--- \n...\n",
        "%YAML 1.2\n---\na: 1\n",
        "hello\n",
        "- a\n- b\n-\n- - nested\n  - list\n",
        // Nulls: ~, null, nothing after a key, an empty flow value; tagged null stays a scalar.
        "a: ~\nb: null\nc:\nd: NULL\ne: {x: , y: }\nf: !!str null\ng: [~, , null]\n",
        // Anchors and aliases: the alias is the anchored node itself (its mark, its identity).
        "base: &b {port: 80, protocol: tcp}\nuse: *b\nlist: [&x 1, *x, *b]\n",
        // An anchor named inside its own node: a cycle, as in YAML::Node.
        "services: &s [*s]\n",
        "m: &m {self: *m, list: [*m]}\n",
        // An anchor defined twice: an alias names the latest.
        "x: &a 1\ny: &a 2\nz: *a\n",
        // A merge key is an ordinary key in yaml-cpp 0.7.
        "base: &b {port: 80}\nservice:\n  <<: *b\n  name: web\n",
        // A key written twice stays twice.
        "a: 1\na: 2\nb: {c: 1, c: 2}\n",
        // Tags: yaml-cpp applies them; the text stays as written.
        "a: !!int 80\nb: !!str x\nc: !local y\nd: !!seq [1]\ne: !!map {k: v}\nf: !<tag:yaml.org,2002:str> z\n",
        // Complex and null keys.
        "? [a, b]\n: 1\n? {k: v}\n: 2\n",
        "services: []\n? \n: 1\n",
        "{: v, k: }\n",
        // Scalars of every style.
        "a: |\n  line 1\n  line 2\nb: >\n  folded\n  text\nc: \"esc\\x41\\u00e9\\n\"\nd: 'it''s'\ne: plain\n  continued\n",
        "a: \"\"\nb: ''\nc: \"  spaces  \"\n",
        "k: [a, {b: c}, [d, e]]\nl: {m: [n], o: {p: q}}\n",
        "# comment\n\n\nkey:    value   # trailing comment\nlist:\n- item\n-   spaced\n",
        "a: 1\r\nb: [2, 3]\r\n",
        "\xef\xbb\xbf" "a: with a BOM\n",
        kHead + "services:\n  - {name: a, vip: 198.18.0.10, port: 80, protocol: tcp, backends: [{address: 198.19.0.1}]}\n",
    };
    for (const std::string& text : texts) {
        INFO(text);
        CHECK(compared(text) == "");
    }
    // The files shipped and used by the system tests.
    for (const char* file : {"/config/fulcrum.example.yaml", "/config/lab.yaml"}) {
        INFO(file);
        CHECK(compared(read_file(std::string(FULCRUM_SOURCE_DIR) + file)) == "");
    }
    // A file of the reload bench's shape (20 services x 10 backends), block style.
    std::string big = kHead + "services:\n";
    for (int s = 0; s < 20; ++s) {
        big += "  - name: svc" + std::to_string(s) + "\n    vip: 198.19.0." + std::to_string(s + 1) +
               "\n    port: 80\n    protocol: tcp\n    backends:\n";
        for (int b = 0; b < 10; ++b)
            big += "      - address: 10.0." + std::to_string(s) + "." + std::to_string(b + 1) + "\n        weight: 100\n";
    }
    CHECK(compared(big) == "");
}

TEST_CASE("the comparison itself tells trees apart", "[config][yaml]")
{
    // Not vacuous: two texts whose trees differ in a scalar, a mark, a kind, a size, an alias.
    auto differs = [](const std::string& ours, const std::string& theirs) {
        fulcrum::config::detail::Errors errors("t.yaml");
        auto tree = fulcrum::config::detail::load_one_document(ours, errors);
        REQUIRE(tree);
        return tree_vs_node(tree->root(), YAML::Load(theirs));
    };
    CHECK(differs("a: 1\n", "a: 2\n") == "1:4: scalar \"1\"");
    CHECK(differs("a: 1\n", "a:  1\n") == "1:5: mark 1:4 in the tree");
    CHECK(differs("a: [1]\n", "a: {1: 1}\n") == "1:4: another kind of node");
    CHECK(differs("a: [1]\n", "a: [1, 2]\n") == "1:4: 1 items or pairs in the tree");
    CHECK(differs("a: &x [1]\nb: [1]\n", "a: &x [1]\nb: *x\n") != "");
    CHECK(differs("a: ~\n", "a: ''\n") == "1:4: null in one tree only");
}

TEST_CASE("YAML features give the errors they gave when the parser walked YAML::Node", "[config][yaml]")
{
    using V = std::vector<std::string>;
    // Merge keys: yaml-cpp 0.7 does not merge, so "<<" is an unknown key and the merged keys are missing.
    CHECK(errors_of(kHead + "services:\n  - &s {name: a, vip: 198.18.0.10, port: 80, protocol: tcp, backends: []}\n"
                            "  - <<: *s\n    name: b\n") ==
          V{"t.yaml:5:5: services[1].<<: unknown key \"<<\"; expected one of: name, vip, port, protocol, table_size, "
            "hash, quic, encap, min_healthy, healthcheck, backends",
            "t.yaml:5:5: services[1].vip: missing required key \"vip\"",
            "t.yaml:5:5: services[1].port: missing required key \"port\"",
            "t.yaml:5:5: services[1].protocol: missing required key \"protocol\"",
            "t.yaml:5:5: services[1].backends: missing required key \"backends\""});
    // An error in an aliased value is at the anchored value, under each path that names it.
    CHECK(errors_of(kHead + "services:\n  - {name: a, vip: 198.18.0.10, port: &p 99999, protocol: tcp, backends: []}\n"
                            "  - {name: b, vip: 198.18.0.11, port: *p, protocol: tcp, backends: []}\n") ==
          V{"t.yaml:4:39: services[0].port: expected an integer 0..65535, got \"99999\"",
            "t.yaml:4:39: services[1].port: expected an integer 0..65535, got \"99999\""});
    CHECK(errors_of(kHead + "services: *nothing\n") ==
          V{"t.yaml:3:11: invalid YAML: the referenced anchor is not defined"});
    // Cycles: a list that holds itself, a mapping named inside itself.
    CHECK(errors_of(kHead + "services: &s [*s]\n") == V{"t.yaml:3:11: services[0]: expected a mapping, got a list"});
    CHECK(errors_of(kHead + "services:\n  - &m {name: a, vip: 198.18.0.10, port: 80, protocol: tcp, backends: [*m]}\n") ==
          V{"t.yaml:4:5: services[0].backends[0].address: missing required key \"address\"",
            "t.yaml:4:9: services[0].backends[0].name: unknown key \"name\"; expected one of: address, weight, state, "
            "server_id, healthcheck",
            "t.yaml:4:18: services[0].backends[0].vip: unknown key \"vip\"; expected one of: address, weight, state, "
            "server_id, healthcheck",
            "t.yaml:4:36: services[0].backends[0].port: unknown key \"port\"; expected one of: address, weight, state, "
            "server_id, healthcheck",
            "t.yaml:4:46: services[0].backends[0].protocol: unknown key \"protocol\"; expected one of: address, "
            "weight, state, server_id, healthcheck",
            "t.yaml:4:61: services[0].backends[0].backends: unknown key \"backends\"; expected one of: address, "
            "weight, state, server_id, healthcheck"});
    // Tags are accepted and change nothing, except that a tagged "null" is text.
    CHECK(errors_of(kHead + "services:\n  - {name: !!str a, vip: 198.18.0.10, port: !!int 80, protocol: !tcp tcp, "
                            "backends: !!seq []}\n")
              .empty());
    CHECK(errors_of(kHead + "services:\n  - {name: a, vip: 198.18.0.10, port: !!str null, protocol: tcp, backends: []}\n") ==
          V{"t.yaml:4:39: services[0].port: expected an integer 0..65535, got \"null\""});
    CHECK(errors_of(kHead + "services: !!map {}\n") ==
          V{"t.yaml:3:11: services: expected a list of services, got an empty mapping"});
    // Every way of writing nothing is nothing, at the value (or at the key when there is no value).
    CHECK(errors_of(kHead + "services:\n  - {name: ~, vip: null, port: , protocol: NULL, backends: []}\n") ==
          V{"t.yaml:4:6: services[0].name: expected a name of 1 to 64 characters a-z, 0-9, _ or -, got nothing",
            "t.yaml:4:15: services[0].vip: expected an IPv4 or IPv6 address, got nothing",
            "t.yaml:4:26: services[0].port: expected an integer 0..65535, got nothing",
            "t.yaml:4:34: services[0].protocol: expected tcp or udp, got nothing"});
    CHECK(errors_of(kHead + "services:\n  - name:\n    vip: 198.18.0.10\n    port: 80\n    protocol: tcp\n    backends: []\n") ==
          V{"t.yaml:4:5: services[0].name: expected a name of 1 to 64 characters a-z, 0-9, _ or -, got nothing"});
    // Keys that are not names, a key given twice, a block scalar's final newline.
    CHECK(errors_of(kHead + "? [a, b]\n: 1\nservices: []\n") == V{"t.yaml:3:3: expected a key name, got a list"});
    CHECK(errors_of(kHead + "services: []\n? \n: 1\n") == V{"t.yaml:5:1: expected a key name, got a mapping"});
    CHECK(errors_of(kHead + "services: []\nservices: []\n") ==
          V{"t.yaml:4:1: services: duplicate key \"services\" (first at line 3)"});
    CHECK(errors_of(kHead + "services:\n  - name: |\n      web\n    vip: 198.18.0.10\n    port: 80\n    protocol: tcp\n"
                            "    backends: []\n") ==
          V{"t.yaml:4:11: services[0].name: expected a name of 1 to 64 characters a-z, 0-9, _ or -, got \"web\n\""});
    CHECK(errors_of(kHead + "services:\n  - {name: \"w\\x65b\", vip: '198.18.0.10', port: \"80\", protocol: tcp, backends: []}\n")
              .empty());
    // Documents: none, an empty one, two.
    CHECK(errors_of("# nothing\n") == V{"t.yaml: expected a mapping with interfaces and services, got an empty file"});
    CHECK(errors_of("---\n") == V{"t.yaml: expected a mapping with interfaces and services, got an empty file"});
    CHECK(errors_of(kHead + "services: []\n---\na: 1\n") == V{"t.yaml:5:1: expected one YAML document, found 2"});
    CHECK(errors_of("- a\n- b\n") == V{"t.yaml:1:1: expected a mapping, got a list"});
    CHECK(errors_of("hello\n") == V{"t.yaml:1:1: expected a mapping, got \"hello\""});
    CHECK(errors_of(kHead + "services: [\n") == V{"t.yaml:4:1: invalid YAML: end of sequence flow not found"});
}
