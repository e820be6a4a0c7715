/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Backend side: strip Fulcrum's outer IPv4/IPv6 header from packets addressed to one of this
 * host's tunnel addresses and hand the inner packet to the stack (no ipip/ip6tnl module needed).
 * Anything else passes untouched. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "lib/parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FULCRUM_DECAP_MAX_ADDRS);
	__type(key, struct fulcrum_decap_key);
	__type(value, __u32);
} decap_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_DECAP_REASON_COUNT);
	__type(key, __u32);
	__type(value, struct fulcrum_reason_stats);
} decap_stats SEC(".maps");

static __always_inline int count(enum fulcrum_decap_reason reason, __u64 bytes, int action)
{
	__u32 key = reason;
	struct fulcrum_reason_stats *st = bpf_map_lookup_elem(&decap_stats, &key);

	if (st) {
		st->packets++;
		st->bytes += bytes;
	}
	return action;
}

/* Checks that the inner header is a whole IPv4/IPv6 header; the stack validates the rest. */
static __always_inline int inner_ok(void *inner, void *data_end, __u8 proto)
{
	if (proto == IPPROTO_IPIP) {
		struct iphdr *ip = inner;

		return (void *)(ip + 1) <= data_end && ip->version == 4 && ip->ihl >= 5;
	}
	{
		struct ipv6hdr *ip6 = inner;

		return (void *)(ip6 + 1) <= data_end && ip6->version == 6;
	}
}

/* Moves the L2 header (with its tag) forward over the outer header and drops the gap. */
static __always_inline int strip_outer(struct xdp_md *ctx, struct packet *pkt, __u32 outer_len,
				       __u8 inner_proto)
{
	struct ethhdr eth;
	struct vlan_hdr vlan;
	__be16 ethertype = bpf_htons(inner_proto == IPPROTO_IPIP ? ETH_P_IP : ETH_P_IPV6);
	void *data, *data_end;

	__builtin_memcpy(&eth, pkt->data, sizeof(eth));
	if (pkt->has_vlan) {
		vlan.tci = pkt->vlan_tci;
		vlan.encapsulated_proto = ethertype;
	} else {
		eth.h_proto = ethertype;
	}
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(eth) + sizeof(vlan) > data_end)
		return -1;
	__builtin_memcpy(data, &eth, sizeof(eth));
	if (pkt->has_vlan)
		__builtin_memcpy(data + sizeof(eth), &vlan, sizeof(vlan));
	return 0;
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	struct packet pkt = {
		.data = (void *)(long)ctx->data,
		.data_end = (void *)(long)ctx->data_end,
	};
	__u64 bytes = pkt.data_end - pkt.data;
	struct fulcrum_decap_key key = {};
	enum fulcrum_decap_reason done;
	__u32 outer_len;
	__u8 inner;
	int proto = parse_ethernet(&pkt);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = pkt.l3;

		if ((void *)(ip + 1) > pkt.data_end || ip->protocol != IPPROTO_IPIP)
			return count(FULCRUM_DECAP_PASS_OTHER, bytes, XDP_PASS);
		key.addr.w[0] = ip->daddr;
		key.family = FULCRUM_AF_INET;
		if (!bpf_map_lookup_elem(&decap_addrs, &key))
			return count(FULCRUM_DECAP_PASS_OTHER, bytes, XDP_PASS);
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return count(FULCRUM_DECAP_DROP_MALFORMED, bytes, XDP_DROP);
		outer_len = sizeof(*ip);
		inner = IPPROTO_IPIP;
		done = FULCRUM_DECAP_DONE_V4_IN_V4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = pkt.l3;

		if ((void *)(ip6 + 1) > pkt.data_end ||
		    (ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6))
			return count(FULCRUM_DECAP_PASS_OTHER, bytes, XDP_PASS);
		__builtin_memcpy(&key.addr, &ip6->daddr, sizeof(key.addr));
		key.family = FULCRUM_AF_INET6;
		if (!bpf_map_lookup_elem(&decap_addrs, &key))
			return count(FULCRUM_DECAP_PASS_OTHER, bytes, XDP_PASS);
		outer_len = sizeof(*ip6);
		inner = ip6->nexthdr;
		done = inner == IPPROTO_IPIP ? FULCRUM_DECAP_DONE_V4_IN_V6 : FULCRUM_DECAP_DONE_V6_IN_V6;
	} else {
		return count(FULCRUM_DECAP_PASS_OTHER, bytes, XDP_PASS);
	}

	if (!inner_ok(pkt.l3 + outer_len, pkt.data_end, inner))
		return count(FULCRUM_DECAP_DROP_MALFORMED, bytes, XDP_DROP);
	if (strip_outer(ctx, &pkt, outer_len, inner))
		return count(FULCRUM_DECAP_DROP_MALFORMED, bytes, XDP_DROP);
	return count(done, bytes, XDP_PASS);
}
