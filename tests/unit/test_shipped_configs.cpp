// The configuration files the project ships (the demo's and the documented example) are valid:
// the README and the demo must not point at files fulcrumd would refuse.
#include <catch2/catch.hpp>
#include <string>

#include "config/config.h"

TEST_CASE("shipped configuration files validate", "[config]")
{
    for (const char* name : {"lab.yaml", "fulcrum.example.yaml"}) {
        INFO(name);
        auto result = fulcrum::config::load_file(std::string(FULCRUM_SOURCE_DIR) + "/config/" + name);
        for (const auto& e : result.errors)
            UNSCOPED_INFO(e.to_string());
        CHECK(result.errors.empty());
        REQUIRE(result.config.has_value());
        CHECK_FALSE(result.config->services.empty());
    }
}
