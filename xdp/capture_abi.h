/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet capture (`fulcrumctl capture`): the control block and the ring-buffer record shared by
 * the balancer (xdp/capture.h) and fulcrumd (src/dataplane/capture_ring.cpp). Included by BPF C
 * and C++; only <linux/types.h>, fixed-width fields, explicit padding.
 *
 * Not part of FULCRUM_ABI_VERSION (abi.h, abi_guard.py) on purpose: nothing here is pinned. The
 * control block lives in the program's own .bss and the ring and scratch maps are never pinned
 * (pinning.cpp kNeverPinned), so the only reader of a record is the fulcrumd that loaded the
 * program from the same build; a layout change here needs no version bump and costs no pinned
 * state (flows, drains) on upgrade. Layouts pinned by static_assert in src/dataplane/abi_layout.cpp. */
#ifndef FULCRUM_CAPTURE_ABI_H
#define FULCRUM_CAPTURE_ABI_H

#include <linux/types.h>

#include "abi.h"

#define FULCRUM_CAPTURE_SNAP 256           /* bytes of a frame kept per record (headers of IPv6
                                            * in IPv6 with TCP options fit) */
#define FULCRUM_CAPTURE_RING_BYTES (4u << 20) /* ~14,000 records in flight before records are lost */
#define FULCRUM_CAPTURE_NO_REASON 0xffff   /* forwarded: no reason counter was counted */

/* Where in the program a record was taken. */
enum fulcrum_capture_stage {
	FULCRUM_CAPTURE_IN = 0,  /* the frame as received, before any rewrite */
	FULCRUM_CAPTURE_OUT = 1, /* the frame as sent (XDP_TX / XDP_REDIRECT only): after encapsulation,
	                          * or the ICMP reply the balancer wrote */
};

/* The program's .bss `capture_control`, written by fulcrumd through the skeleton's mmap. The
 * program reads `on` once per packet; everything else only while it is set. */
struct fulcrum_capture_control {
	__u32 on;                /* 0: no capture (the only per-packet cost: this load and a branch) */
	__u32 service_id;        /* capture only packets of this service (0: any) */
	struct fulcrum_addr vip; /* capture only packets to this address (vip_family 0: any) */
	__u8 vip_family;         /* FULCRUM_AF_INET / FULCRUM_AF_INET6, or 0 */
	__u8 pad[7];
	__u64 lost;              /* records the ring had no room for (atomic adds, never reset by BPF) */
};

/* One ring-buffer record: one frame at one stage, with the packet's final verdict. A packet the
 * balancer transmits gives two records (IN, then OUT); one it passes or drops gives IN only. */
struct fulcrum_capture_record {
	__u64 ktime_ns;   /* bpf_ktime_get_ns() when the program finished with the packet */
	__u32 wire_len;   /* the frame's length at this stage */
	__u32 cap_len;    /* bytes of data[] that hold the frame's start (<= FULCRUM_CAPTURE_SNAP) */
	__u32 ifindex;    /* receiving interface */
	__u16 service_id; /* the packet's service (0: none found) */
	__u16 reason;     /* enum fulcrum_reason counted for it, or FULCRUM_CAPTURE_NO_REASON */
	__u8 stage;       /* enum fulcrum_capture_stage */
	__u8 verdict;     /* XDP_DROP, XDP_PASS, XDP_TX or XDP_REDIRECT */
	__u8 pad[6];
	__u8 data[FULCRUM_CAPTURE_SNAP];
};

#endif /* FULCRUM_CAPTURE_ABI_H */
