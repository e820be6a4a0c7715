// GUE services (abi.h FULCRUM_ENCAP_GUE, config `encap: gue`): the outer IP + UDP header the
// balancer writes, byte for byte, in the real object through BPF_PROG_TEST_RUN; the UDP source
// port follows the flow; the too-big answers leave room for the UDP header; IP-in-IP services
// beside them are untouched; a service that changes its encapsulation keeps its flows.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "flow_hash.h"
#include "services.h"
#include "table.h"

using namespace fulcrum::test;

namespace {

// GUE services on the standard VIPs at ports the standard services leave free, each with its own
// backend: IPv4 over IPv4, IPv6 over IPv6, IPv4 over IPv6.
constexpr std::uint32_t kGue4 = 21, kGue6 = 22, kGue4Over6 = 23;
constexpr std::uint32_t kBackend4 = 31, kBackend6 = 32, kBackend4Over6 = 33;
const std::string kAddr4 = "198.18.0.21", kAddr6 = "2001:db8:0:1::11", kAddr4Over6 = "2001:db8:0:1::12";

void gue_services(BalancerLab& lab)
{
    lab.add_backend(kBackend4, kAddr4, kGue4);
    lab.add_backend(kBackend6, kAddr6, kGue6);
    lab.add_backend(kBackend4Over6, kAddr4Over6, kGue4Over6);
    lab.add_service(kGue4, kVip4, 8080, kTcp, fill(kBackend4), 0, FULCRUM_ENCAP_GUE);
    lab.add_service(kGue6, kVip6, 8443, kTcp, fill(kBackend6), 0, FULCRUM_ENCAP_GUE);
    lab.add_service(kGue4Over6, kVip4, 8053, kUdp, fill(kBackend4Over6), 0, FULCRUM_ENCAP_GUE);
}

std::uint32_t hash_of(const BalancerLab& lab, const std::string& src, std::uint16_t sport, const std::string& dst,
                      std::uint16_t dport, std::uint8_t proto)
{
    fulcrum_flow_key key = lab.flow_key(src, sport, dst, dport, proto);
    return fulcrum_flow_hash(&key, kHashSeed);
}

// The UDP source port the flow must get: the ephemeral range, low bits from the flow hash.
std::uint16_t sport_of(std::uint32_t hash)
{
    return static_cast<std::uint16_t>(49152 | (hash & 0x3fff));
}

// What the balancer must send for `inner` to a GUE backend, built here from the packet builders
// (not from the lab's IP-in-IP expectation): outer IP to the backend with protocol UDP, DF, TTL
// 64, then UDP from sport_of(hash) to the port, length 8 + inner, checksum 0, then the inner
// packet unchanged.
Bytes expected_gue(const std::string& backend, const Bytes& inner, std::uint32_t hash, std::uint16_t port = 6080,
                   std::uint8_t tos = 0)
{
    Bytes udp_and_inner = gue(sport_of(hash), port, inner);
    if (backend.find(':') == std::string::npos) {
        V4 outer{.src = kTunnelV4, .dst = backend, .proto = kUdp, .tos = tos, .ttl = 64, .id = 0,
                 .flags_frag = 0x4000, .options = {}};
        return ethernet(backend_mac(backend), kBalancerMac, kEthIPv4, ipv4(outer, udp_and_inner));
    }
    V6 outer{.src = kTunnelV6, .dst = backend, .next = kUdp, .traffic_class = tos, .flow_label = hash & 0xfffff,
             .hop_limit = 64};
    return ethernet(backend_mac(backend), kBalancerMac, kEthIPv6, ipv6(outer, udp_and_inner));
}

Bytes ip_of(const Bytes& frame)
{
    return slice(frame, 14, frame.size() - 14);
}

std::uint16_t be16(const Bytes& b, std::size_t at)
{
    return static_cast<std::uint16_t>(b.at(at) << 8 | b.at(at + 1));
}

}  // namespace

