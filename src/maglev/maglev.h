// Maglev consistent-hashing lookup table (Eisenbud et al., NSDI 2016), extended with backend weights.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace fulcrum::maglev {

struct Backend {
    std::string key;       // stable identity (e.g. the backend address as text); decides its slot permutation
    std::uint32_t id;      // value written into the table; never 0 (0 means "no backend")
    std::uint32_t weight;  // 0..kMaxWeight; slots are proportional to it, 0 = takes no slots
};

inline constexpr std::uint32_t kMaxWeight = 65535;

// Exact for every 64-bit n (deterministic Miller-Rabin).
bool is_prime(std::uint64_t n);

struct TableResult {
    std::vector<std::uint32_t> table;  // `size` backend ids; empty when error is set
    std::string error;                 // empty on success
    bool ok() const { return error.empty(); }
};

// Builds the table: `size` must be a prime. The result depends only on the set of backends,
// `size` and `seed` (never on input order, machine or compiler), so every balancer running the
// same version picks the same backend for a flow. If no backend has weight > 0, every slot is 0.
TableResult build_table(std::span<const Backend> backends, std::uint32_t size, std::uint64_t seed = 0);

// What build_table would refuse in this input (its error), or empty when it would build the table:
// the checks without the build, for a planner that builds the table later.
std::string input_error(std::span<const Backend> backends, std::uint32_t size);

}  // namespace fulcrum::maglev
