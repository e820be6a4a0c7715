/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The balancer: per packet, parse -> is it a VIP? -> service -> flow table or Maglev -> encap ->
 * next hop -> XDP_TX / redirect. Anything not for a VIP leaves untouched with XDP_PASS. */
#include <linux/bpf.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "flow_hash.h"
#include "quic_id.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/encap.h"
#include "lib/icmp.h"
#include "capture.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifndef AF_INET
#define AF_INET 2
#define AF_INET6 10
#endif

/* Load-time settings (rodata, set by fulcrumd before load). */
const volatile __u64 udp_idle_timeout_ns = 30ULL * 1000 * 1000 * 1000;

static __always_inline void count_reason(enum fulcrum_reason reason, __u64 bytes)
{
	__u32 key = reason;
	struct fulcrum_reason_stats *st = bpf_map_lookup_elem(&reason_stats, &key);

	if (st) {
		st->packets++;
		st->bytes += bytes;
	}
	capture_note_reason(reason);
}

static __always_inline int drop(enum fulcrum_reason reason, __u64 bytes)
{
	count_reason(reason, bytes);
	return XDP_DROP;
}

static __always_inline void count_forward(__u32 service_id, __u32 backend_id, __u64 bytes,
					  int new_flow)
{
	struct fulcrum_service_stats *ss = bpf_map_lookup_elem(&service_stats, &service_id);
	struct fulcrum_backend_stats *bs = bpf_map_lookup_elem(&backend_stats, &backend_id);

	if (ss) {
		ss->packets++;
		ss->bytes += bytes;
		ss->new_flows += new_flow;
	}
	if (bs) {
		bs->packets++;
		bs->bytes += bytes;
	}
}

static __always_inline __be32 vary_bits(__be32 base, __be32 vary, __u32 hash)
{
	return (base & ~vary) | (bpf_htonl(hash) & vary);
}

/* What a packet may do to flow state (README "Flow table"). */
enum flow_role {
	FLOW_OPENS,    /* TCP SYN: may open a flow (a new_flows entry) */
	FLOW_CONFIRMS, /* TCP without SYN or RST: confirms a flow in new_flows (promotes it) */
	FLOW_DATAGRAM, /* UDP: opens a flow when unknown, confirms it when in new_flows */
	FLOW_FOLLOWS,  /* TCP RST: follows an entry, never creates or promotes one */
	FLOW_ERROR,    /* ICMP error quoting a flow: follows an entry, never creates or refreshes */
};

/* What forward() writes once the packet is on its way. */
enum flow_record {
	RECORD_NOTHING,    /* a hit, or an ICMP error */
	RECORD_NEW,        /* first packet: new_flows entry */
	RECORD_CONFIRMED,  /* second packet: flows entry */
	RECORD_PROMOTED,   /* second packet of a flow found in new_flows: flows entry, new_flows one goes */
	RECORD_MID_STREAM, /* TCP packet of a flow we never saw open: counted, not recorded */
};

static __always_inline enum flow_role flow_role_of(__u8 proto, __u8 tcp_flags)
{
	if (proto == IPPROTO_UDP)
		return FLOW_DATAGRAM;
	if (tcp_flags & FULCRUM_TCP_RST)
		return FLOW_FOLLOWS;
	if ((tcp_flags & (FULCRUM_TCP_SYN | FULCRUM_TCP_ACK)) == FULCRUM_TCP_SYN)
		return FLOW_OPENS;
	return FLOW_CONFIRMS;
}

/* The backend of a flow-table entry if it may still carry the flow: it serves this service, is
 * active or draining, and (UDP) the entry was used within the idle timeout. A UDP entry's clock
 * is refreshed unless the packet is an ICMP error (errors are not traffic of the flow). */
static __always_inline struct fulcrum_backend *
usable_entry(struct fulcrum_flow_value *flow, __u8 proto, __u32 service_id, enum flow_role role)
{
	struct fulcrum_backend *be;
	__u64 now;

	if (!flow || !flow->backend_id)
		return NULL;
	be = bpf_map_lookup_elem(&backends, &flow->backend_id);
	if (!be || be->service_id != service_id ||
	    (be->state != FULCRUM_BACKEND_ACTIVE && be->state != FULCRUM_BACKEND_DRAINING))
		return NULL;
	if (proto != IPPROTO_UDP)
		return be;
	now = bpf_ktime_get_coarse_ns();
	if (now - flow->last_seen_ns > udp_idle_timeout_ns)
		return NULL;
	if (role != FLOW_ERROR)
		flow->last_seen_ns = now;
	return be;
}

static __always_inline void count_quic_event(enum fulcrum_quic_event event)
{
	__u32 key = event;
	__u64 *n = bpf_map_lookup_elem(&quic_events, &key);

	if (n)
		(*n)++;
}

