// The config refuses what the data-plane maps cannot hold (src/config/limits.cpp), at the first
// item that does not fit, with its position and the limit: such a file used to pass --check and
// then fail half-way through a reload's map writes (issue 13: 5000 services on 5000 VIPs).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "abi.h"
#include "config/config.h"
#include "config_errors.h"

using fulcrum::config::parse_text;
using fulcrum::test::errors_of;

namespace {

const std::string kHead = "interfaces:\n  - name: eth0\ntunnel:\n  source_v4: 198.18.0.1\nservices:\n";  // 5 lines

std::string vip(std::size_t i) { return "198.18." + std::to_string(100 + i / 250) + "." + std::to_string(1 + i % 250); }

// `count` services, each on its own VIP, 6 lines each from line 6: service i's item starts at
// line 6 + 6 i, column 5; its vip value at line 7 + 6 i, column 10.
std::string services(std::size_t count, const std::string& backends = "[]")
{
    std::string out = kHead;
    for (std::size_t i = 0; i < count; ++i)
        out += "  - name: s" + std::to_string(i) + "\n    vip: " + vip(i) +
               "\n    port: 80\n    protocol: tcp\n    table_size: 3\n    backends: " + backends + "\n";
    return out;
}

}  // namespace

TEST_CASE("5000 services on 5000 VIPs are refused at the first service that does not fit", "[config][limits]")
{
    static_assert(FULCRUM_MAX_SERVICES - 1 == 4095, "the expected messages below name 4095");
    const std::size_t line = 6 + 6 * 4095;
    CHECK(errors_of(services(5000)) ==
          std::vector<std::string>{"t.yaml:" + std::to_string(line) +
                                   ":5: services[4095]: service 4096 is one too many: the data plane holds at most "
                                   "4095 services (services and maglev_tables maps, ids 1..4095)"});
}

TEST_CASE("exactly as many services as the maps hold is fine", "[config][limits]")
{
    auto result = parse_text(services(4095), "t.yaml");
    for (const auto& e : result.errors) FAIL_CHECK(e.to_string());
    REQUIRE(result.config.has_value());
    CHECK(result.config->services.size() == 4095);
}

TEST_CASE("more backends over all services than the backends map holds are refused at the first extra one",
          "[config][limits]")
{
    static_assert(FULCRUM_MAX_BACKENDS - 1 == 131071, "the expected message below names 131071");
    // 33 services of 4000 backends (flow style, one line per service): backend 131072 is
    // backends[3071] of the 33rd service (index 32): 32 * 4000 + 3072 = 131072.
    std::string list = "[";
    for (std::size_t k = 0; k < 4000; ++k)
        list += std::string(k ? ", " : "") + "{address: 198.19." + std::to_string(k / 250) + "." + std::to_string(1 + k % 250) + "}";
    list += "]";
    std::string text = services(33, list);
    const std::string needle = "{address: 198.19.12.72}";  // backend index 3071: 12 * 250 + 72 - 1
    const std::size_t line = 6 + 6 * 32 + 5;  // the backends line of service 32
    std::size_t line_start = 0;
    for (std::size_t l = 1; l < line; ++l) line_start = text.find('\n', line_start) + 1;
    const std::size_t column = text.find(needle, line_start) - line_start + 1 + std::string("{address: ").size();
    CHECK(errors_of(text) ==
          std::vector<std::string>{"t.yaml:" + std::to_string(line) + ":" + std::to_string(column) +
                                   ": services[32].backends[3071].address: backend 131072 (counted over all services) "
                                   "is one too many: the data plane holds at most 131071 backends (backends map, ids "
                                   "1..131071)"});
}

TEST_CASE("more interfaces than the redirect map holds are refused at the first extra one", "[config][limits]")
{
    static_assert(FULCRUM_MAX_INTERFACES == 64, "the expected message below names 64");
    std::string text = "interfaces:\n";
    for (int i = 0; i < 65; ++i) text += "  - name: eth" + std::to_string(i) + "\n";
    text += "services: []\n";
    CHECK(errors_of(text) == std::vector<std::string>{"t.yaml:66:11: interfaces[64].name: interface 65 is one too "
                                                      "many: the balancer redirects to at most 64 interfaces "
                                                      "(tx_ports map, FULCRUM_MAX_INTERFACES)"});
}
