// The balancer's packet table: crafted frames in, exact verdicts, frames and counters out.
// Runs the real object through BPF_PROG_TEST_RUN in a private namespace (tests/bpf/lab.h).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sched.h>

#include <cstring>
#include <set>
#include <thread>

#include "flow_hash.h"
#include "map_dump.h"
#include "services.h"
#include "table.h"

using namespace fulcrum::test;

namespace {

Bytes frame4(const V4& ip, const Bytes& l4, std::optional<std::uint16_t> vlan = std::nullopt)
{
    return ethernet(kBalancerMac, kRouterMac, kEthIPv4, ipv4(ip, l4), vlan);
}

Bytes frame6(const V6& ip, const Bytes& l4, std::optional<std::uint16_t> vlan = std::nullopt)
{
    return ethernet(kBalancerMac, kRouterMac, kEthIPv6, ipv6(ip, l4), vlan);
}

V4 to_vip4(const std::string& vip, std::uint8_t proto = kTcp)
{
    return V4{.src = kClientV4, .dst = vip, .proto = proto};
}

V6 to_vip6(std::uint8_t next = kTcp)
{
    return V6{.src = kClientV6, .dst = kVip6, .next = next};
}

std::uint32_t hash_of(const BalancerLab& lab, const std::string& src, std::uint16_t sport,
                      const std::string& dst, std::uint16_t dport, std::uint8_t proto)
{
    fulcrum_flow_key key = lab.flow_key(src, sport, dst, dport, proto);
    return fulcrum_flow_hash(&key, kHashSeed);
}

// Frame -> the IP packet inside it (after 14 or 18 bytes of L2).
Bytes ip_of(const Bytes& frame, bool vlan = false)
{
    std::size_t l2 = vlan ? 18 : 14;
    return slice(frame, l2, frame.size() - l2);
}

}  // namespace

TEST_CASE("balancer forwards TCP and UDP of IPv4 and IPv6 services, encapsulated", "[bpf][balancer]")
{
    BalancerLab lab;
    standard_services(lab);
    std::vector<Row> rows;

    Bytes in = frame4(to_vip4(kVip4), tcp(40000, 80, 10));
    rows.push_back({.name = "TCP to an IPv4 service, IPv4 backend", .in = in, .action = XDP_TX,
                    .out = lab.expected_encap(1, ip_of(in), 0), .service = 1, .backend = 1,
                    .new_flow = true});

    V4 tos = to_vip4(kVip4);
    tos.tos = 0xb8;
    in = frame4(tos, tcp(40001, 80));
    rows.push_back({.name = "ToS copied to the outer header", .in = in, .action = XDP_TX,
                    .out = lab.expected_encap(1, ip_of(in), 0xb8), .service = 1, .backend = 1,
                    .new_flow = true});

    in = frame4(to_vip4(kVip4, kUdp), udp(5353, 53, 20));
    rows.push_back({.name = "UDP to an IPv4 service over an IPv6 backend (IPv4-in-IPv6)", .in = in,
                    .action = XDP_TX,
                    .out = lab.expected_encap(4, ip_of(in), 0, std::nullopt,
                                              hash_of(lab, kClientV4, 5353, kVip4, 53, kUdp)),
                    .service = 2, .backend = 4, .new_flow = true});

    V6 tc = to_vip6();
    tc.traffic_class = 0x28;
    tc.flow_label = 0x12345;
    in = frame6(tc, tcp(40000, 443, 30));
    rows.push_back({.name = "TCP to an IPv6 service (IPv6-in-IPv6), traffic class kept", .in = in,
                    .action = XDP_TX,
                    .out = lab.expected_encap(5, ip_of(in), 0x28, std::nullopt,
                                              hash_of(lab, kClientV6, 40000, kVip6, 443, kTcp)),
                    .service = 3, .backend = 5, .new_flow = true});

    in = frame6(to_vip6(kUdp), udp(7000, 53, 12));
    rows.push_back({.name = "UDP to an IPv6 service", .in = in, .action = XDP_TX,
                    .out = lab.expected_encap(9, ip_of(in), 0, std::nullopt,
                                              hash_of(lab, kClientV6, 7000, kVip6, 53, kUdp)),
                    .service = 10, .backend = 9, .new_flow = true});

    in = frame4(to_vip4(kVip4Port0), tcp(40000, 12345));
    rows.push_back({.name = "port-0 service takes any TCP port of its VIP", .in = in, .action = XDP_TX,
                    .out = lab.expected_encap(2, ip_of(in), 0), .service = 4, .backend = 2,
                    .new_flow = true});

    in = frame4(to_vip4(kVip4), tcp(40002, 80), 0x0064);
    rows.push_back({.name = "802.1Q tagged frame to a service: refused by name, not sent with a wrong tag",
                    .in = in, .action = XDP_DROP, .reason = FULCRUM_DROP_VLAN});

    V4 options = to_vip4(kVip4);
    options.options = {0x01, 0x01, 0x01, 0x00};  // NOP NOP NOP EOL
    in = frame4(options, tcp(40003, 80));
    rows.push_back({.name = "IPv4 with header options", .in = in, .action = XDP_TX,
                    .out = lab.expected_encap(1, ip_of(in), 0), .service = 1, .backend = 1,
                    .new_flow = true});

    V6 ext = to_vip6(kHopByHop);
    in = frame6(ext, concat(ext_header(kDstOpts), concat(ext_header(kTcp), tcp(40001, 443))));
    rows.push_back({.name = "IPv6 with hop-by-hop and destination-options headers", .in = in,
                    .action = XDP_TX,
                    .out = lab.expected_encap(5, ip_of(in), 0, std::nullopt,
                                              hash_of(lab, kClientV6, 40001, kVip6, 443, kTcp)),
                    .service = 3, .backend = 5, .new_flow = true});

    in = frame4(to_vip4(kVip4Other), tcp(40000, 80));
    rows.push_back({.name = "backend behind another interface: devmap redirect", .in = in,
                    .action = XDP_REDIRECT, .out = lab.expected_encap(8, ip_of(in), 0), .service = 8,
                    .backend = 8, .new_flow = true});

    in = frame4(to_vip4(kVip4), tcp(40000, 80, 10));
    rows.push_back({.name = "second packet of the first flow: a flow-table hit, not a new flow", .in = in,
                    .action = XDP_TX, .out = lab.expected_encap(1, ip_of(in), 0), .service = 1,
                    .backend = 1, .new_flow = false});

    run_table(lab, rows);
}

