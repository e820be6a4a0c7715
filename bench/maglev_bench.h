// fulcrum-reload-bench --maglev: the cost of one maglev::build_table, today's builder against the
// original one (tests/unit/maglev_reference.h) in the same run, on the same inputs.
#pragma once

#include <cstdint>
#include <vector>

namespace fulcrum::bench {

struct MaglevBenchOptions {
    std::vector<std::uint32_t> table_sizes{65537};
    std::vector<std::uint32_t> backend_counts{100, 1000};
    std::uint32_t runs = 31;  // per builder and case; min and median are printed
    bool json = false;
};

// Prints the table (or one JSON object); returns 1 if a table differs from the reference's.
int run_maglev_bench(const MaglevBenchOptions& options);

}  // namespace fulcrum::bench
