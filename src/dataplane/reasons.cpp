// The reason names. One switch per enum, with no default: -Wswitch (on with -Wall, an error with
// werror) fails the build when a reason in xdp/abi.h has no case here, and reordering the enum
// cannot mislabel a metric (a table indexed by position could).
#include "dataplane/reasons.h"

namespace fulcrum::dataplane {

std::string_view reason_name(fulcrum_reason reason)
{
    switch (reason) {
    case FULCRUM_PASS_NOT_IP: return "not_ip";
    case FULCRUM_PASS_NOT_VIP: return "not_vip";
    case FULCRUM_TX_ECHO_REPLY: return "echo_reply";
    case FULCRUM_TX_TOO_BIG: return "too_big_reply";
    case FULCRUM_FWD_ICMP_ERROR: return "icmp_error_forwarded";
    case FULCRUM_DROP_PARSE_L2: return "parse_l2";
    case FULCRUM_DROP_PARSE_L3: return "parse_l3";
    case FULCRUM_DROP_PARSE_L4: return "parse_l4";
    case FULCRUM_DROP_FRAGMENT: return "fragment";
    case FULCRUM_DROP_PORT_UNSERVED: return "port_unserved";
    case FULCRUM_DROP_PROTO_UNSERVED: return "protocol_unserved";
    case FULCRUM_DROP_ICMP_UNHANDLED: return "icmp_unhandled";
    case FULCRUM_DROP_NO_BACKEND: return "no_backend";
    case FULCRUM_DROP_NO_ROUTE: return "no_route";
    case FULCRUM_DROP_FORWARDING_OFF: return "forwarding_off";
    case FULCRUM_DROP_NO_NEIGHBOUR: return "no_neighbour";
    case FULCRUM_DROP_TOO_BIG_NO_DF: return "too_big_no_df";
    case FULCRUM_DROP_NO_EGRESS: return "no_egress";
    case FULCRUM_DROP_INTERNAL: return "internal";
    case FULCRUM_DROP_ICMP_RATE_LIMITED: return "icmp_rate_limited";
    case FULCRUM_DROP_ECHO_NO_BACKEND: return "echo_no_backend";
    case FULCRUM_DROP_ICMP_ERROR_TOO_BIG: return "icmp_error_too_big";
    case FULCRUM_DROP_VLAN: return "vlan_tagged";
    case FULCRUM_DROP_LENGTH: return "length";
    case FULCRUM_REASON_COUNT: break;
    }
    return "unknown";
}

std::string_view flow_event_name(fulcrum_flow_event event)
{
    switch (event) {
    case FULCRUM_FLOW_NOT_RECORDED_BUDGET: return "budget";
    case FULCRUM_FLOW_NOT_RECORDED_MID_STREAM: return "mid_stream";
    case FULCRUM_FLOW_EVENT_COUNT: break;
    }
    return "unknown";
}

std::string_view quic_event_name(fulcrum_quic_event event)
{
    switch (event) {
    case FULCRUM_QUIC_ROUTED_BY_ID: return "routed_by_id";
    case FULCRUM_QUIC_LONG_HEADER: return "long_header";
    case FULCRUM_QUIC_UNKNOWN_ID: return "unknown_id";
    case FULCRUM_QUIC_UNUSABLE_ID: return "unusable_id";
    case FULCRUM_QUIC_TRUNCATED: return "truncated";
    case FULCRUM_QUIC_NOT_QUIC: return "not_quic";
    case FULCRUM_QUIC_EVENT_COUNT: break;
    }
    return "unknown";
}

std::string_view decap_reason_name(fulcrum_decap_reason reason)
{
    switch (reason) {
    case FULCRUM_DECAP_PASS_OTHER: return "pass_other";
    case FULCRUM_DECAP_DONE_V4_IN_V4: return "decap_v4_in_v4";
    case FULCRUM_DECAP_DONE_V6_IN_V6: return "decap_v6_in_v6";
    case FULCRUM_DECAP_DONE_V4_IN_V6: return "decap_v4_in_v6";
    case FULCRUM_DECAP_DROP_MALFORMED: return "malformed";
    case FULCRUM_DECAP_DROP_SOURCE: return "source_not_allowed";
    case FULCRUM_DECAP_DROP_INNER_NOT_LOCAL: return "inner_not_local";
    case FULCRUM_DECAP_DROP_ECN_NOT_ECT: return "ecn_ce_not_ect";
    case FULCRUM_DECAP_DONE_GUE_V4_IN_V4: return "decap_gue_v4_in_v4";
    case FULCRUM_DECAP_DONE_GUE_V6_IN_V6: return "decap_gue_v6_in_v6";
    case FULCRUM_DECAP_DONE_GUE_V4_IN_V6: return "decap_gue_v4_in_v6";
    case FULCRUM_DECAP_REASON_COUNT: break;
    }
    return "unknown";
}

ReasonKind reason_kind(fulcrum_reason r)
{
    switch (r) {
    case FULCRUM_PASS_NOT_IP:
    case FULCRUM_PASS_NOT_VIP: return ReasonKind::passed;
    case FULCRUM_TX_ECHO_REPLY:
    case FULCRUM_TX_TOO_BIG: return ReasonKind::answered;
    case FULCRUM_FWD_ICMP_ERROR: return ReasonKind::forwarded;
    default: return ReasonKind::dropped;
    }
}

}  // namespace fulcrum::dataplane