TEST_CASE("balancer passes what is not for a service, byte for byte", "[bpf][balancer]")
{
    BalancerLab lab;
    standard_services(lab);
    std::vector<Row> rows;

    rows.push_back({.name = "IPv4 TCP to the balancer's own address (SSH)",
                    .in = frame4(V4{.src = kClientV4, .dst = kTunnelV4}, tcp(40000, 22)),
                    .action = XDP_PASS, .reason = FULCRUM_PASS_NOT_VIP});
    rows.push_back({.name = "IPv6 TCP to the balancer's own address",
                    .in = frame6(V6{.src = kClientV6, .dst = kTunnelV6}, tcp(40000, 179)),
                    .action = XDP_PASS, .reason = FULCRUM_PASS_NOT_VIP});
    rows.push_back({.name = "ARP", .in = ethernet(kBalancerMac, kRouterMac, kEthArp, Bytes(28, 0x01)),
                    .action = XDP_PASS, .reason = FULCRUM_PASS_NOT_IP});
    rows.push_back({.name = "already tunnelled IPIP to our tunnel address",
                    .in = frame4(V4{.src = "198.18.0.99", .dst = kTunnelV4, .proto = kIpip},
                                 ipv4(to_vip4(kVip4), tcp(1, 80))),
                    .action = XDP_PASS, .reason = FULCRUM_PASS_NOT_VIP});
    rows.push_back({.name = "IPv4 UDP to a non-VIP address on port 53",
                    .in = frame4(V4{.src = kClientV4, .dst = "198.18.100.200", .proto = kUdp}, udp(1, 53)),
                    .action = XDP_PASS, .reason = FULCRUM_PASS_NOT_VIP});
    rows.push_back({.name = "802.1Q tagged non-service IPv4",
                    .in = frame4(V4{.src = kClientV4, .dst = kTunnelV4}, tcp(40000, 22), 7),
                    .action = XDP_PASS, .reason = FULCRUM_PASS_NOT_VIP});
    rows.push_back({.name = "two 802.1Q tags (QinQ) are not parsed: passed",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthVlan,
                                   concat(Bytes{0x00, 0x08, 0x08, 0x00}, ipv4(to_vip4(kVip4), tcp(1, 80))),
                                   5),
                    .action = XDP_PASS, .reason = FULCRUM_PASS_NOT_IP});
    run_table(lab, rows);
}

TEST_CASE("balancer drops what it cannot serve, counted by reason", "[bpf][balancer]")
{
    BalancerLab lab;
    standard_services(lab);
    std::vector<Row> rows;

    rows.push_back({.name = "VIP on a port it does not serve", .in = frame4(to_vip4(kVip4), tcp(40000, 81)),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_PORT_UNSERVED});
    rows.push_back({.name = "UDP to a VIP whose port-0 service is TCP only",
                    .in = frame4(to_vip4(kVip4Port0, kUdp), udp(40000, 53)), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PORT_UNSERVED});
    rows.push_back({.name = "GRE to a VIP", .in = frame4(to_vip4(kVip4, 47), Bytes(8, 0)),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_PROTO_UNSERVED});
    V4 first = to_vip4(kVip4);
    first.flags_frag = 0x2000;  // MF, offset 0: has the TCP header
    rows.push_back({.name = "first IPv4 fragment to a VIP", .in = frame4(first, tcp(40000, 80, 16)),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_FRAGMENT});
    V4 later = to_vip4(kVip4);
    later.flags_frag = 0x0003;  // offset 24 bytes, last fragment
    rows.push_back({.name = "later IPv4 fragment to a VIP", .in = frame4(later, Bytes(16, 0xab)),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_FRAGMENT});
    rows.push_back({.name = "IPv6 fragment to a VIP",
                    .in = frame6(to_vip6(kFragment),
                                 concat(fragment_header(kTcp, 0, true, 9), tcp(1, 443))),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_FRAGMENT});
    rows.push_back({.name = "service without a usable backend",
                    .in = frame4(to_vip4(kVip4Empty), tcp(40000, 80)), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_NO_BACKEND});
    rows.push_back({.name = "backend without a neighbour entry",
                    .in = frame4(to_vip4(kVip4NoNeigh), tcp(40000, 80)), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_NO_NEIGHBOUR});
    rows.push_back({.name = "backend without a route", .in = frame4(to_vip4(kVip4NoRoute), tcp(40000, 80)),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_NO_ROUTE});
    V4 no_df = to_vip4(kVip4);
    no_df.flags_frag = 0;
    rows.push_back({.name = "IPv4 without DF too big for the tunnel (policy: drop)",
                    .in = frame4(no_df, tcp(40000, 80, 1500 - 40)), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_TOO_BIG_NO_DF});
    Bytes short_tcp = ipv4(to_vip4(kVip4), slice(tcp(40000, 80), 0, 10));
    rows.push_back({.name = "IPv4 length consistent, TCP header cut at 10 bytes",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, short_tcp), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L4});
    rows.push_back({.name = "IPv6 length consistent, UDP header cut at 4 bytes",
                    .in = frame6(to_vip6(kUdp), slice(udp(1, 53), 0, 4)), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L4});
    Bytes bad_ihl = ipv4(to_vip4(kVip4), tcp(40000, 80));
    bad_ihl[0] = 0x44;  // header length 16 bytes: impossible
    rows.push_back({.name = "IPv4 header length below 20",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, bad_ihl), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L3});
    Bytes long_len = ipv4(to_vip4(kVip4), tcp(40000, 80));
    long_len[3] += 40;  // total length beyond the frame
    rows.push_back({.name = "IPv4 total length beyond the frame",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, long_len), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L3});
    Bytes chain = tcp(1, 443);
    for (int i = 0; i < 5; i++)
        chain = concat(ext_header(i == 0 ? kTcp : kDstOpts), chain);
    rows.push_back({.name = "IPv6 with more extension headers than the bounded walk",
                    .in = frame6(to_vip6(kDstOpts), chain), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L3});
    rows.push_back({.name = "ICMP timestamp request to a VIP",
                    .in = frame4(to_vip4(kVip4, kIcmp), icmp4(13, 0, 0, Bytes(12, 0))), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_ICMP_UNHANDLED});

    // Every truncation of a service frame: never forwarded, always counted. (BPF_PROG_TEST_RUN
    // refuses frames shorter than an Ethernet header, as NICs never deliver them; a cut inside
    // the 802.1Q tag below is how the L2 check is reached.)
    const Bytes whole4 = frame4(to_vip4(kVip4), tcp(40000, 80, 8));
    for (std::size_t len = 14; len < whole4.size(); len++)
        rows.push_back({.name = "IPv4 service frame truncated to " + std::to_string(len) + " bytes",
                        .in = slice(whole4, 0, len), .action = XDP_DROP, .reason = FULCRUM_DROP_PARSE_L3});
    const Bytes whole6 = frame6(to_vip6(kHopByHop), concat(ext_header(kTcp), tcp(40000, 443, 8)));
    for (std::size_t len = 14; len < whole6.size(); len++)
        rows.push_back({.name = "IPv6 service frame truncated to " + std::to_string(len) + " bytes",
                        .in = slice(whole6, 0, len), .action = XDP_DROP, .reason = FULCRUM_DROP_PARSE_L3});
    const Bytes tagged = frame4(to_vip4(kVip4), tcp(40000, 80), 9);
    for (std::size_t len = 14; len < 18; len++)
        rows.push_back({.name = "802.1Q frame truncated in the tag to " + std::to_string(len) + " bytes",
                        .in = slice(tagged, 0, len), .action = XDP_DROP, .reason = FULCRUM_DROP_PARSE_L2});
    run_table(lab, rows);
}