/* QUIC connection-ID routing (abi.h fulcrum_quic_key): the backend a short-header packet's server
 * id names, when it is active in this service; else 0, and the caller takes the usual path (flow
 * tables, Maglev). Counts the outcome. *pkt is a UDP packet of a service with quic_id_offset set. */
static __always_inline __u32 quic_backend(const struct packet *pkt,
					  const struct fulcrum_service_value *svc,
					  struct fulcrum_backend **chosen)
{
	__u8 *payload = (__u8 *)pkt->l4 + sizeof(struct udphdr);
	__u32 bits = svc->quic_id_bits, bytes, server_id = 0, *backend_id;
	struct fulcrum_quic_key qk;
	struct fulcrum_backend *be;
	__u8 *id_at;

	if (beyond_ip(pkt, payload, 1) || (void *)(payload + 1) > pkt->data_end)
		goto truncated;
	/* The tests, the id's place and width and the id itself are fulcrumctl lookup's too (quic_id.h). */
	if (fulcrum_quic_long_header(payload[0])) {
		count_quic_event(FULCRUM_QUIC_LONG_HEADER);
		return 0;
	}
	if (!fulcrum_quic_fixed_bit(payload[0])) {
		count_quic_event(FULCRUM_QUIC_NOT_QUIC);
		return 0;
	}
	id_at = payload + fulcrum_quic_id_start(svc->quic_id_offset);
	bits = fulcrum_quic_id_width(bits);
	bytes = fulcrum_quic_id_bytes(bits);
	if (beyond_ip(pkt, id_at, bytes))
		goto truncated;
	/* Up to 4 bytes, each proven inside the frame on its own (constant offsets for the verifier;
	 * clang 14 would not unroll the loop this is). */
	if ((void *)(id_at + 1) > pkt->data_end)
		goto truncated;
	server_id = id_at[0];
	if (bytes > 1) {
		if ((void *)(id_at + 2) > pkt->data_end)
			goto truncated;
		server_id = (server_id << 8) | id_at[1];
	}
	if (bytes > 2) {
		if ((void *)(id_at + 3) > pkt->data_end)
			goto truncated;
		server_id = (server_id << 8) | id_at[2];
	}
	if (bytes > 3) {
		if ((void *)(id_at + 4) > pkt->data_end)
			goto truncated;
		server_id = (server_id << 8) | id_at[3];
	}
	qk.service_id = svc->id;
	qk.server_id = fulcrum_quic_server_id(server_id, bytes, bits);
	/* Server id 0 is "none" (config): not looked up, whatever the map holds. */
	backend_id = qk.server_id ? bpf_map_lookup_elem(&quic_ids, &qk) : NULL;
	if (!backend_id || !*backend_id) {
		count_quic_event(FULCRUM_QUIC_UNKNOWN_ID);
		return 0;
	}
	be = bpf_map_lookup_elem(&backends, backend_id);
	if (!be || be->service_id != svc->id || be->state != FULCRUM_BACKEND_ACTIVE) {
		count_quic_event(FULCRUM_QUIC_UNUSABLE_ID);
		return 0;
	}
	count_quic_event(FULCRUM_QUIC_ROUTED_BY_ID);
	*chosen = be;
	return *backend_id;
truncated:
	count_quic_event(FULCRUM_QUIC_TRUNCATED);
	return 0;
}

/* Picks the backend of a flow: a confirmed flow's entry, else a first packet's entry, else the
 * service's Maglev table. Both tables share one key space across CPUs, so a packet (or an ICMP
 * error) that lands on another CPU than its flow still finds it. Sets *record to what the caller
 * writes once the packet is on its way. Returns the backend id, 0 if there is none, and the
 * backend's entry in *chosen (so the caller need not look it up again). */
static __always_inline __u32 choose_backend(const struct packet *pkt,
					    const struct fulcrum_flow_key *key,
					    const struct fulcrum_service_value *svc,
					    const struct fulcrum_settings *cfg, enum flow_role role,
					    __u32 *hash, enum flow_record *record,
					    struct fulcrum_backend **chosen)
{
	struct fulcrum_flow_value *flow;
	struct fulcrum_backend *be;
	struct fulcrum_maglev_chunk *chunk;
	__u32 id, chunk_id;
	void *table;
	int known;

	*record = RECORD_NOTHING;
	/* A QUIC service's datagram whose connection ID names an active backend goes there, even
	 * from a new address or port; the flow tables are not consulted, nor written. */
	if (svc->quic_id_offset && role == FLOW_DATAGRAM) {
		id = quic_backend(pkt, svc, chosen);
		if (id) {
			*hash = fulcrum_flow_hash(key, cfg->hash_seed); /* the tunnel's entropy */
			return id;
		}
	}
	flow = bpf_map_lookup_elem(&flows, key);
	be = usable_entry(flow, key->proto, svc->id, role);
	known = flow != NULL; /* seen before, even if its backend can no longer take it */
	if (!be) {
		/* the verifier refuses arithmetic on map pointers: keep "known" a plain number */
		barrier_var(known);
		flow = bpf_map_lookup_elem(&new_flows, key);
		if (flow)
			known = 1;
		barrier_var(known);
		be = usable_entry(flow, key->proto, svc->id, role);
		if (be && (role == FLOW_CONFIRMS || role == FLOW_DATAGRAM))
			*record = RECORD_PROMOTED;
	}
	if (be && flow) {
		*hash = flow->hash;
		*chosen = be;
		return flow->backend_id;
	}

