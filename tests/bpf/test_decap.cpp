// The decap program's packet table, and a round trip balancer -> decap that gives back the
// client's packet byte for byte.
#include <catch2/catch.hpp>

#include "cmd/decap_state.h"
#include "dataplane/decap_program.h"
#include "dataplane/reasons.h"
#include "table.h"

using namespace fulcrum;
using namespace fulcrum::test;

namespace {

const std::string kBackendV4 = "198.18.0.11", kBackendV6 = "2001:db8:0:1::11";
const std::string kVipV4 = "198.18.100.1", kVipV6 = "2001:db8:100::1";  // on the backend's lo
// A second balancer whose outer source varies within a prefix (tunnel.source_v4_vary_bits).
const std::string kVaryingPrefixV4 = "198.18.4.0/24", kVaryingPrefixV6 = "2001:db8:4::/64";
const std::string kVaryingSourceV4 = "198.18.4.77", kVaryingSourceV6 = "2001:db8:4::7:7";
const std::string kSpoofV4 = "198.18.9.9", kSpoofV6 = "2001:db8:9::9";  // not a balancer
const std::string kElsewhereV4 = "198.18.200.1", kElsewhereV6 = "2001:db8:200::1";  // not local
constexpr Mac kBackendMac{{0x02, 0xbe, 0, 0, 0, 0x0b}};

fulcrum_decap_source_key prefix(const std::string& text)
{
    Result<fulcrum_decap_source_key> key = decap::parse_prefix(text);
    if (!key.ok())
        throw std::runtime_error("bad prefix in the test: " + text + ": " + key.message());
    return *key;
}

struct DecapLab {
    std::unique_ptr<dataplane::DecapProgram> program;
    explicit DecapLab(std::uint16_t gue_port = FULCRUM_GUE_DEFAULT_PORT)
    {
        enter_lab_namespace();
        Result<std::unique_ptr<dataplane::DecapProgram>> loaded = dataplane::DecapProgram::load(gue_port);
        if (!loaded.ok())
            throw std::runtime_error(loaded.message());
        program = std::move(loaded).value();
        for (const std::string& address : {kBackendV4, kBackendV6, kVipV4, kVipV6}) {
            fulcrum_decap_key key{};
            key.addr = to_addr(address);
            key.family = family_of(address);
            REQUIRE(program->add_local_address(key).ok());
        }
        // The lab balancer's sources as host prefixes, and a varying balancer's as networks.
        for (const std::string& from : {kTunnelV4 + "/32", kTunnelV6 + "/128", kVaryingPrefixV4, kVaryingPrefixV6})
            REQUIRE(program->add_source(prefix(from)).ok());
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

// Runs the rows, then checks every decap counter against the rows' reasons (fresh program).
void run_decap_table(DecapLab& lab, const std::vector<DecapRow>& rows)
{
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
        auto reason = static_cast<fulcrum_decap_reason>(r);
        INFO("decap counter " << dataplane::decap_reason_name(reason));
        Result<dataplane::PacketCounters> counters = lab.program->counters(reason);
        REQUIRE(counters.ok());
        CHECK(counters->packets == want[r]);
    }
}

}  // namespace

TEST_CASE("decap strips Fulcrum's tunnel header from the balancers to local addresses only", "[bpf][decap]")
{
    DecapLab lab;
    const Bytes inner4 = ipv4(V4{.src = kClientV4, .dst = kVipV4}, tcp(40000, 80, 12));
    const Bytes inner6 = ipv6(V6{.src = kClientV6, .dst = kVipV6}, udp(5000, 53, 9));
    const Bytes inner4_elsewhere = ipv4(V4{.src = kClientV4, .dst = kElsewhereV4}, tcp(40000, 22, 12));
    const Bytes inner6_elsewhere = ipv6(V6{.src = kClientV6, .dst = kElsewhereV6}, tcp(40000, 22, 9));
    const V4 outer4{.src = kTunnelV4, .dst = kBackendV4, .proto = kIpip, .id = 0};
    const V6 outer6_4{.src = kTunnelV6, .dst = kBackendV6, .next = kIpip};
    const V6 outer6_6{.src = kTunnelV6, .dst = kBackendV6, .next = kIpv6};
    std::vector<DecapRow> rows = {
        {.name = "IPv4-in-IPv4 from the balancer to a VIP on lo",
         .in = to_backend(kEthIPv4, ipv4(outer4, inner4)), .action = XDP_PASS,
         .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_V4_IN_V4},
        {.name = "IPv6-in-IPv6 from the balancer to a VIP on lo",
         .in = to_backend(kEthIPv6, ipv6(outer6_6, inner6)), .action = XDP_PASS,
         .out = to_backend(kEthIPv6, inner6), .reason = FULCRUM_DECAP_DONE_V6_IN_V6},
        {.name = "IPv4-in-IPv6 from the balancer to a VIP on lo",
         .in = to_backend(kEthIPv6, ipv6(outer6_4, inner4)), .action = XDP_PASS,
         .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_V4_IN_V6},
        {.name = "802.1Q tag kept", .in = to_backend(kEthIPv4, ipv4(outer4, inner4), 0x0123),
         .action = XDP_PASS, .out = to_backend(kEthIPv4, inner4, 0x0123),
         .reason = FULCRUM_DECAP_DONE_V4_IN_V4},
        {.name = "IPv4 outer source varied within an allowed /24",
         .in = to_backend(kEthIPv4,
                          ipv4(V4{.src = kVaryingSourceV4, .dst = kBackendV4, .proto = kIpip}, inner4)),
         .action = XDP_PASS, .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_V4_IN_V4},
        {.name = "IPv6 outer source varied within an allowed /64",
         .in = to_backend(kEthIPv6,
                          ipv6(V6{.src = kVaryingSourceV6, .dst = kBackendV6, .next = kIpv6}, inner6)),
         .action = XDP_PASS, .out = to_backend(kEthIPv6, inner6), .reason = FULCRUM_DECAP_DONE_V6_IN_V6},
        {.name = "outer destination is the VIP itself (a local address)",
         .in = to_backend(kEthIPv4, ipv4(V4{.src = kTunnelV4, .dst = kVipV4, .proto = kIpip}, inner4)),
         .action = XDP_PASS, .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_V4_IN_V4},
        // Spoofed tunnels: anyone who reaches the backend could otherwise smuggle packets in.
        {.name = "IPv4-in-IPv4 from a source outside --from: dropped",
         .in = to_backend(kEthIPv4, ipv4(V4{.src = kSpoofV4, .dst = kBackendV4, .proto = kIpip}, inner4)),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        {.name = "IPv4 source next to the allowed /32: dropped",
         .in = to_backend(kEthIPv4,
                          ipv4(V4{.src = "198.18.0.2", .dst = kBackendV4, .proto = kIpip}, inner4)),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        {.name = "IPv6-in-IPv6 from a source outside --from: dropped",
         .in = to_backend(kEthIPv6, ipv6(V6{.src = kSpoofV6, .dst = kBackendV6, .next = kIpv6}, inner6)),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        {.name = "IPv4-in-IPv6 from a source outside --from: dropped",
         .in = to_backend(kEthIPv6, ipv6(V6{.src = kSpoofV6, .dst = kBackendV6, .next = kIpip}, inner4)),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        {.name = "IPv6 outer source with the IPv4 balancer's bits (the families do not mix): dropped",
         .in = to_backend(kEthIPv6,
                          ipv6(V6{.src = "::ffff:198.18.0.1", .dst = kBackendV6, .next = kIpv6}, inner6)),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        {.name = "spoofed source with options: counted as not allowed first",
         .in = to_backend(kEthIPv4, ipv4(V4{.src = kSpoofV4, .dst = kBackendV4, .proto = kIpip,
                                             .options = {1, 1, 1, 0}},
                                          inner4)),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        // From the balancer, but to an inner destination that is not this host.
        {.name = "IPv4-in-IPv4, inner destination not local: dropped",
         .in = to_backend(kEthIPv4, ipv4(outer4, inner4_elsewhere)), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_INNER_NOT_LOCAL},
        {.name = "IPv6-in-IPv6, inner destination not local: dropped",
         .in = to_backend(kEthIPv6, ipv6(outer6_6, inner6_elsewhere)), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_INNER_NOT_LOCAL},
        {.name = "IPv4-in-IPv6, inner destination not local: dropped",
         .in = to_backend(kEthIPv6, ipv6(outer6_4, inner4_elsewhere)), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_INNER_NOT_LOCAL},
        {.name = "inner destination is loopback: dropped",
         .in = to_backend(kEthIPv4,
                          ipv4(outer4, ipv4(V4{.src = kClientV4, .dst = "127.0.0.1"}, tcp(1, 22)))),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_INNER_NOT_LOCAL},
        // Not a tunnel packet to us: untouched, whatever its source.
        {.name = "IPIP to another address: untouched",
         .in = to_backend(kEthIPv4,
                          ipv4(V4{.src = kTunnelV4, .dst = "198.18.0.99", .proto = kIpip}, inner4)),
         .action = XDP_PASS, .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "spoofed IPIP to another address: untouched",
         .in = to_backend(kEthIPv4,
                          ipv4(V4{.src = kSpoofV4, .dst = "198.18.0.99", .proto = kIpip}, inner4)),
         .action = XDP_PASS, .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "plain TCP to this host from anyone: untouched",
         .in = to_backend(kEthIPv4, ipv4(V4{.src = kSpoofV4, .dst = kBackendV4}, tcp(1, 22))),
         .action = XDP_PASS, .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "plain IPv6 to this host: untouched",
         .in = to_backend(kEthIPv6, ipv6(V6{.src = kClientV6, .dst = kBackendV6}, tcp(1, 22))),
         .action = XDP_PASS, .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "ARP: untouched", .in = to_backend(kEthArp, Bytes(28, 1)), .action = XDP_PASS,
         .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "truncated outer IPv4 header: untouched (the stack drops it)",
         .in = slice(to_backend(kEthIPv4, ipv4(outer4, inner4)), 0, 20), .action = XDP_PASS,
         .reason = FULCRUM_DECAP_PASS_OTHER},
        // Malformed tunnel packets from the balancer.
        {.name = "IPIP from the balancer with a truncated inner header",
         .in = to_backend(kEthIPv4, ipv4(outer4, slice(inner4, 0, 12))), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_MALFORMED},
        {.name = "IPv6 tunnel from the balancer whose inner header is not IPv6",
         .in = to_backend(kEthIPv6, ipv6(outer6_6, inner4)), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_MALFORMED},
        {.name = "outer IPv4 with options (Fulcrum never sends them)",
         .in = to_backend(kEthIPv4, ipv4(V4{.src = kTunnelV4, .dst = kBackendV4, .proto = kIpip,
                                             .options = {1, 1, 1, 0}},
                                          inner4)),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_MALFORMED},
    };
    run_decap_table(lab, rows);
}

TEST_CASE("decap strips GUE (UDP to the GUE port) like IP-in-IP; other UDP is untouched", "[bpf][decap][gue]")
{
    DecapLab lab;  // --gue-port 6080, the default
    const Bytes inner4 = ipv4(V4{.src = kClientV4, .dst = kVipV4}, tcp(40000, 80, 12));
    const Bytes inner6 = ipv6(V6{.src = kClientV6, .dst = kVipV6}, udp(5000, 53, 9));
    const Bytes inner4_elsewhere = ipv4(V4{.src = kClientV4, .dst = kElsewhereV4}, tcp(40000, 22, 12));
    const V4 outer4{.src = kTunnelV4, .dst = kBackendV4, .proto = kUdp, .id = 0};
    const V6 outer6{.src = kTunnelV6, .dst = kBackendV6, .next = kUdp};
    Bytes checksummed = gue(50000, 6080, inner6);
    checksummed[6] = 0x12;  // a sender that fills the UDP checksum: not checked (README "GUE")
    checksummed[7] = 0x34;
    Bytes long_udp = gue(50000, 6080, inner4);
    long_udp[5] += 4;  // UDP length beyond the IP packet
    V4 fragment = outer4;
    fragment.flags_frag = 0x2000;  // MF: the balancer never fragments (DF); the stack reassembles
    std::vector<DecapRow> rows = {
        {.name = "IPv4 in GUE over IPv4 from the balancer to a VIP on lo",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, inner4))), .action = XDP_PASS,
         .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_GUE_V4_IN_V4},
        {.name = "IPv6 in GUE over IPv6 (zero UDP checksum)",
         .in = to_backend(kEthIPv6, ipv6(outer6, gue(50001, 6080, inner6))), .action = XDP_PASS,
         .out = to_backend(kEthIPv6, inner6), .reason = FULCRUM_DECAP_DONE_GUE_V6_IN_V6},
        {.name = "IPv4 in GUE over IPv6",
         .in = to_backend(kEthIPv6, ipv6(outer6, gue(50002, 6080, inner4))), .action = XDP_PASS,
         .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_GUE_V4_IN_V6},
        {.name = "IPv6 in GUE over IPv6 with a non-zero UDP checksum",
         .in = to_backend(kEthIPv6, ipv6(outer6, checksummed)), .action = XDP_PASS,
         .out = to_backend(kEthIPv6, inner6), .reason = FULCRUM_DECAP_DONE_GUE_V6_IN_V6},
        {.name = "GUE with an 802.1Q tag: tag kept",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, inner4)), 0x0123), .action = XDP_PASS,
         .out = to_backend(kEthIPv4, inner4, 0x0123), .reason = FULCRUM_DECAP_DONE_GUE_V4_IN_V4},
        {.name = "UDP from the balancer to another port: untouched",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6081, inner4))), .action = XDP_PASS,
         .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "IPv6 UDP from the balancer to another port: untouched",
         .in = to_backend(kEthIPv6, ipv6(outer6, gue(50000, 6081, inner6))), .action = XDP_PASS,
         .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "UDP from the GUE port (not to it): untouched",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(6080, 50000, inner4))), .action = XDP_PASS,
         .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "GUE to an address that is not local: untouched",
         .in = to_backend(kEthIPv4, ipv4(V4{.src = kTunnelV4, .dst = "198.18.0.99", .proto = kUdp},
                                         gue(50000, 6080, inner4))),
         .action = XDP_PASS, .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "a fragment of UDP to the GUE port: untouched (the stack reassembles it)",
         .in = to_backend(kEthIPv4, ipv4(fragment, gue(50000, 6080, inner4))), .action = XDP_PASS,
         .reason = FULCRUM_DECAP_PASS_OTHER},
        {.name = "GUE from a source outside --from: dropped",
         .in = to_backend(kEthIPv4, ipv4(V4{.src = kSpoofV4, .dst = kBackendV4, .proto = kUdp},
                                         gue(50000, 6080, inner4))),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        {.name = "IPv6 GUE from a source outside --from: dropped",
         .in = to_backend(kEthIPv6, ipv6(V6{.src = kSpoofV6, .dst = kBackendV6, .next = kUdp},
                                         gue(50000, 6080, inner6))),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_SOURCE},
        {.name = "GUE from the balancer, inner destination not local: dropped",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, inner4_elsewhere))), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_INNER_NOT_LOCAL},
        {.name = "GUE variant 0 (a GUE header, which Fulcrum never sends): dropped as malformed",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, concat(Bytes{0, 4, 0, 0}, inner4)))),
         .action = XDP_DROP, .reason = FULCRUM_DECAP_DROP_MALFORMED},
        {.name = "GUE whose UDP length disagrees with the IP length: dropped as malformed",
         .in = to_backend(kEthIPv4, ipv4(outer4, long_udp)), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_MALFORMED},
        {.name = "IPv6 in GUE over IPv4 (the balancer never mixes them so): dropped as malformed",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, inner6))), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_MALFORMED},
        {.name = "GUE with a truncated inner header: dropped as malformed",
         .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, slice(inner4, 0, 12)))), .action = XDP_DROP,
         .reason = FULCRUM_DECAP_DROP_MALFORMED},
    };
    run_decap_table(lab, rows);
}