TEST_CASE("balancer answers ICMP for VIPs and steers quoted errors to the flow's backend", "[bpf][balancer]")
{
    BalancerLab lab;
    standard_services(lab);
    std::vector<Row> rows;

    // Echo: answered from XDP, addresses swapped, TTL reset, checksums right.
    Bytes body(24, 0x5a);
    V4 ping{.src = kClientV4, .dst = kVip4, .proto = kIcmp, .tos = 0, .ttl = 17, .id = 0x4242};
    V4 pong{.src = kVip4, .dst = kClientV4, .proto = kIcmp, .tos = 0, .ttl = 64, .id = 0x4242};
    rows.push_back({.name = "ICMP echo request to a VIP", .in = frame4(ping, icmp4(8, 0, 0x00070001, body)),
                    .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv4,
                                    ipv4(pong, icmp4(0, 0, 0x00070001, body))),
                    .reason = FULCRUM_TX_ECHO_REPLY});
    V6 ping6{.src = kClientV6, .dst = kVip6, .next = kIcmp6, .hop_limit = 9};
    V6 pong6{.src = kVip6, .dst = kClientV6, .next = kIcmp6, .hop_limit = 64};
    rows.push_back({.name = "ICMPv6 echo request to a VIP",
                    .in = frame6(ping6, icmp6(kClientV6, kVip6, 128, 0, 0x00090002, body)),
                    .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv6,
                                    ipv6(pong6, icmp6(kVip6, kClientV6, 129, 0, 0x00090002, body))),
                    .reason = FULCRUM_TX_ECHO_REPLY});

    // Errors quoting a backend's direct reply (VIP -> client) follow the flow client -> VIP.
    Bytes quoted = slice(ipv4(V4{.src = kVip4, .dst = kClientV4}, tcp(80, 40000)), 0, 28);
    Bytes in = frame4(V4{.src = "198.18.0.254", .dst = kVip4, .proto = kIcmp},
                      icmp4(3, 4, 1400, quoted));
    rows.push_back({.name = "ICMP frag-needed quoting a VIP flow goes to that flow's backend", .in = in,
                    .action = XDP_TX, .out = lab.expected_encap(1, ip_of(in), 0),
                    .reason = FULCRUM_FWD_ICMP_ERROR, .service = 1, .backend = 1, .new_flow = false});
    Bytes quoted6 = ipv6(V6{.src = kVip6, .dst = kClientV6}, tcp(443, 40000, 40));
    in = frame6(V6{.src = "2001:db8:0:1::fe", .dst = kVip6, .next = kIcmp6},
                icmp6("2001:db8:0:1::fe", kVip6, 2, 0, 1280, quoted6));
    rows.push_back({.name = "ICMPv6 packet-too-big quoting a VIP flow goes to that flow's backend",
                    .in = in, .action = XDP_TX,
                    .out = lab.expected_encap(5, ip_of(in), 0, std::nullopt,
                                              hash_of(lab, kClientV6, 40000, kVip6, 443, kTcp)),
                    .reason = FULCRUM_FWD_ICMP_ERROR, .service = 3, .backend = 5, .new_flow = false});
    Bytes foreign = slice(ipv4(V4{.src = "198.18.9.9", .dst = kClientV4}, tcp(80, 40000)), 0, 28);
    rows.push_back({.name = "ICMP unreachable quoting a packet not sent from this VIP",
                    .in = frame4(V4{.src = "198.18.0.254", .dst = kVip4, .proto = kIcmp},
                                 icmp4(3, 1, 0, foreign)),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_ICMP_UNHANDLED});
    Bytes unserved = slice(ipv4(V4{.src = kVip4, .dst = kClientV4}, tcp(8080, 40000)), 0, 28);
    rows.push_back({.name = "ICMP unreachable quoting a port the VIP does not serve",
                    .in = frame4(V4{.src = "198.18.0.254", .dst = kVip4, .proto = kIcmp},
                                 icmp4(3, 3, 0, unserved)),
                    .action = XDP_DROP, .reason = FULCRUM_DROP_ICMP_UNHANDLED});
    rows.push_back({.name = "ICMP truncated before its 8-byte header",
                    .in = frame4(to_vip4(kVip4, kIcmp), Bytes{8, 0, 0, 0}), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L4});

    // Too big for the tunnel (fl-main has MTU 1500): tell the client the MTU it must use.
    Bytes big = ipv4(to_vip4(kVip4), tcp(40000, 80, 1500 - 40));
    V4 reply{.src = kVip4, .dst = kClientV4, .proto = kIcmp, .tos = 0, .ttl = 64, .id = 0, .flags_frag = 0};
    rows.push_back({.name = "IPv4 with DF too big for IPv4-in-IPv4: frag-needed, MTU 1480",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, big), .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv4,
                                    ipv4(reply, icmp4(3, 4, 1480, slice(big, 0, 28)))),
                    .reason = FULCRUM_TX_TOO_BIG});
    Bytes big_udp = ipv4(to_vip4(kVip4, kUdp), udp(5353, 53, 1500 - 28));
    rows.push_back({.name = "IPv4 with DF too big for IPv4-in-IPv6: frag-needed, MTU 1460",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, big_udp), .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv4,
                                    ipv4(reply, icmp4(3, 4, 1460, slice(big_udp, 0, 28)))),
                    .reason = FULCRUM_TX_TOO_BIG});
    Bytes big6 = ipv6(to_vip6(), tcp(40000, 443, 1500 - 60));
    V6 reply6{.src = kVip6, .dst = kClientV6, .next = kIcmp6, .hop_limit = 64};
    rows.push_back({.name = "IPv6 too big for IPv6-in-IPv6: packet-too-big, MTU 1460, quoting 1232 bytes",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv6, big6), .action = XDP_TX,
                    .out = ethernet(kRouterMac, kBalancerMac, kEthIPv6,
                                    ipv6(reply6, icmp6(kVip6, kClientV6, 2, 0, 1460, slice(big6, 0, 1232)))),
                    .reason = FULCRUM_TX_TOO_BIG});
    Bytes fits = ipv4(to_vip4(kVip4), tcp(40000, 80, 1480 - 40));
    rows.push_back({.name = "IPv4 of exactly the tunnel MTU is forwarded",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, fits), .action = XDP_TX,
                    .out = lab.expected_encap(1, fits, 0), .service = 1, .backend = 1, .new_flow = true});
    run_table(lab, rows);
}

