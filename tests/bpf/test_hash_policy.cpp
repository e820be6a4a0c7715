// Hash policies (abi.h FULCRUM_HASH_NO_*, config `hash:`): which fields of a new flow pick its
// Maglev slot, in the real object through BPF_PROG_TEST_RUN. Every packet is checked against
// the C++ side's pick (lab.maglev_pick: flow_hash.h fulcrum_slot_hash, as fulcrumctl lookup uses
// it), and the spread or stickiness each policy promises is checked on top.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "flow_hash.h"
#include "services.h"

using namespace fulcrum::test;

namespace {

constexpr std::uint32_t kSrcIp = FULCRUM_HASH_NO_SRC_PORT | FULCRUM_HASH_NO_DST_PORT;
constexpr std::uint32_t kSrcIpDstPort = FULCRUM_HASH_NO_SRC_PORT;
constexpr std::uint32_t kDstPort = FULCRUM_HASH_NO_SRC_ADDR | FULCRUM_HASH_NO_SRC_PORT;

// A 251-slot table (prime) naming ids round-robin: every backend has a third of the slots.
std::vector<std::uint32_t> three_way(std::uint32_t a, std::uint32_t b, std::uint32_t c)
{
    std::vector<std::uint32_t> t;
    for (std::uint32_t i = 0; i < 251; i++)
        t.push_back(i % 3 == 0 ? a : i % 3 == 1 ? b : c);
    return t;
}

// One service per policy on kVip4Multi, each with its own three backends (a backend id serves
// one service), and one IPv6 service with src-ip.
struct PolicyServices {
    explicit PolicyServices(BalancerLab& lab)
    {
        std::uint32_t id = 21;
        for (auto [service, port, omit] : {std::tuple{11u, 8001, 0u}, std::tuple{12u, 8002, kSrcIp}}) {
            const char* addresses[] = {"198.18.0.21", "198.18.0.22", "198.18.0.23"};
            for (const char* a : addresses)
                lab.add_backend(id++, a, service);
            lab.add_service(service, kVip4Multi, static_cast<std::uint16_t>(port), kTcp,
                            three_way(id - 3, id - 2, id - 1), omit);
        }
        // Port-0 UDP services: the policies that keep or drop the VIP port differ only there.
        for (auto [service, vip, omit] : {std::tuple{13u, kVip4Port0, kSrcIpDstPort}, std::tuple{14u, kVip4, kDstPort}}) {
            const char* addresses[] = {"198.18.0.21", "198.18.0.22", "198.18.0.23"};
            for (const char* a : addresses)
                lab.add_backend(id++, a, service);
            lab.add_service(service, vip, 0, kUdp, three_way(id - 3, id - 2, id - 1), omit);
        }
        const char* v6[] = {"2001:db8:0:1::11", "2001:db8:0:1::12", "2001:db8:0:1::13"};
        for (const char* a : v6)
            lab.add_backend(id++, a, 15);
        lab.add_service(15, kVip6, 8443, kTcp, three_way(id - 3, id - 2, id - 1), kSrcIp);
    }
};

Bytes frame4(const std::string& src, const std::string& dst, std::uint8_t proto, std::uint16_t sport,
             std::uint16_t dport)
{
    Bytes l4 = proto == kTcp ? tcp(sport, dport, 0, kTcpSyn) : udp(sport, dport);
    return ethernet(kBalancerMac, kRouterMac, kEthIPv4, ipv4(V4{.src = src, .dst = dst, .proto = proto}, l4));
}

// Sends a new flow's first packet and returns the backend it went to, after checking that it is
// the one the C++ side picks and that the frame is exactly that backend's encapsulation.
std::uint32_t send(BalancerLab& lab, std::uint32_t service, const std::string& src, const std::string& dst,
                   std::uint8_t proto, std::uint16_t sport, std::uint16_t dport)
{
    CAPTURE(service, src, dst, sport, dport);
    const std::uint32_t want = lab.maglev_pick(service, lab.flow_key(src, sport, dst, dport, proto));
    Bytes in = frame4(src, dst, proto, sport, dport);
    Verdict v = lab.run(in);
    REQUIRE(v.action == XDP_TX);
    REQUIRE(hex(v.out) == hex(lab.expected_encap(want, slice(in, 14, in.size() - 14), 0)));
    return want;
}

}  // namespace

