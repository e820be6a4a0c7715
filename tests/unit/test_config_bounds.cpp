// A config file cannot make the parser use unbounded memory (src/config/yaml_load.h, README
// "Configuration reference > Limits"): each case here used to, or would, grow without bound; now
// it is one error with its position. The inputs are small, so a regression shows as the test
// binary running out of memory (or being killed) rather than as a slow pass.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config_errors.h"
#include "read_file.h"

using fulcrum::config::parse_text;
using fulcrum::test::errors_of;

using fulcrum::test::read_file;

namespace {

const std::string kComma =
    "invalid YAML: expected a value or the end of the file here (is a ',' outside [ ] or { }?)";

}  // namespace

TEST_CASE("a ',' where a YAML document starts is an error at the ',' (yaml-cpp 0.7 looped until out of memory)",
          "[config][bounds]")
{
    // fuzz/config found it (issue 13): YAML::LoadAll added empty documents for ever (2 GB in seconds).
    CHECK(errors_of(",") == std::vector<std::string>{"t.yaml:1:1: " + kComma});
    CHECK(errors_of("'web'\n,\n") == std::vector<std::string>{"t.yaml:2:1: " + kComma});
    // After a block mapping, yaml-cpp itself sees the syntax error (this one never looped).
    CHECK(errors_of("interfaces: [{name: eth0}]\nservices: []\n,\n") ==
          std::vector<std::string>{"t.yaml:3:1: invalid YAML: end of map not found"});
    // The fuzzer's own input, as found (it is replayed by fuzz/config from fuzz/corpus too).
    CHECK(errors_of(read_file(FULCRUM_SOURCE_DIR "/fuzz/corpus/oom-comma-at-document-start.yaml")) ==
          std::vector<std::string>{"t.yaml:3:1: " + kComma});
    // A ',' inside a flow collection or a scalar is fine, and a second document is still its own error.
    CHECK(errors_of("a: [1, 2]\nb: x,y\n---\nc: 1\n") ==
          std::vector<std::string>{"t.yaml:4:1: expected one YAML document, found 2"});
}

TEST_CASE("a file over 8 MiB is refused before it is parsed", "[config][bounds]")
{
    const std::string valid = "interfaces: [{name: eth0}]\nservices: []\n";
    const std::size_t limit = 8 * 1024 * 1024;
    // Padded with a comment to exactly the limit: read as usual.
    std::string at_limit = valid + "#" + std::string(limit - valid.size() - 2, 'x') + "\n";
    REQUIRE(at_limit.size() == limit);
    auto result = parse_text(at_limit, "t.yaml");
    CHECK(result.errors.empty());
    CHECK(result.config.has_value());
    // One byte more: refused, whatever it holds.
    CHECK(errors_of(at_limit + "\n") ==
          std::vector<std::string>{"t.yaml:1:1: expected a file of at most 8 MiB (8388608 bytes), got 8388609 bytes"});
}

TEST_CASE("a file of more than 1,000,000 YAML nodes is refused at the first node too many, before building them",
          "[config][bounds]")
{
    // "a: [0,0,...]": the mapping, the key and the list are nodes 1..3, so item i (0-based) is node
    // i + 4, at column 5 + 2 i: node 1,000,001 is item 999,997 at column 1,999,999.
    std::string text = "a: [";
    for (int i = 0; i < 1'000'000; ++i) text += "0,";
    text += "]\n";
    CHECK(errors_of(text) ==
          std::vector<std::string>{"t.yaml:1:1999999: expected at most 1000000 YAML nodes (values, keys, lists and "
                                   "mappings) in the file; this is one more"});
}

TEST_CASE("YAML aliases are read, within bounds", "[config][bounds]")
{
    // One health check written once and named twice: the ordinary use of an anchor.
    auto result = parse_text("interfaces: [{name: eth0}]\ntunnel: {source_v4: 198.18.0.1}\nservices:\n"
                             "  - {name: a, vip: 198.18.0.10, port: 80, protocol: tcp, backends: [],\n"
                             "     healthcheck: &hc {type: http, path: /healthz, interval: 5s}}\n"
                             "  - {name: b, vip: 198.18.0.11, port: 80, protocol: tcp, backends: [], healthcheck: *hc}\n",
                             "t.yaml");
    for (const auto& e : result.errors) FAIL_CHECK(e.to_string());
    REQUIRE(result.config.has_value());
    CHECK(result.config->services.at(1).healthcheck.path == "/healthz");
}