TEST_CASE("flow table: hits survive table changes and draining, not a dead backend", "[bpf][balancer]")
{
    BalancerLab lab;
    standard_services(lab);
    auto send = [&](std::uint16_t sport) {
        Bytes in = frame4(to_vip4(kVip4Multi), tcp(sport, 80));
        Verdict v = lab.run(in);
        REQUIRE(v.action == XDP_TX);
        for (std::uint32_t id = 11; id <= 13; id++)
            if (hex(v.out) == hex(lab.expected_encap(id, ip_of(in), 0)))
                return id;
        FAIL("output matches no backend's encapsulation: " << hex(v.out));
        return 0u;
    };

    // The data plane and C++ agree on the hash: 300 new flows land where maglev_pick says.
    std::map<std::uint32_t, int> per_backend;
    for (std::uint16_t sport = 20000; sport < 20300; sport++) {
        std::uint32_t want = lab.maglev_pick(9, lab.flow_key(kClientV4, sport, kVip4Multi, 80, kTcp));
        REQUIRE(send(sport) == want);
        per_backend[want]++;
    }
    CHECK(per_backend.size() == 3);

    const std::uint16_t flow = 20000;
    const std::uint32_t first = lab.maglev_pick(9, lab.flow_key(kClientV4, flow, kVip4Multi, 80, kTcp));
    const std::uint32_t other = first == 11 ? 12 : 11;

    SECTION("a hit keeps its backend after the table changed; a new flow follows the table")
    {
        lab.set_table(9, fill(other, 13));
        CHECK(send(flow) == first);
        CHECK(send(30000) == other);
    }
    SECTION("draining: out of the table, existing flows stay")
    {
        lab.set_table(9, fill(other, 13));
        lab.set_backend_state(first, FULCRUM_BACKEND_DRAINING);
        CHECK(send(flow) == first);
        CHECK(send(30001) == other);
    }
    SECTION("down: existing flows are re-hashed at once, and stay on the new backend")
    {
        lab.set_table(9, fill(other, 13));
        lab.set_backend_state(first, FULCRUM_BACKEND_DOWN);
        CHECK(send(flow) == other);
        lab.set_backend_state(first, FULCRUM_BACKEND_ACTIVE);
        CHECK(send(flow) == other);
    }
    SECTION("a flow whose entry points at a freed backend slot is re-hashed")
    {
        lab.set_table(9, fill(other, 13));
        lab.set_backend_state(first, FULCRUM_BACKEND_UNUSED);
        CHECK(send(flow) == other);
    }
    SECTION("a flow whose backend id now serves another service is re-hashed")
    {
        lab.set_table(9, fill(other, 13));
        lab.add_backend(first, "198.18.0.21", 1);  // the id was freed and reused by service 1
        CHECK(send(flow) == other);
    }
    SECTION("the flow entry records backend and hash")
    {
        auto entries = lab.program().flow_entries(lab.flow_key(kClientV4, flow, kVip4Multi, 80, kTcp));
        REQUIRE(entries.size() == 1);
        CHECK(entries[0].backend_id == first);
        CHECK(entries[0].hash == hash_of(lab, kClientV4, flow, kVip4Multi, 80, kTcp));
    }
}

TEST_CASE("flow table: UDP entries expire after the idle timeout, TCP entries do not", "[bpf][balancer]")
{
    BalancerLab lab(200'000'000);  // 200 ms UDP idle timeout
    standard_services(lab);
    lab.add_backend(15, "198.18.0.21", 11);
    lab.add_backend(16, "198.18.0.22", 11);
    lab.add_service(11, kVip4Multi, 53, kUdp, fill(15));
    Bytes udp_in = frame4(to_vip4(kVip4Multi, kUdp), udp(6000, 53));
    Bytes tcp_in = frame4(to_vip4(kVip4Multi), tcp(6000, 80));
    const std::uint32_t tcp_backend = lab.maglev_pick(9, lab.flow_key(kClientV4, 6000, kVip4Multi, 80, kTcp));
    const std::uint32_t tcp_other = tcp_backend == 11 ? 12 : 11;

    REQUIRE(hex(lab.run(udp_in).out) == hex(lab.expected_encap(15, ip_of(udp_in), 0)));
    REQUIRE(hex(lab.run(tcp_in).out) == hex(lab.expected_encap(tcp_backend, ip_of(tcp_in), 0)));
    lab.set_table(11, fill(16));
    lab.set_table(9, fill(tcp_other, 13));
    CHECK(hex(lab.run(udp_in).out) == hex(lab.expected_encap(15, ip_of(udp_in), 0)));  // still fresh
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    CHECK(hex(lab.run(udp_in).out) == hex(lab.expected_encap(16, ip_of(udp_in), 0)));  // expired
    CHECK(hex(lab.run(tcp_in).out) == hex(lab.expected_encap(tcp_backend, ip_of(tcp_in), 0)));
}

TEST_CASE("outer source varies per flow when asked, within the configured bits", "[bpf][balancer]")
{
    BalancerLab lab;
    standard_services(lab);
    fulcrum_settings s{};
    s.source_v4 = to_addr("198.18.0.0").w[0];
    s.source_v4_vary = htonl(0x000000ff);  // a /24 of tunnel sources: the low byte varies
    s.source_v6 = to_addr("2001:db8:0:1::");
    s.source_v6_vary = htonl(0x0000ffff);
    s.hash_seed = kHashSeed;
    s.flags = FULCRUM_SETTING_VARY_SOURCE;
    REQUIRE(lab.program().set_settings(s).ok());

    std::set<std::string> sources;
    for (std::uint16_t sport = 1000; sport < 1032; sport++) {
        std::uint32_t hash = hash_of(lab, kClientV4, sport, kVip4, 80, kTcp);
        char source[32];
        std::snprintf(source, sizeof source, "198.18.0.%u", hash & 0xff);
        Bytes in = frame4(to_vip4(kVip4), tcp(sport, 80));
        CHECK(hex(lab.run(in).out) == hex(lab.expected_encap(1, ip_of(in), 0, std::nullopt, 0, source)));
        sources.insert(source);

        std::uint32_t hash6 = hash_of(lab, kClientV6, sport, kVip6, 443, kTcp);
        char source6[48];
        std::snprintf(source6, sizeof source6, "2001:db8:0:1::%x", hash6 & 0xffff);
        Bytes in6 = frame6(to_vip6(), tcp(sport, 443));
        CHECK(hex(lab.run(in6).out) ==
              hex(lab.expected_encap(5, ip_of(in6), 0, std::nullopt, hash6, source6)));
    }
    CHECK(sources.size() > 16);  // 32 flows over 256 sources: spread, not one address
}