TEST_CASE("decap strips GUE on --gue-port only, and none with --gue-port 0", "[bpf][decap][gue]")
{
    const Bytes inner4 = ipv4(V4{.src = kClientV4, .dst = kVipV4}, tcp(40000, 80, 12));
    const V4 outer4{.src = kTunnelV4, .dst = kBackendV4, .proto = kUdp, .id = 0};
    {
        DecapLab lab(7000);
        run_decap_table(lab, {
            {.name = "GUE to --gue-port 7000", .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 7000, inner4))),
             .action = XDP_PASS, .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_GUE_V4_IN_V4},
            {.name = "UDP to 6080 with --gue-port 7000: untouched",
             .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, inner4))), .action = XDP_PASS,
             .reason = FULCRUM_DECAP_PASS_OTHER},
        });
    }
    {
        DecapLab lab(0);
        run_decap_table(lab, {
            {.name = "UDP to 6080 with --gue-port 0: untouched",
             .in = to_backend(kEthIPv4, ipv4(outer4, gue(50000, 6080, inner4))), .action = XDP_PASS,
             .reason = FULCRUM_DECAP_PASS_OTHER},
            {.name = "IP-in-IP still stripped",
             .in = to_backend(kEthIPv4, ipv4(V4{.src = kTunnelV4, .dst = kBackendV4, .proto = kIpip, .id = 0}, inner4)),
             .action = XDP_PASS, .out = to_backend(kEthIPv4, inner4), .reason = FULCRUM_DECAP_DONE_V4_IN_V4},
        });
    }
}

