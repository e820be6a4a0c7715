// Pins the layout of every struct shared with the BPF programs (xdp/abi.h): a change on one side
// that the other does not follow fails the build instead of corrupting maps.
#include <cstddef>

#include "abi.h"
#include "capture_abi.h"

static_assert(sizeof(fulcrum_addr) == 16);
static_assert(sizeof(fulcrum_vip_key) == 20 && offsetof(fulcrum_vip_key, family) == 16);
static_assert(sizeof(fulcrum_vip_value) == 4);
static_assert(sizeof(fulcrum_service_key) == 20 && offsetof(fulcrum_service_key, port) == 16 &&
              offsetof(fulcrum_service_key, proto) == 18 && offsetof(fulcrum_service_key, family) == 19);
static_assert(sizeof(fulcrum_service_value) == 16 && offsetof(fulcrum_service_value, hash_omit) == 8 &&
              offsetof(fulcrum_service_value, quic_id_offset) == 12 && offsetof(fulcrum_service_value, quic_id_bits) == 13 &&
              offsetof(fulcrum_service_value, encap) == 14);
static_assert(sizeof(fulcrum_quic_key) == 8 && offsetof(fulcrum_quic_key, server_id) == 4);
static_assert(sizeof(fulcrum_backend) == 20 && offsetof(fulcrum_backend, state) == 17 &&
              offsetof(fulcrum_backend, service_id) == 18);
static_assert(sizeof(fulcrum_flow_key) == 40 && offsetof(fulcrum_flow_key, sport) == 32 &&
              offsetof(fulcrum_flow_key, proto) == 36 && offsetof(fulcrum_flow_key, family) == 37);
static_assert(sizeof(fulcrum_flow_value) == 16 && offsetof(fulcrum_flow_value, last_seen_ns) == 8);
static_assert(sizeof(fulcrum_settings) == 48 && offsetof(fulcrum_settings, source_v6) == 8 &&
              offsetof(fulcrum_settings, hash_seed) == 28 &&
              offsetof(fulcrum_settings, new_flows_per_second) == 36 &&
              offsetof(fulcrum_settings, icmp_replies_per_second) == 40 &&
              offsetof(fulcrum_settings, gue_port) == 44);
static_assert(sizeof(fulcrum_budget) == 16);
static_assert(sizeof(fulcrum_service_stats) == 32);
static_assert(sizeof(fulcrum_backend_stats) == 16);
static_assert(sizeof(fulcrum_reason_stats) == 16);
static_assert(sizeof(fulcrum_decap_key) == 20);
static_assert(sizeof(fulcrum_nexthop) == 24 && offsetof(fulcrum_nexthop, ifindex) == 12 &&
              offsetof(fulcrum_nexthop, mtu) == 16 && offsetof(fulcrum_nexthop, valid) == 20);
static_assert(sizeof(fulcrum_drain_key) == 84 && offsetof(fulcrum_drain_key, backend) == 64 &&
              offsetof(fulcrum_drain_key, family) == 80);
static_assert(sizeof(fulcrum_capture_control) == 40 && offsetof(fulcrum_capture_control, vip) == 8 &&
              offsetof(fulcrum_capture_control, vip_family) == 24 && offsetof(fulcrum_capture_control, lost) == 32);
static_assert(sizeof(fulcrum_capture_record) == 32 + FULCRUM_CAPTURE_SNAP &&
              offsetof(fulcrum_capture_record, ifindex) == 16 && offsetof(fulcrum_capture_record, service_id) == 20 &&
              offsetof(fulcrum_capture_record, reason) == 22 && offsetof(fulcrum_capture_record, stage) == 24 &&
              offsetof(fulcrum_capture_record, verdict) == 25 && offsetof(fulcrum_capture_record, data) == 32);
