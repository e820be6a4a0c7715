// Where the data plane sends a QUIC datagram of a service with `quic` (xdp/balancer.bpf.c
// quic_backend), worked out from the applied state for fulcrumctl lookup --quic-dcid. The bytes
// are read by the program's own rules (xdp/quic_id.h), so both find the same server id.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "abi.h"
#include "plan/reconciler.h"

namespace fulcrum::plan {

struct QuicRoute {
    // What the program counts for the datagram (fulcrum_quic_packets_total{outcome}):
    // routed_by_id, or why it takes the usual path (flow tables, Maglev).
    fulcrum_quic_event outcome = FULCRUM_QUIC_TRUNCATED;
    std::optional<std::uint32_t> server_id;  // the id read, if the header has one and it fits
    std::uint32_t backend_id = 0;            // routed_by_id: the backend it names; else 0
};

// The server id in a short header's UDP `payload` for a service whose entry holds `quic_id_offset`
// and `quic_id_bits`; nullopt if the payload ends first. Does not look at the first byte.
std::optional<std::uint32_t> quic_server_id(std::span<const std::uint8_t> payload, std::uint8_t quic_id_offset,
                                            std::uint8_t quic_id_bits);

// The program's decision for a UDP datagram with `payload` to `service` (which has quic_id_offset
// set): the backend whose server id the payload names while it is active, else the outcome that
// sends it the usual way.
QuicRoute quic_route(const AppliedService& service, std::span<const std::uint8_t> payload);

// The same for a 1-RTT (short header) packet whose destination connection ID is `dcid`: the
// payload is the first byte (0x40, the fixed bit) and the connection ID.
QuicRoute quic_route_short_header(const AppliedService& service, std::span<const std::uint8_t> dcid);

}  // namespace fulcrum::plan
