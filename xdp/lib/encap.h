/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Encapsulation: the L2 header and the outer IPv4/IPv6 header put in front of the client's packet
 * (IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6), and for a GUE service a UDP header between them
 * (GUE variant 1: the inner IP packet follows UDP directly). The inner packet is never touched. */
#ifndef FULCRUM_LIB_ENCAP_H
#define FULCRUM_LIB_ENCAP_H

#include "flow_hash.h" /* fulcrum_gue_sport */
#include "parse.h"
#include "csum.h"
#include <linux/udp.h>

#define FULCRUM_OUTER_V4_LEN ((__u32)sizeof(struct iphdr))
#define FULCRUM_OUTER_V6_LEN ((__u32)sizeof(struct ipv6hdr))
#define FULCRUM_GUE_UDP_LEN ((__u32)sizeof(struct udphdr)) /* GUE's extra bytes (variant 1) */

/* Writes Ethernet (and the frame's 802.1Q tag, kept as received) at data; returns where the L3
 * header goes, or NULL if the frame is too short. */
static __always_inline void *write_l2(void *data, void *data_end, const struct packet *pkt,
				      const __u8 *dmac, const __u8 *smac, __be16 proto)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (pkt->has_vlan) {
		struct vlan_hdr *vlan = (void *)(eth + 1);

		if ((void *)(vlan + 1) > data_end)
			return NULL;
		eth->h_proto = bpf_htons(ETH_P_8021Q);
		vlan->tci = pkt->vlan_tci;
		vlan->encapsulated_proto = proto;
		return vlan + 1;
	}
	eth->h_proto = proto;
	return eth + 1;
}

static __always_inline __u8 inner_protocol(const struct packet *pkt)
{
	return pkt->family == FULCRUM_AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
}

/* GUE's UDP header: to the configured port, from a port of the ephemeral range chosen by the flow
 * hash (ECMP and the backend's RSS hash the ports), length of UDP + the inner packet. Checksum
 * zero: "no checksum" in IPv4; in IPv6 the zero checksum RFC 6935/6936 allow for tunnels, which
 * Linux's fou/gue sockets and fulcrum-decap accept (the inner packet keeps its own checksums). */
static __always_inline void write_gue_udp(struct udphdr *udp, const struct packet *pkt, __be16 port,
					  __u32 hash)
{
	udp->source = bpf_htons(fulcrum_gue_sport(hash));
	udp->dest = port;
	udp->len = bpf_htons(pkt->ip_len + FULCRUM_GUE_UDP_LEN);
	udp->check = 0;
}

/* Grows the frame at the front and writes L2 + outer IPv4 (+ UDP when gue, a constant at every
 * call so each call site compiles to one straight path). Returns 0 or -1. */
static __always_inline int encap_ipv4_as(struct xdp_md *ctx, const struct packet *pkt,
					 const __u8 *dmac, const __u8 *smac, __be32 src, __be32 dst,
					 int gue, __be16 gue_port, __u32 hash)
{
	__u32 outer_len = FULCRUM_OUTER_V4_LEN + (gue ? FULCRUM_GUE_UDP_LEN : 0);
	__u8 proto = gue ? IPPROTO_UDP : inner_protocol(pkt);
	struct iphdr *outer;
	void *data, *data_end;

	if (bpf_xdp_adjust_head(ctx, -(int)outer_len))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	outer = write_l2(data, data_end, pkt, dmac, smac, bpf_htons(ETH_P_IP));
	if (!outer || (void *)(outer + 1) > data_end)
		return -1;
	if (gue) {
		struct udphdr *udp = (void *)(outer + 1);

		if ((void *)(udp + 1) > data_end)
			return -1;
		write_gue_udp(udp, pkt, gue_port, hash);
	}
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = pkt->tos;
	outer->tot_len = bpf_htons(pkt->ip_len + outer_len);
	outer->id = 0;
	outer->frag_off = bpf_htons(IP_DF); /* size was checked against the path MTU */
	outer->ttl = FULCRUM_TUNNEL_TTL;
	outer->protocol = proto;
	outer->saddr = src;
	outer->daddr = dst;
	/* The header's 16-bit words, summed from the values just written rather than loaded back:
	 * reading the header after byte-sized stores stalls on store forwarding. Same result as
	 * ipv4_header_csum(outer) (id and check are 0). */
	outer->check = csum_fold32((__u32)(0x45 | (pkt->tos << 8)) + outer->tot_len + outer->frag_off +
				   (__u32)(FULCRUM_TUNNEL_TTL | (proto << 8)) +
				   (src & 0xffff) + (src >> 16) + (dst & 0xffff) + (dst >> 16));
	return 0;
}

