// Unit tests of the Maglev table builder: balance, weights, disruption, determinism, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "maglev/maglev.h"

using fulcrum::maglev::Backend;
using fulcrum::maglev::build_table;
using fulcrum::maglev::is_prime;

namespace {

constexpr std::uint32_t kM = 65537;

// n backends "10.0.x.y:80" with ids 1..n, all of the given weight.
std::vector<Backend> make_backends(std::uint32_t n, std::uint32_t weight = 1) {
    std::vector<Backend> v;
    for (std::uint32_t i = 0; i < n; ++i)
        v.push_back({"10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80", i + 1, weight});
    return v;
}

std::map<std::uint32_t, std::size_t> count_slots(const std::vector<std::uint32_t>& table) {
    std::map<std::uint32_t, std::size_t> counts;
    for (std::uint32_t id : table) ++counts[id];
    return counts;
}

// FNV-1a over the table as little-endian u32s (explicit byte order: same value on any CPU).
std::uint64_t table_hash(const std::vector<std::uint32_t>& table) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::uint32_t v : table)
        for (int shift = 0; shift < 32; shift += 8) {
            h ^= (v >> shift) & 0xff;
            h *= 0x100000001b3ULL;
        }
    return h;
}

}  // namespace

TEST_CASE("equal weights spread slots evenly over 100 backends", "[maglev]") {
    const auto backends = make_backends(100);
    const auto r = build_table(backends, kM);
    REQUIRE(r.ok());
    REQUIRE(r.table.size() == kM);
    const auto counts = count_slots(r.table);
    REQUIRE(counts.count(0) == 0);  // every slot filled
    REQUIRE(counts.size() == 100);  // every backend has slots
    std::size_t max_slots = 0;
    for (const auto& [id, n] : counts) {
        REQUIRE(id >= 1);
        REQUIRE(id <= 100);
        max_slots = std::max(max_slots, n);
    }
    const double mean = double(kM) / 100;
    CHECK(max_slots / mean <= 1.01);
}

TEST_CASE("slots are proportional to weight within 1 %, weight 0 gets none", "[maglev]") {
    std::vector<Backend> backends;
    std::uint32_t total = 0;
    for (std::uint32_t w = 1; w <= 10; ++w) {
        backends.push_back({"192.168.1." + std::to_string(w) + ":443", w, w * 100});
        total += w * 100;
    }
    backends.push_back({"192.168.1.99:443", 99, 0});
    const auto r = build_table(backends, kM);
    REQUIRE(r.ok());
    const auto counts = count_slots(r.table);
    CHECK(counts.count(0) == 0);
    CHECK(counts.count(99) == 0);
    for (const Backend& b : backends) {
        if (b.weight == 0) continue;
        const double expected = double(kM) * b.weight / total;
        const double actual = counts.count(b.id) ? double(counts.at(b.id)) : 0.0;
        INFO("backend " << b.key << " weight " << b.weight << ": " << actual << " slots, expected " << expected);
        CHECK(std::abs(actual - expected) / expected <= 0.01);
    }
}

TEST_CASE("removing one of N backends moves at most 1/N + 1 % of slots", "[maglev]") {
    for (std::uint32_t n : {10u, 100u}) {
        const auto all = make_backends(n);
        const auto before = build_table(all, kM);
        REQUIRE(before.ok());
        for (std::uint32_t removed : {0u, n / 2, n - 1}) {
            auto fewer = all;
            fewer.erase(fewer.begin() + removed);
            const auto after = build_table(fewer, kM);
            REQUIRE(after.ok());
            std::size_t changed = 0, lost = 0, still_there = 0;
            for (std::uint32_t s = 0; s < kM; ++s) {
                changed += before.table[s] != after.table[s];
                lost += before.table[s] == all[removed].id;
                still_there += after.table[s] == all[removed].id;
            }
            INFO("N=" << n << " removed #" << removed << ": " << changed << " of " << kM << " slots changed");
            CHECK(still_there == 0);
            CHECK(lost > 0);
            CHECK(double(changed) / kM <= 1.0 / n + 0.01);
        }
    }
}