TEST_CASE("next-hop cache: a valid entry replaces the fib lookup, an invalid one falls back", "[bpf][balancer]")
{
    BalancerLab lab;
    standard_services(lab);
    const Mac cached{{0x02, 0xca, 0xc4, 0xed, 0, 0x01}};  // not the neighbour table's MAC
    auto entry = [&](std::uint32_t mtu, const std::string& ifname) {
        fulcrum_nexthop nh{};
        std::memcpy(nh.dmac, cached.b, 6);
        std::memcpy(nh.smac, (ifname == "fl-main" ? kBalancerMac : kOtherMac).b, 6);
        nh.ifindex = static_cast<std::uint32_t>(ifindex(ifname));
        nh.mtu = mtu;
        nh.valid = 1;
        return nh;
    };
    Bytes in = frame4(to_vip4(kVip4), tcp(41000, 80, 10));
    Bytes via_fib = lab.expected_encap(1, ip_of(in), 0);
    Bytes via_cache = via_fib;
    std::memcpy(via_cache.data(), cached.b, 6);

    REQUIRE(lab.program().put_nexthop(1, entry(1500, "fl-main")).ok());
    Verdict v = lab.run(in);
    CHECK(v.action == XDP_TX);
    CHECK(hex(v.out) == hex(via_cache));

    // Too big for the cached MTU: the same answer the fib lookup gives, with the cached MTU.
    REQUIRE(lab.program().put_nexthop(1, entry(1000, "fl-main")).ok());
    Bytes big = ipv4(to_vip4(kVip4), tcp(41001, 80, 1000 - 40));
    V4 reply{.src = kVip4, .dst = kClientV4, .proto = kIcmp, .tos = 0, .ttl = 64, .id = 0, .flags_frag = 0};
    v = lab.run(ethernet(kBalancerMac, kRouterMac, kEthIPv4, big));
    CHECK(v.action == XDP_TX);
    CHECK(hex(v.out) ==
          hex(ethernet(kRouterMac, kBalancerMac, kEthIPv4, ipv4(reply, icmp4(3, 4, 980, slice(big, 0, 28))))));

    // Another egress interface: redirect through the devmap.
    REQUIRE(lab.program().put_nexthop(1, entry(1500, "fl-other")).ok());
    CHECK(lab.run(in).action == XDP_REDIRECT);

    // Invalidated (as put_backend does before changing a backend): back to the fib lookup.
    REQUIRE(lab.program().invalidate_nexthop(1).ok());
    v = lab.run(in);
    CHECK(v.action == XDP_TX);
    CHECK(hex(v.out) == hex(via_fib));

    REQUIRE(lab.program().put_nexthop(1, entry(1500, "fl-main")).ok());
    lab.set_backend_state(1, FULCRUM_BACKEND_ACTIVE);  // put_backend drops the cached entry
    CHECK(hex(lab.run(in).out) == hex(via_fib));
}

namespace {

using FlowTable = fulcrum::dataplane::BalancerProgram::FlowTable;

// The backend (11..13, service 9 on kVip4Multi) a forwarded frame went to, or 0 if none matches.
std::uint32_t backend_of(BalancerLab& lab, const Bytes& in, const Verdict& v)
{
    for (std::uint32_t id = 11; id <= 13; id++)
        if (v.action == XDP_TX && hex(v.out) == hex(lab.expected_encap(id, ip_of(in), 0)))
            return id;
    return 0;
}

std::uint32_t send_multi(BalancerLab& lab, std::uint16_t sport, std::uint8_t flags,
                         const std::string& src = kClientV4)
{
    Bytes in = frame4(V4{.src = src, .dst = kVip4Multi}, tcp(sport, 80, 0, flags));
    return backend_of(lab, in, lab.run(in));
}

bool recorded(BalancerLab& lab, std::uint16_t sport, FlowTable table, std::uint8_t proto = kTcp,
              const std::string& src = kClientV4)
{
    auto port = proto == kTcp ? 80 : 53;
    return lab.program().flow_entry(lab.flow_key(src, sport, kVip4Multi, port, proto), table).has_value();
}

// A table of service 9 that sends every new flow elsewhere than `backend`.
std::vector<std::uint32_t> table_without(std::uint32_t backend)
{
    return fill(backend == 11 ? 12 : 11, 13);
}

}  // namespace