TEST_CASE("hash policy 5-tuple: one client's source ports spread over every backend", "[bpf][balancer][hash]")
{
    BalancerLab lab;
    standard_services(lab);
    PolicyServices services(lab);
    std::map<std::uint32_t, int> per_backend;
    for (std::uint16_t sport = 30000; sport < 30150; sport++)
        per_backend[send(lab, 11, kClientV4, kVip4Multi, kTcp, sport, 8001)]++;
    REQUIRE(per_backend.size() == 3);
    for (const auto& [backend, n] : per_backend)
        CHECK(n >= 25);  // a third of 150 is 50
}

TEST_CASE("hash policy src-ip: one client's connections share one backend, clients spread",
          "[bpf][balancer][hash]")
{
    BalancerLab lab;
    standard_services(lab);
    PolicyServices services(lab);

    std::set<std::uint32_t> backends;
    for (std::uint16_t sport = 30000; sport < 30150; sport++)
        backends.insert(send(lab, 12, kClientV4, kVip4Multi, kTcp, sport, 8002));
    CHECK(backends.size() == 1);

    std::map<std::uint32_t, int> per_backend;
    for (int host = 1; host <= 90; host++)
        per_backend[send(lab, 12, "198.18.50." + std::to_string(host), kVip4Multi, kTcp, 40000, 8002)]++;
    REQUIRE(per_backend.size() == 3);
    for (const auto& [backend, n] : per_backend)
        CHECK(n >= 10);  // a third of 90 is 30

    SECTION("an ICMP error quoting a flow the balancer never saw goes where the client's flows go")
    {
        const std::uint32_t client = *backends.begin();
        // A router's frag-needed about the backend's reply (VIP -> client) on a new client port.
        Bytes quoted = slice(ipv4(V4{.src = kVip4Multi, .dst = kClientV4}, tcp(8002, 31999)), 0, 28);
        Bytes error = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                               ipv4(V4{.src = "198.18.0.254", .dst = kVip4Multi, .proto = kIcmp},
                                    icmp4(3, 4, 1400, quoted)));
        Verdict v = lab.run(error);
        REQUIRE(v.action == XDP_TX);
        CHECK(hex(v.out) == hex(lab.expected_encap(client, slice(error, 14, error.size() - 14), 0)));
        CHECK(lab.program().flow_entries(lab.flow_key(kClientV4, 31999, kVip4Multi, 8002, kTcp)).empty());
    }
    SECTION("recorded flows keep their backend when the policy changes; new flows follow it")
    {
        // A recorded flow of the client (its SYN was sent above, under src-ip) that the 5-tuple
        // would send elsewhere, and a port never seen that the 5-tuple sends elsewhere too.
        const std::uint32_t client = *backends.begin();
        const std::vector<std::uint32_t> table = three_way(24, 25, 26);  // service 12's
        auto five_tuple_pick = [&](std::uint16_t sport) {
            fulcrum_flow_key k = lab.flow_key(kClientV4, sport, kVip4Multi, 8002, kTcp);
            return table[fulcrum_flow_hash(&k, kHashSeed) % table.size()];
        };
        std::uint16_t recorded = 0, fresh = 0;
        for (std::uint16_t sport = 30000; sport < 30150 && !recorded; sport++)
            if (five_tuple_pick(sport) != client)
                recorded = sport;
        for (std::uint16_t sport = 32000; sport < 32150 && !fresh; sport++)
            if (five_tuple_pick(sport) != client)
                fresh = sport;
        REQUIRE(recorded != 0);
        REQUIRE(fresh != 0);
        REQUIRE(!lab.program().flow_entries(lab.flow_key(kClientV4, recorded, kVip4Multi, 8002, kTcp)).empty());

        fulcrum_service_key key{};
        key.vip = to_addr(kVip4Multi);
        key.family = FULCRUM_AF_INET;
        key.port = htons(8002);
        key.proto = kTcp;
        REQUIRE(lab.program().put_service(key, fulcrum_service_value{12, 251, 0, FULCRUM_ENCAP_IPIP}).ok());  // now 5-tuple

        Bytes ack = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                             ipv4(V4{.src = kClientV4, .dst = kVip4Multi, .proto = kTcp}, tcp(recorded, 8002, 0, kTcpAck)));
        Verdict v = lab.run(ack);
        REQUIRE(v.action == XDP_TX);
        CHECK(hex(v.out) == hex(lab.expected_encap(client, slice(ack, 14, ack.size() - 14), 0)));

        Bytes syn = frame4(kClientV4, kVip4Multi, kTcp, fresh, 8002);
        v = lab.run(syn);
        REQUIRE(v.action == XDP_TX);
        CHECK(hex(v.out) == hex(lab.expected_encap(five_tuple_pick(fresh), slice(syn, 14, syn.size() - 14), 0)));
    }
}