/* IP-in-IP with an outer IPv4 header. */
static __always_inline int encap_ipv4(struct xdp_md *ctx, const struct packet *pkt,
				      const __u8 *dmac, const __u8 *smac, __be32 src, __be32 dst)
{
	return encap_ipv4_as(ctx, pkt, dmac, smac, src, dst, 0, 0, 0);
}

/* GUE with an outer IPv4 header. */
static __always_inline int encap_gue4(struct xdp_md *ctx, const struct packet *pkt,
				      const __u8 *dmac, const __u8 *smac, __be32 src, __be32 dst,
				      __be16 gue_port, __u32 hash)
{
	return encap_ipv4_as(ctx, pkt, dmac, smac, src, dst, 1, gue_port, hash);
}

/* Grows the frame at the front and writes L2 + outer IPv6 (+ UDP when gue, a constant at every
 * call); the flow label carries the flow hash so routers and backend NICs can spread tunnelled
 * flows. Returns 0 or -1. */
static __always_inline int encap_ipv6_as(struct xdp_md *ctx, const struct packet *pkt,
					 const __u8 *dmac, const __u8 *smac,
					 const struct fulcrum_addr *src, const struct fulcrum_addr *dst,
					 __u32 hash, int gue, __be16 gue_port)
{
	__u32 outer_len = FULCRUM_OUTER_V6_LEN + (gue ? FULCRUM_GUE_UDP_LEN : 0);
	struct ipv6hdr *outer;
	void *data, *data_end;
	__u32 label = hash & 0xfffff;

	if (bpf_xdp_adjust_head(ctx, -(int)outer_len))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	outer = write_l2(data, data_end, pkt, dmac, smac, bpf_htons(ETH_P_IPV6));
	if (!outer || (void *)(outer + 1) > data_end)
		return -1;
	if (gue) {
		struct udphdr *udp = (void *)(outer + 1);

		if ((void *)(udp + 1) > data_end)
			return -1;
		write_gue_udp(udp, pkt, gue_port, hash);
	}
	outer->version = 6;
	outer->priority = pkt->tos >> 4;
	outer->flow_lbl[0] = ((pkt->tos & 0xf) << 4) | (label >> 16);
	outer->flow_lbl[1] = label >> 8;
	outer->flow_lbl[2] = label;
	outer->payload_len = bpf_htons(pkt->ip_len + (gue ? FULCRUM_GUE_UDP_LEN : 0));
	outer->nexthdr = gue ? IPPROTO_UDP : inner_protocol(pkt);
	outer->hop_limit = FULCRUM_TUNNEL_TTL;
	__builtin_memcpy(&outer->saddr, src, sizeof(*src));
	__builtin_memcpy(&outer->daddr, dst, sizeof(*dst));
	return 0;
}

/* IP-in-IP with an outer IPv6 header. */
static __always_inline int encap_ipv6(struct xdp_md *ctx, const struct packet *pkt,
				      const __u8 *dmac, const __u8 *smac,
				      const struct fulcrum_addr *src, const struct fulcrum_addr *dst,
				      __u32 hash)
{
	return encap_ipv6_as(ctx, pkt, dmac, smac, src, dst, hash, 0, 0);
}

/* GUE with an outer IPv6 header. */
static __always_inline int encap_gue6(struct xdp_md *ctx, const struct packet *pkt,
				      const __u8 *dmac, const __u8 *smac,
				      const struct fulcrum_addr *src, const struct fulcrum_addr *dst,
				      __u32 hash, __be16 gue_port)
{
	return encap_ipv6_as(ctx, pkt, dmac, smac, src, dst, hash, 1, gue_port);
}

#endif /* FULCRUM_LIB_ENCAP_H */