TEST_CASE("table depends on the backend set, not on input order, and is pinned", "[maglev]") {
    auto backends = make_backends(50);
    for (std::size_t i = 0; i < backends.size(); ++i) backends[i].weight = std::uint32_t(1 + i % 7);
    const auto a = build_table(backends, kM);
    std::reverse(backends.begin(), backends.end());
    const auto b = build_table(backends, kM);
    std::rotate(backends.begin(), backends.begin() + 17, backends.end());
    const auto c = build_table(backends, kM);
    REQUIRE(a.ok());
    CHECK(a.table == b.table);
    CHECK(a.table == c.table);

    // The seed selects a different (but equally deterministic) table.
    CHECK(build_table(backends, kM, 42).table != a.table);
    CHECK(build_table(backends, kM, 42).table == build_table(backends, kM, 42).table);

    // Golden values, on purpose: balancers running different versions (or built by different
    // compilers / on different CPUs) must agree on the table, so any change to the hash
    // functions or the fill order must show up here and be a deliberate, announced break.
    const std::vector<Backend> small = {
        {"10.1.0.1:80", 1, 1}, {"10.1.0.2:80", 2, 1}, {"10.1.0.3:80", 3, 2}};
    const auto g = build_table(small, 13);
    REQUIRE(g.ok());
    CHECK(g.table == std::vector<std::uint32_t>{2, 2, 1, 3, 3, 3, 3, 3, 3, 3, 1, 2, 1});
    CHECK(table_hash(a.table) == 0x05035af14eb12cd1ULL);
}

TEST_CASE("invalid input is rejected with a helpful error and an empty table", "[maglev]") {
    const auto ok = make_backends(3);
    struct Case {
        std::vector<Backend> backends;
        std::uint32_t size;
        std::string message;
    };
    const std::vector<Case> cases = {
        {ok, 65536, "table_size 65536 is not a prime"},
        {ok, 0, "table_size 0 is too small"},
        {ok, 1, "table_size 1 is too small"},
        {{{"a", 1, 1}, {"b", 2, 1}, {"a", 3, 1}}, 13, "duplicate backend key \"a\""},
        {{{"a", 1, 1}, {"b", 0, 1}}, 13, "backend \"b\" has id 0"},
        {{{"a", 1, 65536}}, 13, "backend \"a\" has weight 65536"},
    };
    for (const Case& tc : cases) {
        const auto r = build_table(tc.backends, tc.size);
        INFO("size " << tc.size << ", error: " << r.error);
        CHECK_FALSE(r.ok());
        CHECK(r.error.find(tc.message) != std::string::npos);
        CHECK(r.table.empty());
        CHECK(input_error(tc.backends, tc.size) == r.error);  // the same check, without a build
    }
    CHECK(input_error(ok, 13).empty());
    CHECK(input_error(make_backends(5, 0), kM).empty());
}

TEST_CASE("no backend with weight > 0 gives an all-zero table", "[maglev]") {
    const auto empty = build_table({}, 251);
    REQUIRE(empty.ok());
    CHECK(empty.table == std::vector<std::uint32_t>(251, 0));

    const auto zero = build_table(make_backends(5, 0), kM);
    REQUIRE(zero.ok());
    CHECK(zero.table == std::vector<std::uint32_t>(kM, 0));
}

TEST_CASE("is_prime", "[maglev]") {
    CHECK_FALSE(is_prime(0));
    CHECK_FALSE(is_prime(1));
    CHECK(is_prime(2));
    CHECK(is_prime(3));
    CHECK_FALSE(is_prime(4));
    CHECK(is_prime(65537));
    CHECK_FALSE(is_prime(65536));
    CHECK(is_prime(1048573));
    CHECK_FALSE(is_prime(1048575));
    CHECK_FALSE(is_prime(65537ULL * 65539));                  // product of two primes
    CHECK_FALSE(is_prime(3215031751ULL));                     // strong pseudoprime to bases 2, 3, 5, 7
    CHECK(is_prime(18446744073709551557ULL));                 // largest 64-bit prime
}
