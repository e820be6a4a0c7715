// Maglev table builder: one permutation per backend, slots claimed in weighted round-robin order.
#include "maglev/maglev.h"

#include <algorithm>
#include <string_view>
#include <tuple>
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
// Changing this function changes every table; tests/unit/test_maglev.cpp and
// test_maglev_pinned.cpp pin it. Two seeds at once: the two multiply chains are independent, so
// the CPU runs them side by side (one chain per byte is the cost of a hash).
std::pair<std::uint64_t, std::uint64_t> hash_key2(std::string_view key, std::uint64_t seed1, std::uint64_t seed2)
{
    std::uint64_t h1 = 0xcbf29ce484222325ULL ^ fmix64(seed1);
    std::uint64_t h2 = 0xcbf29ce484222325ULL ^ fmix64(seed2);
    for (unsigned char c : key) {
        h1 = (h1 ^ c) * 0x100000001b3ULL;
        h2 = (h2 ^ c) * 0x100000001b3ULL;
    }
    return {fmix64(h1), fmix64(h2)};
}

// Two different seeds derived from the caller's, so offset and skip are independent (h1 != h2).
constexpr std::uint64_t kOffsetSeed = 0x6d61676c65762d31ULL;  // "maglev-1"
constexpr std::uint64_t kSkipSeed = 0x6d61676c65762d32ULL;    // "maglev-2"

// x mod d for any 64-bit x and 0 < d < 2^32 without a division instruction (Barrett): with
// m = floor((2^64 - 1) / d), floor(x * m / 2^64) is floor(x / d) or one less.
class Modulus {
public:
    explicit Modulus(std::uint32_t d) : d_(d), m_(~std::uint64_t{0} / d) {}
    std::uint64_t of(std::uint64_t x) const
    {
        __extension__ typedef unsigned __int128 u128;
        const auto q = static_cast<std::uint64_t>((static_cast<u128>(x) * m_) >> 64);
        const std::uint64_t r = x - q * d_;
        return r >= d_ ? r - d_ : r;
    }

private:
    std::uint64_t d_, m_;
};

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

namespace {

// Fills the table claim by claim. What a claim touches of a backend is one 16-byte Lane (one
// cache line, whatever order the backends claim in: 16 KiB for 1000 backends); what only the
// last few claims need (offset, inverse) is kept apart.
class Filler {
public:
    explicit Filler(std::uint32_t size) : size_(size), taken_((size + 63) / 64, 0) {}

    void reserve(std::size_t backends)
    {
        lanes_.reserve(backends);
        offset_.reserve(backends);
        inverse_.reserve(backends);
    }

    void add(std::uint32_t id, std::uint32_t offset, std::uint32_t skip)
    {
        lanes_.push_back({offset, skip, size_ - skip, id});
        offset_.push_back(offset);
        inverse_.push_back(0);
    }

    // Fills all `size` slots of `table`, one claim per call of next() (the index of the backend
    // that claims): that backend takes the first free slot of its permutation (offset,
    // offset + skip, ... mod size) from where it stopped; every slot before that in its
    // permutation is taken already. One loop per method, state in locals: this is the hot path.
    template <typename Next>
    void fill(std::uint32_t* table, Next&& next)
    {
        std::uint32_t left = size_;
        std::uint64_t* const taken = taken_.data();
        Lane* const lanes = lanes_.data();
        for (; left > kScanBelow; --left) {
            Lane& lane = lanes[next()];
            // The walk: `% size` is a conditional subtraction (pos and skip are both below
            // size, back = size - skip, so pos + skip never overflows); both sides computed
            // first so that it compiles to a cmov: as a branch it is mispredicted half the
            // time. The bitmap (8 KiB for 65537 slots) stays in L1, where the table itself
            // (256 KiB) would not.
            std::uint32_t pos = lane.pos;
            const std::uint32_t skip = lane.skip, back = lane.back;
            while ((taken[pos >> 6] >> (pos & 63)) & 1) {
                const std::uint32_t wrapped = pos - back, ahead = pos + skip;
                pos = pos >= back ? wrapped : ahead;
            }
            taken[pos >> 6] |= std::uint64_t{1} << (pos & 63);
            table[pos] = lane.id;
            lane.pos = pos;
        }
        list_free();
        for (; left > 0; --left) {
            const std::uint32_t i = next();
            const std::uint32_t slot = scan(i);
            table[slot] = lanes[i].id;
            lanes[i].pos = slot;
        }
    }

private:
    struct Lane {
        std::uint32_t pos;   // the slot of its last claim (its offset before the first)
        std::uint32_t skip;  // 1..size-1
        std::uint32_t back;  // size - skip
        std::uint32_t id;
    };

    // Below this many free slots a walk costs ~size/free probes, more than scanning the free
    // slots (measured at 65537 slots: ~4.4 cycles a probe, ~6 cycles a scanned slot, even at
    // sqrt(size * 4.4 / 6)).
    static constexpr std::uint32_t kScanBelow = 220;