	/* The tunnel's entropy is the 5-tuple's hash; the slot follows the service's hash policy
	 * (abi.h FULCRUM_HASH_NO_*), which is the same hash unless the policy leaves fields out. */
	*hash = fulcrum_flow_hash(key, cfg->hash_seed);
	table = bpf_map_lookup_elem(&maglev_tables, &svc->id);
	if (!table || !svc->table_size)
		return 0;
	/* Slot h of the table is entry h % N of chunk h / N (abi.h fulcrum_maglev_chunk): one lookup,
	 * and the mask keeps the entry index inside the 64-byte value for the verifier. */
	id = fulcrum_slot_hash(key, cfg->hash_seed, svc->hash_omit, *hash) % svc->table_size;
	chunk_id = id >> FULCRUM_MAGLEV_CHUNK_SHIFT;
	chunk = bpf_map_lookup_elem(table, &chunk_id);
	if (!chunk)
		return 0;
	id = chunk->slot[id & (FULCRUM_MAGLEV_CHUNK_SLOTS - 1)];
	if (!id)
		return 0;
	be = bpf_map_lookup_elem(&backends, &id);
	if (!be || be->state != FULCRUM_BACKEND_ACTIVE)
		return 0;
	/* A flow re-hashed because its backend went down (or its entry expired) is known: its new
	 * backend replaces the old entry, so the flow does not jump back when the old one returns. */
	if (role == FLOW_OPENS || role == FLOW_DATAGRAM)
		*record = RECORD_NEW;
	else if (role == FLOW_CONFIRMS)
		*record = known ? RECORD_CONFIRMED : RECORD_MID_STREAM;
	else if (role == FLOW_FOLLOWS && !known)
		*record = RECORD_MID_STREAM; /* an RST of a flow we never saw: counted, not recorded */
	*chosen = be;
	return id;
}

static __always_inline void count_flow_event(enum fulcrum_flow_event event)
{
	__u32 key = event;
	__u64 *n = bpf_map_lookup_elem(&flow_events, &key);

	if (n)
		(*n)++;
}

/* Takes one unit of a per-CPU rate limit (abi.h fulcrum_budget); 0 when it is used up. */
static __always_inline int take_budget(__u32 which, __u32 per_second)
{
	__u32 allowance = per_second / FULCRUM_BUDGET_WINDOWS_PER_SECOND;
	struct fulcrum_budget *b;
	__u64 now;

	if (!per_second)
		return 1;
	b = bpf_map_lookup_elem(&budgets, &which);
	if (!b)
		return 0;
	now = bpf_ktime_get_coarse_ns();
	if (now - b->window_start_ns >= FULCRUM_BUDGET_WINDOW_NS) {
		b->window_start_ns = now;
		b->used = 0;
	}
	if (b->used >= (allowance ? allowance : 1))
		return 0;
	b->used++;
	return 1;
}

/* Writes what choose_backend asked for, within the new-entry budget of this CPU. */
static __always_inline void record_flow(const struct fulcrum_flow_key *key, enum flow_record record,
					__u32 backend_id, __u32 hash,
					const struct fulcrum_settings *cfg)
{
	struct fulcrum_flow_value fresh = {
		.backend_id = backend_id,
		.hash = hash,
	};

	if (record == RECORD_NOTHING)
		return;
	if (record == RECORD_MID_STREAM) {
		count_flow_event(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM);
		return;
	}
	if (!take_budget(FULCRUM_BUDGET_NEW_FLOWS, cfg->new_flows_per_second)) {
		count_flow_event(FULCRUM_FLOW_NOT_RECORDED_BUDGET);
		return;
	}
	fresh.last_seen_ns = bpf_ktime_get_coarse_ns();
	if (record == RECORD_NEW) {
		bpf_map_update_elem(&new_flows, key, &fresh, BPF_ANY);
		return;
	}
	/* A promoted flow leaves new_flows once flows holds it: left there it would take a slot from
	 * the next first packets until LRU eviction, and under a flood of SYNs new_flows is full. */
	if (!bpf_map_update_elem(&flows, key, &fresh, BPF_ANY) && record == RECORD_PROMOTED)
		bpf_map_delete_elem(&new_flows, key);
}

/* Maps a failed bpf_fib_lookup onto our reasons. */
static __always_inline enum fulcrum_reason fib_failure_reason(int rc)
{
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return FULCRUM_DROP_NO_NEIGHBOUR;
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return FULCRUM_DROP_FORWARDING_OFF;
	if (rc < 0)
		return FULCRUM_DROP_INTERNAL;
	return FULCRUM_DROP_NO_ROUTE;
}

