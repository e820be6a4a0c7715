/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP and ICMPv6 for VIPs: echo replies, "too big" replies to clients, and reading the flow an
 * ICMP error quotes so it can follow that flow to its backend (PMTU discovery through us). */
#ifndef FULCRUM_LIB_ICMP_H
#define FULCRUM_LIB_ICMP_H

#include <linux/icmpv6.h>
#include "parse.h"
#include "csum.h"
#include "encap.h"

/* <linux/icmp.h> pulls in libc headers that -target bpf cannot build; the 8-byte header is all
 * we need of it. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
	} un;
};
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_FRAG_NEEDED 4

#define FULCRUM_ICMP_TTL 64
/* ICMPv6 errors quote as much of the packet as fits the minimum MTU (RFC 4443 2.4(c)):
 * 1280 - 40 (IPv6) - 8 (ICMPv6). A packet that is too big is always at least this long. */
#define FULCRUM_ICMP6_QUOTE_LEN 1232
#define FULCRUM_IPV6_MIN_MTU 1280

static __always_inline int same_in6(const struct in6_addr *a, const struct in6_addr *b)
{
	return a->in6_u.u6_addr32[0] == b->in6_u.u6_addr32[0] &&
	       a->in6_u.u6_addr32[1] == b->in6_u.u6_addr32[1] &&
	       a->in6_u.u6_addr32[2] == b->in6_u.u6_addr32[2] &&
	       a->in6_u.u6_addr32[3] == b->in6_u.u6_addr32[3];
}

static __always_inline void swap_macs(void *data)
{
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
}

/* Echo request -> echo reply in place. Caller checked the 8-byte ICMP header is in the frame. */
static __always_inline void icmp4_echo_reply(struct packet *pkt)
{
	struct iphdr *ip = pkt->l3;
	struct icmphdr *icmp = pkt->l4;
	__be32 addr = ip->saddr;
	__u16 old_ttl_word = *(__u16 *)&ip->ttl;

	swap_macs(pkt->data);
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	ip->ttl = FULCRUM_ICMP_TTL;
	csum_replace16(&ip->check, old_ttl_word, *(__u16 *)&ip->ttl);
	{
		__u16 old = *(__u16 *)icmp;

		icmp->type = ICMP_ECHOREPLY;
		csum_replace16(&icmp->checksum, old, *(__u16 *)icmp);
	}
}

static __always_inline void icmp6_echo_reply(struct packet *pkt)
{
	struct ipv6hdr *ip6 = pkt->l3;
	struct icmp6hdr *icmp6 = pkt->l4;
	struct in6_addr addr = ip6->saddr;
	__u16 old = *(__u16 *)icmp6;

	swap_macs(pkt->data);
	ip6->saddr = ip6->daddr; /* swapping addresses leaves the pseudo-header sum as it was */
	ip6->daddr = addr;
	ip6->hop_limit = FULCRUM_ICMP_TTL;
	icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
	csum_replace16(&icmp6->icmp6_cksum, old, *(__u16 *)icmp6);
}

/* Turns an IPv4 packet too big for the tunnel into ICMP fragmentation-needed back to its sender,
 * quoting its IP header and 8 bytes (RFC 792). Returns 0 (frame ready for XDP_TX) or -1. */
static __always_inline int icmp4_send_frag_needed(struct xdp_md *ctx, struct packet *pkt,
						  __u16 mtu)
{
	const __u32 grow = sizeof(struct iphdr) + sizeof(struct icmphdr);
	struct iphdr *orig = pkt->l3;
	struct ethhdr *eth = pkt->data;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	__be32 client = orig->saddr, vip = orig->daddr;
	__u32 quote_len = orig->ihl * 4 + 8; /* <= 68: ihl is 4 bits */
	void *data, *data_end;
	struct iphdr *ip;
	struct icmphdr *icmp;
	__u32 sum;

	__builtin_memcpy(dmac, eth->h_source, ETH_ALEN); /* back to whoever sent it */
	__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, -(int)grow))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = write_l2(data, data_end, pkt, dmac, smac, bpf_htons(ETH_P_IP));
	if (!ip)
		return -1;
	icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) + 68 > data_end)
		return -1;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(grow + quote_len);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = FULCRUM_ICMP_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->saddr = vip;
	ip->daddr = client;
	ip->check = ipv4_header_csum(ip);
	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(mtu);
	sum = bpf_csum_diff(NULL, 0, (void *)icmp, sizeof(*icmp) + quote_len, 0);
	icmp->checksum = csum_fold32(sum);
	if (bpf_xdp_adjust_tail(ctx, (int)(pkt->l2_len + grow + quote_len) - (int)(data_end - data)))
		return -1;
	return 0;
}

/* Turns an IPv6 packet too big for the tunnel into ICMPv6 packet-too-big to its sender.
 * Returns 0 (frame ready for XDP_TX) or -1. */
