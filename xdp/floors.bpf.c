/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Floor programs for bench/: the cheapest possible drop, pass, transmit and redirect, measured in
 * the same run as the balancer so its cost is reported as a ratio, not an absolute number. Also
 * used as the XDP_PASS program a veth peer needs to receive XDP_TX frames (LAB.md), and as the
 * counting sink of bench/forwarding_bench.py (sink_count). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int floor_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int floor_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Swap MACs and IPv4 addresses and send back: the least work a forwarding program can do. */
SEC("xdp")
int floor_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u8 mac[ETH_ALEN];
	__be32 addr;

	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	return XDP_TX;
}

/* floor_redirect's next hop, written by the bench before traffic (key 0): the MACs of the frame
 * it sends on. The egress port is entry 0 of floor_redirect_port. */
struct floor_next_hop {
	__u8 dst[ETH_ALEN];
	__u8 src[ETH_ALEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct floor_next_hop);
} floor_redirect_hop SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} floor_redirect_port SEC(".maps");

/* Rewrite both MACs and redirect to another interface: the least work a forwarding program that
 * sends out of a second interface can do (no route lookup, no TTL). The array lookup is inlined by
 * the verifier. Without a next hop written, it drops. */
SEC("xdp")
int floor_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct floor_next_hop *hop;
	__u32 key = 0;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	hop = bpf_map_lookup_elem(&floor_redirect_hop, &key);
	if (!hop)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, hop->dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, hop->src, ETH_ALEN);
	return bpf_redirect_map(&floor_redirect_port, 0, XDP_DROP);
}

/* sink_count's classes: what reached a bench sink, so the bench can check each case's frames took
 * the path it is named after. */
enum sink_class {
	SINK_IPIP = 0,      /* IPv4 in IPv4: tunnelled by the balancer */
	SINK_TCP_MATCH = 1, /* IPv4 TCP to sink_match's address (forwarded or DNAT'ed to the sink) */
	SINK_TCP_OTHER = 2, /* other IPv4 TCP (the redirect floor leaves the VIP; floor_tx swaps) */
	SINK_OTHER = 3,     /* anything else (ARP, IPv6, ...) */
	SINK_CLASSES = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_CLASSES);
	__type(key, __u32);
	__type(value, __u64);
} sink_counts SEC(".maps");

/* Key 0: the IPv4 address (network order) counted as SINK_TCP_MATCH; written by the bench. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __be32);
} sink_match SEC(".maps");

/* Count every frame by class and drop it: a sink that costs the same whatever path fed it. */
SEC("xdp")
int sink_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 class = SINK_OTHER, key = 0;
	__be32 *match;
	__u64 *count;

	if ((void *)(ip + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		if (ip->protocol == IPPROTO_IPIP) {
			class = SINK_IPIP;
		} else if (ip->protocol == IPPROTO_TCP) {
			match = bpf_map_lookup_elem(&sink_match, &key);
			class = match && *match == ip->daddr ? SINK_TCP_MATCH : SINK_TCP_OTHER;
		}
	}
	count = bpf_map_lookup_elem(&sink_counts, &class);
	if (count)
		*count += 1;
	return XDP_DROP;
}
