// QUIC connection-ID routing (abi.h fulcrum_quic_key, config `quic:` and `server_id`), in the
// real object through BPF_PROG_TEST_RUN: long headers are hashed as any UDP packet, short headers
// whose destination connection ID carries a known server id of an active backend go to it from
// any source port, and everything else falls back to the flow table and Maglev, each outcome
// counted (quic_events).
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <set>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

#include "flow_hash.h"
#include "plan/quic_route.h"
#include "services.h"

using namespace fulcrum::test;

namespace {

constexpr std::uint32_t kQuicService = 21, kPlainService = 22;
constexpr std::uint16_t kQuicPort = 443, kPlainPort = 4433;
// Three backends of the QUIC service, with server ids 0x0101, 0x0202, 0x0303 (16 bits at DCID
// byte 0: payload byte 1), and one of the plain UDP service.
constexpr std::uint32_t kA = 31, kB = 32, kC = 33, kPlain = 34;
constexpr std::uint32_t kIdA = 0x0101, kIdB = 0x0202, kIdC = 0x0303;

std::vector<std::uint32_t> three_way(std::uint32_t a, std::uint32_t b, std::uint32_t c)
{
    std::vector<std::uint32_t> t;
    for (std::uint32_t i = 0; i < 251; i++)
        t.push_back(i % 3 == 0 ? a : i % 3 == 1 ? b : c);
    return t;
}

void put_id(BalancerLab& lab, std::uint32_t service, std::uint32_t server_id, std::uint32_t backend)
{
    REQUIRE(lab.program().put_quic_id(fulcrum_quic_key{service, server_id}, backend).ok());
}

struct QuicServices {
    explicit QuicServices(BalancerLab& lab)
    {
        lab.add_backend(kA, "198.18.0.21", kQuicService);
        lab.add_backend(kB, "198.18.0.22", kQuicService);
        lab.add_backend(kC, "198.18.0.23", kQuicService);
        lab.add_service(kQuicService, kVip4Multi, kQuicPort, kUdp, three_way(kA, kB, kC));
        lab.set_quic(kQuicService, 1, 16);
        put_id(lab, kQuicService, kIdA, kA);
        put_id(lab, kQuicService, kIdB, kB);
        put_id(lab, kQuicService, kIdC, kC);
        // A plain UDP service on the same VIP: no quic fields, its backend's id in quic_ids under
        // its own service id all the same (it must never be read).
        lab.add_backend(kPlain, "198.18.0.21", kPlainService);
        lab.add_service(kPlainService, kVip4Multi, kPlainPort, kUdp, three_way(kPlain, kPlain, kPlain));
        put_id(lab, kPlainService, kIdB, kPlain);
    }
};

// A QUIC short header: first byte 0x40 (fixed bit) | spin/key bits, then the DCID whose first
// two bytes are the server id, then `rest` bytes of "protected payload".
Bytes short_header(std::uint32_t server_id, std::size_t rest = 24, std::uint8_t first = 0x41)
{
    Bytes p{first, static_cast<std::uint8_t>(server_id >> 8), static_cast<std::uint8_t>(server_id),
            0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    for (std::size_t i = 0; i < rest; i++)
        p.push_back(static_cast<std::uint8_t>(i * 7));
    return p;
}

// A QUIC v1 Initial (long header): 0xc0 | type, version 1, DCID length 8 and a DCID that starts
// with `server_id` too (the client's random DCID may look like anything), SCID, some payload.
Bytes long_header(std::uint32_t server_id)
{
    Bytes p{0xc3, 0, 0, 0, 1, 8, static_cast<std::uint8_t>(server_id >> 8), static_cast<std::uint8_t>(server_id),
            1, 2, 3, 4, 5, 6, 4, 9, 9, 9, 9};
    for (int i = 0; i < 40; i++)
        p.push_back(static_cast<std::uint8_t>(i));
    return p;
}

Bytes udp_with(std::uint16_t sport, std::uint16_t dport, const Bytes& payload)
{
    Bytes u = udp(sport, dport, payload.size());
    std::copy(payload.begin(), payload.end(), u.begin() + 8);
    return u;
}

Bytes frame(const std::string& src, std::uint16_t sport, std::uint16_t dport, const Bytes& payload)
{
    return ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                    ipv4(V4{.src = src, .dst = kVip4Multi, .proto = kUdp}, udp_with(sport, dport, payload)));
}

// Sends one datagram and returns the backend it was encapsulated to (checked byte for byte).
std::uint32_t send(BalancerLab& lab, const std::string& src, std::uint16_t sport, std::uint16_t dport,
                   const Bytes& payload, std::uint32_t want)
{
    CAPTURE(src, sport, dport, want);
    Bytes in = frame(src, sport, dport, payload);
    Verdict v = lab.run(in);
    REQUIRE(v.action == XDP_TX);
    REQUIRE(hex(v.out) == hex(lab.expected_encap(want, slice(in, 14, in.size() - 14), 0)));
    return want;
}

std::uint32_t hashed(BalancerLab& lab, std::uint32_t service, const std::string& src, std::uint16_t sport,
                     std::uint16_t dport)
{
    return lab.maglev_pick(service, lab.flow_key(src, sport, kVip4Multi, dport, kUdp));
}

std::uint64_t count(BalancerLab& lab, fulcrum_quic_event e) { return lab.program().quic_event_count(e); }

// The first client port from `from` whose 5-tuple hash does not pick `not_this`.
std::uint16_t port_not_hashed_to(BalancerLab& lab, std::uint32_t not_this, std::uint16_t from)
{
    for (std::uint16_t p = from;; p++)
        if (hashed(lab, kQuicService, kClientV4, p, kQuicPort) != not_this)
            return p;
}

}  // namespace

