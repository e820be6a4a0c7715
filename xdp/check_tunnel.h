/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Health checks through the tunnel (README "Health checks through the tunnel"): what fulcrumd and
 * the check-encap program (check_encap.bpf.c) share. Not pinned and not part of the balancer's
 * ABI: fulcrumd loads the program and its map fresh at every start. */
#ifndef FULCRUM_CHECK_TUNNEL_H
#define FULCRUM_CHECK_TUNNEL_H

#include <linux/types.h>

/* The numbers are per fulcrumd, from the index of its first interface (a daemon owns its
 * interfaces): a check socket's mark (SO_MARK) is BASE | index, BASE = PREFIX | (ifindex & 0xff)
 * << 16, index 1..FULCRUM_CHECK_MARK_MAX; `ip rule fwmark BASE/MASK` sends those sockets' packets
 * to routing table TABLE_BASE + ifindex, whose default route runs the program. A second rule
 * after it (PRIORITY + 1) makes them unreachable when that route is gone (the kernel deletes it
 * when the interface goes down or the source address goes away): a check then fails, never
 * leaves bare. Two fulcrumd whose interfaces' indexes share the low byte would share a BASE: the
 * second refuses checks through the tunnel (dataplane/check_tunnels.cpp). */
#define FULCRUM_CHECK_MARK_PREFIX 0x46000000u
#define FULCRUM_CHECK_MARK_MASK 0xffff0000u
#define FULCRUM_CHECK_MARK_MAX 0xffffu
#define FULCRUM_CHECK_TABLE_BASE 17920u     /* 0x4600 */
#define FULCRUM_CHECK_RULE_PRIORITY 17920u  /* before main (32766); after local (0) */

/* One backend's tunnel as the balancer builds it for client packets: the outer header's family
 * and addresses, and for a GUE service the UDP destination port. */
struct fulcrum_check_tunnel {
	__u8 family;     /* outer: 4 or 6 */
	__u8 gue;        /* 1: outer IP + UDP to gue_port (GUE variant 1), 0: IP-in-IP */
	__be16 gue_port;
	__u32 pad;
	__u8 src[16];    /* the balancer's tunnel source (tunnel.source_v4/v6); IPv4 in src[0..3] */
	__u8 dst[16];    /* the backend */
};

#endif