/* Where the encapsulated packet goes: MACs and egress interface, or the egress MTU when it does
 * not fit (BPF_FIB_LKUP_RET_FRAG_NEEDED). */
struct hop {
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__u32 ifindex;
	__u32 mtu;
};

/* The answer of bpf_fib_lookup for the outer packet (src -> the backend, tot_len bytes). Only a
 * backend without a valid next-hop cache entry gets here, so a hit through the cache never
 * builds the 64-byte lookup structure. gue_port: the outer UDP destination of a GUE service, 0
 * for IP-in-IP (policy routing then sees the outer packet's real protocol). */
static __always_inline int fib_hop(struct xdp_md *ctx, const struct packet *pkt,
				   const struct fulcrum_backend *be, __be32 src4,
				   const struct fulcrum_addr *src6, __u32 tot_len, __be16 gue_port,
				   struct hop *hop)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib.ifindex = ctx->ingress_ifindex;
	fib.tot_len = tot_len; /* makes the lookup check the egress MTU too */
	if (be->family == FULCRUM_AF_INET) {
		fib.family = AF_INET;
		fib.tos = pkt->tos;
		fib.l4_protocol = IPPROTO_IPIP;
		fib.ipv4_src = src4;
		fib.ipv4_dst = be->addr.w[0];
	} else {
		fib.family = AF_INET6;
		fib.l4_protocol = inner_protocol(pkt);
		__builtin_memcpy(fib.ipv6_src, src6, sizeof(*src6));
		__builtin_memcpy(fib.ipv6_dst, &be->addr, sizeof(be->addr));
	}
	if (gue_port) {
		fib.l4_protocol = IPPROTO_UDP;
		fib.dport = gue_port;
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		hop->mtu = fib.mtu_result;
	__builtin_memcpy(hop->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(hop->smac, fib.smac, ETH_ALEN);
	hop->ifindex = fib.ifindex;
	return rc;
}

/* The next hop of a backend: the daemon's cache when it has a valid entry, else bpf_fib_lookup.
 * A cached entry gives the answers the fib lookup would: success with MACs and egress, or
 * FRAG_NEEDED with the egress MTU when the encapsulated packet (tot_len) does not fit. */
static __always_inline int next_hop(struct xdp_md *ctx, const struct packet *pkt,
				    const struct fulcrum_backend *be, __u32 backend_id, __be32 src4,
				    const struct fulcrum_addr *src6, __u32 tot_len, __be16 gue_port,
				    struct hop *hop)
{
	const struct fulcrum_nexthop *nh = bpf_map_lookup_elem(&nexthops, &backend_id);

	if (!nh || !nh->valid)
		return fib_hop(ctx, pkt, be, src4, src6, tot_len, gue_port, hop);
	if (tot_len > nh->mtu) {
		hop->mtu = nh->mtu;
		return BPF_FIB_LKUP_RET_FRAG_NEEDED;
	}
	__builtin_memcpy(hop->dmac, nh->dmac, ETH_ALEN);
	__builtin_memcpy(hop->smac, nh->smac, ETH_ALEN);
	hop->ifindex = nh->ifindex;
	return BPF_FIB_LKUP_RET_SUCCESS;
}

/* Not a VIP for sure when the address's bit in vip_filter is clear (inlined array lookup, no
 * hashing); a set bit only means "maybe", the vips lookup decides. */
static __always_inline int surely_not_vip(const struct fulcrum_addr *addr)
{
	__u32 bit = fulcrum_vip_filter_fold(addr), word = bit >> 6;
	const __u64 *w = bpf_map_lookup_elem(&vip_filter, &word);

	return w && !(*w & (1ULL << (bit & 63)));
}

/* Sends a generated ICMP reply (echo, too big) back out, within this CPU's reply budget. */
static __always_inline int send_reply(enum fulcrum_reason reason, __u64 bytes)
{
	count_reason(reason, bytes);
	return XDP_TX;
}

static __always_inline int may_reply(const struct fulcrum_settings *cfg)
{
	return take_budget(FULCRUM_BUDGET_ICMP_REPLIES, cfg->icmp_replies_per_second);
}

/* Answers a packet that will not fit the tunnel: frag-needed / packet-too-big with the inner MTU
 * the client must use, or (IPv4 without DF) a counted drop. */
static __always_inline int reply_too_big(struct xdp_md *ctx, struct packet *pkt,
					 const struct fulcrum_settings *cfg, __u32 path_mtu,
					 __u32 overhead, __u64 bytes)
{
	__u32 mtu = path_mtu > overhead ? path_mtu - overhead : 0;

	if (pkt->family == FULCRUM_AF_INET && !pkt->dont_fragment)
		return drop(FULCRUM_DROP_TOO_BIG_NO_DF, bytes);
	if (!may_reply(cfg))
		return drop(FULCRUM_DROP_ICMP_RATE_LIMITED, bytes);
	if (pkt->family == FULCRUM_AF_INET) {
		if (icmp4_send_frag_needed(ctx, pkt, mtu))
			return drop(FULCRUM_DROP_INTERNAL, bytes);
	} else {
		/* IPv6 links carry at least 1280 bytes; never announce less (RFC 8201). */
		if (mtu < FULCRUM_IPV6_MIN_MTU)
			mtu = FULCRUM_IPV6_MIN_MTU;
		if (icmp6_send_packet_too_big(ctx, pkt, mtu))
			return drop(FULCRUM_DROP_INTERNAL, bytes);
	}
	return send_reply(FULCRUM_TX_TOO_BIG, bytes);
}

/* Cuts link-layer padding after the IP packet, so the tunnel carries the IP packet exactly and
 * the receiver's length checks see no trailing bytes. Returns 0 or -1. */
static __always_inline int trim_padding(struct xdp_md *ctx, const struct packet *pkt)
{
	__u64 frame = pkt->data_end - pkt->data, wanted = pkt->l2_len + pkt->ip_len;

	if (frame <= wanted)
		return 0;
	return bpf_xdp_adjust_tail(ctx, -(int)(frame - wanted)) ? -1 : 0;
}

/* Sends the packet to the flow's backend: choose, route, encapsulate, transmit. */
static __always_inline int forward(struct xdp_md *ctx, struct packet *pkt,
				   const struct fulcrum_flow_key *key,
				   const struct fulcrum_service_value *svc,
				   const struct fulcrum_settings *cfg, enum flow_role role)
{
	__u64 bytes = pkt->data_end - pkt->data;
	struct fulcrum_backend *be = NULL;
	struct fulcrum_addr src6;
	enum flow_record record;
	struct hop hop;
	__u32 hash = 0, id, overhead;
	int rc;
	__be32 src4 = 0;
	/* GUE's UDP destination, 0 for IP-in-IP: the port is never 0 (the config refuses it) */
	__be16 gue_port = svc->encap == FULCRUM_ENCAP_GUE ? cfg->gue_port : 0;

	id = choose_backend(pkt, key, svc, cfg, role, &hash, &record, &be);
	if (!id || !be)
		return drop(FULCRUM_DROP_NO_BACKEND, bytes);

	if (be->family == FULCRUM_AF_INET) {
		if (pkt->family != FULCRUM_AF_INET) /* IPv6 over IPv4 is refused by the config */
			return drop(FULCRUM_DROP_INTERNAL, bytes);
		overhead = FULCRUM_OUTER_V4_LEN;
		src4 = cfg->source_v4;
		if (cfg->flags & FULCRUM_SETTING_VARY_SOURCE)
			src4 = vary_bits(src4, cfg->source_v4_vary, hash);
	} else {
		overhead = FULCRUM_OUTER_V6_LEN;
		src6 = cfg->source_v6;
		if (cfg->flags & FULCRUM_SETTING_VARY_SOURCE)
			src6.w[3] = vary_bits(src6.w[3], cfg->source_v6_vary, hash);
	}
	if (gue_port) /* the too-big answer below then leaves room for the UDP header as well */
		overhead += FULCRUM_GUE_UDP_LEN;
	/* The outer length fields are 16 bits (IPv4 total length, IPv6 payload length = the inner
	 * packet), and so is the fib's tot_len: refuse what cannot be written rather than wrap. */
	if (pkt->ip_len + overhead > 0xffff)
		return drop(FULCRUM_DROP_LENGTH, bytes);

	rc = next_hop(ctx, pkt, be, id, src4, &src6, pkt->ip_len + overhead, gue_port, &hop);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		if (role == FLOW_ERROR) /* no ICMP error about an ICMP error */
			return drop(FULCRUM_DROP_ICMP_ERROR_TOO_BIG, bytes);
		return reply_too_big(ctx, pkt, cfg, hop.mtu, overhead, bytes);
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return drop(fib_failure_reason(rc), bytes);

	if (trim_padding(ctx, pkt))
		return drop(FULCRUM_DROP_INTERNAL, bytes);
	if (gue_port) {
		if (be->family == FULCRUM_AF_INET)
			rc = encap_gue4(ctx, pkt, hop.dmac, hop.smac, src4, be->addr.w[0], gue_port, hash);
		else
			rc = encap_gue6(ctx, pkt, hop.dmac, hop.smac, &src6, &be->addr, hash, gue_port);
	} else if (be->family == FULCRUM_AF_INET) {
		rc = encap_ipv4(ctx, pkt, hop.dmac, hop.smac, src4, be->addr.w[0]);
	} else {
		rc = encap_ipv6(ctx, pkt, hop.dmac, hop.smac, &src6, &be->addr, hash);
	}
	if (rc)
		return drop(FULCRUM_DROP_INTERNAL, bytes);

	/* The egress first: a packet that cannot leave is a no_egress drop, not a forwarded one. */
	rc = XDP_TX;
	if (hop.ifindex != ctx->ingress_ifindex) {
		rc = bpf_redirect_map(&tx_ports, hop.ifindex, 0);
		if (rc != XDP_REDIRECT)
			return drop(FULCRUM_DROP_NO_EGRESS, bytes);
	}
	if (role == FLOW_ERROR)
		count_reason(FULCRUM_FWD_ICMP_ERROR, bytes);
	record_flow(key, record, id, hash, cfg);
	count_forward(svc->id, id, bytes, record == RECORD_NEW);
	return rc;
}

/* Service of (VIP, port, protocol), falling back to the VIP's port-0 entry when it has one. */
static __always_inline struct fulcrum_service_value *
find_service(const struct fulcrum_addr *vip, __u8 family, __be16 port, __u8 proto,
	     const struct fulcrum_vip_value *vipv)
{
	struct fulcrum_service_key sk = {};
	struct fulcrum_service_value *svc;
	__u32 wildcard = proto == IPPROTO_TCP ? FULCRUM_VIP_PORT0_TCP : FULCRUM_VIP_PORT0_UDP;

	sk.vip = *vip;
	sk.family = family;
	sk.proto = proto;
	sk.port = port;
	svc = bpf_map_lookup_elem(&services, &sk);
	if (svc || !(vipv->flags & wildcard))
		return svc;
	sk.port = 0;
	return bpf_map_lookup_elem(&services, &sk);
}

static __always_inline const struct fulcrum_settings *settings_of(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&settings, &zero);
}