TEST_CASE("QUIC long headers are hashed as any UDP packet, whatever their DCID holds", "[bpf][quic]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    std::set<std::uint32_t> reached;
    for (std::uint16_t sport = 30000; sport < 30030; sport++)
        reached.insert(send(lab, kClientV4, sport, kQuicPort, long_header(kIdB),
                            hashed(lab, kQuicService, kClientV4, sport, kQuicPort)));
    CHECK(reached.size() == 3);  // spread by the hash, not all to B
    CHECK(count(lab, FULCRUM_QUIC_LONG_HEADER) == 30);
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 0);
}

TEST_CASE("QUIC short header with a known server id: its backend from any address and port", "[bpf][quic]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    // The handshake (long header) from one port records the flow on the hash's backend; pick a
    // port whose hash is not B, so the id (B) must win over the flow-table entry.
    const std::uint16_t first = port_not_hashed_to(lab, kB, 40000);
    const std::uint32_t by_hash = hashed(lab, kQuicService, kClientV4, first, kQuicPort);
    send(lab, kClientV4, first, kQuicPort, long_header(0x7777), by_hash);
    send(lab, kClientV4, first, kQuicPort, long_header(0x7777), by_hash);  // confirmed in flows
    send(lab, kClientV4, first, kQuicPort, short_header(kIdB), kB);
    // Migration / NAT rebinding: new ports, a new address; every packet still reaches B.
    for (std::uint16_t sport = 50000; sport < 50040; sport++)
        send(lab, kClientV4, sport, kQuicPort, short_header(kIdB), kB);
    send(lab, "198.18.60.9", 1234, kQuicPort, short_header(kIdB), kB);
    // The other ids go to their own backends.
    send(lab, kClientV4, 50001, kQuicPort, short_header(kIdA), kA);
    send(lab, kClientV4, 50001, kQuicPort, short_header(kIdC, 1200), kC);
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 44);
    CHECK(count(lab, FULCRUM_QUIC_LONG_HEADER) == 2);
    // Routed packets neither read nor write the flow tables: the new ports have no entry.
    CHECK(lab.program().flow_entries(lab.flow_key(kClientV4, 50000, kVip4Multi, kQuicPort, kUdp)).empty());
    // and the handshake's entry is still the hash's backend (a later fallback finds it).
    auto entries = lab.program().flow_entries(lab.flow_key(kClientV4, first, kVip4Multi, kQuicPort, kUdp));
    REQUIRE_FALSE(entries.empty());
    CHECK(entries[0].backend_id == by_hash);
}

