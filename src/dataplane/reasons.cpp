// The reason-name tables; their sizes are checked against the enums' COUNT entries.
#include "dataplane/reasons.h"

#include <array>

namespace fulcrum::dataplane {
namespace {

constexpr std::array<std::string_view, FULCRUM_REASON_COUNT> kReasonNames = {
    "not_ip",           // FULCRUM_PASS_NOT_IP
    "not_vip",          // FULCRUM_PASS_NOT_VIP
    "echo_reply",       // FULCRUM_TX_ECHO_REPLY
    "too_big_reply",    // FULCRUM_TX_TOO_BIG
    "icmp_error_forwarded",  // FULCRUM_FWD_ICMP_ERROR
    "parse_l2",         // FULCRUM_DROP_PARSE_L2
    "parse_l3",         // FULCRUM_DROP_PARSE_L3
    "parse_l4",         // FULCRUM_DROP_PARSE_L4
    "fragment",         // FULCRUM_DROP_FRAGMENT
    "port_unserved",    // FULCRUM_DROP_PORT_UNSERVED
    "protocol_unserved",  // FULCRUM_DROP_PROTO_UNSERVED
    "icmp_unhandled",   // FULCRUM_DROP_ICMP_UNHANDLED
    "no_backend",       // FULCRUM_DROP_NO_BACKEND
    "no_route",         // FULCRUM_DROP_NO_ROUTE
    "forwarding_off",   // FULCRUM_DROP_FORWARDING_OFF
    "no_neighbour",     // FULCRUM_DROP_NO_NEIGHBOUR
    "too_big_no_df",    // FULCRUM_DROP_TOO_BIG_NO_DF
    "no_egress",        // FULCRUM_DROP_NO_EGRESS
    "internal",         // FULCRUM_DROP_INTERNAL
    "icmp_rate_limited",  // FULCRUM_DROP_ICMP_RATE_LIMITED
    "echo_no_backend",  // FULCRUM_DROP_ECHO_NO_BACKEND
    "icmp_error_too_big",  // FULCRUM_DROP_ICMP_ERROR_TOO_BIG
    "vlan_tagged",      // FULCRUM_DROP_VLAN
    "length",           // FULCRUM_DROP_LENGTH
};

constexpr std::array<std::string_view, FULCRUM_FLOW_EVENT_COUNT> kFlowEventNames = {
    "budget",           // FULCRUM_FLOW_NOT_RECORDED_BUDGET
    "mid_stream",       // FULCRUM_FLOW_NOT_RECORDED_MID_STREAM
};

constexpr std::array<std::string_view, FULCRUM_DECAP_REASON_COUNT> kDecapReasonNames = {
    "pass_other",       // FULCRUM_DECAP_PASS_OTHER
    "decap_v4_in_v4",   // FULCRUM_DECAP_DONE_V4_IN_V4
    "decap_v6_in_v6",   // FULCRUM_DECAP_DONE_V6_IN_V6
    "decap_v4_in_v6",   // FULCRUM_DECAP_DONE_V4_IN_V6
    "malformed",        // FULCRUM_DECAP_DROP_MALFORMED
    "source_not_allowed",  // FULCRUM_DECAP_DROP_SOURCE
    "inner_not_local",  // FULCRUM_DECAP_DROP_INNER_NOT_LOCAL
    "ecn_ce_not_ect",   // FULCRUM_DECAP_DROP_ECN_NOT_ECT
};

constexpr bool all_named(auto const& names)
{
    for (auto name : names)
        if (name.empty())
            return false;
    return true;
}
static_assert(all_named(kReasonNames), "every fulcrum_reason needs a name");
static_assert(all_named(kDecapReasonNames), "every fulcrum_decap_reason needs a name");
static_assert(all_named(kFlowEventNames), "every fulcrum_flow_event needs a name");

}  // namespace

std::string_view reason_name(fulcrum_reason reason)
{
    return reason < kReasonNames.size() ? kReasonNames[reason] : "unknown";
}

std::string_view flow_event_name(fulcrum_flow_event event)
{
    return event < kFlowEventNames.size() ? kFlowEventNames[event] : "unknown";
}

std::string_view decap_reason_name(fulcrum_decap_reason reason)
{
    return reason < kDecapReasonNames.size() ? kDecapReasonNames[reason] : "unknown";
}

}  // namespace fulcrum::dataplane
