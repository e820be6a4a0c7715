// fulcrum-reload-bench --parse: the cost of reading the generated config, our fast scanner
// (src/config/yaml_fast.h) against yaml-cpp's event parser (the path it falls back to) in the same
// run, on the same text, and of the whole parse + validate (config::parse_text).
#pragma once

#include <cstdint>
#include <string>

namespace fulcrum::bench {

struct ParseBenchOptions {
    std::string text;  // the generated config
    std::uint32_t services = 0, backends = 0;
    std::uint32_t runs = 11;  // per path; min, median and max are printed
    bool json = false;
};

// Prints the table (or one JSON object); returns 1 if the two trees differ or a path fails.
int run_parse_bench(const ParseBenchOptions& options);

}  // namespace fulcrum::bench
