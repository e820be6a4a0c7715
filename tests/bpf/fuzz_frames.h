// Hostile frames for the data-plane fuzzer (tests/bpf/test_fuzz.cpp): a deterministic random
// source, generators of frames to the standard services (tests/bpf/services.h) and of everything
// else, and mutations (byte flips, length fields, truncations at every layer, padding, tags).
// Addresses only from 198.18.0.0/15 and 2001:db8::/32 (LAB.md).
#pragma once

#include <cstdint>
#include <string>

#include "packet.h"

namespace fulcrum::test::fuzz {

// splitmix64: the same sequence on every machine and compiler (no std:: distributions).
class Rng {
public:
    explicit Rng(std::uint64_t seed) : s_(seed) {}
    std::uint64_t next()
    {
        std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    std::uint32_t below(std::uint32_t n) { return n ? static_cast<std::uint32_t>(next() % n) : 0; }
    std::uint32_t range(std::uint32_t lo, std::uint32_t hi) { return lo + below(hi - lo + 1); }  // [lo, hi]
    bool percent(std::uint32_t p) { return below(100) < p; }
    std::uint8_t byte() { return static_cast<std::uint8_t>(next()); }
    template <typename T, std::size_t N>
    const T& pick(const T (&items)[N]) { return items[below(N)]; }

private:
    std::uint64_t s_;
};

struct Frame {
    Bytes bytes;
    std::string kind;  // which generator and mutations made it (statistics, failure reports)
};

// The fuzzer's own service besides the standard ones: a VIP whose backend (198.18.3.11) is routed
// through an interface that is not in the redirect map (README: counted no_egress).
inline const std::string kVip4NoEgress = "198.18.100.8", kNoEgressBackend = "198.18.3.11";

// The fuzzer's QUIC service (abi.h fulcrum_quic_key): kVip4Multi UDP kQuicPort, server id 16 bits
// at DCID byte 0 (payload byte 1), backends with ids kQuicIds[0..2] (the third one draining).
inline constexpr std::uint16_t kQuicPort = 443;
inline constexpr std::uint32_t kQuicIds[] = {0x0101, 0x0202, 0x0303};

// One frame for the balancer: a mix of valid service frames, mutated ones and random frames.
Frame balancer_frame(Rng& rng);
// One frame for decap: tunnel frames to the given host addresses (valid or mutated) and others.
Frame decap_frame(Rng& rng);
// Applies 1..3 random mutations (kind gets their names appended).
void mutate(Rng& rng, Frame& frame);

// The tunnel addresses the fuzzer's decap program is given: every backend of standard_services,
// so that the balancer's forwarded frames are decapsulated.
extern const char* const kDecapAddresses[];
extern const std::size_t kDecapAddressCount;

}  // namespace fulcrum::test::fuzz
