// The Maglev table builder as it was before it was made fast (commit 1b5f584), kept word for word
// in its logic as the reference the fast src/maglev/maglev.cpp must match bit for bit
// (tests/unit/test_maglev_pinned.cpp), and as the baseline fulcrum-reload-bench --maglev times
// beside it. Slow on purpose: a min-heap per claim, `table[pos] != 0` in a 256 KiB table.
// Do not "improve" it: its only job is to be obviously the old algorithm.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "maglev/maglev.h"

namespace fulcrum::maglev::reference {

constexpr std::uint64_t fmix64(std::uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

inline std::uint64_t hash_key(std::string_view key, std::uint64_t seed)
{
    std::uint64_t h = 0xcbf29ce484222325ULL ^ fmix64(seed);
    for (unsigned char c : key) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return fmix64(h);
}

inline constexpr std::uint64_t kOffsetSeed = 0x6d61676c65762d31ULL;  // "maglev-1"
inline constexpr std::uint64_t kSkipSeed = 0x6d61676c65762d32ULL;    // "maglev-2"

inline TableResult build_table(std::span<const Backend> backends, std::uint32_t size, std::uint64_t seed = 0)
{
    TableResult out;
    if (size < 2) {
        out.error = "table_size " + std::to_string(size) + " is too small (must be a prime >= 2)";
        return out;
    }
    if (!is_prime(size)) {
        out.error = "table_size " + std::to_string(size) + " is not a prime";
        return out;
    }

    std::vector<const Backend*> sorted;
    sorted.reserve(backends.size());
    for (const Backend& b : backends)
        sorted.push_back(&b);
    std::sort(sorted.begin(), sorted.end(), [](const Backend* a, const Backend* b) { return a->key < b->key; });

    struct Perm {
        std::uint32_t id, weight;
        std::uint64_t pos, skip;
        std::uint64_t claims = 0;
    };
    std::vector<Perm> perms;
    std::uint32_t max_weight = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        const Backend& b = *sorted[i];
        if (i > 0 && sorted[i - 1]->key == b.key) {
            out.error = "duplicate backend key \"" + b.key + "\"";
            return out;
        }
        if (b.id == 0) {
            out.error = "backend \"" + b.key + "\" has id 0 (0 is reserved for an empty slot)";
            return out;
        }
        if (b.weight > kMaxWeight) {
            out.error = "backend \"" + b.key + "\" has weight " + std::to_string(b.weight) + " (max " +
                        std::to_string(kMaxWeight) + ")";
            return out;
        }
        if (b.weight == 0)
            continue;
        const std::uint64_t offset = hash_key(b.key, seed ^ kOffsetSeed) % size;
        const std::uint64_t skip = hash_key(b.key, seed ^ kSkipSeed) % (size - 1) + 1;
        perms.push_back({b.id, b.weight, offset, skip});
        max_weight = std::max(max_weight, b.weight);
    }

    out.table.assign(size, 0);
    if (perms.empty())
        return out;

    auto next_round = [max_weight](const Perm& p) { return ((p.claims + 1) * max_weight + p.weight - 1) / p.weight; };
    using Entry = std::pair<std::uint64_t, std::uint32_t>;
    std::vector<Entry> initial;
    initial.reserve(perms.size());
    for (std::uint32_t i = 0; i < perms.size(); ++i)
        initial.emplace_back(next_round(perms[i]), i);
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap(std::greater<>{}, std::move(initial));

    for (std::uint32_t filled = 0; filled < size; ++filled) {
        const std::uint32_t i = heap.top().second;
        heap.pop();
        Perm& p = perms[i];
        while (out.table[p.pos] != 0) {
            p.pos += p.skip;
            if (p.pos >= size)
                p.pos -= size;
        }
        out.table[p.pos] = p.id;
        ++p.claims;
        heap.emplace(next_round(p), i);
    }
    return out;
}

}  // namespace fulcrum::maglev::reference
