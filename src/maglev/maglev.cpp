// Maglev table builder: one permutation per backend, slots claimed in weighted round-robin order.
#include "maglev/maglev.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <string_view>
#include <utility>

namespace fulcrum::maglev {
namespace {

// MurmurHash3's finalizer: every input bit flips each output bit with probability ~1/2.
constexpr std::uint64_t fmix64(std::uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

// FNV-1a over the key bytes from a seeded basis, then fmix64 (FNV alone mixes upward only).
// Hand-written rather than std::hash: balancers on different machines, compilers or standard
// libraries must build byte-identical tables, or a flow would change backend between them.
// Changing this function changes every table; tests/unit/test_maglev.cpp pins it.
std::uint64_t hash_key(std::string_view key, std::uint64_t seed) {
    std::uint64_t h = 0xcbf29ce484222325ULL ^ fmix64(seed);
    for (unsigned char c : key) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return fmix64(h);
}

// Two different seeds derived from the caller's, so offset and skip are independent (h1 != h2).
constexpr std::uint64_t kOffsetSeed = 0x6d61676c65762d31ULL;  // "maglev-1"
constexpr std::uint64_t kSkipSeed = 0x6d61676c65762d32ULL;    // "maglev-2"

std::uint64_t mulmod(std::uint64_t a, std::uint64_t b, std::uint64_t m) {
    __extension__ typedef unsigned __int128 u128;
    return static_cast<std::uint64_t>(static_cast<u128>(a) * b % m);
}

std::uint64_t powmod(std::uint64_t base, std::uint64_t exp, std::uint64_t m) {
    std::uint64_t result = 1;
    base %= m;
    for (; exp != 0; exp >>= 1) {
        if (exp & 1) result = mulmod(result, base, m);
        base = mulmod(base, base, m);
    }
    return result;
}

}  // namespace

bool is_prime(std::uint64_t n) {
    // The first 12 primes as Miller-Rabin bases decide every n < 3.3e24, so all uint64 exactly.
    static constexpr std::uint64_t kBases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    if (n < 2) return false;
    for (std::uint64_t p : kBases)
        if (n % p == 0) return n == p;
    std::uint64_t d = n - 1;
    int r = 0;
    for (; (d & 1) == 0; d >>= 1) ++r;
    for (std::uint64_t a : kBases) {
        std::uint64_t x = powmod(a, d, n);
        if (x == 1 || x == n - 1) continue;
        bool witness = true;  // a proves n composite unless some x^(2^i) hits n-1
        for (int i = 1; i < r && witness; ++i) {
            x = mulmod(x, x, n);
            witness = x != n - 1;
        }
        if (witness) return false;
    }
    return true;
}

TableResult build_table(std::span<const Backend> backends, std::uint32_t size, std::uint64_t seed) {
    TableResult out;
    if (size < 2) {
        out.error = "table_size " + std::to_string(size) + " is too small (must be a prime >= 2)";
        return out;
    }
    if (!is_prime(size)) {
        // A prime size makes every skip in 1..size-1 coprime to size, so each permutation
        // visits every slot exactly once.
        out.error = "table_size " + std::to_string(size) + " is not a prime";
        return out;
    }

    // Sort by key so the table depends on the set of backends, not on the order we were given.
    std::vector<const Backend*> sorted;
    sorted.reserve(backends.size());
    for (const Backend& b : backends) sorted.push_back(&b);
    std::sort(sorted.begin(), sorted.end(), [](const Backend* a, const Backend* b) { return a->key < b->key; });

    struct Perm {
        std::uint32_t id, weight;
        std::uint64_t pos, skip;  // current place in this backend's permutation; 64-bit so pos+skip can't wrap
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
        if (b.weight == 0) continue;
        const std::uint64_t offset = hash_key(b.key, seed ^ kOffsetSeed) % size;
        const std::uint64_t skip = hash_key(b.key, seed ^ kSkipSeed) % (size - 1) + 1;
        perms.push_back({b.id, b.weight, offset, skip});
        max_weight = std::max(max_weight, b.weight);
    }

    out.table.assign(size, 0);
    if (perms.empty()) return out;

    // Weighted round-robin: each round every backend earns `weight` credit and claims its next
    // preferred empty slot per `max_weight` of credit, so the heaviest claims one slot per round
    // and the others proportionally fewer. Backend i's k-th claim therefore falls in round
    // ceil(k * max_weight / weight). A min-heap on (round, index) replays exactly that order
    // (ties in key order) while visiting only the backends that claim, i.e. O(size log N) rather
    // than O(rounds * N), which blows up when one heavy backend sits among many light ones.
    auto next_round = [max_weight](const Perm& p) {
        return ((p.claims + 1) * max_weight + p.weight - 1) / p.weight;
    };
    using Entry = std::pair<std::uint64_t, std::uint32_t>;
    std::vector<Entry> initial;
    initial.reserve(perms.size());
    for (std::uint32_t i = 0; i < perms.size(); ++i) initial.emplace_back(next_round(perms[i]), i);
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap(std::greater<>{}, std::move(initial));

    for (std::uint32_t filled = 0; filled < size; ++filled) {
        const std::uint32_t i = heap.top().second;
        heap.pop();
        Perm& p = perms[i];
        // Walk offset, offset+skip, ... (mod size) to the first empty slot; the permutation
        // covers every slot, so one exists while filled < size.
        while (out.table[p.pos] != 0) {
            p.pos += p.skip;
            if (p.pos >= size) p.pos -= size;
        }
        out.table[p.pos] = p.id;
        ++p.claims;
        heap.emplace(next_round(p), i);
    }
    return out;
}

}  // namespace fulcrum::maglev
