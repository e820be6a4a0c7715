// QUIC connection-ID routing as the program does it; see quic_route.h.
#include "plan/quic_route.h"

#include <vector>

#include "quic_id.h"

namespace fulcrum::plan {

std::optional<std::uint32_t> quic_server_id(std::span<const std::uint8_t> payload, std::uint8_t quic_id_offset,
                                            std::uint8_t quic_id_bits)
{
    const std::uint32_t start = fulcrum_quic_id_start(quic_id_offset);
    const std::uint32_t width = fulcrum_quic_id_width(quic_id_bits);
    const std::uint32_t bytes = fulcrum_quic_id_bytes(width);
    if (payload.size() < std::size_t{start} + bytes)
        return std::nullopt;
    std::uint32_t raw = 0;  // the bytes most significant first, as the program reads them
    for (std::uint32_t i = 0; i < bytes; ++i)
        raw = (raw << 8) | payload[start + i];
    return fulcrum_quic_server_id(raw, bytes, width);
}

QuicRoute quic_route(const AppliedService& service, std::span<const std::uint8_t> payload)
{
    QuicRoute route;
    if (payload.empty())
        return route;  // truncated
    if (fulcrum_quic_long_header(payload[0])) {
        route.outcome = FULCRUM_QUIC_LONG_HEADER;
        return route;
    }
    if (!fulcrum_quic_fixed_bit(payload[0])) {
        route.outcome = FULCRUM_QUIC_NOT_QUIC;
        return route;
    }
    route.server_id = quic_server_id(payload, service.quic_id_offset, service.quic_id_bits);
    if (!route.server_id)
        return route;  // truncated
    // quic_ids holds (service, server id) -> backend for every backend with an id (reconciler),
    // and id 0 is never looked up.
    const AppliedBackend* named = nullptr;
    for (const auto& [address, backend] : service.backends)
        if (*route.server_id != 0 && backend.server_id == *route.server_id)
            named = &backend;
    if (!named) {
        route.outcome = FULCRUM_QUIC_UNKNOWN_ID;
        return route;
    }
    if (named->value.state != FULCRUM_BACKEND_ACTIVE) {
        route.outcome = FULCRUM_QUIC_UNUSABLE_ID;
        return route;
    }
    route.outcome = FULCRUM_QUIC_ROUTED_BY_ID;
    route.backend_id = named->id;
    return route;
}

QuicRoute quic_route_short_header(const AppliedService& service, std::span<const std::uint8_t> dcid)
{
    std::vector<std::uint8_t> payload{0x40};
    payload.insert(payload.end(), dcid.begin(), dcid.end());
    return quic_route(service, payload);
}

}  // namespace fulcrum::plan