TEST_CASE("GUE: outer IPv4/IPv6 + UDP to the GUE port, byte for byte", "[bpf][balancer][gue]")
{
    BalancerLab lab;
    standard_services(lab);
    gue_services(lab);

    SECTION("IPv4 in GUE over IPv4")
    {
        V4 ip{.src = kClientV4, .dst = kVip4, .proto = kTcp, .tos = 0xb8};
        Bytes in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, ipv4(ip, tcp(40000, 8080, 20)));
        Verdict v = lab.run(in);
        REQUIRE(v.action == XDP_TX);
        const std::uint32_t hash = hash_of(lab, kClientV4, 40000, kVip4, 8080, kTcp);
        CHECK(hex(v.out) == hex(expected_gue(kAddr4, ip_of(in), hash, 6080, 0xb8)));
        // The fields one by one, so a failure names the one that is wrong.
        REQUIRE(v.out.size() == in.size() + 28);
        CHECK(v.out.at(14 + 9) == kUdp);                                     // outer protocol
        CHECK(be16(v.out, 14 + 2) == in.size() - 14 + 28);                   // outer total length
        CHECK(be16(v.out, 14 + 20) == sport_of(hash));                       // UDP source port
        CHECK(be16(v.out, 14 + 22) == 6080);                                 // UDP destination port
        CHECK(be16(v.out, 14 + 24) == in.size() - 14 + 8);                   // UDP length
        CHECK(be16(v.out, 14 + 26) == 0);                                    // UDP checksum
        CHECK(hex(slice(v.out, 14 + 28, in.size() - 14)) == hex(ip_of(in)));  // inner packet untouched
        CHECK(lab.program().service_counters(kGue4).packets == 1);
    }
    SECTION("IPv6 in GUE over IPv6: zero UDP checksum, flow label from the flow hash")
    {
        V6 ip{.src = kClientV6, .dst = kVip6, .next = kTcp, .traffic_class = 0x28};
        Bytes in = ethernet(kBalancerMac, kRouterMac, kEthIPv6, ipv6(ip, tcp(40000, 8443, 30)));
        Verdict v = lab.run(in);
        REQUIRE(v.action == XDP_TX);
        const std::uint32_t hash = hash_of(lab, kClientV6, 40000, kVip6, 8443, kTcp);
        CHECK(hex(v.out) == hex(expected_gue(kAddr6, ip_of(in), hash, 6080, 0x28)));
        REQUIRE(v.out.size() == in.size() + 48);
        CHECK(v.out.at(14 + 6) == kUdp);                    // next header
        CHECK(be16(v.out, 14 + 4) == in.size() - 14 + 8);   // payload length: UDP + inner
        CHECK(be16(v.out, 14 + 40) == sport_of(hash));
        CHECK(be16(v.out, 14 + 42) == 6080);
        CHECK(be16(v.out, 14 + 46) == 0);
    }
    SECTION("IPv4 in GUE over IPv6")
    {
        Bytes in = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                            ipv4(V4{.src = kClientV4, .dst = kVip4, .proto = kUdp}, udp(5353, 8053, 12)));
        Verdict v = lab.run(in);
        REQUIRE(v.action == XDP_TX);
        CHECK(hex(v.out) ==
              hex(expected_gue(kAddr4Over6, ip_of(in), hash_of(lab, kClientV4, 5353, kVip4, 8053, kUdp))));
    }
    SECTION("the port comes from the settings (tunnel.gue_port)")
    {
        lab.set_gue_port(7777);
        Bytes in = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                            ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(40001, 8080)));
        Verdict v = lab.run(in);
        REQUIRE(v.action == XDP_TX);
        CHECK(hex(v.out) ==
              hex(expected_gue(kAddr4, ip_of(in), hash_of(lab, kClientV4, 40001, kVip4, 8080, kTcp), 7777)));
    }
    SECTION("an IP-in-IP service beside them is unchanged")
    {
        Bytes in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(40000, 80)));
        Verdict v = lab.run(in);
        REQUIRE(v.action == XDP_TX);
        CHECK(hex(v.out) == hex(lab.expected_encap(1, ip_of(in), 0)));
    }
}

