/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet capture for `fulcrumctl capture` (capture_abi.h): off, it costs the balancer one load of
 * capture_control.on and a branch per packet; on, a matching packet's frame is copied aside on
 * entry and written to capture_ring with its verdict at the exit (and, if it was sent, the frame
 * as sent). Kept out of the hot path: the work is in two BPF subprograms (__noinline). */
#ifndef FULCRUM_CAPTURE_H
#define FULCRUM_CAPTURE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "capture_abi.h"

/* In .bss, not a map of lib/maps.h: a direct load (no lookup), private to this load of the program
 * (a restarted fulcrumd starts with capture off), never pinned, so outside the ABI version. */
struct fulcrum_capture_control capture_control;

/* Neither map is pinned (pinning.cpp kNeverPinned): a record means something only to the fulcrumd
 * that loaded this program. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FULCRUM_CAPTURE_RING_BYTES);
} capture_ring SEC(".maps");

/* The packet being captured on this CPU: its frame as received (copied on entry, before the
 * program rewrites it), and the reason counted for it. XDP runs a packet to the end on one CPU. */
struct capture_scratch {
	struct fulcrum_capture_record rec;
	__u32 reason;
	__u32 pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct capture_scratch);
} capture_scratch SEC(".maps");

static __always_inline struct capture_scratch *capture_scratch_of(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&capture_scratch, &zero);
}

/* Copies the frame's first bytes into rec; 0, or -1 if it could not. */
static __always_inline int capture_copy(struct xdp_md *ctx, struct fulcrum_capture_record *rec)
{
	__u64 len = bpf_xdp_get_buff_len(ctx);

	rec->wire_len = (__u32)len;
	if (len > FULCRUM_CAPTURE_SNAP)
		len = FULCRUM_CAPTURE_SNAP;
	rec->cap_len = (__u32)len;
	/* The verifier needs 0 < len <= sizeof(data) proven on the very register passed; clang would
	 * fold these checks into the clamp above and test a copy: barrier_var keeps them here. */
	barrier_var(len);
	if (len < 1 || len > FULCRUM_CAPTURE_SNAP)
		return -1;
	return bpf_xdp_load_bytes(ctx, 0, rec->data, len) ? -1 : 0;
}

/* Whether the n (4 or 16) bytes at a are the filter's VIP. Byte by byte: the address in the copy
 * is not aligned, and clang has no memcmp for BPF. */
static __always_inline int capture_same(const __u8 *a, __u32 n)
{
	const __u8 *vip = (const __u8 *)&capture_control.vip;
	__u8 diff = 0;

#pragma unroll
	for (__u32 i = 0; i < 16; i++)
		if (i < n)
			diff |= a[i] ^ vip[i];
	return !diff;
}

/* Whether the copied frame is IPv4/IPv6 (at most one 802.1Q tag, as lib/parse.h) to the VIP of
 * the filter. Reads the copy, not the packet: fixed offsets, no packet-pointer checks. */
static __always_inline int capture_to_vip(const struct fulcrum_capture_record *rec)
{
	const __u8 *d = rec->data;
	__u32 l2 = ETH_HLEN, len = rec->cap_len;
	__u16 type = (__u16)(d[12] << 8 | d[13]);

	if (type == ETH_P_8021Q) {
		type = (__u16)(d[16] << 8 | d[17]);
		l2 += 4;
	}
	if (type == ETH_P_IP && capture_control.vip_family == FULCRUM_AF_INET && len >= l2 + 20)
		return capture_same(d + l2 + 16, 4);
	if (type == ETH_P_IPV6 && capture_control.vip_family == FULCRUM_AF_INET6 && len >= l2 + 40)
		return capture_same(d + l2 + 24, 16);
	return 0;
}

/* On entry, capture on: keeps the frame as received. Returns 1 when this packet is captured
 * (the VIP filter, if any, matches), else 0. */
static __noinline int capture_enter(struct xdp_md *ctx)
{
	struct capture_scratch *s = capture_scratch_of();

	if (!s)
		return 0;
	s->reason = FULCRUM_CAPTURE_NO_REASON;
	if (capture_copy(ctx, &s->rec))
		return 0;
	if (capture_control.vip_family && !capture_to_vip(&s->rec))
		return 0;
	return 1;
}

static __always_inline void capture_emit(struct fulcrum_capture_record *rec)
{
	if (bpf_ringbuf_output(&capture_ring, rec, sizeof(*rec), 0))
		__sync_fetch_and_add(&capture_control.lost, 1);
}

/* At the exit of a packet capture_enter took: its IN record, then (sent) its OUT record, both with
 * the verdict; packets of other services than the filter's are left out here. */
static __noinline int capture_exit(struct xdp_md *ctx, int verdict, __u32 service_id)
{
	struct capture_scratch *s = capture_scratch_of();

	if (!s)
		return 0;
	if (capture_control.service_id && capture_control.service_id != service_id)
		return 0;
	s->rec.ktime_ns = bpf_ktime_get_ns();
	s->rec.ifindex = ctx->ingress_ifindex;
	s->rec.service_id = (__u16)service_id;
	s->rec.reason = (__u16)s->reason;
	s->rec.verdict = (__u8)verdict;
	s->rec.stage = FULCRUM_CAPTURE_IN;
	capture_emit(&s->rec);
	if (verdict != XDP_TX && verdict != XDP_REDIRECT)
		return 0;
	s->rec.stage = FULCRUM_CAPTURE_OUT;
	if (!capture_copy(ctx, &s->rec))
		capture_emit(&s->rec);
	return 0;
}

/* The per-packet check: one load and a branch when no capture runs. */
static __always_inline int capture_begin(struct xdp_md *ctx)
{
	if (!capture_control.on)
		return 0;
	return capture_enter(ctx);
}

/* Out of line: count_reason is inlined at some sixty call sites. */
static __noinline int capture_keep_reason(__u32 reason)
{
	struct capture_scratch *s = capture_scratch_of();

	if (s)
		s->reason = reason;
	return 0;
}

/* count_reason's hook: remembers the reason of the packet being captured. Reasons are counted on
 * pass, drop and reply paths only, never on a plain forward, so a hit pays nothing here. */
static __always_inline void capture_note_reason(__u32 reason)
{
	if (capture_control.on)
		capture_keep_reason(reason);
}

#endif /* FULCRUM_CAPTURE_H */