TEST_CASE("flow state: a SYN opens, the next packet confirms, mid-stream TCP is never recorded",
          "[bpf][balancer][flows]")
{
    BalancerLab lab;
    standard_services(lab);
    const std::uint32_t first = lab.maglev_pick(9, lab.flow_key(kClientV4, 21000, kVip4Multi, 80, kTcp));

    REQUIRE(send_multi(lab, 21000, kTcpSyn) == first);
    CHECK(recorded(lab, 21000, FlowTable::first_packets));
    CHECK_FALSE(recorded(lab, 21000, FlowTable::confirmed));
    REQUIRE(send_multi(lab, 21000, kTcpAck) == first);
    CHECK(recorded(lab, 21000, FlowTable::confirmed));
    // Promoted, it leaves new_flows: that table's slots are for first packets only.
    CHECK_FALSE(recorded(lab, 21000, FlowTable::first_packets));

    // An ACK of a flow never seen opening: balanced by the table, recorded nowhere, counted.
    const std::uint32_t mid = lab.maglev_pick(9, lab.flow_key(kClientV4, 21001, kVip4Multi, 80, kTcp));
    REQUIRE(send_multi(lab, 21001, kTcpAck) == mid);
    CHECK_FALSE(recorded(lab, 21001, FlowTable::first_packets));
    CHECK_FALSE(recorded(lab, 21001, FlowTable::confirmed));
    CHECK(lab.program().flow_event_count(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM) == 1);
    // An RST neither opens nor confirms.
    REQUIRE(send_multi(lab, 21002, kTcpRst | kTcpAck) != 0);
    CHECK(lab.program().flow_entries(lab.flow_key(kClientV4, 21002, kVip4Multi, 80, kTcp)).empty());
    REQUIRE(send_multi(lab, 21003, kTcpSyn) != 0);
    REQUIRE(send_multi(lab, 21003, kTcpRst) != 0);
    CHECK_FALSE(recorded(lab, 21003, FlowTable::confirmed));
    CHECK(lab.program().flow_event_count(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM) == 2);

    // After a table change the confirmed flow and a SYN-only flow keep their backend; the
    // unrecorded mid-stream flow follows the new table.
    const std::uint32_t syn_only = lab.maglev_pick(9, lab.flow_key(kClientV4, 21004, kVip4Multi, 80, kTcp));
    REQUIRE(send_multi(lab, 21004, kTcpSyn) == syn_only);
    lab.set_table(9, fill(first == 13 ? 12 : 13, 13));
    const std::uint32_t now_table = first == 13 ? 12 : 13;
    CHECK(send_multi(lab, 21000, kTcpAck) == first);
    CHECK(send_multi(lab, 21004, kTcpSyn) == syn_only);  // a retransmitted SYN
    CHECK(send_multi(lab, 21004, kTcpAck) == syn_only);  // and the handshake's ACK
    CHECK(send_multi(lab, 21001, kTcpAck) == now_table);

    // Service counters count first packets as new flows, not the mid-stream ones.
    CHECK(lab.program().service_counters(9).new_flows == 3);  // 21000, 21003, 21004 opened

    // A confirmed flow whose backend goes down is re-hashed, and stays on its new backend when
    // the old one comes back (the new choice replaced its entry).
    lab.set_backend_state(first, FULCRUM_BACKEND_DOWN);
    CHECK(send_multi(lab, 21000, kTcpAck) == now_table);
    lab.set_backend_state(first, FULCRUM_BACKEND_ACTIVE);
    CHECK(send_multi(lab, 21000, kTcpAck) == now_table);
    CHECK(lab.program().flow_event_count(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM) == 3);  // 21001 twice, 21002
}

TEST_CASE("flow state: a UDP flow's first datagram opens it, the second confirms it", "[bpf][balancer][flows]")
{
    BalancerLab lab;
    standard_services(lab);
    lab.add_backend(15, "198.18.0.21", 11);
    lab.add_backend(16, "198.18.0.22", 11);
    lab.add_service(11, kVip4Multi, 53, kUdp, fill(15));
    Bytes in = frame4(to_vip4(kVip4Multi, kUdp), udp(6100, 53));
    REQUIRE(hex(lab.run(in).out) == hex(lab.expected_encap(15, ip_of(in), 0)));
    CHECK(recorded(lab, 6100, FlowTable::first_packets, kUdp));
    CHECK_FALSE(recorded(lab, 6100, FlowTable::confirmed, kUdp));
    lab.set_table(11, fill(16));
    REQUIRE(hex(lab.run(in).out) == hex(lab.expected_encap(15, ip_of(in), 0)));
    CHECK(recorded(lab, 6100, FlowTable::confirmed, kUdp));
    CHECK_FALSE(recorded(lab, 6100, FlowTable::first_packets, kUdp));
}

TEST_CASE("flow state: beyond the per-CPU budget of new entries, flows are balanced but not recorded",
          "[bpf][balancer][flows]")
{
    BalancerLab lab;
    standard_services(lab);
    lab.set_rates(8, 0);  // 8/s: one entry per 1/8-s window
    auto start = std::chrono::steady_clock::now();
    int made = 0;
    for (std::uint16_t sport = 22000; sport < 22020; sport++) {
        REQUIRE(send_multi(lab, sport, kTcpSyn) ==
                lab.maglev_pick(9, lab.flow_key(kClientV4, sport, kVip4Multi, 80, kTcp)));
        made += recorded(lab, sport, FlowTable::first_packets);
    }
    auto windows = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
                       .count() / 125 + 1;
    CHECK(made >= 1);
    CHECK(made <= windows);  // at most one per window elapsed
    CHECK(lab.program().flow_event_count(FULCRUM_FLOW_NOT_RECORDED_BUDGET) == static_cast<std::uint64_t>(20 - made));
    lab.set_rates(0, 0);  // no limit: recorded again
    REQUIRE(send_multi(lab, 22100, kTcpSyn) != 0);
    CHECK(recorded(lab, 22100, FlowTable::first_packets));
}

TEST_CASE("flow state: idle established flows survive floods of 10 x capacity tuples and keep their "
          "backend across a table change", "[bpf][balancer][flows]")
{
    BalancerLab lab;  // flows.capacity 4096 (new_flows 4096)
    standard_services(lab);
    lab.add_backend(15, "198.18.0.21", 11);
    lab.add_service(11, kVip4Multi, 53, kUdp, fill(15));
    std::map<std::uint16_t, std::uint32_t> established;
    for (std::uint16_t sport = 30000; sport < 30300; sport++) {
        REQUIRE(send_multi(lab, sport, kTcpSyn) != 0);
        established[sport] = send_multi(lab, sport, kTcpAck);
        REQUIRE(established[sport] != 0);
    }
    // Flood sources inside 198.18.0.0/15: 40960 distinct SYN tuples and 40960 other ACK tuples,
    // each sent 3 times (no budget: the table layout alone must protect the idle flows).
    // i < 60000: a distinct address of 198.19.0.0/16 (within 198.18.0.0/15) per i.
    auto source = [](int i) { return "198.19." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); };
    const int tuples = 10 * 4096;
    auto flood = [&](int first_tuple, std::uint8_t flags) {
        for (int i = first_tuple; i < first_tuple + tuples; i++) {
            Bytes frame = frame4(V4{.src = source(i % 60000), .dst = kVip4Multi},
                                 tcp(static_cast<std::uint16_t>(1024 + i / 60000), 80, 0, flags));
            REQUIRE(lab.run(frame).action == XDP_TX);
        }
    };
    for (int round = 0; round < 3; round++) {
        flood(0, kTcpSyn);
        flood(tuples, kTcpAck);
    }
    // ... one-packet UDP tuples ...
    for (int i = 0; i < tuples; i++) {
        Bytes dgram = frame4(V4{.src = source(i), .dst = kVip4Multi, .proto = kUdp},
                             udp(static_cast<std::uint16_t>(1024 + i % 60000), 53));
        REQUIRE(lab.run(dgram).action == XDP_TX);
    }
    CHECK(lab.program().flow_event_count(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM) == 3u * tuples);
    // ... and SYN-then-ACK pairs, which a spoofer can send too and which look like real
    // handshakes: only the budget of new entries (here 80/s per CPU) keeps them from churning
    // the table of confirmed flows.
    lab.set_rates(80, 0);
    auto pairs_start = std::chrono::steady_clock::now();
    for (int i = 2 * tuples; i < 3 * tuples; i++) {
        auto sport = static_cast<std::uint16_t>(1024 + i / 60000);
        Bytes syn = frame4(V4{.src = source(i % 60000), .dst = kVip4Multi}, tcp(sport, 80, 0, kTcpSyn));
        Bytes ack = frame4(V4{.src = source(i % 60000), .dst = kVip4Multi}, tcp(sport, 80, 0, kTcpAck));
        REQUIRE(lab.run(syn).action == XDP_TX);
        REQUIRE(lab.run(ack).action == XDP_TX);
    }
    // (a SYN not recorded makes its ACK a mid-stream packet, so each pair counts once here)
    auto windows = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                         pairs_start).count() / 125 + 1;
    CHECK(lab.program().flow_event_count(FULCRUM_FLOW_NOT_RECORDED_BUDGET) >=
          static_cast<std::uint64_t>(tuples - 10 * windows));  // at most 10 entries per window
    // Table changes that would move each established flow: all slots to 11 (moves the flows of
    // 12 and 13), then all to 12 (moves those of 11).
    int kept = 0;
    for (std::uint32_t target : {11u, 12u}) {
        lab.set_table(9, fill(target, 13));
        for (const auto& [sport, backend] : established)
            if (target == 11 ? backend != 11 : backend == 11)
                kept += send_multi(lab, sport, kTcpAck) == backend;
    }
    CHECK(kept == 300);
}

