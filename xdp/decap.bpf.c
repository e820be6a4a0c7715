/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Backend side: strip Fulcrum's outer IPv4/IPv6 header (and the UDP header of a GUE tunnel: UDP to
 * gue_port carrying an IP packet, GUE variant 1) and hand the inner packet to the stack (no
 * ipip/ip6tnl/fou module needed), but only for what the balancers send: the outer source within their
 * tunnel-source prefixes (decap_sources, `--from`), the outer and the inner destination local
 * addresses of this host (decap_local). Other tunnel packets to us are dropped and counted: with
 * rp_filter loosened (as backends need), they would otherwise carry any inner source to any
 * inner destination past the firewalls in front of the backend. Non-tunnel traffic passes. */
#include <linux/bpf.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "lib/csum.h"
#include "lib/parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Load-time setting (rodata, set by fulcrum-decap attach --gue-port): the UDP destination port of
 * GUE tunnels, network order; 0 takes no GUE packet (UDP then always passes untouched). */
const volatile __be16 gue_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FULCRUM_DECAP_MAX_LOCAL);
	__type(key, struct fulcrum_decap_key);
	__type(value, __u32);
} decap_local SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FULCRUM_DECAP_MAX_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* the kernel requires it of LPM tries */
	__type(key, struct fulcrum_decap_source_key);
	__type(value, __u32);
} decap_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FULCRUM_DECAP_REASON_COUNT);
	__type(key, __u32);
	__type(value, struct fulcrum_reason_stats);
} decap_stats SEC(".maps");

#define ECN_MASK 0x03
#define ECN_NOT_ECT 0x00
#define ECN_CE 0x03

/* What the checks need to know of a tunnel packet to us. */
struct tunnel {
	__u32 outer_len;
	void *outer_end;   /* end of the outer packet by its own length */
	__u8 inner_proto;  /* IPPROTO_IPIP or IPPROTO_IPV6 */
	__u8 outer_ecn;
	enum fulcrum_decap_reason done;
};

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

static __always_inline int is_local4(__be32 addr)
{
	struct fulcrum_decap_key key = {.family = FULCRUM_AF_INET};

	key.addr.w[0] = addr;
	return bpf_map_lookup_elem(&decap_local, &key) != NULL;
}

static __always_inline int is_local6(const struct in6_addr *addr)
{
	struct fulcrum_decap_key key = {.family = FULCRUM_AF_INET6};

	__builtin_memcpy(&key.addr, addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&decap_local, &key) != NULL;
}

static __always_inline int source_allowed4(__be32 addr)
{
	struct fulcrum_decap_source_key key = {
		.prefixlen = FULCRUM_DECAP_FAMILY_BITS + 32,
		.family = FULCRUM_AF_INET,
	};

	key.addr.w[0] = addr;
	return bpf_map_lookup_elem(&decap_sources, &key) != NULL;
}

static __always_inline int source_allowed6(const struct in6_addr *addr)
{
	struct fulcrum_decap_source_key key = {
		.prefixlen = FULCRUM_DECAP_FAMILY_BITS + 128,
		.family = FULCRUM_AF_INET6,
	};

	__builtin_memcpy(&key.addr, addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&decap_sources, &key) != NULL;
}

/* IPv6 traffic class ECN bits: the low two bits of the traffic class, which straddles the first
 * two bytes of the header (version:4, class:8, flow label:20). */
static __always_inline __u8 ipv6_ecn(const struct ipv6hdr *ip6)
{
	return (ip6->flow_lbl[0] >> 4) & ECN_MASK;
}

/* Checks that the inner header is a whole IPv4/IPv6 header of the announced version; the stack
 * validates the rest. */
/* Whether the inner header is whole, within the frame and within the outer packet's length, and
 * of the family the outer header names; the stack validates the rest. */
static __always_inline int inner_ok(void *inner, void *data_end, void *outer_end, __u8 proto)
{
	if (proto == IPPROTO_IPIP) {
		struct iphdr *ip = inner;

		return (void *)(ip + 1) <= data_end && (void *)(ip + 1) <= outer_end && ip->version == 4 &&
		       ip->ihl >= 5;
	}
	{
		struct ipv6hdr *ip6 = inner;

		return (void *)(ip6 + 1) <= data_end && (void *)(ip6 + 1) <= outer_end && ip6->version == 6;
	}
}

/* Whether a 20-byte IPv4 header's checksum is right (the one's-complement sum of its words). */
static __always_inline int ipv4_header_valid(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	return csum_fold32(sum) == 0;
}

