// The decap program's packet table, and a round trip balancer -> decap that gives back the
// client's packet byte for byte.
#include <catch2/catch.hpp>

#include "dataplane/decap_program.h"
#include "table.h"

using namespace fulcrum;
using namespace fulcrum::test;

namespace {

const std::string kBackendV4 = "198.18.0.11", kBackendV6 = "2001:db8:0:1::11";
constexpr Mac kBackendMac{{0x02, 0xbe, 0, 0, 0, 0x0b}};

struct DecapLab {
    std::unique_ptr<dataplane::DecapProgram> program;
    DecapLab()
    {
        enter_lab_namespace();
        Status error;
        program = dataplane::DecapProgram::load(&error);
        if (!program)
            throw std::runtime_error(error.message());
        for (const std::string& address : {kBackendV4, kBackendV6}) {
            fulcrum_decap_key key{};
            key.addr = to_addr(address);
            key.family = family_of(address);
            REQUIRE(program->add_address(key).ok());
        }
    }
    Verdict run(const Bytes& frame) { return run_xdp(program->program_fd(), frame, ifindex("fl-main")); }
};

struct DecapRow {
    std::string name;
    Bytes in;
    int action;
    Bytes out;  // empty + XDP_PASS: unchanged
    fulcrum_decap_reason reason;
};

Bytes to_backend(std::uint16_t ethertype, const Bytes& ip, std::optional<std::uint16_t> vlan = std::nullopt)
{
    return ethernet(kBackendMac, kRouterMac, ethertype, ip, vlan);
}

}  // namespace

TEST_CASE("decap strips Fulcrum's tunnel header for this host's addresses only", "[bpf][decap]")
{
    DecapLab lab;
    const Bytes inner4 = ipv4(V4{.src = kClientV4, .dst = "198.18.100.1"}, tcp(40000, 80, 12));
    const Bytes inner6 = ipv6(V6{.src = kClientV6, .dst = "2001:db8:100::1"}, udp(5000, 53, 9));
    const V4 outer4{.src = kTunnelV4, .dst = kBackendV4, .proto = kIpip, .id = 0};
    const V6 outer6_4{.src = kTunnelV6, .dst = kBackendV6, .next = kIpip};
    const V6 outer6_6{.src = kTunnelV6, .dst = kBackendV6, .next = kIpv6};
    std::vector<DecapRow> rows = {
        {"IPv4-in-IPv4 to our tunnel address", to_backend(kEthIPv4, ipv4(outer4, inner4)), XDP_PASS,
         to_backend(kEthIPv4, inner4), FULCRUM_DECAP_DONE_V4_IN_V4},
        {"IPv6-in-IPv6 to our tunnel address", to_backend(kEthIPv6, ipv6(outer6_6, inner6)), XDP_PASS,
         to_backend(kEthIPv6, inner6), FULCRUM_DECAP_DONE_V6_IN_V6},
        {"IPv4-in-IPv6 to our tunnel address", to_backend(kEthIPv6, ipv6(outer6_4, inner4)), XDP_PASS,
         to_backend(kEthIPv4, inner4), FULCRUM_DECAP_DONE_V4_IN_V6},
        {"802.1Q tag kept", to_backend(kEthIPv4, ipv4(outer4, inner4), 0x0123), XDP_PASS,
         to_backend(kEthIPv4, inner4, 0x0123), FULCRUM_DECAP_DONE_V4_IN_V4},
        {"IPIP to another address: untouched",
         to_backend(kEthIPv4, ipv4(V4{.src = kTunnelV4, .dst = "198.18.0.99", .proto = kIpip}, inner4)),
         XDP_PASS, {}, FULCRUM_DECAP_PASS_OTHER},
        {"plain TCP to this host: untouched",
         to_backend(kEthIPv4, ipv4(V4{.src = kClientV4, .dst = kBackendV4}, tcp(1, 22))), XDP_PASS, {},
         FULCRUM_DECAP_PASS_OTHER},
        {"plain IPv6 to this host: untouched",
         to_backend(kEthIPv6, ipv6(V6{.src = kClientV6, .dst = kBackendV6}, tcp(1, 22))), XDP_PASS, {},
         FULCRUM_DECAP_PASS_OTHER},
        {"ARP: untouched", to_backend(kEthArp, Bytes(28, 1)), XDP_PASS, {}, FULCRUM_DECAP_PASS_OTHER},
        {"truncated outer IPv4 header: untouched (the stack drops it)",
         slice(to_backend(kEthIPv4, ipv4(outer4, inner4)), 0, 20), XDP_PASS, {}, FULCRUM_DECAP_PASS_OTHER},
        {"IPIP to us with a truncated inner header", to_backend(kEthIPv4, ipv4(outer4, slice(inner4, 0, 12))),
         XDP_DROP, {}, FULCRUM_DECAP_DROP_MALFORMED},
        {"IPv6 tunnel to us whose inner header is not IPv6",
         to_backend(kEthIPv6, ipv6(outer6_6, inner4)), XDP_DROP, {}, FULCRUM_DECAP_DROP_MALFORMED},
        {"outer IPv4 with options (Fulcrum never sends them)",
         to_backend(kEthIPv4, ipv4(V4{.src = kTunnelV4, .dst = kBackendV4, .proto = kIpip, .options = {1, 1, 1, 0}},
                                   inner4)),
         XDP_DROP, {}, FULCRUM_DECAP_DROP_MALFORMED},
    };
    std::map<int, std::uint64_t> want;
    for (const DecapRow& row : rows) {
        INFO("row: " << row.name);
        Verdict v = lab.run(row.in);
        CHECK(std::string(action_name(v.action)) == action_name(row.action));
        if (row.action == XDP_PASS)
            CHECK(hex(v.out) == hex(row.out.empty() ? row.in : row.out));
        want[row.reason]++;
    }
    for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; r++) {
        INFO("decap counter " << r);
        CHECK(lab.program->counters(static_cast<fulcrum_decap_reason>(r)).packets == want[r]);
    }
}