// RFC 6040, normal mode: the ECN field of the inner header after decapsulation.
namespace {

constexpr std::uint8_t kNotEct = 0, kEct1 = 1, kEct0 = 2, kCe = 3;
const char* ecn_name(std::uint8_t ecn)
{
    static const char* names[] = {"Not-ECT", "ECT(1)", "ECT(0)", "CE"};
    return names[ecn & 3];
}
constexpr std::uint8_t kDscp = 0xb8;  // EF: the DSCP bits must come through untouched

}  // namespace

TEST_CASE("decap propagates congestion experienced per RFC 6040", "[bpf][decap][ecn]")
{
    DecapLab lab;
    std::vector<DecapRow> rows;
    for (std::uint8_t outer : {kNotEct, kEct0, kEct1, kCe}) {
        for (std::uint8_t inner : {kNotEct, kEct0, kEct1, kCe}) {
            bool drop = outer == kCe && inner == kNotEct;
            std::uint8_t result = outer == kCe ? kCe : inner;  // unchanged unless CE arrives outside
            fulcrum_decap_reason reason_v4 = drop ? FULCRUM_DECAP_DROP_ECN_NOT_ECT : FULCRUM_DECAP_DONE_V4_IN_V4;
            std::string what = std::string("outer ") + ecn_name(outer) + ", inner " + ecn_name(inner) + " -> " +
                               (drop ? "dropped" : ecn_name(result));

            // IPv4 inner: the header checksum of the expected packet is computed from scratch,
            // so it checks the program's incremental update.
            auto in4 = [&](std::uint8_t ecn) {
                return ipv4(V4{.src = kClientV4, .dst = kVipV4, .tos = static_cast<std::uint8_t>(kDscp | ecn)},
                            tcp(40000, 80, 10));
            };
            auto in6 = [&](std::uint8_t ecn) {
                return ipv6(V6{.src = kClientV6, .dst = kVipV6, .traffic_class = static_cast<std::uint8_t>(kDscp | ecn),
                               .flow_label = 0x12345},
                            udp(5000, 53, 10));
            };
            const auto outer_tos = static_cast<std::uint8_t>(kDscp | outer);
            rows.push_back({"IPv4 in IPv4, " + what,
                            to_backend(kEthIPv4, ipv4(V4{.src = kTunnelV4, .dst = kBackendV4, .proto = kIpip,
                                                         .tos = outer_tos, .id = 0},
                                                      in4(inner))),
                            drop ? XDP_DROP : XDP_PASS, drop ? Bytes{} : to_backend(kEthIPv4, in4(result)), reason_v4});
            rows.push_back({"IPv6 in IPv6, " + what,
                            to_backend(kEthIPv6, ipv6(V6{.src = kTunnelV6, .dst = kBackendV6, .next = kIpv6,
                                                         .traffic_class = outer_tos},
                                                      in6(inner))),
                            drop ? XDP_DROP : XDP_PASS, drop ? Bytes{} : to_backend(kEthIPv6, in6(result)),
                            drop ? FULCRUM_DECAP_DROP_ECN_NOT_ECT : FULCRUM_DECAP_DONE_V6_IN_V6});
            rows.push_back({"IPv4 in IPv6, " + what,
                            to_backend(kEthIPv6, ipv6(V6{.src = kTunnelV6, .dst = kBackendV6, .next = kIpip,
                                                         .traffic_class = outer_tos},
                                                      in4(inner))),
                            drop ? XDP_DROP : XDP_PASS, drop ? Bytes{} : to_backend(kEthIPv4, in4(result)),
                            drop ? FULCRUM_DECAP_DROP_ECN_NOT_ECT : FULCRUM_DECAP_DONE_V4_IN_V6});
        }
    }
    run_decap_table(lab, rows);
}