TEST_CASE("hash policy src-ip over IPv6: one backend per client, the flow label still per flow",
          "[bpf][balancer][hash]")
{
    BalancerLab lab;
    standard_services(lab);
    PolicyServices services(lab);
    std::set<std::uint32_t> backends, labels;
    for (std::uint16_t sport = 30000; sport < 30040; sport++) {
        fulcrum_flow_key k = lab.flow_key(kClientV6, sport, kVip6, 8443, kTcp);
        const std::uint32_t want = lab.maglev_pick(15, k);
        const std::uint32_t flow_hash = fulcrum_flow_hash(&k, kHashSeed);
        Bytes inner = ipv6(V6{.src = kClientV6, .dst = kVip6, .next = kTcp}, tcp(sport, 8443, 0, kTcpSyn));
        Verdict v = lab.run(ethernet(kBalancerMac, kRouterMac, kEthIPv6, inner));
        REQUIRE(v.action == XDP_TX);
        // The outer flow label is the 5-tuple's hash: a backend's RSS still spreads the connections.
        REQUIRE(hex(v.out) == hex(lab.expected_encap(want, inner, 0, std::nullopt, flow_hash)));
        backends.insert(want);
        labels.insert(flow_hash & 0xfffff);
    }
    CHECK(backends.size() == 1);
    CHECK(labels.size() > 30);
}

TEST_CASE("hash policies of a port-0 service: src-ip-dst-port keeps the VIP port, dst-port only it",
          "[bpf][balancer][hash]")
{
    BalancerLab lab;
    standard_services(lab);
    PolicyServices services(lab);

    // src-ip-dst-port: one client, one VIP port -> one backend whatever its source port; other
    // VIP ports of the same client spread.
    std::set<std::uint32_t> one_port;
    for (std::uint16_t sport = 30000; sport < 30060; sport++)
        one_port.insert(send(lab, 13, kClientV4, kVip4Port0, kUdp, sport, 5000));
    CHECK(one_port.size() == 1);
    std::set<std::uint32_t> ports;
    for (std::uint16_t dport = 5000; dport < 5060; dport++)
        ports.insert(send(lab, 13, kClientV4, kVip4Port0, kUdp, 30000, dport));
    CHECK(ports.size() == 3);

    // dst-port: every client of one VIP port -> one backend; the VIP's ports spread.
    std::set<std::uint32_t> clients;
    for (int host = 1; host <= 60; host++)
        clients.insert(send(lab, 14, "198.18.50." + std::to_string(host), kVip4, kUdp,
                            static_cast<std::uint16_t>(20000 + host), 6000));
    CHECK(clients.size() == 1);
    std::set<std::uint32_t> vip_ports;
    for (std::uint16_t dport = 6000; dport < 6060; dport++)
        vip_ports.insert(send(lab, 14, kClientV4, kVip4, kUdp, 20000, dport));
    CHECK(vip_ports.size() == 3);
}

TEST_CASE("hash policy bits the daemon never writes are ignored, not undefined", "[bpf][balancer][hash]")
{
    BalancerLab lab;
    standard_services(lab);
    PolicyServices services(lab);
    // The 5-tuple service with stray high bits: the data plane and fulcrum_slot_hash both mask them.
    fulcrum_service_key key{};
    key.vip = to_addr(kVip4Multi);
    key.family = FULCRUM_AF_INET;
    key.port = htons(8001);
    key.proto = kTcp;
    REQUIRE(lab.program().put_service(key, fulcrum_service_value{11, 251, 0xfffffff0u, FULCRUM_ENCAP_IPIP}).ok());
    std::set<std::uint32_t> backends;
    for (std::uint16_t sport = 30000; sport < 30060; sport++)
        backends.insert(send(lab, 11, kClientV4, kVip4Multi, kTcp, sport, 8001));
    CHECK(backends.size() == 3);
}