TEST_CASE("balancer then decap gives the backend the client's packet unchanged", "[bpf][decap]")
{
    BalancerLab balancer;
    DecapLab decap;
    balancer.add_backend(1, kBackendV4, 1);
    balancer.add_backend(2, kBackendV6, 2);
    balancer.add_backend(3, kBackendV6, 3);
    balancer.add_service(1, "198.18.100.1", 80, kTcp, std::vector<std::uint32_t>(7, 1));
    balancer.add_service(2, "198.18.100.1", 53, kUdp, std::vector<std::uint32_t>(7, 2));
    balancer.add_service(3, "2001:db8:100::1", 443, kTcp, std::vector<std::uint32_t>(7, 3));
    const Bytes packets[] = {
        ipv4(V4{.src = kClientV4, .dst = "198.18.100.1", .tos = 0x10}, tcp(40000, 80, 100)),
        ipv4(V4{.src = kClientV4, .dst = "198.18.100.1", .proto = kUdp}, udp(40000, 53, 100)),
        ipv6(V6{.src = kClientV6, .dst = "2001:db8:100::1"}, tcp(40000, 443, 100)),
    };
    for (const Bytes& ip : packets) {
        bool v4 = (ip[0] >> 4) == 4;
        Bytes frame = ethernet(kBalancerMac, kRouterMac, v4 ? kEthIPv4 : kEthIPv6, ip);
        Verdict there = balancer.run(frame);
        REQUIRE(there.action == XDP_TX);
        Verdict back = decap.run(there.out);
        REQUIRE(back.action == XDP_PASS);
        // L2 is the tunnel hop's (balancer -> backend); the IP packet is the client's, unchanged.
        CHECK(hex(slice(back.out, 0, 12)) == hex(slice(there.out, 0, 12)));
        CHECK(hex(slice(back.out, 14, back.out.size() - 14)) == hex(ip));
        CHECK(back.out[12] == (v4 ? 0x08 : 0x86));
    }
}