TEST_CASE("aliases that repeat a service's backends thousands of times stop 100,000 items past the file's nodes",
          "[config][bounds]")
{
    // 80 KB of text naming one list of 20,000 backends in 3,000 services: 60 million backends,
    // which took gigabytes and minutes before the walk was bounded.
    std::string text = "interfaces: [{name: eth0}]\ntunnel: {source_v4: 198.18.0.1}\nservices:\n"
                       "  - &s {name: s, vip: 198.18.0.10, port: 80, protocol: tcp, backends: [&b {address: 198.19.0.1}";
    for (int i = 1; i < 20'000; ++i) text += ", *b";
    text += "]}\n";
    for (int i = 1; i < 3'000; ++i) text += "  - *s\n";
    auto result = parse_text(text, "t.yaml");
    CHECK_FALSE(result.config.has_value());
    // The aliases' errors (a duplicate backend, a duplicate service) come first, then the walk's
    // bound, once, at the node being repeated; nothing after it.
    REQUIRE_FALSE(result.errors.empty());
    const auto& last = result.errors.back();
    // The file has 23,024 nodes, each alias counted once: 6 on line 1 (the root mapping, a key, a
    // list, a mapping, a key, a value), 4 on line 2, 2 for "services:" and its list, 14 for the
    // first service (its mapping, 5 keys, 4 values, the backends list, the &b mapping, its key and
    // value), 19,999 *b and 2,999 *s.
    CHECK(last.message == "expected at most 123024 list items and keys walked (the file's 23024 YAML nodes and 100000 "
                          "more through aliases: each *alias counts all that its &anchor holds, every time), got "
                          "more by here");
    CHECK(last.key_path.rfind("services[", 0) == 0);
    CHECK(result.errors.size() < 100'000);
}

TEST_CASE("a long health check string inherited by every service stops at 512 MiB built", "[config][bounds]")
{
    // 1 MB of payload in defaults, copied into each of 600 services: 600 MB from a 1 MB file.
    std::string text = "interfaces: [{name: eth0}]\ntunnel: {source_v4: 198.18.0.1}\n"
                       "defaults: {healthcheck: {type: udp, payload: " + std::string(1'000'000, 'x') + "}}\nservices:\n";
    for (int i = 0; i < 600; ++i)
        text += "  - {name: s" + std::to_string(i) + ", vip: 198.18.1." + std::to_string(i % 250) + ", port: " +
                std::to_string(1000 + i) + ", protocol: udp, backends: []}\n";
    auto result = parse_text(text, "t.yaml");
    CHECK_FALSE(result.config.has_value());
    REQUIRE(result.errors.size() == 1);
    const auto& e = result.errors[0];
    CHECK(e.message == "expected a configuration of at most 512 MiB once YAML aliases and inherited health checks "
                       "are expanded, got more by here");
    // At the first service past the bound: the 536th or so (each costs 1 MB and a little).
    REQUIRE(e.key_path.rfind("services[", 0) == 0);
    const int index = std::stoi(e.key_path.substr(9));
    CHECK(index > 480);
    CHECK(index < 540);
    CHECK(e.line == 5 + index);
    CHECK(e.column == 5);
}

TEST_CASE("a long value is quoted in its error cut after 100 bytes", "[config][bounds]")
{
    // Each error of a value an alias repeats would otherwise copy all of it.
    const std::string name = std::string(99, 'e') + "\xc3\xa9" + std::string(1000, 'x');  // an é across byte 100
    CHECK(errors_of("interfaces: [{name: " + name + "}]\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:1:21: interfaces[0].name: expected an interface name of 1 to 15 characters "
                                   "without '/', ':' or spaces, got \"" + std::string(99, 'e') + "...\" (1101 bytes)"});
}