TEST_CASE("GUE: the UDP source port follows the flow, within the ephemeral range", "[bpf][balancer][gue]")
{
    BalancerLab lab;
    standard_services(lab);
    gue_services(lab);
    std::set<std::uint16_t> ports;
    for (std::uint16_t client_port = 20000; client_port < 20064; client_port++) {
        CAPTURE(client_port);
        Bytes in = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                            ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(client_port, 8080)));
        Verdict first = lab.run(in);
        REQUIRE(first.action == XDP_TX);
        const std::uint16_t sport = be16(first.out, 14 + 20);
        CHECK(sport >= 49152);
        CHECK(sport == sport_of(hash_of(lab, kClientV4, client_port, kVip4, 8080, kTcp)));
        // The flow's next packet (a flow-table hit, with the hash kept in the entry) keeps it.
        Bytes next = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                              ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(client_port, 8080, 10, kTcpAck)));
        Verdict second = lab.run(next);
        REQUIRE(second.action == XDP_TX);
        CHECK(be16(second.out, 14 + 20) == sport);
        ports.insert(sport);
    }
    // 64 flows over 16384 ports: a hash that did not reach the port would give one.
    CHECK(ports.size() >= 60);
}

TEST_CASE("GUE: too-big answers leave room for the UDP header", "[bpf][balancer][gue]")
{
    BalancerLab lab;  // fl-main has MTU 1500
    standard_services(lab);
    gue_services(lab);
    std::vector<Row> rows;
    V4 reply{.src = kVip4, .dst = kClientV4, .proto = kIcmp, .tos = 0, .ttl = 64, .id = 0, .flags_frag = 0};

    // IPv4 over IPv4 + UDP: 28 bytes, so 1472 is the largest inner packet.
    Bytes big = ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(40000, 8080, 1473 - 40));
    rows.push_back({.name = "IPv4 of 1473 bytes with DF to a GUE service: frag-needed, MTU 1472",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, big), .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv4,
                                    ipv4(reply, icmp4(3, 4, 1472, slice(big, 0, 28)))),
                    .reason = FULCRUM_TX_TOO_BIG});
    Bytes fits = ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(40001, 8080, 1472 - 40));
    rows.push_back({.name = "IPv4 of exactly 1472 bytes to a GUE service is forwarded",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, fits), .action = XDP_TX,
                    .out = expected_gue(kAddr4, fits, hash_of(lab, kClientV4, 40001, kVip4, 8080, kTcp)),
                    .service = kGue4, .backend = kBackend4, .new_flow = true});
    // The same 1473 bytes fit IP-in-IP (1480): the extra header is the GUE service's alone.
    Bytes ipip = ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(40002, 80, 1473 - 40));
    rows.push_back({.name = "the same size to an IP-in-IP service is forwarded",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, ipip), .action = XDP_TX,
                    .out = lab.expected_encap(1, ipip, 0), .service = 1, .backend = 1, .new_flow = true});

    // IPv6 over IPv6 + UDP: 48 bytes, so 1452.
    Bytes big6 = ipv6(V6{.src = kClientV6, .dst = kVip6}, tcp(40000, 8443, 1453 - 60));
    V6 reply6{.src = kVip6, .dst = kClientV6, .next = kIcmp6, .hop_limit = 64};
    rows.push_back({.name = "IPv6 of 1453 bytes to a GUE service: packet-too-big, MTU 1452",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv6, big6), .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv6,
                                    ipv6(reply6, icmp6(kVip6, kClientV6, 2, 0, 1452, slice(big6, 0, 1232)))),
                    .reason = FULCRUM_TX_TOO_BIG});
    // IPv4 over IPv6 + UDP: 48 bytes, so 1452.
    Bytes big46 = ipv4(V4{.src = kClientV4, .dst = kVip4, .proto = kUdp}, udp(5353, 8053, 1453 - 28));
    rows.push_back({.name = "IPv4 of 1453 bytes to a GUE service over IPv6: frag-needed, MTU 1452",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, big46), .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv4,
                                    ipv4(reply, icmp4(3, 4, 1452, slice(big46, 0, 28)))),
                    .reason = FULCRUM_TX_TOO_BIG});
    run_table(lab, rows);
}