    // The scan: a free slot s is step (s - offset) * skip^-1 (mod size) of the permutation, and
    // the walk would stop at the free slot with the smallest step, so take that one. Same slot
    // as the walk, in O(free) instead of O(size / free). Removes the slot from the free list.
    std::uint32_t scan(std::uint32_t i)
    {
        if (inverse_[i] == 0)
            inverse_[i] = inverse_mod(lanes_[i].skip, size_);
        const std::uint64_t offset = offset_[i], inverse = inverse_[i];
        std::uint64_t best_step = size_;
        std::size_t best = 0;
        for (std::size_t k = 0; k < free_.size(); ++k) {
            const std::uint64_t s = free_[k];
            const std::uint64_t step = mod_size_.of((s >= offset ? s - offset : s + size_ - offset) * inverse);
            if (step < best_step) {
                best_step = step;
                best = k;
            }
        }
        const std::uint32_t slot = free_[best];
        free_[best] = free_.back();
        free_.pop_back();
        return slot;
    }

    void list_free()
    {
        free_.reserve(std::min(size_, kScanBelow));
        for (std::uint32_t w = 0; w < taken_.size(); ++w)
            for (std::uint64_t bits = ~taken_[w]; bits != 0; bits &= bits - 1) {
                const std::uint32_t slot = w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(bits));
                if (slot < size_)
                    free_.push_back(slot);
            }
    }

    // a^-1 mod m for a prime m and 0 < a < m (extended Euclid).
    static std::uint32_t inverse_mod(std::uint32_t a, std::uint32_t m)
    {
        std::int64_t r0 = m, r1 = a, t0 = 0, t1 = 1;
        while (r1 != 0) {
            const std::int64_t q = r0 / r1;
            std::tie(r0, r1) = std::pair{r1, r0 - q * r1};
            std::tie(t0, t1) = std::pair{t1, t0 - q * t1};
        }
        return static_cast<std::uint32_t>(t0 < 0 ? t0 + m : t0);
    }

    const std::uint32_t size_;
    const Modulus mod_size_{size_};
    std::vector<Lane> lanes_;
    std::vector<std::uint32_t> offset_, inverse_;  // per backend; inverse 0: not computed yet
    std::vector<std::uint64_t> taken_;             // one bit per slot
    std::vector<std::uint32_t> free_;              // the free slots, once the scan takes over
};

// The weighted round-robin order in which backends claim slots: each round every backend earns
// `weight` credit and claims one slot per `max_weight` of credit, so backend i's k-th claim falls
// in round ceil(k * max_weight / weight_i), ties in key (index) order. That is the order of the
// pairs (round, index); this returns its first `size` entries as backend indices.
//
// A counting sort by round, stable in index: a backend's claims are generated in index order.
// Claims with round <= R number sum_i floor(R * w_i / W), which is >= R * S / W - n (S the sum of
// weights), so R = ceil((size + n) * W / S) yields at least `size` claims, and R <= size + n
// because S >= W. Linear in size + n + R, without the per-claim heap of a priority queue.
std::vector<std::uint32_t> claim_order(const std::vector<std::uint32_t>& weights, std::uint32_t size)
{
    const std::uint64_t n = weights.size();
    std::uint64_t max_w = 0, sum_w = 0;
    for (std::uint32_t w : weights) {
        max_w = std::max<std::uint64_t>(max_w, w);
        sum_w += w;
    }
    const std::uint64_t last_round = ((size + n) * max_w + sum_w - 1) / sum_w;

    // Every backend's claims up to last_round, in index order, twice: to count the claims of
    // each round, then to place them. k * W = q * w + r is advanced by W per claim (q += W / w,
    // r += W % w, carry), so there is no division per claim, and nothing per claim is stored
    // but its place in `order`.
    auto for_each_claim = [&](auto&& visit) {
        for (std::uint32_t i = 0; i < n; ++i) {
            const std::uint64_t w = weights[i], dq = max_w / w, dr = max_w % w;
            std::uint64_t q = 0, r = 0;
            for (;;) {
                q += dq;
                r += dr;
                if (r >= w) {
                    r -= w;
                    ++q;
                }
                const std::uint64_t round = q + (r != 0);  // ceil(k * W / w)
                if (round > last_round)
                    break;
                visit(static_cast<std::uint32_t>(round), i);
            }
        }
    };
    std::vector<std::uint32_t> first(last_round + 1, 0);  // first[r]: where round r's claims start
    std::uint32_t total = 0;
    for_each_claim([&](std::uint32_t round, std::uint32_t) { ++first[round]; });
    for (std::uint32_t& c : first) {
        const std::uint32_t count = c;
        c = total;
        total += count;
    }
    std::vector<std::uint32_t> order(total);
    for_each_claim([&](std::uint32_t round, std::uint32_t i) { order[first[round]++] = i; });
    order.resize(size);
    return order;
}

}  // namespace