TEST_CASE("decap: --from prefixes parse strictly", "[decap][prefix]")
{
    Result<fulcrum_decap_source_key> key = decap::parse_prefix("198.18.0.1");
    REQUIRE(key.ok());
    CHECK(decap::format_prefix(*key) == "198.18.0.1/32");
    key = decap::parse_prefix("2001:db8::1");
    REQUIRE(key.ok());
    CHECK(decap::format_prefix(*key) == "2001:db8::1/128");
    key = decap::parse_prefix("198.18.0.0/15");
    REQUIRE(key.ok());
    CHECK(key->prefixlen == FULCRUM_DECAP_FAMILY_BITS + 15);
    key = decap::parse_prefix("2001:db8::/32");
    REQUIRE(key.ok());
    CHECK(decap::format_prefix(*key) == "2001:db8::/32");
    CHECK(decap::parse_prefix("0.0.0.0/0").ok());
    for (const char* bad : {"198.18.0.1/24", "198.18.0.0/33", "2001:db8::/129", "198.18.0.0/", "198.18.0.0/x",
                            "nonsense", "", "198.18.0.0/-1", "2001:db8::1/64"}) {
        INFO(bad);
        key = decap::parse_prefix(bad);
        CHECK_FALSE(key.ok());
        CHECK_FALSE(key.message().empty());
    }
    // What `fulcrum-decap --from` prints after the value (tests/system/test_decap_cli.sh too).
    CHECK(decap::parse_prefix("nonsense").message() == "not an IPv4 or IPv6 address or prefix");
    CHECK(decap::parse_prefix("198.18.0.0/33").message() == "prefix length must be 0..32");
    CHECK(decap::parse_prefix("198.18.0.1/24").message() ==
          "address has bits set beyond /24 (write the network address, or /32 for one host)");
    CHECK(decap::split_list("198.18.0.1/32,2001:db8::1/128") ==
          std::vector<std::string>{"198.18.0.1/32", "2001:db8::1/128"});
    CHECK(decap::split_list(" 198.18.0.1  2001:db8::1 ") == std::vector<std::string>{"198.18.0.1", "2001:db8::1"});
    CHECK(decap::split_list(" , ").empty());
}