TEST_CASE("ICMP: errors follow flows from any CPU, never create or refresh entries, never cause ICMP",
          "[bpf][balancer][icmp]")
{
    BalancerLab lab(200'000'000);  // 200 ms UDP idle timeout
    standard_services(lab);
    const std::uint32_t first = lab.maglev_pick(9, lab.flow_key(kClientV4, 23000, kVip4Multi, 80, kTcp));
    REQUIRE(send_multi(lab, 23000, kTcpSyn) == first);
    REQUIRE(send_multi(lab, 23000, kTcpAck) == first);
    lab.set_table(9, table_without(first));

    // A router's frag-needed about the backend's reply (VIP -> client), arriving on the other CPU.
    Bytes quoted = slice(ipv4(V4{.src = kVip4Multi, .dst = kClientV4}, tcp(80, 23000)), 0, 28);
    Bytes error = frame4(V4{.src = "198.18.0.254", .dst = kVip4Multi, .proto = kIcmp}, icmp4(3, 4, 1400, quoted));
    Verdict other_cpu;
    int on_cpu = -1;
    std::thread([&] {  // Catch2 assertions stay on the main thread
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        CPU_SET(1, &cpus);
        if (sched_setaffinity(0, sizeof cpus, &cpus) == 0)
            on_cpu = sched_getcpu();
        other_cpu = lab.run(error);
    }).join();
    REQUIRE(on_cpu == 1);
    CHECK(other_cpu.action == XDP_TX);
    CHECK(hex(other_cpu.out) == hex(lab.expected_encap(first, ip_of(error), 0)));

    // An error quoting a flow we never saw is balanced by the table and creates nothing.
    Bytes unknown_quote = slice(ipv4(V4{.src = kVip4Multi, .dst = kClientV4}, tcp(80, 23001)), 0, 28);
    Bytes unknown = frame4(V4{.src = "198.18.0.254", .dst = kVip4Multi, .proto = kIcmp},
                           icmp4(3, 4, 1400, unknown_quote));
    CHECK(lab.run(unknown).action == XDP_TX);
    CHECK(lab.program().flow_entries(lab.flow_key(kClientV4, 23001, kVip4Multi, 80, kTcp)).empty());

    // Errors do not keep a UDP flow alive: it expires on its own clock.
    lab.add_backend(15, "198.18.0.21", 11);
    lab.add_backend(16, "198.18.0.22", 11);
    lab.add_service(11, kVip4Multi, 53, kUdp, fill(15));
    Bytes dgram = frame4(to_vip4(kVip4Multi, kUdp), udp(6200, 53));
    REQUIRE(hex(lab.run(dgram).out) == hex(lab.expected_encap(15, ip_of(dgram), 0)));
    REQUIRE(hex(lab.run(dgram).out) == hex(lab.expected_encap(15, ip_of(dgram), 0)));
    lab.set_table(11, fill(16));
    Bytes udp_quote = slice(ipv4(V4{.src = kVip4Multi, .dst = kClientV4, .proto = kUdp}, udp(53, 6200)), 0, 28);
    Bytes udp_error = frame4(V4{.src = "198.18.0.254", .dst = kVip4Multi, .proto = kIcmp},
                             icmp4(3, 4, 1400, udp_quote));
    for (int i = 0; i < 8; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        lab.run(udp_error);
    }
    CHECK(hex(lab.run(dgram).out) == hex(lab.expected_encap(16, ip_of(dgram), 0)));  // expired

    // An error too big for the tunnel is dropped, not answered with another error.
    Bytes long_quote = ipv4(V4{.src = kVip4Multi, .dst = kClientV4}, tcp(80, 23000, 1420));
    Bytes too_big = frame4(V4{.src = "198.18.0.254", .dst = kVip4Multi, .proto = kIcmp},
                           icmp4(3, 4, 1400, long_quote));
    CHECK(lab.run(too_big).action == XDP_DROP);
    CHECK(lab.program().reason_counters(FULCRUM_DROP_ICMP_ERROR_TOO_BIG).packets == 1);
    CHECK(lab.program().reason_counters(FULCRUM_TX_TOO_BIG).packets == 0);
}