static __always_inline int icmp6_send_packet_too_big(struct xdp_md *ctx, struct packet *pkt,
						     __u32 mtu)
{
	const __u32 grow = sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr);
	const __u32 icmp_len = sizeof(struct icmp6hdr) + FULCRUM_ICMP6_QUOTE_LEN;
	struct ipv6hdr *orig = pkt->l3;
	struct ethhdr *eth = pkt->data;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	struct in6_addr client = orig->saddr, vip = orig->daddr;
	void *data, *data_end, *quote;
	struct ipv6hdr *ip6;
	struct icmp6hdr *icmp6;
	__u32 sum;

	__builtin_memcpy(dmac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, -(int)grow))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6 = write_l2(data, data_end, pkt, dmac, smac, bpf_htons(ETH_P_IPV6));
	if (!ip6)
		return -1;
	icmp6 = (void *)(ip6 + 1);
	quote = icmp6 + 1;
	if (quote + FULCRUM_ICMP6_QUOTE_LEN > data_end)
		return -1;
	ip6->version = 6;
	ip6->priority = 0;
	ip6->flow_lbl[0] = 0;
	ip6->flow_lbl[1] = 0;
	ip6->flow_lbl[2] = 0;
	ip6->payload_len = bpf_htons(icmp_len);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = FULCRUM_ICMP_TTL;
	ip6->saddr = vip;
	ip6->daddr = client;
	icmp6->icmp6_type = ICMPV6_PKT_TOOBIG;
	icmp6->icmp6_code = 0;
	icmp6->icmp6_cksum = 0;
	icmp6->icmp6_mtu = bpf_htonl(mtu);
	/* pseudo-header (addresses, length, next header), then the message in chunks the helper
	 * accepts (at most 512 bytes each): 8 + 504, 512, 216. */
	sum = bpf_csum_diff(NULL, 0, (void *)&ip6->saddr, 32, 0);
	sum = csum_add32(sum, bpf_htonl(icmp_len));
	sum = csum_add32(sum, bpf_htonl(IPPROTO_ICMPV6));
	sum = bpf_csum_diff(NULL, 0, (void *)icmp6, 512, sum);
	sum = bpf_csum_diff(NULL, 0, quote + 504, 512, sum);
	sum = bpf_csum_diff(NULL, 0, quote + 1016, FULCRUM_ICMP6_QUOTE_LEN - 1016, sum);
	icmp6->icmp6_cksum = csum_fold32(sum);
	if (bpf_xdp_adjust_tail(ctx, (int)(pkt->l2_len + grow + FULCRUM_ICMP6_QUOTE_LEN) -
					(int)(data_end - data)))
		return -1;
	return 0;
}

/* The flow an ICMP error quotes, turned around: the quoted packet went VIP -> client (a backend's
 * direct reply), the flow we track went client -> VIP. Returns 0 and fills key, or -1 when the
 * quote is truncated, is not TCP/UDP, or was not sent from this VIP. */
static __always_inline int icmp4_quoted_flow(struct packet *pkt, struct fulcrum_flow_key *key)
{
	struct iphdr *outer = pkt->l3;
	struct iphdr *quoted = pkt->l4 + sizeof(struct icmphdr);
	__be16 *ports;

	if (beyond_ip(pkt, quoted, sizeof(*quoted)))
		return -1;
	if (quoted->version != 4 || quoted->ihl < 5 || quoted->saddr != outer->daddr)
		return -1;
	if (quoted->protocol != IPPROTO_TCP && quoted->protocol != IPPROTO_UDP)
		return -1;
	ports = (void *)quoted + quoted->ihl * 4;
	if (beyond_ip(pkt, ports, 4) || (void *)(ports + 2) > pkt->data_end)
		return -1;
	key->src.w[0] = quoted->daddr;
	key->dst.w[0] = quoted->saddr;
	key->sport = ports[1];
	key->dport = ports[0];
	key->proto = quoted->protocol;
	key->family = FULCRUM_AF_INET;
	return 0;
}

static __always_inline int icmp6_quoted_flow(struct packet *pkt, struct fulcrum_flow_key *key)
{
	struct ipv6hdr *outer = pkt->l3;
	struct ipv6hdr *quoted = pkt->l4 + sizeof(struct icmp6hdr);
	__be16 *ports;

	if (beyond_ip(pkt, quoted, sizeof(*quoted)))
		return -1;
	if (quoted->version != 6 ||
	    !same_in6(&quoted->saddr, &outer->daddr))
		return -1;
	/* quoted extension headers are not walked: our backends' replies carry none */
	if (quoted->nexthdr != IPPROTO_TCP && quoted->nexthdr != IPPROTO_UDP)
		return -1;
	ports = (void *)(quoted + 1);
	if (beyond_ip(pkt, ports, 4) || (void *)(ports + 2) > pkt->data_end)
		return -1;
	__builtin_memcpy(&key->src, &quoted->daddr, sizeof(key->src));
	__builtin_memcpy(&key->dst, &quoted->saddr, sizeof(key->dst));
	key->sport = ports[1];
	key->dport = ports[0];
	key->proto = quoted->nexthdr;
	key->family = FULCRUM_AF_INET6;
	return 0;
}

#endif /* FULCRUM_LIB_ICMP_H */