namespace {

std::string size_error(std::uint32_t size)
{
    if (size < 2)
        return "table_size " + std::to_string(size) + " is too small (must be a prime >= 2)";
    // A prime size makes every skip in 1..size-1 coprime to size, so each permutation visits
    // every slot exactly once.
    if (!is_prime(size))
        return "table_size " + std::to_string(size) + " is not a prime";
    return {};
}

// b's error, in key order (`previous`: the backend before it in that order, or null).
std::string backend_error(const Backend* previous, const Backend& b)
{
    if (previous && previous->key == b.key)
        return "duplicate backend key \"" + b.key + "\"";
    if (b.id == 0)
        return "backend \"" + b.key + "\" has id 0 (0 is reserved for an empty slot)";
    if (b.weight > kMaxWeight)
        return "backend \"" + b.key + "\" has weight " + std::to_string(b.weight) + " (max " +
               std::to_string(kMaxWeight) + ")";
    return {};
}

}  // namespace

std::string input_error(std::span<const Backend> backends, std::uint32_t size)
{
    if (std::string e = size_error(size); !e.empty())
        return e;
    std::vector<const Backend*> sorted;
    sorted.reserve(backends.size());
    for (const Backend& b : backends)
        sorted.push_back(&b);
    std::sort(sorted.begin(), sorted.end(), [](const Backend* a, const Backend* b) { return a->key < b->key; });
    for (std::size_t i = 0; i < sorted.size(); ++i)
        if (std::string e = backend_error(i > 0 ? sorted[i - 1] : nullptr, *sorted[i]); !e.empty())
            return e;
    return {};
}

TableResult build_table(std::span<const Backend> backends, std::uint32_t size, std::uint64_t seed)
{
    TableResult out;
    if (out.error = size_error(size); !out.error.empty())
        return out;

    // Sort by key so the table depends on the set of backends, not on the order we were given.
    // Keys compare first by their first 16 bytes as two big-endian numbers (the bytes' own
    // order; a short key is padded with zeros, so a tie there falls through to the whole key):
    // most comparisons are two integer compares rather than a call to memcmp, which matters
    // for addresses that share their first 8 bytes ("10.0.0.1:80", "10.0.0.10:80").
    struct Keyed {
        std::uint64_t high, low;
        const Backend* backend;
    };
    auto be64 = [](const std::string& key, std::size_t at) {
        std::uint64_t v = 0;
        for (std::size_t k = at; k < at + 8; ++k)
            v = v << 8 | (k < key.size() ? static_cast<unsigned char>(key[k]) : 0);
        return v;
    };
    std::vector<Keyed> keyed;
    keyed.reserve(backends.size());
    for (const Backend& b : backends)
        keyed.push_back({be64(b.key, 0), be64(b.key, 8), &b});
    std::sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) {
        if (a.high != b.high)
            return a.high < b.high;
        if (a.low != b.low)
            return a.low < b.low;
        return a.backend->key < b.backend->key;
    });
    std::vector<const Backend*> sorted;
    sorted.reserve(keyed.size());
    for (const Keyed& k : keyed)
        sorted.push_back(k.backend);

    Filler filler(size);
    const Modulus mod_size(size), mod_size_1(size - 1);
    std::vector<std::uint32_t> weights;
    weights.reserve(sorted.size());
    filler.reserve(sorted.size());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        const Backend& b = *sorted[i];
        if (out.error = backend_error(i > 0 ? sorted[i - 1] : nullptr, b); !out.error.empty())
            return out;
        if (b.weight == 0)
            continue;
        const auto [h_offset, h_skip] = hash_key2(b.key, seed ^ kOffsetSeed, seed ^ kSkipSeed);
        const auto offset = static_cast<std::uint32_t>(mod_size.of(h_offset));
        const auto skip = static_cast<std::uint32_t>(mod_size_1.of(h_skip) + 1);
        filler.add(b.id, offset, skip);
        weights.push_back(b.weight);
    }
    out.table.assign(size, 0);
    if (weights.empty())
        return out;

    const auto n = static_cast<std::uint32_t>(weights.size());
    if (std::all_of(weights.begin(), weights.end(), [&](std::uint32_t w) { return w == weights[0]; })) {
        // Equal weights: every round is every backend once, in key order.
        std::uint32_t i = n - 1;
        filler.fill(out.table.data(), [&] { return i = i + 1 == n ? 0 : i + 1; });
    } else {
        const std::vector<std::uint32_t> order = claim_order(weights, size);
        std::size_t k = 0;
        filler.fill(out.table.data(), [&] { return order[k++]; });
    }
    return out;
}

}  // namespace fulcrum::maglev
