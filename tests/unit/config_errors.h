// What the config tests compare: every error of a YAML text as the operator sees it. Shared by
// test_config.cpp, test_config_limits.cpp and test_config_bounds.cpp.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/config.h"

namespace fulcrum::test {

// Every error of `yaml`, parsed as the file "t.yaml": "t.yaml:LINE:COLUMN: KEY: MESSAGE". A text
// with errors must never also yield a config; that is checked here on every call.
inline std::vector<std::string> errors_of(const std::string& yaml)
{
    auto result = config::parse_text(yaml, "t.yaml");
    std::vector<std::string> out;
    for (const auto& e : result.errors) out.push_back(e.to_string());
    if (!out.empty()) CHECK_FALSE(result.config.has_value());
    return out;
}

}  // namespace fulcrum::test
