// Known answers for the flow hash (xdp/flow_hash.h, fulcrum_flow_hash), shared by the XDP program
// and fulcrumd: a change to the hash or to the key layout moves every flow to another Maglev slot,
// and tests that compute their expectations with the same function cannot see it. The literals
// below were computed independently of the C code by tests/unit/flow_hash_kat.py (MurmurHash3_x86_32
// written from its description and checked against Murmur3's published vectors); rerun it to
// reproduce them. Never regenerate them from fulcrum_flow_hash itself.
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "flow_hash.h"

// The key's address words and ports are stored in network byte order and loaded as host words:
// the answers below are those of a little-endian host (x86-64, and BPF on it).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the known answers assume a little-endian host");
static_assert(sizeof(fulcrum_flow_key) == 40, "the hash's final step XORs the key size, 40");

namespace {

struct Kat {
    const char* src;
    std::uint16_t sport;
    const char* dst;
    std::uint16_t dport;
    std::uint8_t proto;
    std::uint32_t seed;
    std::uint32_t hash;
};

// From: /usr/bin/python3 tests/unit/flow_hash_kat.py
const Kat kKats[] = {
    {"198.18.0.100", 40000, "198.18.100.10", 80, 6, 0x00000000u, 0xb2de0a33u},
    {"198.18.0.100", 40000, "198.18.100.10", 80, 6, 0x00000001u, 0xf7a536a7u},
    {"198.18.0.100", 40001, "198.18.100.10", 80, 6, 0x00000000u, 0x786451afu},
    {"198.18.0.100", 40000, "198.18.100.10", 80, 17, 0x00000000u, 0x077c1c6bu},
    {"198.18.0.100", 53000, "198.18.100.10", 53, 17, 0xdeadbeefu, 0xcb4f67bdu},
    {"198.19.255.254", 65535, "198.18.0.1", 1, 6, 0xffffffffu, 0xbe2c4d39u},
    {"0.0.0.0", 0, "0.0.0.0", 0, 0, 0x00000000u, 0xdb54c2c6u},
    {"198.18.0.7", 0, "198.18.100.10", 0, 1, 0x0000002au, 0x1b9f0c46u},
    {"2001:db8::100", 40000, "2001:db8:100::10", 80, 6, 0x00000000u, 0xe89631a7u},
    {"2001:db8::100", 40000, "2001:db8:100::10", 80, 6, 0x9747b28cu, 0x517bff7au},
    {"2001:db8:1:2:3:4:5:6", 53000, "2001:db8:100::10", 53, 17, 0xdeadbeefu, 0x5727cb74u},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "2001:db8::1", 443, 6, 0xffffffffu, 0xac689c1au},
    {"::", 0, "::", 0, 0, 0x00000000u, 0xf0cf9257u},
    {"2001:db8::7", 0, "2001:db8:100::10", 0, 58, 0x0000002au, 0x5f3ea86du},
};

// Hash policies (abi.h FULCRUM_HASH_NO_*; omit 6 = src-ip, 2 = src-ip-dst-port, 3 = dst-port):
// the same keys with the omitted fields as zero. From the same script.
const struct {
    const char* src;
    std::uint16_t sport;
    const char* dst;
    std::uint16_t dport;
    std::uint8_t proto;
    std::uint32_t seed, omit, hash;
} kPolicyKats[] = {
    {"198.18.0.100", 40000, "198.18.100.10", 80, 6, 0x00000000u, 0, 0xb2de0a33u},  // 5-tuple
    {"198.18.0.100", 40000, "198.18.100.10", 80, 6, 0x00000000u, 6, 0x64b69117u},  // src-ip
    {"198.18.0.100", 40000, "198.18.100.10", 80, 6, 0x00000000u, 2, 0xeebdbeeeu},  // src-ip-dst-port
    {"198.18.0.100", 40000, "198.18.100.10", 80, 6, 0x00000000u, 3, 0x3b8c868bu},  // dst-port
    {"198.18.0.100", 53000, "198.18.100.10", 53, 17, 0xdeadbeefu, 0, 0xcb4f67bdu},  // 5-tuple
    {"198.18.0.100", 53000, "198.18.100.10", 53, 17, 0xdeadbeefu, 6, 0x4ee71cc1u},  // src-ip
    {"198.18.0.100", 53000, "198.18.100.10", 53, 17, 0xdeadbeefu, 2, 0x870cd227u},  // src-ip-dst-port
    {"198.18.0.100", 53000, "198.18.100.10", 53, 17, 0xdeadbeefu, 3, 0xbb37793au},  // dst-port
    {"2001:db8::100", 40000, "2001:db8:100::10", 80, 6, 0x9747b28cu, 0, 0x517bff7au},  // 5-tuple
    {"2001:db8::100", 40000, "2001:db8:100::10", 80, 6, 0x9747b28cu, 6, 0x19f2af4eu},  // src-ip
    {"2001:db8::100", 40000, "2001:db8:100::10", 80, 6, 0x9747b28cu, 2, 0xff648b87u},  // src-ip-dst-port
    {"2001:db8::100", 40000, "2001:db8:100::10", 80, 6, 0x9747b28cu, 3, 0x88c07951u},  // dst-port
    {"2001:db8:1:2:3:4:5:6", 53000, "2001:db8:100::10", 53, 17, 0xdeadbeefu, 0, 0x5727cb74u},  // 5-tuple
    {"2001:db8:1:2:3:4:5:6", 53000, "2001:db8:100::10", 53, 17, 0xdeadbeefu, 6, 0x3f371ab6u},  // src-ip
    {"2001:db8:1:2:3:4:5:6", 53000, "2001:db8:100::10", 53, 17, 0xdeadbeefu, 2, 0xc0676f1du},  // src-ip-dst-port
    {"2001:db8:1:2:3:4:5:6", 53000, "2001:db8:100::10", 53, 17, 0xdeadbeefu, 3, 0xce77abf1u},  // dst-port
};

