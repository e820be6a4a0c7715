// Names of the data plane's pass/drop/answer reasons (xdp/abi.h), as used in metrics labels,
// logs and tests. A switch per enum, so a new reason without a name fails the build.
#pragma once

#include <string_view>

#include "abi.h"

namespace fulcrum::dataplane {

std::string_view reason_name(fulcrum_reason reason);
std::string_view decap_reason_name(fulcrum_decap_reason reason);
// The reason label of fulcrum_flows_not_recorded_total.
std::string_view flow_event_name(fulcrum_flow_event event);
// The outcome label of fulcrum_quic_packets_total.
std::string_view quic_event_name(fulcrum_quic_event event);

// What the data plane did with a packet of each reason: dropped it, passed it to the host,
// answered it from XDP or forwarded it (an ICMP error). Metrics and the status page split
// reasons this way.
enum class ReasonKind { passed, answered, forwarded, dropped };
ReasonKind reason_kind(fulcrum_reason reason);

}  // namespace fulcrum::dataplane