/* A TCP or UDP packet of a service (key complete). */
static __always_inline int serve(struct xdp_md *ctx, struct packet *pkt,
				 const struct fulcrum_flow_key *key,
				 const struct fulcrum_service_value *svc, __u8 tcp_flags)
{
	__u64 bytes = pkt->data_end - pkt->data;
	const struct fulcrum_settings *cfg;

	pkt->service_id = svc->id; /* for a capture's filter and record: a stack store */
	/* Policy (README): the tunnel is built untagged; a tag from the ingress would be wrong on any
	 * other segment, so tagged traffic to a service is refused, by name, not mis-sent. */
	if (pkt->has_vlan)
		return drop(FULCRUM_DROP_VLAN, bytes);
	cfg = settings_of();
	if (!cfg)
		return drop(FULCRUM_DROP_INTERNAL, bytes);
	return forward(ctx, pkt, key, svc, cfg, flow_role_of(key->proto, tcp_flags));
}

/* A TCP or UDP packet to a VIP. */
static __always_inline int handle_transport(struct xdp_md *ctx, struct packet *pkt,
					    struct fulcrum_flow_key *key,
					    const struct fulcrum_vip_value *vipv)
{
	__u64 bytes = pkt->data_end - pkt->data;
	struct fulcrum_service_value *svc;
	__u8 tcp_flags;

	if (parse_ports(pkt, &key->sport, &key->dport, &tcp_flags))
		return drop(FULCRUM_DROP_PARSE_L4, bytes);
	key->proto = pkt->proto;
	svc = find_service(&key->dst, key->family, key->dport, key->proto, vipv);
	if (!svc)
		return drop(FULCRUM_DROP_PORT_UNSERVED, bytes);
	return serve(ctx, pkt, key, svc, tcp_flags);
}

