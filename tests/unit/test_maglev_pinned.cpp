// The Maglev tables are part of the wire contract between balancers: a balancer upgraded in the
// middle of a fleet must pick the same backend for every flow as its peers, and a restart must
// move no flow. These tests pin the tables of today's algorithm (checksums computed with the
// builder before it was made fast) and cross-check the fast builder against the old one kept in
// maglev_reference.h, over fixed and random inputs, errors included.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "maglev/maglev.h"
#include "maglev_reference.h"

using fulcrum::maglev::Backend;
using fulcrum::maglev::build_table;
using fulcrum::maglev::TableResult;

namespace {

// FNV-1a over the size and then every slot as little-endian u32 (the same value on any CPU).
std::uint64_t table_hash(const std::vector<std::uint32_t>& table)
{
    std::uint64_t h = 0xcbf29ce484222325ULL;
    auto byte = [&h](std::uint32_t b) {
        h ^= b & 0xff;
        h *= 0x100000001b3ULL;
    };
    const auto n = static_cast<std::uint32_t>(table.size());
    for (int shift = 0; shift < 32; shift += 8)
        byte(n >> shift);
    for (std::uint32_t v : table)
        for (int shift = 0; shift < 32; shift += 8)
            byte(v >> shift);
    return h;
}

enum class Weights { kEqual, kMixed, kHeavyAmongLight };

// n backends with a mix of key shapes (IPv4, IPv6, names) and ids that are not their positions,
// given in an order that is not the key order.
std::vector<Backend> pinned_backends(std::uint32_t n, Weights weights)
{
    // Mixed: includes 0 (takes no slot) and the maximum 65535.
    static constexpr std::uint32_t kMixed[] = {1, 0, 100, 65535, 3, 250, 7, 1000, 2, 40000};
    std::vector<Backend> v;
    for (std::uint32_t i = 0; i < n; ++i) {
        const std::uint32_t j = (i * 7919) % n;  // a permutation of 0..n-1 when n is not a multiple of 7919
        std::string key;
        switch (j % 3) {
            case 0: key = "10." + std::to_string(j / 65536) + "." + std::to_string(j / 256 % 256) + "." +
                          std::to_string(j % 256) + ":80"; break;
            case 1: key = "[2001:db8::" + std::to_string(j) + "]:443"; break;
            default: key = "backend-" + std::to_string(j) + ".example"; break;
        }
        std::uint32_t w = 100;
        if (weights == Weights::kMixed)
            w = kMixed[j % 10];
        else if (weights == Weights::kHeavyAmongLight)
            w = j == 0 ? 65535 : 1;
        v.push_back({key, j * 3 + 11, w});
    }
    return v;
}

struct Pin {
    std::uint32_t backends;
    Weights weights;
    std::uint32_t size;
    std::uint64_t seed;
    std::uint64_t hash;  // table_hash of today's table
};

// Computed with the builder of commit 1b5f584 (the one in maglev_reference.h).
const Pin kPins[] = {
#include "maglev_pins.inc"
};

}  // namespace

TEST_CASE("Maglev tables are bit-identical to the pinned ones of the original builder", "[maglev]")
{
    for (const Pin& pin : kPins) {
        const auto backends = pinned_backends(pin.backends, pin.weights);
        const TableResult r = build_table(backends, pin.size, pin.seed);
        INFO(pin.backends << " backends, weights " << static_cast<int>(pin.weights) << ", size " << pin.size
                          << ", seed " << pin.seed << ": " << r.error);
        REQUIRE(r.ok());
        REQUIRE(r.table.size() == pin.size);
        CHECK(table_hash(r.table) == pin.hash);
    }
}

TEST_CASE("the reference builder still gives the pinned tables", "[maglev]")
{
    // Guards the guard: the cross-check below is only worth something while the reference is
    // the original algorithm.
    for (const Pin& pin : kPins) {
        const auto backends = pinned_backends(pin.backends, pin.weights);
        const TableResult r = fulcrum::maglev::reference::build_table(backends, pin.size, pin.seed);
        INFO(pin.backends << " backends, size " << pin.size << ", seed " << pin.seed);
        REQUIRE(r.ok());
        CHECK(table_hash(r.table) == pin.hash);
    }
}