TEST_CASE("QUIC: an unknown server id falls back to the flow table and Maglev", "[bpf][quic]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    std::set<std::uint32_t> reached;
    for (std::uint16_t sport = 30000; sport < 30030; sport++)
        reached.insert(send(lab, kClientV4, sport, kQuicPort, short_header(0x0404),
                            hashed(lab, kQuicService, kClientV4, sport, kQuicPort)));
    CHECK(reached.size() == 3);
    CHECK(count(lab, FULCRUM_QUIC_UNKNOWN_ID) == 30);
    // Server id 0 is "none": never looked up as an id, even with an entry for it.
    put_id(lab, kQuicService, 0, kB);
    const std::uint16_t p = port_not_hashed_to(lab, kB, 30100);
    send(lab, kClientV4, p, kQuicPort, short_header(0), hashed(lab, kQuicService, kClientV4, p, kQuicPort));
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 0);
    // A fallback packet is an ordinary datagram: the flow is recorded and followed.
    CHECK_FALSE(lab.program().flow_entries(lab.flow_key(kClientV4, 30000, kVip4Multi, kQuicPort, kUdp)).empty());
}

TEST_CASE("QUIC: the id of a draining, down or foreign backend falls back", "[bpf][quic]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    // B leaves the table (as the daemon does) and drains: its id is not followed.
    lab.set_table(kQuicService, three_way(kA, kC, kA));
    lab.set_backend_state(kB, FULCRUM_BACKEND_DRAINING);
    for (std::uint16_t sport = 30000; sport < 30010; sport++)
        send(lab, kClientV4, sport, kQuicPort, short_header(kIdB), hashed(lab, kQuicService, kClientV4, sport, kQuicPort));
    CHECK(count(lab, FULCRUM_QUIC_UNUSABLE_ID) == 10);
    lab.set_backend_state(kB, FULCRUM_BACKEND_DOWN);
    send(lab, kClientV4, 31000, kQuicPort, short_header(kIdB), hashed(lab, kQuicService, kClientV4, 31000, kQuicPort));
    lab.set_backend_state(kB, FULCRUM_BACKEND_UNUSED);
    send(lab, kClientV4, 31001, kQuicPort, short_header(kIdB), hashed(lab, kQuicService, kClientV4, 31001, kQuicPort));
    // An entry naming another service's backend (a stale or corrupt write) is not followed.
    put_id(lab, kQuicService, 0x0505, kPlain);
    send(lab, kClientV4, 31002, kQuicPort, short_header(0x0505), hashed(lab, kQuicService, kClientV4, 31002, kQuicPort));
    CHECK(count(lab, FULCRUM_QUIC_UNUSABLE_ID) == 13);
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 0);
    // Active again: followed again.
    lab.set_backend_state(kB, FULCRUM_BACKEND_ACTIVE);
    send(lab, kClientV4, 31003, kQuicPort, short_header(kIdB), kB);
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 1);
}

TEST_CASE("QUIC: a datagram too short for the id, or without the fixed bit, falls back and is counted",
          "[bpf][quic]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    const std::uint16_t p = port_not_hashed_to(lab, kB, 30000);
    const std::uint32_t want = hashed(lab, kQuicService, kClientV4, p, kQuicPort);
    send(lab, kClientV4, p, kQuicPort, Bytes{}, want);                           // no payload
    send(lab, kClientV4, p, kQuicPort, Bytes{0x41}, want);                       // the first byte only
    send(lab, kClientV4, p, kQuicPort, Bytes{0x41, 0x02}, want);                 // half the id
    CHECK(count(lab, FULCRUM_QUIC_TRUNCATED) == 3);
    send(lab, kClientV4, p, kQuicPort, Bytes{0x41, 0x02, 0x02}, kB);             // just enough
    send(lab, kClientV4, p, kQuicPort, short_header(kIdB, 24, 0x01), want);      // fixed bit clear
    CHECK(count(lab, FULCRUM_QUIC_NOT_QUIC) == 1);
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 1);

    // Ethernet padding after a short IP packet is not payload: the id is not read from it.
    Bytes in = frame(kClientV4, p, kQuicPort, Bytes{0x41, 0x02});
    Bytes padded = in;
    padded.resize(in.size() + 20, 0x02);  // 0x02 bytes that would complete id 0x0202 (B)
    Verdict v = lab.run(padded);
    REQUIRE(v.action == XDP_TX);
    CHECK(hex(v.out) == hex(lab.expected_encap(want, slice(in, 14, in.size() - 14), 0)));
    CHECK(count(lab, FULCRUM_QUIC_TRUNCATED) == 4);
}