/* The service of a well-formed, unfragmented TCP or UDP packet by its exact (VIP, port,
 * protocol), looked up before the vips entry: the daemon writes a VIP's vips entry before its
 * first service and deletes it after its last (Reconciler::plan_vips), so a services entry proves
 * a VIP, and a packet of a service pays one hash lookup here instead of two. NULL for anything
 * else (another protocol, a port-0 service, a malformed port header, not a VIP): the caller then
 * takes the full path from the vips lookup, which reuses the same parse and answers exactly as
 * before. *pkt must have been through parse_ipv4_rest / parse_ipv6_rest successfully. */
static __always_inline struct fulcrum_service_value *exact_service(struct packet *pkt,
								    struct fulcrum_flow_key *key,
								    __u8 *tcp_flags)
{
	struct fulcrum_service_key sk = {};

	if (pkt->proto != IPPROTO_TCP && pkt->proto != IPPROTO_UDP)
		return NULL;
	if (parse_ports(pkt, &key->sport, &key->dport, tcp_flags))
		return NULL;
	key->proto = pkt->proto;
	sk.vip = key->dst;
	sk.family = key->family;
	sk.proto = key->proto;
	sk.port = key->dport;
	return bpf_map_lookup_elem(&services, &sk);
}

/* An ICMP error that quotes a flow of ours: forward it, whole, to that flow's backend. */
static __always_inline int forward_icmp_error(struct xdp_md *ctx, struct packet *pkt,
					      struct fulcrum_flow_key *quoted, __u64 bytes)
{
	struct fulcrum_vip_key vk = {};
	struct fulcrum_vip_value *vipv;
	struct fulcrum_service_value *svc;
	const struct fulcrum_settings *cfg;

