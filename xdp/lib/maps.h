/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps of the balancer program: declared here once; layouts come from abi.h. */
#ifndef FULCRUM_LIB_MAPS_H
#define FULCRUM_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FULCRUM_MAX_VIPS);
	__type(key, struct fulcrum_vip_key);
	__type(value, struct fulcrum_vip_value);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FULCRUM_MAX_SERVICES);
	__type(key, struct fulcrum_service_key);
	__type(value, struct fulcrum_service_value);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FULCRUM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fulcrum_backend);
} backends SEC(".maps");

/* Maglev tables: service id -> an array of chunks of backend ids (abi.h fulcrum_maglev_chunk),
 * FULCRUM_MAGLEV_CHUNKS(table_size) of them. The daemon builds a new inner array aside and swaps
 * the outer slot, so no packet sees a half-built table. BPF_F_INNER_MAP lets inner arrays differ in
 * size (table_size is per service); BPF_F_MMAPABLE lets the daemon fill one with a single copy.
 * Inner maps must match this template's value size and flags (the kernel's bpf_map_meta_equal). */
struct maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(max_entries, FULCRUM_MAGLEV_CHUNKS(FULCRUM_DEFAULT_TABLE_SIZE));
	__type(key, __u32);
	/* struct fulcrum_maglev_chunk as its array: clang 14 emits a struct reached only through
	 * this nested definition as a forward declaration in BTF, whose size libbpf cannot know */
	__type(value, __u32[FULCRUM_MAGLEV_CHUNK_SLOTS]);
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FULCRUM_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct maglev_inner);
} maglev_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FULCRUM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fulcrum_nexthop);
} nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FULCRUM_VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} vip_filter SEC(".maps");

/* Flow tables (abi.h: first packets in new_flows, confirmed flows in flows). One key space shared
 * by all CPUs, so an ICMP error that RSS puts on another CPU than its flow still finds it; with
 * BPF_F_NO_COMMON_LRU each CPU evicts only from its own LRU list, so a flood on one receive queue
 * cannot push out the flows of another (the kernel gives each possible CPU max_entries / CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, FULCRUM_DEFAULT_FLOWS);
	__type(key, struct fulcrum_flow_key);
	__type(value, struct fulcrum_flow_value);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, FULCRUM_DEFAULT_FLOWS);
	__type(key, struct fulcrum_flow_key);
	__type(value, struct fulcrum_flow_value);
} new_flows SEC(".maps");

/* Per-CPU rate-limit state (abi.h fulcrum_budget), one slot per FULCRUM_BUDGET_*. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_BUDGET_COUNT);
	__type(key, __u32);
	__type(value, struct fulcrum_budget);
} budgets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_FLOW_EVENT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} flow_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fulcrum_settings);
} settings SEC(".maps");

/* Interfaces a packet may be redirected to when the backend's route leaves by another port. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, FULCRUM_MAX_INTERFACES);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct fulcrum_service_stats);
} service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fulcrum_backend_stats);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_REASON_COUNT);
	__type(key, __u32);
	__type(value, struct fulcrum_reason_stats);
} reason_stats SEC(".maps");

/* QUIC connection-ID routing (abi.h fulcrum_quic_key): (service id, server id) -> backend id.
 * A hash map, not per-service arrays: a server id may be up to 32 bits wide and a service's ids
 * are sparse, one entry per backend that has one; one lookup either way. Not preallocated: most
 * balancers have no QUIC service, and entries change only on an apply. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FULCRUM_MAX_QUIC_IDS);
	__type(key, struct fulcrum_quic_key);
	__type(value, __u32);
} quic_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_QUIC_EVENT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} quic_events SEC(".maps");

/* abi: one entry, the FULCRUM_ABI_VERSION of the fulcrumd that created the pinned maps (written
 * by it right after load). Checked before pinned maps are adopted; the program never reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} abi SEC(".maps");

/* operator_drains (abi.h fulcrum_drain_key -> 1): drains that outlive fulcrumd; the program never
 * reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, FULCRUM_MAX_OPERATOR_DRAINS);
	__type(key, struct fulcrum_drain_key);
	__type(value, __u32);
} operator_drains SEC(".maps");

#endif /* FULCRUM_LIB_MAPS_H */