TEST_CASE("QUIC: other offsets and widths (8, 12, 32 bits) read the id's top bits big-endian", "[bpf][quic]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    // 12 bits at DCID byte 3 (payload byte 4): bytes 0xab 0xcd give id 0xabc, whatever the low
    // nibble holds.
    lab.set_quic(kQuicService, 4, 12);
    put_id(lab, kQuicService, 0xabc, kC);
    for (std::uint8_t low : {0x0d, 0x00, 0x0f}) {
        Bytes p{0x40, 9, 9, 9, 0xab, static_cast<std::uint8_t>(0xc0 | low), 1, 2, 3};
        send(lab, kClientV4, static_cast<std::uint16_t>(30000 + low), kQuicPort, p, kC);
    }
    // 32 bits at DCID byte 16 (payload bytes 17..20: the last bytes of a 20-byte DCID).
    lab.set_quic(kQuicService, 17, 32);
    put_id(lab, kQuicService, 0xdeadbeef, kA);
    Bytes p32(17, 0x40);
    for (std::uint8_t b : {0xde, 0xad, 0xbe, 0xef})
        p32.push_back(b);
    send(lab, kClientV4, 30100, kQuicPort, p32, kA);
    p32.pop_back();  // one byte short
    send(lab, kClientV4, 30100, kQuicPort, p32, hashed(lab, kQuicService, kClientV4, 30100, kQuicPort));
    CHECK(count(lab, FULCRUM_QUIC_TRUNCATED) == 1);
    // 8 bits at DCID byte 0.
    lab.set_quic(kQuicService, 1, 8);
    put_id(lab, kQuicService, 0x02, kB);
    send(lab, kClientV4, 30200, kQuicPort, short_header(0x0299), kB);
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 5);
    // Routing off again (offset 0): the same packet is hashed, and not counted at all.
    lab.set_quic(kQuicService, 0, 0);
    const std::uint16_t p = port_not_hashed_to(lab, kB, 30300);
    send(lab, kClientV4, p, kQuicPort, short_header(0x0299), hashed(lab, kQuicService, kClientV4, p, kQuicPort));
    CHECK(count(lab, FULCRUM_QUIC_ROUTED_BY_ID) == 5);
}

TEST_CASE("QUIC: a UDP service without quic is not affected by QUIC-shaped packets", "[bpf][quic]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    for (std::uint16_t sport = 30000; sport < 30010; sport++) {
        send(lab, kClientV4, sport, kPlainPort, short_header(kIdB), kPlain);
        send(lab, kClientV4, sport, kPlainPort, long_header(kIdB), kPlain);
    }
    // The standard UDP services (IPv4 and IPv6 VIPs) too.
    Bytes in = ethernet(kBalancerMac, kRouterMac, kEthIPv4,
                        ipv4(V4{.src = kClientV4, .dst = kVip4, .proto = kUdp}, udp_with(30000, 53, short_header(kIdB))));
    Verdict v = lab.run(in);
    REQUIRE(v.action == XDP_TX);
    const fulcrum_flow_key key = lab.flow_key(kClientV4, 30000, kVip4, 53, kUdp);
    CHECK(hex(v.out) == hex(lab.expected_encap(4, slice(in, 14, in.size() - 14), 0, std::nullopt,
                                               fulcrum_flow_hash(&key, kHashSeed))));
    for (int e = 0; e < FULCRUM_QUIC_EVENT_COUNT; e++)
        CHECK(count(lab, static_cast<fulcrum_quic_event>(e)) == 0);
}