TEST_CASE("GUE: the next-hop cache's MTU counts the UDP header too", "[bpf][balancer][gue]")
{
    BalancerLab lab;
    standard_services(lab);
    gue_services(lab);
    fulcrum_nexthop nh{};
    Mac cached = backend_mac(kAddr4);
    std::memcpy(nh.dmac, cached.b, 6);
    std::memcpy(nh.smac, kBalancerMac.b, 6);
    nh.ifindex = static_cast<std::uint32_t>(ifindex("fl-main"));
    nh.mtu = 1000;
    nh.valid = 1;
    REQUIRE(lab.program().put_nexthop(kBackend4, nh).ok());
    Bytes big = ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(41000, 8080, 973 - 40));
    V4 reply{.src = kVip4, .dst = kClientV4, .proto = kIcmp, .tos = 0, .ttl = 64, .id = 0, .flags_frag = 0};
    Verdict v = lab.run(ethernet(kBalancerMac, kRouterMac, kEthIPv4, big));
    CHECK(v.action == XDP_TX);
    CHECK(hex(v.out) ==
          hex(ethernet(kRouterMac, kBalancerMac, kEthIPv4, ipv4(reply, icmp4(3, 4, 972, slice(big, 0, 28))))));
    Bytes fits = ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(41001, 8080, 972 - 40));
    v = lab.run(ethernet(kBalancerMac, kRouterMac, kEthIPv4, fits));
    CHECK(v.action == XDP_TX);
    CHECK(hex(v.out) == hex(expected_gue(kAddr4, fits, hash_of(lab, kClientV4, 41001, kVip4, 8080, kTcp))));
}

TEST_CASE("GUE: a service that changes its encapsulation keeps its flows", "[bpf][balancer][gue]")
{
    BalancerLab lab;
    standard_services(lab);
    lab.add_backend(kBackend4, kAddr4, kGue4);
    lab.add_backend(34, "198.18.0.22", kGue4);
    lab.add_service(kGue4, kVip4, 8080, kTcp, fill(kBackend4), 0, FULCRUM_ENCAP_IPIP);
    Bytes syn = ethernet(kBalancerMac, kRouterMac, kEthIPv4, ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(42000, 8080)));
    Bytes ack = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                         ipv4(V4{.src = kClientV4, .dst = kVip4}, tcp(42000, 8080, 5, kTcpAck)));
    REQUIRE(hex(lab.run(syn).out) == hex(lab.expected_encap(kBackend4, ip_of(syn), 0)));
    REQUIRE(hex(lab.run(ack).out) == hex(lab.expected_encap(kBackend4, ip_of(ack), 0)));
    // What a reload that changes encap (and, here, the table) writes: the services entry only.
    lab.add_service(kGue4, kVip4, 8080, kTcp, fill(34), 0, FULCRUM_ENCAP_GUE);
    const std::uint32_t hash = hash_of(lab, kClientV4, 42000, kVip4, 8080, kTcp);
    CHECK(hex(lab.run(ack).out) == hex(expected_gue(kAddr4, ip_of(ack), hash)));  // same backend, new tunnel
    // And back.
    lab.add_service(kGue4, kVip4, 8080, kTcp, fill(34), 0, FULCRUM_ENCAP_IPIP);
    CHECK(hex(lab.run(ack).out) == hex(lab.expected_encap(kBackend4, ip_of(ack), 0)));
}
