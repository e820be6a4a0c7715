/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing: a cursor over the frame, a bounds check before every access. Each parser
 * returns a negative value when the header is truncated or malformed; on success 0, except
 * parse_ethernet, which returns the ethertype (network order, so never negative). */
#ifndef FULCRUM_LIB_PARSE_H
#define FULCRUM_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

#define FULCRUM_IPV6_MAX_EXT_HDRS 4 /* hop-by-hop, routing, destination options: bounded walk */

#ifndef IP_MF
#define IP_MF 0x2000
#define IP_DF 0x4000
#define IP_OFFSET 0x1fff
#endif

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* What the balancer learns about a frame while parsing it. */
struct packet {
	void *data;
	void *data_end;
	void *l3;           /* IPv4 or IPv6 header */
	void *l4;           /* transport header (after IPv4 options / IPv6 extension headers) */
	void *ip_end;       /* end of the IP packet by its own length: bytes beyond are link padding */
	__u32 l2_len;       /* 14, or 18 with an 802.1Q tag */
	__u32 ip_len;       /* length of the IP packet from its header (frame may carry padding) */
	__be16 vlan_tci;    /* kept for the encapsulated frame */
	__u8 has_vlan;
	__u8 family;        /* FULCRUM_AF_INET / FULCRUM_AF_INET6 */
	__u8 proto;         /* upper-layer protocol after extension headers */
	__u8 tos;           /* IPv4 ToS / IPv6 traffic class */
	__u8 dont_fragment; /* IPv4 DF; always 1 for IPv6 (routers never fragment it) */
	__u8 pad;
	__u32 service_id;   /* the service found for it (0: none yet), for capture (capture.h) */
};

/* Ethernet plus at most one 802.1Q tag. Returns the ethertype (network order) or -1. */
static __always_inline int parse_ethernet(struct packet *pkt)
{
	struct ethhdr *eth = pkt->data;
	__be16 proto;

	if ((void *)(eth + 1) > pkt->data_end)
		return -1;
	proto = eth->h_proto;
	pkt->l2_len = sizeof(*eth);
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vlan = (void *)(eth + 1);

		if ((void *)(vlan + 1) > pkt->data_end)
			return -1;
		pkt->has_vlan = 1;
		pkt->vlan_tci = vlan->tci;
		proto = vlan->encapsulated_proto;
		pkt->l2_len += sizeof(*vlan);
	}
	pkt->l3 = pkt->data + pkt->l2_len;
	return proto;
}

/* The rest of an IPv4 header whose first 20 bytes are known to be in the frame: version, header
 * length with options, total length within the frame. Sets l4, proto, ip_len, tos, DF. */
static __always_inline int parse_ipv4_rest(struct packet *pkt, struct iphdr *ip)
{
	__u32 hdr_len = ip->ihl * 4;
	__u32 tot_len = bpf_ntohs(ip->tot_len);

	if (ip->version != 4 || hdr_len < sizeof(*ip) || tot_len < hdr_len)
		return -1;
	if ((void *)ip + tot_len > pkt->data_end)
		return -1;
	pkt->l4 = (void *)ip + hdr_len;
	pkt->ip_end = (void *)ip + tot_len;
	pkt->proto = ip->protocol;
	pkt->ip_len = tot_len;
	pkt->tos = ip->tos;
	pkt->dont_fragment = !!(ip->frag_off & bpf_htons(IP_DF));
	return 0;
}

static __always_inline int ipv4_is_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
}

/* The rest of an IPv6 header whose 40 bytes are in the frame: version, payload within the frame,
 * and a bounded walk over hop-by-hop, routing and destination-options headers. A fragment header
 * leaves proto = IPPROTO_FRAGMENT for the caller's fragment policy. */
static __always_inline int parse_ipv6_rest(struct packet *pkt, struct ipv6hdr *ip6)
{
	__u32 payload_len = bpf_ntohs(ip6->payload_len);
	void *cursor = ip6 + 1;
	__u8 next = ip6->nexthdr;
	int i;

	if (ip6->version != 6)
		return -1;
	if (cursor + payload_len > pkt->data_end)
		return -1;
	pkt->ip_len = sizeof(*ip6) + payload_len;
	pkt->ip_end = cursor + payload_len;
	pkt->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	pkt->dont_fragment = 1;

#pragma unroll
	for (i = 0; i < FULCRUM_IPV6_MAX_EXT_HDRS; i++) {
		struct ipv6_opt_hdr *opt = cursor;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS)
			break;
		if ((void *)(opt + 1) > pkt->data_end)
			return -1;
		next = opt->nexthdr;
		cursor += (opt->hdrlen + 1) * 8;
	}
	if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS)
		return -1; /* more extension headers than we walk: refuse rather than guess */
	if (cursor > (void *)(ip6 + 1) + payload_len)
		return -1; /* extension headers claim more than the payload */
	pkt->l4 = cursor;
	pkt->proto = next;
	return 0;
}

/* Whether [p, p + len) lies outside the IP packet: beyond its own length (link padding is not
 * part of it) or beyond the frame. Both ends are checked; the verifier trusts only data_end. */
static __always_inline int beyond_ip(const struct packet *pkt, const void *p, __u32 len)
{
	return p + len > pkt->ip_end || p + len > pkt->data_end;
}

#define FULCRUM_TCP_FLAGS_OFFSET 13
#define FULCRUM_TCP_FIN 0x01
#define FULCRUM_TCP_SYN 0x02
#define FULCRUM_TCP_RST 0x04
#define FULCRUM_TCP_ACK 0x10

/* Source and destination ports of TCP or UDP (the first four bytes of both headers) and, for
 * TCP, the flags byte, after checking that the whole fixed header lies within the IP packet. */
static __always_inline int parse_ports(struct packet *pkt, __be16 *sport, __be16 *dport,
				       __u8 *tcp_flags)
{
	__u32 need = pkt->proto == IPPROTO_TCP ? 20 : 8;
	__u8 *l4 = pkt->l4;

	if (beyond_ip(pkt, l4, need))
		return -1;
	/* the verifier wants the constant-size access proven on its own */
	if ((void *)(l4 + 20) > pkt->data_end) {
		if ((void *)(l4 + 8) > pkt->data_end)
			return -1;
		*tcp_flags = 0;
	} else {
		*tcp_flags = pkt->proto == IPPROTO_TCP ? l4[FULCRUM_TCP_FLAGS_OFFSET] : 0;
	}
	*sport = *(__be16 *)l4;
	*dport = *(__be16 *)(l4 + 2);
	return 0;
}

#endif /* FULCRUM_LIB_PARSE_H */
