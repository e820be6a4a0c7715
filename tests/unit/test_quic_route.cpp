// fulcrumctl lookup's model of the data plane's QUIC and GUE decisions (plan/quic_route.h over
// xdp/quic_id.h, fulcrum_gue_sport in xdp/flow_hash.h, control/quic_dcid.h): the server id read
// from the bytes as README "QUIC" describes it (expectations written out by hand, not computed
// with the shared functions), the outcome by header, id and backend state, the GUE source port.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "control/quic_dcid.h"
#include "flow_hash.h"
#include "plan/quic_route.h"

using fulcrum::plan::AppliedBackend;
using fulcrum::plan::AppliedService;
using fulcrum::plan::quic_route;
using fulcrum::plan::quic_route_short_header;
using fulcrum::plan::quic_server_id;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A service with `quic: {server_id_offset: 1, server_id_bits: 16}` (payload byte 2) and three
// backends: 0x0101 active, 0x0202 draining, 0x0303 active; one more without an id.
AppliedService quic_service()
{
    AppliedService s;
    s.id = 7;
    s.quic_id_offset = 2;
    s.quic_id_bits = 16;
    auto add = [&](const std::string& address, std::uint32_t id, std::uint32_t server_id, std::uint8_t state) {
        AppliedBackend b;
        b.id = id;
        b.server_id = server_id;
        b.value.state = state;
        b.value.service_id = s.id;
        s.backends[address] = b;
    };
    add("198.18.0.11", 31, 0x0101, FULCRUM_BACKEND_ACTIVE);
    add("198.18.0.12", 32, 0x0202, FULCRUM_BACKEND_DRAINING);
    add("198.18.0.13", 33, 0x0303, FULCRUM_BACKEND_ACTIVE);
    add("198.18.0.14", 34, 0, FULCRUM_BACKEND_ACTIVE);
    return s;
}

}  // namespace

TEST_CASE("QUIC server id: the top bits of the bytes from the offset, most significant first", "[quic][lookup]")
{
    const Bytes payload{0x41, 0x5a, 0xab, 0xcd, 0xef, 0x12, 0x34};
    CHECK(quic_server_id(payload, 2, 16) == 0xabcdu);      // DCID bytes 1..2
    CHECK(quic_server_id(payload, 2, 12) == 0xabcu);       // the top 12 bits of two bytes
    CHECK(quic_server_id(payload, 2, 8) == 0xabu);
    CHECK(quic_server_id(payload, 2, 1) == 1u);            // 0xab's top bit
    CHECK(quic_server_id(payload, 1, 3) == 2u);            // 0x5a = 010 11010
    CHECK(quic_server_id(payload, 2, 32) == 0xabcdef12u);
    CHECK(quic_server_id(payload, 3, 20) == 0xcdef1u);     // 3 bytes, top 20 bits
    // As the program: a width outside 1..32 reads 32 bits (the daemon never writes one).
    CHECK(quic_server_id(payload, 2, 0) == 0xabcdef12u);
    CHECK(quic_server_id(payload, 2, 40) == 0xabcdef12u);
}

TEST_CASE("QUIC server id: a payload that ends before the id has none", "[quic][lookup]")
{
    const Bytes payload{0x41, 0x5a, 0xab, 0xcd};
    CHECK(quic_server_id(payload, 2, 16) == 0xabcdu);
    CHECK_FALSE(quic_server_id(payload, 2, 17).has_value());  // 3 bytes needed, 2 there
    CHECK_FALSE(quic_server_id(payload, 3, 16).has_value());
    CHECK_FALSE(quic_server_id(Bytes{}, 1, 8).has_value());
}

TEST_CASE("QUIC route: the outcome the program counts, and the backend of an active id", "[quic][lookup]")
{
    const AppliedService s = quic_service();
    auto route = [&](Bytes payload) { return quic_route(s, payload); };

    auto routed = route({0x40, 0x5a, 0x01, 0x01, 0xa1});
    CHECK(routed.outcome == FULCRUM_QUIC_ROUTED_BY_ID);
    CHECK(routed.server_id == 0x0101u);
    CHECK(routed.backend_id == 31u);
    CHECK(route({0x7f, 0x00, 0x03, 0x03}).backend_id == 33u);  // spin, key phase, pn bits: ignored

    auto draining = route({0x40, 0x5a, 0x02, 0x02});
    CHECK(draining.outcome == FULCRUM_QUIC_UNUSABLE_ID);
    CHECK(draining.server_id == 0x0202u);
    CHECK(draining.backend_id == 0u);

    CHECK(route({0x40, 0x5a, 0x09, 0x09}).outcome == FULCRUM_QUIC_UNKNOWN_ID);
    // Id 0 is "none": never looked up, though a backend has no id (server_id 0).
    auto zero = route({0x40, 0x5a, 0x00, 0x00});
    CHECK(zero.outcome == FULCRUM_QUIC_UNKNOWN_ID);
    CHECK(zero.backend_id == 0u);

    CHECK(route({0xc3, 0, 0, 0, 1, 8, 0x01, 0x01}).outcome == FULCRUM_QUIC_LONG_HEADER);
    CHECK(route({0x80}).outcome == FULCRUM_QUIC_LONG_HEADER);
    CHECK(route({0x3f, 0x5a, 0x01, 0x01}).outcome == FULCRUM_QUIC_NOT_QUIC);  // fixed bit clear
    CHECK(route({}).outcome == FULCRUM_QUIC_TRUNCATED);
    auto cut = route({0x40, 0x5a, 0x01});
    CHECK(cut.outcome == FULCRUM_QUIC_TRUNCATED);
    CHECK_FALSE(cut.server_id.has_value());
}

TEST_CASE("QUIC route of a short header's connection ID (fulcrumctl lookup --quic-dcid)", "[quic][lookup]")
{
    const AppliedService s = quic_service();
    auto r = quic_route_short_header(s, Bytes{0x5a, 0x03, 0x03, 0xa1, 0xa2});
    CHECK(r.outcome == FULCRUM_QUIC_ROUTED_BY_ID);
    CHECK(r.backend_id == 33u);
    CHECK(quic_route_short_header(s, Bytes{0x5a, 0x03}).outcome == FULCRUM_QUIC_TRUNCATED);
}

TEST_CASE("GUE source port: 49152 + the low 14 bits of the flow hash", "[gue][lookup]")
{
    CHECK(fulcrum_gue_sport(0) == 49152);
    CHECK(fulcrum_gue_sport(0xffffffffu) == 65535);
    CHECK(fulcrum_gue_sport(0x12345678u) == 49152 + 0x1678);
    CHECK(fulcrum_gue_sport(0x4000u) == 49152);  // bit 14 and above do not count
}

TEST_CASE("--quic-dcid: 1..20 bytes in hex", "[quic][lookup]")
{
    using fulcrum::control::parse_quic_dcid;
    CHECK(parse_quic_dcid("5a0202A1") == Bytes{0x5a, 0x02, 0x02, 0xa1});
    CHECK(parse_quic_dcid(std::string(40, 'f')).value().size() == 20);
    CHECK_FALSE(parse_quic_dcid(std::string(42, 'f')).has_value());
    CHECK_FALSE(parse_quic_dcid("").has_value());
    CHECK_FALSE(parse_quic_dcid("5a0").has_value());
    CHECK_FALSE(parse_quic_dcid("5g").has_value());
    CHECK_FALSE(parse_quic_dcid("0x5a").has_value());
}