	vk.addr = quoted->dst;
	vk.family = quoted->family;
	vipv = bpf_map_lookup_elem(&vips, &vk);
	if (!vipv)
		return drop(FULCRUM_DROP_ICMP_UNHANDLED, bytes);
	svc = find_service(&quoted->dst, quoted->family, quoted->dport, quoted->proto, vipv);
	if (!svc)
		return drop(FULCRUM_DROP_ICMP_UNHANDLED, bytes);
	pkt->service_id = svc->id;
	if (pkt->has_vlan)
		return drop(FULCRUM_DROP_VLAN, bytes);
	cfg = settings_of();
	if (!cfg)
		return drop(FULCRUM_DROP_INTERNAL, bytes);
	return forward(ctx, pkt, quoted, svc, cfg, FLOW_ERROR);
}

/* An echo request to a VIP: answered from XDP when the VIP can serve and the budget allows. */
static __always_inline int may_answer_echo(const struct fulcrum_vip_value *vipv, __u64 bytes)
{
	const struct fulcrum_settings *cfg;

	if (!(vipv->flags & FULCRUM_VIP_SERVING))
		return drop(FULCRUM_DROP_ECHO_NO_BACKEND, bytes);
	cfg = settings_of();
	if (!cfg)
		return drop(FULCRUM_DROP_INTERNAL, bytes);
	if (!may_reply(cfg))
		return drop(FULCRUM_DROP_ICMP_RATE_LIMITED, bytes);
	return XDP_TX;
}

static __always_inline int handle_icmp4(struct xdp_md *ctx, struct packet *pkt,
					const struct fulcrum_vip_value *vipv)
{
	__u64 bytes = pkt->data_end - pkt->data;
	struct icmphdr *icmp = pkt->l4;
	struct fulcrum_flow_key quoted = {};
	int verdict;

	if (beyond_ip(pkt, icmp, sizeof(*icmp)) || (void *)(icmp + 1) > pkt->data_end)
		return drop(FULCRUM_DROP_PARSE_L4, bytes);
	if (icmp->type == ICMP_ECHO) {
		verdict = may_answer_echo(vipv, bytes);
		if (verdict != XDP_TX)
			return verdict;
		icmp4_echo_reply(pkt);
		return send_reply(FULCRUM_TX_ECHO_REPLY, bytes);
	}
	if (icmp->type != ICMP_DEST_UNREACH)
		return drop(FULCRUM_DROP_ICMP_UNHANDLED, bytes);
	if (icmp4_quoted_flow(pkt, &quoted))
		return drop(FULCRUM_DROP_ICMP_UNHANDLED, bytes);
	return forward_icmp_error(ctx, pkt, &quoted, bytes);
}

static __always_inline int handle_icmp6(struct xdp_md *ctx, struct packet *pkt,
					const struct fulcrum_vip_value *vipv)
{
	__u64 bytes = pkt->data_end - pkt->data;
	struct icmp6hdr *icmp6 = pkt->l4;
	struct fulcrum_flow_key quoted = {};
	int verdict;

	if (beyond_ip(pkt, icmp6, sizeof(*icmp6)) || (void *)(icmp6 + 1) > pkt->data_end)
		return drop(FULCRUM_DROP_PARSE_L4, bytes);
	if (icmp6->icmp6_type == ICMPV6_ECHO_REQUEST) {
		verdict = may_answer_echo(vipv, bytes);
		if (verdict != XDP_TX)
			return verdict;
		icmp6_echo_reply(pkt);
		return send_reply(FULCRUM_TX_ECHO_REPLY, bytes);
	}
	if (icmp6->icmp6_type != ICMPV6_DEST_UNREACH && icmp6->icmp6_type != ICMPV6_PKT_TOOBIG)
		return drop(FULCRUM_DROP_ICMP_UNHANDLED, bytes);
	if (icmp6_quoted_flow(pkt, &quoted))
		return drop(FULCRUM_DROP_ICMP_UNHANDLED, bytes);
	return forward_icmp_error(ctx, pkt, &quoted, bytes);
}

/* Everything after "this is a VIP": the upper layer decides. */
static __always_inline int handle_vip(struct xdp_md *ctx, struct packet *pkt,
				      struct fulcrum_flow_key *key,
				      const struct fulcrum_vip_value *vipv)
{
	__u64 bytes = pkt->data_end - pkt->data;

	switch (pkt->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		return handle_transport(ctx, pkt, key, vipv);
	case IPPROTO_ICMP:
		if (pkt->family == FULCRUM_AF_INET)
			return handle_icmp4(ctx, pkt, vipv);
		break;
	case IPPROTO_ICMPV6:
		if (pkt->family == FULCRUM_AF_INET6)
			return handle_icmp6(ctx, pkt, vipv);
		break;
	case IPPROTO_FRAGMENT: /* an IPv6 fragment header; in IPv4, 44 is just another protocol */
		if (pkt->family == FULCRUM_AF_INET6)
			return drop(FULCRUM_DROP_FRAGMENT, bytes);
		break;
	}
	return drop(FULCRUM_DROP_PROTO_UNSERVED, bytes);
}