// fulcrumctl lookup --quic-dcid answers with plan::quic_route (the daemon's model of the program,
// over the same xdp/quic_id.h): for every kind of datagram, widths and offsets, known, unknown,
// zero and draining ids, truncated or not, the program must send it where the model says (its
// backend, or the hash's) and count the outcome the model names.
TEST_CASE("QUIC: the program and fulcrumctl lookup's model agree, datagram by datagram", "[bpf][quic][lookup]")
{
    BalancerLab lab;
    standard_services(lab);
    QuicServices services(lab);
    lab.set_table(kQuicService, three_way(kA, kC, kA));  // B drains, as the daemon does it
    lab.set_backend_state(kB, FULCRUM_BACKEND_DRAINING);

    fulcrum::plan::AppliedService model;  // what the daemon holds for this service
    model.id = kQuicService;
    for (auto [address, id, server_id, state] :
         {std::tuple{"198.18.0.21", kA, kIdA, FULCRUM_BACKEND_ACTIVE}, {"198.18.0.22", kB, kIdB, FULCRUM_BACKEND_DRAINING},
          {"198.18.0.23", kC, kIdC, FULCRUM_BACKEND_ACTIVE}}) {
        fulcrum::plan::AppliedBackend b;
        b.id = id;
        b.server_id = server_id;
        b.value.state = static_cast<std::uint8_t>(state);
        b.value.service_id = kQuicService;
        model.backends[address] = b;
    }

    std::uint32_t rng = 12345;
    auto next = [&] { return rng = rng * 1103515245u + 12345u, rng >> 8; };
    std::uint16_t sport = 20000;  // a new flow each: a fallback is the hash's choice
    int by_outcome[FULCRUM_QUIC_EVENT_COUNT] = {};
    for (auto [offset, bits] : {std::pair{1, 16}, {4, 12}, {2, 24}, {1, 32}, {3, 11}}) {
        lab.set_quic(kQuicService, static_cast<std::uint8_t>(offset), static_cast<std::uint8_t>(bits));
        model.quic_id_offset = static_cast<std::uint8_t>(offset);
        model.quic_id_bits = static_cast<std::uint8_t>(bits);
        const unsigned bytes = (bits + 7) / 8;
        for (int i = 0; i < 300; i++) {
            const std::uint32_t kinds[] = {kIdA, kIdB, kIdC, 0, next() & 0xfff};
            const std::uint32_t id = kinds[next() % 5];
            Bytes payload(offset + bytes + next() % 4);
            for (auto& b : payload)
                b = static_cast<std::uint8_t>(next());
            const std::uint32_t r = next() % 10;
            payload[0] = static_cast<std::uint8_t>(r < 7 ? 0x40 | (payload[0] & 0x3f) : r < 9 ? payload[0] | 0x80 : payload[0] & 0x3f);
            const std::uint32_t raw = id << (bytes * 8 - bits);
            for (unsigned k = 0; k < bytes; k++)
                payload[offset + k] = static_cast<std::uint8_t>(raw >> (8 * (bytes - 1 - k)));
            if (next() % 8 == 0)
                payload.resize(next() % (offset + bytes));  // cut before the id ends
            CAPTURE(offset, bits, hex(payload));
            const fulcrum::plan::QuicRoute want = fulcrum::plan::quic_route(model, payload);
            const std::uint64_t before = count(lab, want.outcome);
            send(lab, kClientV4, sport, kQuicPort, payload,
                 want.backend_id ? want.backend_id : hashed(lab, kQuicService, kClientV4, sport, kQuicPort));
            CHECK(count(lab, want.outcome) == before + 1);
            by_outcome[want.outcome]++;
            sport++;
        }
    }
    // Every outcome was exercised.
    for (int e = 0; e < FULCRUM_QUIC_EVENT_COUNT; e++)
        CHECK(by_outcome[e] > 10);
}