TEST_CASE("decap: a counter or a pin directory that cannot be read is an error, not zero or empty", "[decap][errors]")
{
    // Before Result, DecapProgram::counters gave 0 packets for a map it could not read, and
    // `fulcrum-decap status` said "nothing attached" for a pin path it could not list.
    Result<dataplane::PacketCounters> counters = dataplane::read_decap_counters(-1, FULCRUM_DECAP_PASS_OTHER);
    CHECK_FALSE(counters.ok());
    CHECK(counters.message() == "bpf: cannot read decap_stats: Bad file descriptor");

    CHECK(decap::pinned_interfaces("/nonexistent/fulcrum-decap-test").ok());  // none pinned yet
    CHECK(decap::pinned_interfaces("/nonexistent/fulcrum-decap-test")->empty());
    Result<std::vector<std::string>> listed = decap::pinned_interfaces("/proc/self/status");  // a file
    CHECK_FALSE(listed.ok());
    CHECK(listed.message() == "bpffs: cannot list /proc/self/status: Not a directory");
}

TEST_CASE("decap: sync adds new local addresses before it removes old ones", "[decap][sync]")
{
    auto key = [](const std::string& address) {
        fulcrum_decap_key k{};
        REQUIRE(decap::parse_address(address, &k));
        return k;
    };
    auto diff = decap::diff_addresses({key("198.18.0.11"), key("198.18.100.1")},
                                      {key("198.18.0.11"), key("2001:db8:100::1"), key("2001:db8:100::1")});
    REQUIRE(diff.add.size() == 1);
    CHECK(decap::format_address(diff.add[0]) == "2001:db8:100::1");
    REQUIRE(diff.remove.size() == 1);
    CHECK(decap::format_address(diff.remove[0]) == "198.18.100.1");
    auto same = decap::diff_prefixes({prefix("198.18.0.1/32")}, {prefix("198.18.0.1/32"), prefix("198.18.0.0/24")});
    CHECK(same.add.size() == 1);
    CHECK(same.remove.empty());
}