namespace {

// A random key: mostly address-like, sometimes any bytes (high bytes too: key order is bytewise
// unsigned), sometimes a prefix of another key or empty.
std::string random_key(std::mt19937_64& rng, const std::vector<Backend>& so_far)
{
    switch (rng() % 6) {
        case 0: {
            std::string s(rng() % 12, '\0');
            for (char& c : s)
                c = static_cast<char>(rng());
            return s;
        }
        case 1:
            if (!so_far.empty()) {
                const std::string& other = so_far[rng() % so_far.size()].key;
                return other.substr(0, rng() % (other.size() + 1)) + (rng() % 2 ? "x" : "");
            }
            [[fallthrough]];
        default:
            return "198.18." + std::to_string(rng() % 256) + "." + std::to_string(rng() % 256) + ":" +
                   std::to_string(rng() % 65536);
    }
}

std::uint32_t random_weight(std::mt19937_64& rng)
{
    switch (rng() % 8) {
        case 0: return 0;
        case 1: return 65535;
        case 2: return static_cast<std::uint32_t>(rng() % 65536);
        case 3: return 1 + static_cast<std::uint32_t>(rng() % 3);
        default: return 100;
    }
}

}  // namespace

TEST_CASE("the fast builder matches the reference on random inputs, errors included", "[maglev]")
{
    static constexpr std::uint32_t kSizes[] = {2, 3, 5, 7, 13, 251, 257, 4099, 65537, 0, 1, 4, 65535, 9};
    std::mt19937_64 rng(20261127);
    for (int round = 0; round < 400; ++round) {
        const std::uint32_t n = static_cast<std::uint32_t>(rng() % 4 == 0 ? rng() % 400 : rng() % 12);
        const std::uint32_t size = kSizes[rng() % std::size(kSizes)];
        const std::uint64_t seed = rng() % 3 == 0 ? 0 : rng();
        std::vector<Backend> backends;
        bool all_equal = rng() % 3 == 0;
        const std::uint32_t equal_weight = random_weight(rng);
        for (std::uint32_t i = 0; i < n; ++i) {
            Backend b{random_key(rng, backends), 1 + static_cast<std::uint32_t>(rng() % 0xffffffffu),
                      all_equal ? equal_weight : random_weight(rng)};
            // Now and then something the builder must refuse, each with its own message.
            if (rng() % 500 == 0)
                b.id = 0;
            if (rng() % 500 == 0)
                b.weight = 65536 + static_cast<std::uint32_t>(rng() % 1000);
            if (rng() % 300 == 0 && !backends.empty())
                b.key = backends[rng() % backends.size()].key;
            backends.push_back(std::move(b));
        }
        const TableResult want = fulcrum::maglev::reference::build_table(backends, size, seed);
        const TableResult got = build_table(backends, size, seed);
        INFO("round " << round << ": " << n << " backends, size " << size << ", seed " << seed << ", error \""
                      << want.error << "\"");
        REQUIRE(got.error == want.error);
        REQUIRE(got.table == want.table);
    }
}

TEST_CASE("the fast builder matches the reference at the edges of its phases", "[maglev]")
{
    // The fast builder changes method as the table fills (short walks, walks over the copied
    // bitmap below 1/8 free, the scan of the last 220 free slots): every size here crosses those
    // points with 1 backend, with as many backends as slots (and more: some take no slot), with
    // equal weights, weights 0..200 and one heavy backend among light ones.
    static constexpr std::uint32_t kSizes[] = {2, 3, 5, 7, 13, 31, 61, 127, 251, 257, 1021, 4099, 65537};
    std::mt19937_64 rng(20261128);
    for (const std::uint32_t size : kSizes)
        for (const std::uint32_t n : {1u, 2u, 3u, size - 1, size, size + 1, 2 * size + 3, 1000u}) {
            if (n == 0 || (size == 65537 && n > 1000))
                continue;
            for (int weights = 0; weights < 3; ++weights) {
                std::vector<Backend> backends;
                for (std::uint32_t i = 0; i < n; ++i) {
                    const auto w = weights == 0   ? 100u
                                   : weights == 1 ? static_cast<std::uint32_t>(rng() % 201)
                                                  : (i == 0 ? 65535u : 1u);
                    backends.push_back({"b" + std::to_string(rng() % 1000000000) + "-" + std::to_string(i), i + 1, w});
                }
                const std::uint64_t seed = rng();
                const TableResult want = fulcrum::maglev::reference::build_table(backends, size, seed);
                const TableResult got = build_table(backends, size, seed);
                INFO(n << " backends, size " << size << ", weights " << weights << ", seed " << seed);
                REQUIRE(want.ok());
                REQUIRE(got.error == want.error);
                REQUIRE(got.table == want.table);
            }
        }
}
