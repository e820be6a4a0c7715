/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Health checks through the tunnel: fulcrumd's check sockets for `healthcheck.via: tunnel` carry
 * a mark naming one backend's tunnel (check_tunnel.h); an `ip rule` sends their packets (to the
 * VIP and service port) to a table whose default route runs this program when a packet leaves
 * (lwtunnel `encap bpf xmit`). It puts in front the outer header the balancer puts in front of a
 * client's packet for that backend (IP-in-IP, or IP + UDP for GUE), clears the mark so the outer
 * packet takes the main table, and has the kernel route it to the backend. The backend answers
 * the VIP's packet directly (DSR), to the balancer's address, as it answers clients. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "check_tunnel.h"
#include "flow_hash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FULCRUM_CHECK_MARK_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the tunnels in use, not for 65,535 */
	__type(key, __u32); /* the socket's mark */
	__type(value, struct fulcrum_check_tunnel);
} check_tunnels SEC(".maps");

struct outer_v4 {
	struct iphdr ip;
	struct udphdr udp;
};

struct outer_v6 {
	struct ipv6hdr ip;
	struct udphdr udp;
};

/* Pushed as they are: no padding between or after the headers. */
_Static_assert(sizeof(struct outer_v4) == 28, "outer_v4 is IPv4 + UDP");
_Static_assert(sizeof(struct outer_v6) == 48, "outer_v6 is IPv6 + UDP");

/* GUE's UDP header as the balancer writes it (xdp/lib/encap.h): the source port from a hash of
 * the flow (here the kernel's hash of the check's socket) for ECMP and RSS entropy, checksum zero. */
static __always_inline void gue_udp(struct udphdr *udp, const struct fulcrum_check_tunnel *t, __u32 inner_len,
				    __u32 hash)
{
	udp->source = bpf_htons(fulcrum_gue_sport(hash));
	udp->dest = t->gue_port;
	udp->len = bpf_htons(inner_len + sizeof(struct udphdr));
	udp->check = 0;
}

SEC("lwt_xmit")
int check_encap(struct __sk_buff *skb)
{
	__u32 mark = skb->mark;
	const struct fulcrum_check_tunnel *t = bpf_map_lookup_elem(&check_tunnels, &mark);
	/* A marked packet without a tunnel (a check started just before its backend was removed)
	 * must not leave bare towards the VIP: that would test the wrong path. */
	if (!t)
		return BPF_DROP;
	__u8 inner = skb->protocol == bpf_htons(ETH_P_IP) ? IPPROTO_IPIP : IPPROTO_IPV6;
	__u32 inner_len = skb->len;
	__u32 hash = bpf_get_hash_recalc(skb);
	int err;

	if (t->family == 4) {
		struct outer_v4 h = {};
		__u32 len = t->gue ? sizeof(h) : sizeof(h.ip);

		h.ip.version = 4;
		h.ip.ihl = 5;
		h.ip.ttl = 64;
		h.ip.frag_off = bpf_htons(0x4000); /* DF, as the balancer's tunnels */
		h.ip.protocol = t->gue ? IPPROTO_UDP : inner;
		h.ip.tot_len = bpf_htons(inner_len + len);
		__builtin_memcpy(&h.ip.saddr, t->src, 4);
		__builtin_memcpy(&h.ip.daddr, t->dst, 4);
		/* check stays 0: bpf_lwt_push_encap computes a zero IPv4 header checksum. */
		if (t->gue)
			gue_udp(&h.udp, t, inner_len, hash);
		err = bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, &h, len);
	} else {
		struct outer_v6 h = {};
		__u32 len = t->gue ? sizeof(h) : sizeof(h.ip);

		h.ip.version = 6;
		h.ip.hop_limit = 64;
		h.ip.flow_lbl[0] = (hash >> 16) & 0x0f;
		h.ip.flow_lbl[1] = hash >> 8;
		h.ip.flow_lbl[2] = hash;
		h.ip.nexthdr = t->gue ? IPPROTO_UDP : inner;
		h.ip.payload_len = bpf_htons(inner_len + (len - sizeof(h.ip)));
		__builtin_memcpy(&h.ip.saddr, t->src, 16);
		__builtin_memcpy(&h.ip.daddr, t->dst, 16);
		if (t->gue)
			gue_udp(&h.udp, t, inner_len, hash);
		err = bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, &h, len);
	}
	if (err)
		return BPF_DROP;
	skb->mark = 0; /* else the outer packet would match the rule again and loop */
	return BPF_LWT_REROUTE;
}