TEST_CASE("balancer then decap gives the backend the client's packet unchanged", "[bpf][decap]")
{
    BalancerLab balancer;
    DecapLab decap;
    balancer.add_backend(1, kBackendV4, 1);
    balancer.add_backend(2, kBackendV6, 2);
    balancer.add_backend(3, kBackendV6, 3);
    balancer.add_service(1, kVipV4, 80, kTcp, std::vector<std::uint32_t>(7, 1));
    balancer.add_service(2, "198.18.100.1", 53, kUdp, std::vector<std::uint32_t>(7, 2));
    balancer.add_service(3, "2001:db8:100::1", 443, kTcp, std::vector<std::uint32_t>(7, 3));
    // The same three in GUE (encap: gue).
    balancer.add_backend(4, kBackendV4, 4);
    balancer.add_backend(5, kBackendV6, 5);
    balancer.add_backend(6, kBackendV6, 6);
    balancer.add_service(4, kVipV4, 8080, kTcp, std::vector<std::uint32_t>(7, 4), 0, FULCRUM_ENCAP_GUE);
    balancer.add_service(5, "198.18.100.1", 5353, kUdp, std::vector<std::uint32_t>(7, 5), 0, FULCRUM_ENCAP_GUE);
    balancer.add_service(6, "2001:db8:100::1", 8443, kTcp, std::vector<std::uint32_t>(7, 6), 0, FULCRUM_ENCAP_GUE);
    const Bytes packets[] = {
        ipv4(V4{.src = kClientV4, .dst = "198.18.100.1", .tos = 0x10}, tcp(40000, 80, 100)),
        ipv4(V4{.src = kClientV4, .dst = "198.18.100.1", .proto = kUdp}, udp(40000, 53, 100)),
        ipv6(V6{.src = kClientV6, .dst = "2001:db8:100::1"}, tcp(40000, 443, 100)),
        ipv4(V4{.src = kClientV4, .dst = "198.18.100.1", .tos = 0x10}, tcp(40000, 8080, 100)),
        ipv4(V4{.src = kClientV4, .dst = "198.18.100.1", .proto = kUdp}, udp(40000, 5353, 100)),
        ipv6(V6{.src = kClientV6, .dst = "2001:db8:100::1"}, tcp(40000, 8443, 100)),
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
    // The last three went in GUE and were stripped as GUE (the UDP services' backend is IPv6).
    for (fulcrum_decap_reason r : {FULCRUM_DECAP_DONE_V4_IN_V4, FULCRUM_DECAP_DONE_V4_IN_V6, FULCRUM_DECAP_DONE_V6_IN_V6,
                                   FULCRUM_DECAP_DONE_GUE_V4_IN_V4, FULCRUM_DECAP_DONE_GUE_V4_IN_V6,
                                   FULCRUM_DECAP_DONE_GUE_V6_IN_V6})
        CHECK(decap.program->counters(r)->packets == 1);
}