static __always_inline int handle_ipv4(struct xdp_md *ctx, struct packet *pkt)
{
	__u64 bytes = pkt->data_end - pkt->data;
	struct iphdr *ip = pkt->l3;
	struct fulcrum_vip_key vk = {};
	struct fulcrum_vip_value *vipv;
	struct fulcrum_service_value *svc;
	struct fulcrum_flow_key key = {};
	int malformed, fragment;

	if ((void *)(ip + 1) > pkt->data_end)
		return drop(FULCRUM_DROP_PARSE_L3, bytes);
	vk.addr.w[0] = ip->daddr;
	vk.family = FULCRUM_AF_INET;
	if (surely_not_vip(&vk.addr))
		goto not_vip;
	key.src.w[0] = ip->saddr;
	key.dst.w[0] = ip->daddr;
	key.family = FULCRUM_AF_INET;
	malformed = parse_ipv4_rest(pkt, ip);
	fragment = !malformed && ipv4_is_fragment(ip);
	pkt->family = FULCRUM_AF_INET;
	if (!malformed && !fragment) {
		__u8 tcp_flags;

		svc = exact_service(pkt, &key, &tcp_flags);
		if (svc)
			return serve(ctx, pkt, &key, svc, tcp_flags);
	}
	/* Only a VIP's packets are judged: a malformed packet to another address passes untouched. */
	vipv = bpf_map_lookup_elem(&vips, &vk);
	if (!vipv)
		goto not_vip;
	if (malformed)
		return drop(FULCRUM_DROP_PARSE_L3, bytes);
	if (fragment)
		return drop(FULCRUM_DROP_FRAGMENT, bytes);
	return handle_vip(ctx, pkt, &key, vipv);
not_vip:
	count_reason(FULCRUM_PASS_NOT_VIP, bytes);
	return XDP_PASS;
}

static __always_inline int handle_ipv6(struct xdp_md *ctx, struct packet *pkt)
{
	__u64 bytes = pkt->data_end - pkt->data;
	struct ipv6hdr *ip6 = pkt->l3;
	struct fulcrum_vip_key vk = {};
	struct fulcrum_vip_value *vipv;
	struct fulcrum_service_value *svc;
	struct fulcrum_flow_key key = {};
	int malformed;

	if ((void *)(ip6 + 1) > pkt->data_end)
		return drop(FULCRUM_DROP_PARSE_L3, bytes);
	__builtin_memcpy(&vk.addr, &ip6->daddr, sizeof(vk.addr));
	vk.family = FULCRUM_AF_INET6;
	if (surely_not_vip(&vk.addr))
		goto not_vip;
	__builtin_memcpy(&key.src, &ip6->saddr, sizeof(key.src));
	key.dst = vk.addr;
	key.family = FULCRUM_AF_INET6;
	malformed = parse_ipv6_rest(pkt, ip6);
	pkt->family = FULCRUM_AF_INET6;
	if (!malformed) {
		__u8 tcp_flags;

		svc = exact_service(pkt, &key, &tcp_flags);
		if (svc)
			return serve(ctx, pkt, &key, svc, tcp_flags);
	}
	vipv = bpf_map_lookup_elem(&vips, &vk);
	if (!vipv)
		goto not_vip;
	if (malformed)
		return drop(FULCRUM_DROP_PARSE_L3, bytes);
	return handle_vip(ctx, pkt, &key, vipv);
not_vip:
	count_reason(FULCRUM_PASS_NOT_VIP, bytes);
	return XDP_PASS;
}

static __always_inline int balance(struct xdp_md *ctx, struct packet *pkt)
{
	int proto = parse_ethernet(pkt);

	if (proto < 0)
		return drop(FULCRUM_DROP_PARSE_L2, pkt->data_end - pkt->data);
	if (proto == bpf_htons(ETH_P_IP))
		return handle_ipv4(ctx, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return handle_ipv6(ctx, pkt);
	count_reason(FULCRUM_PASS_NOT_IP, pkt->data_end - pkt->data);
	return XDP_PASS;
}

SEC("xdp")
int balancer(struct xdp_md *ctx)
{
	struct packet pkt = {
		.data = (void *)(long)ctx->data,
		.data_end = (void *)(long)ctx->data_end,
	};
	int capturing = capture_begin(ctx); /* no capture running: one load and a branch */
	int verdict = balance(ctx, &pkt);

	if (capturing)
		capture_exit(ctx, verdict, pkt.service_id);
	return verdict;
}