TEST_CASE("ICMP: echo only for a VIP that can serve; generated ICMP is rate-limited per CPU",
          "[bpf][balancer][icmp]")
{
    BalancerLab lab;
    standard_services(lab);
    Bytes body(24, 0x5a);
    auto ping = [&](const std::string& vip) {
        return frame4(V4{.src = kClientV4, .dst = vip, .proto = kIcmp}, icmp4(8, 0, 0x00070001, body));
    };
    CHECK(lab.run(ping(kVip4)).action == XDP_TX);
    CHECK(lab.run(ping(kVip4Empty)).action == XDP_DROP);  // its only service has no backend
    CHECK(lab.program().reason_counters(FULCRUM_DROP_ECHO_NO_BACKEND).packets == 1);

    lab.set_rates(0, 8);  // one reply per 1/8-s window
    Bytes big = ipv4(to_vip4(kVip4), tcp(40000, 80, 1500 - 40));
    int replied = 0, limited = 0;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; i++) {
        Verdict v = lab.run(i % 2 ? ping(kVip4) : ethernet(kBalancerMac, kRouterMac, kEthIPv4, big));
        replied += v.action == XDP_TX;
        limited += v.action == XDP_DROP;
    }
    auto windows = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
                       .count() / 125 + 1;
    CHECK(replied >= 1);
    CHECK(replied <= windows);
    CHECK(replied + limited == 10);
    CHECK(lab.program().reason_counters(FULCRUM_DROP_ICMP_RATE_LIMITED).packets == static_cast<std::uint64_t>(limited));
}

TEST_CASE("lengths come from the IP header: padding is not parsed and not tunnelled", "[bpf][balancer][lengths]")
{
    BalancerLab lab;
    standard_services(lab);
    std::vector<Row> rows;

    Bytes ip = ipv4(to_vip4(kVip4), tcp(40100, 80, 6));
    Bytes padded = ethernet(kBalancerMac, kRouterMac, kEthIPv4, concat(ip, Bytes(18, 0xee)));
    rows.push_back({.name = "Ethernet padding after the IP packet is trimmed before encapsulation",
                    .in = padded, .action = XDP_TX, .out = lab.expected_encap(1, ip, 0), .service = 1,
                    .backend = 1, .new_flow = true});
    Bytes ip6 = ipv6(to_vip6(), tcp(40100, 443));
    rows.push_back({.name = "IPv6: padding after the payload length is trimmed",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv6, concat(ip6, Bytes(7, 0xee))),
                    .action = XDP_TX,
                    .out = lab.expected_encap(5, ip6, 0, std::nullopt,
                                              hash_of(lab, kClientV6, 40100, kVip6, 443, kTcp)),
                    .service = 3, .backend = 5, .new_flow = true});
    // An IP packet whose total length ends inside the TCP header, the rest of the frame padding:
    // the ports and flags must not be read from the padding.
    Bytes whole = ipv4(to_vip4(kVip4), tcp(40101, 80));
    Bytes short_ip = whole;
    short_ip[3] = 20 + 12;  // total length: header + 12 bytes of TCP
    short_ip[10] = short_ip[11] = 0;
    std::uint16_t sum = inet_checksum(short_ip.data(), 20);
    short_ip[10] = static_cast<std::uint8_t>(sum >> 8);
    short_ip[11] = static_cast<std::uint8_t>(sum);
    rows.push_back({.name = "TCP header cut by the IP total length, completed by padding",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, short_ip), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L4});
    Bytes udp_whole = ipv4(to_vip4(kVip4, kUdp), udp(40101, 53));
    udp_whole[3] = 20 + 4;
    udp_whole[10] = udp_whole[11] = 0;
    sum = inet_checksum(udp_whole.data(), 20);
    udp_whole[10] = static_cast<std::uint8_t>(sum >> 8);
    udp_whole[11] = static_cast<std::uint8_t>(sum);
    rows.push_back({.name = "UDP header cut by the IP total length, completed by padding",
                    .in = ethernet(kBalancerMac, kRouterMac, kEthIPv4, udp_whole), .action = XDP_DROP,
                    .reason = FULCRUM_DROP_PARSE_L4});
    run_table(lab, rows);
}

TEST_CASE("counters: the batched read of every id agrees with id-by-id reads, across batches",
          "[bpf][balancer][counters]")
{
    // The rate sampler and the scrape read all counters with backend_counters_below /
    // service_counters_below (bpf_map_lookup_batch, 1024 ids a call). Per-CPU values are written
    // straight into the maps at ids on both sides of each batch boundary, and past `end`.
    BalancerLab lab;
    const int cpus = libbpf_num_possible_cpus();
    REQUIRE(cpus > 0);
    const int backends_fd = map_fd_by_name(lab.program().program_fd(), "backend_stats");
    const int services_fd = map_fd_by_name(lab.program().program_fd(), "service_stats");
    const std::vector<std::uint32_t> ids = {1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 3001};
    for (std::uint32_t id : ids) {
        std::vector<fulcrum_backend_stats> b(static_cast<std::size_t>(cpus));
        std::vector<fulcrum_service_stats> s(static_cast<std::size_t>(cpus));
        for (int cpu = 0; cpu < cpus; cpu++) {
            b[cpu] = {.packets = id * 10ULL + cpu, .bytes = id * 1000ULL + cpu};
            s[cpu] = {.packets = id * 7ULL + cpu, .bytes = id * 700ULL + cpu, .new_flows = id + 1ULL + cpu};
        }
        REQUIRE(bpf_map_update_elem(backends_fd, &id, b.data(), BPF_ANY) == 0);
        REQUIRE(bpf_map_update_elem(services_fd, &id, s.data(), BPF_ANY) == 0);
    }
    close(backends_fd);
    close(services_fd);

    const std::uint64_t per_cpu_sum = static_cast<std::uint64_t>(cpus) * (cpus - 1) / 2;
    const std::uint32_t end = 3001;  // 3001 itself is written but not asked for
    const auto backends = lab.program().backend_counters_below(end);
    const auto services = lab.program().service_counters_below(end);
    REQUIRE(backends.size() == end);
    REQUIRE(services.size() == end);
    for (std::uint32_t id = 0; id < end; id++) {
        INFO("id " << id);
        const bool written = std::find(ids.begin(), ids.end(), id) != ids.end();
        CHECK(backends[id].packets == (written ? id * 10ULL * cpus + per_cpu_sum : 0));
        CHECK(backends[id].bytes == (written ? id * 1000ULL * cpus + per_cpu_sum : 0));
        CHECK(services[id].packets == (written ? id * 7ULL * cpus + per_cpu_sum : 0));
        CHECK(services[id].new_flows == (written ? (id + 1ULL) * cpus + per_cpu_sum : 0));
        if (written) {
            CHECK(backends[id].packets == lab.program().backend_counters(id).packets);
            CHECK(services[id].bytes == lab.program().service_counters(id).bytes);
        }
    }
    // Ids past the map's size read as zero, like an id-by-id read of them.
    const auto past = lab.program().service_counters_below(FULCRUM_MAX_SERVICES + 3);
    REQUIRE(past.size() == FULCRUM_MAX_SERVICES + 3);
    CHECK(past[3000].packets == 3000 * 7ULL * cpus + per_cpu_sum);
    CHECK(past[FULCRUM_MAX_SERVICES + 2].packets == 0);
}