/* Whether the inner packet (already checked by inner_ok) is addressed to this host. */
static __always_inline int inner_local(void *inner, void *data_end, __u8 proto)
{
	if (proto == IPPROTO_IPIP) {
		struct iphdr *ip = inner;

		return (void *)(ip + 1) <= data_end && is_local4(ip->daddr);
	}
	{
		struct ipv6hdr *ip6 = inner;

		return (void *)(ip6 + 1) <= data_end && is_local6(&ip6->daddr);
	}
}

/* RFC 6040 decapsulation, normal mode, as far as it changes the inner packet: congestion
 * experienced on the tunnel (outer CE) must reach the endpoints, so an ECN-capable inner packet
 * becomes CE; a Not-ECT inner packet cannot carry it and is dropped (returns -1), as the router
 * would have done without the tunnel. Every other combination leaves the inner ECN field as it is
 * (the balancer copies the inner ToS/traffic class to the outer header). */
static __always_inline int propagate_ecn(void *inner, void *data_end, __u8 proto, __u8 outer_ecn)
{
	if (outer_ecn != ECN_CE)
		return 0;
	if (proto == IPPROTO_IPIP) {
		struct iphdr *ip = inner;
		__u16 old, new;

		if ((void *)(ip + 1) > data_end)
			return -1;
		if ((ip->tos & ECN_MASK) == ECN_NOT_ECT)
			return -1;
		/* The first 16-bit word holds version/IHL and the ToS: update the checksum for it. */
		old = *(__u16 *)ip;
		ip->tos |= ECN_CE;
		new = *(__u16 *)ip;
		csum_replace16(&ip->check, old, new);
		return 0;
	}
	{
		struct ipv6hdr *ip6 = inner;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		if (ipv6_ecn(ip6) == ECN_NOT_ECT)
			return -1;
		ip6->flow_lbl[0] |= ECN_CE << 4;
		return 0;
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

/* The UDP header of a packet whose IP header ends at l4, if it is GUE: UDP to gue_port. A GUE
 * packet is never fragmented and has no IPv4 options or IPv6 extension headers (the balancer sends
 * none); anything else to the port is ordinary UDP for the stack. NULL when not GUE. */
static __always_inline struct udphdr *gue_udp(void *l4, void *data_end)
{
	struct udphdr *udp = l4;

	if (!gue_port || (void *)(udp + 1) > data_end || udp->dest != gue_port)
		return NULL;
	return udp;
}

/* The inner protocol of a GUE variant 1 payload by its IP version nibble: IPPROTO_IPIP for 4,
 * IPPROTO_IPV6 for 6, 0 for anything else (variant 0 with a GUE header, control messages, or
 * garbage: the balancers never send them). */
static __always_inline __u8 gue_inner_proto(const struct udphdr *udp, void *data_end)
{
	const __u8 *first = (const __u8 *)(udp + 1);

	if ((void *)(first + 1) > data_end)
		return 0;
	if ((*first >> 4) == 4)
		return IPPROTO_IPIP;
	if ((*first >> 4) == 6)
		return IPPROTO_IPV6;
	return 0;
}

/* The outer header: is this a tunnel packet to a local address, and is it one the balancers
 * sent? Returns FULCRUM_DECAP_REASON_COUNT to go on (t filled), else the reason to count. */
static __always_inline enum fulcrum_decap_reason check_outer(struct packet *pkt, int proto,
							     struct tunnel *t)
{
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = pkt->l3;
		struct udphdr *udp = NULL;

		if ((void *)(ip + 1) > pkt->data_end)
			return FULCRUM_DECAP_PASS_OTHER;
		if (ip->protocol == IPPROTO_UDP && ip->ihl == 5 &&
		    !(ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			udp = gue_udp(ip + 1, pkt->data_end);
		if ((ip->protocol != IPPROTO_IPIP && !udp) || !is_local4(ip->daddr))
			return FULCRUM_DECAP_PASS_OTHER;
		if (!source_allowed4(ip->saddr))
			return FULCRUM_DECAP_DROP_SOURCE;
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return FULCRUM_DECAP_DROP_MALFORMED;
		/* an outer header the stack would refuse is not stripped to hand on what it carries */
		if (ip->version != 4 || (void *)ip + bpf_ntohs(ip->tot_len) > pkt->data_end ||
		    !ipv4_header_valid(ip))
			return FULCRUM_DECAP_DROP_MALFORMED;
		t->outer_end = (void *)ip + bpf_ntohs(ip->tot_len);
		t->outer_len = sizeof(*ip);
		t->inner_proto = IPPROTO_IPIP;
		t->outer_ecn = ip->tos & ECN_MASK;
		t->done = FULCRUM_DECAP_DONE_V4_IN_V4;
		if (udp) {
			/* GUE over IPv4 carries IPv4 (the balancer sends no IPv6 over IPv4) */
			if (bpf_ntohs(udp->len) != bpf_ntohs(ip->tot_len) - sizeof(*ip) ||
			    gue_inner_proto(udp, pkt->data_end) != IPPROTO_IPIP)
				return FULCRUM_DECAP_DROP_MALFORMED;
			t->outer_len = sizeof(*ip) + sizeof(*udp);
			t->done = FULCRUM_DECAP_DONE_GUE_V4_IN_V4;
		}
		return FULCRUM_DECAP_REASON_COUNT;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = pkt->l3;
		struct udphdr *udp = NULL;

		if ((void *)(ip6 + 1) > pkt->data_end)
			return FULCRUM_DECAP_PASS_OTHER;
		if (ip6->nexthdr == IPPROTO_UDP)
			udp = gue_udp(ip6 + 1, pkt->data_end);
		if ((ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6 && !udp) ||
		    !is_local6(&ip6->daddr))
			return FULCRUM_DECAP_PASS_OTHER;
		if (!source_allowed6(&ip6->saddr))
			return FULCRUM_DECAP_DROP_SOURCE;
		if (ip6->version != 6 || (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > pkt->data_end)
			return FULCRUM_DECAP_DROP_MALFORMED;
		t->outer_end = (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len);
		t->outer_len = sizeof(*ip6);
		t->inner_proto = ip6->nexthdr;
		t->outer_ecn = ipv6_ecn(ip6);
		t->done = ip6->nexthdr == IPPROTO_IPIP ? FULCRUM_DECAP_DONE_V4_IN_V6
						       : FULCRUM_DECAP_DONE_V6_IN_V6;
		if (udp) {
			/* The UDP checksum is not checked: zero (RFC 6935/6936, what the balancer
			 * sends) or not, the inner packet keeps its own checksums. */
			if (bpf_ntohs(udp->len) != bpf_ntohs(ip6->payload_len))
				return FULCRUM_DECAP_DROP_MALFORMED;
			t->inner_proto = gue_inner_proto(udp, pkt->data_end);
			if (!t->inner_proto)
				return FULCRUM_DECAP_DROP_MALFORMED;
			t->outer_len = sizeof(*ip6) + sizeof(*udp);
			t->done = t->inner_proto == IPPROTO_IPIP ? FULCRUM_DECAP_DONE_GUE_V4_IN_V6
								 : FULCRUM_DECAP_DONE_GUE_V6_IN_V6;
		}
		return FULCRUM_DECAP_REASON_COUNT;
	}
	return FULCRUM_DECAP_PASS_OTHER;
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	struct packet pkt = {
		.data = (void *)(long)ctx->data,
		.data_end = (void *)(long)ctx->data_end,
	};
	__u64 bytes = pkt.data_end - pkt.data;
	struct tunnel t = {};
	enum fulcrum_decap_reason verdict;
	void *inner;
	int proto = parse_ethernet(&pkt);

	verdict = check_outer(&pkt, proto, &t);
	if (verdict == FULCRUM_DECAP_PASS_OTHER)
		return count(verdict, bytes, XDP_PASS);
	if (verdict != FULCRUM_DECAP_REASON_COUNT)
		return count(verdict, bytes, XDP_DROP);

	inner = pkt.l3 + t.outer_len;
	if (!inner_ok(inner, pkt.data_end, t.outer_end, t.inner_proto))
		return count(FULCRUM_DECAP_DROP_MALFORMED, bytes, XDP_DROP);
	if (!inner_local(inner, pkt.data_end, t.inner_proto))
		return count(FULCRUM_DECAP_DROP_INNER_NOT_LOCAL, bytes, XDP_DROP);
	if (propagate_ecn(inner, pkt.data_end, t.inner_proto, t.outer_ecn))
		return count(FULCRUM_DECAP_DROP_ECN_NOT_ECT, bytes, XDP_DROP);
	if (strip_outer(ctx, &pkt, t.outer_len, t.inner_proto))
		return count(FULCRUM_DECAP_DROP_MALFORMED, bytes, XDP_DROP);
	return count(t.done, bytes, XDP_PASS);
}