fulcrum_flow_key make_key(const Kat& k)
{
    fulcrum_flow_key key;
    std::memset(&key, 0, sizeof key);
    const bool v6 = std::string(k.src).find(':') != std::string::npos;
    const int af = v6 ? AF_INET6 : AF_INET;
    REQUIRE(inet_pton(af, k.src, &key.src) == 1);
    REQUIRE(inet_pton(af, k.dst, &key.dst) == 1);
    key.sport = htons(k.sport);
    key.dport = htons(k.dport);
    key.proto = k.proto;
    key.family = v6 ? FULCRUM_AF_INET6 : FULCRUM_AF_INET;
    return key;
}

// MurmurHash3_x86_32 of a whole number of 4-byte blocks, from the header's own mixing steps.
std::uint32_t murmur3_blocks(const std::string& data, std::uint32_t seed)
{
    std::uint32_t h = seed;
    for (std::size_t i = 0; i + 4 <= data.size(); i += 4) {
        std::uint32_t k;
        std::memcpy(&k, data.data() + i, 4);
        h = fulcrum_hash_mix(h, k);
    }
    return fulcrum_hash_final(h ^ static_cast<std::uint32_t>(data.size()));
}

}  // namespace

TEST_CASE("flow hash: known answers for IPv4 and IPv6 keys and seeds")
{
    for (const Kat& k : kKats) {
        INFO(k.src << ":" << k.sport << " -> " << k.dst << ":" << k.dport << " proto " << int(k.proto)
                   << " seed 0x" << std::hex << k.seed);
        const fulcrum_flow_key key = make_key(k);
        CHECK(fulcrum_flow_hash(&key, k.seed) == k.hash);
    }
}

TEST_CASE("flow hash: known answers per hash policy, for the data plane's slot hash too")
{
    for (const auto& p : kPolicyKats) {
        INFO(p.src << ":" << p.sport << " -> " << p.dst << ":" << p.dport << " omit " << p.omit);
        const fulcrum_flow_key key = make_key(Kat{p.src, p.sport, p.dst, p.dport, p.proto, p.seed, 0});
        CHECK(fulcrum_hash_fields(&key, p.seed, p.omit) == p.hash);
        // What balancer.bpf.c and fulcrumctl lookup compute: the 5-tuple hash reused for omit 0.
        CHECK(fulcrum_slot_hash(&key, p.seed, p.omit, fulcrum_flow_hash(&key, p.seed)) == p.hash);
        // Bits outside FULCRUM_HASH_POLICY_MASK change nothing.
        CHECK(fulcrum_slot_hash(&key, p.seed, p.omit | 0x80000000u, fulcrum_flow_hash(&key, p.seed)) == p.hash);
    }
}

TEST_CASE("flow hash: padding and unused address words do not count")
{
    // IPv4 keys mix only w[0] of each address; the pad field is never mixed.
    fulcrum_flow_key key = make_key(kKats[0]);
    key.pad = 0xffff;
    key.src.w[3] = 0x12345678;
    CHECK(fulcrum_flow_hash(&key, kKats[0].seed) == kKats[0].hash);
}

TEST_CASE("flow hash: its mixing steps are MurmurHash3_x86_32 (published vectors)")
{
    // Block-aligned vectors of SMHasher's MurmurHash3_x86_32 set.
    CHECK(murmur3_blocks("", 0) == 0x00000000u);
    CHECK(murmur3_blocks("", 1) == 0x514e28b7u);
    CHECK(murmur3_blocks("", 0xffffffffu) == 0x81f16f39u);
    CHECK(murmur3_blocks(std::string("\0\0\0\0", 4), 0) == 0x2362f9deu);
    CHECK(murmur3_blocks("\x21\x43\x65\x87", 0) == 0xf55b516bu);
    CHECK(murmur3_blocks("aaaa", 0x9747b28cu) == 0x5a97808au);
    CHECK(murmur3_blocks("abcd", 0x9747b28cu) == 0xf0478627u);
}
