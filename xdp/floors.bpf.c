/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Floor programs for bench/: the cheapest possible drop, pass and transmit, measured in the same
 * run as the balancer so its cost is reported as a ratio, not an absolute number. Also used as
 * the XDP_PASS program a veth peer needs to receive XDP_TX frames (LAB.md). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
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
