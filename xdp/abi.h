/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one contract between the XDP programs and fulcrumd: map keys and values, limits, reasons.
 * Included by BPF C (clang -target bpf) and by C++ (g++); only <linux/types.h> and fixed-width
 * fields, explicit padding. The C++ side pins every layout with static_assert (src/dataplane/abi_layout.cpp
 * and tests/bpf). Multi-byte address and port fields are in network byte order (__be*). */
#ifndef FULCRUM_ABI_H
#define FULCRUM_ABI_H

#include <linux/types.h>

/* The version of what pinned maps hold: every layout, enum value and flag bit below and every map
 * definition in lib/maps.h (type, sizes, flags, the Maglev inner-map template). fulcrumd pins it
 * beside the maps (map `abi`) and adopts pinned maps only when it equals the built one; any other
 * pinned state is replaced whole (flows, counters and operator drains start fresh).
 * Bump it with any change to this file or lib/maps.h other than comments and whitespace: the
 * build refuses otherwise (xdp/abi_guard.py checks the text against xdp/abi_history, where each
 * version records its checksum; append a line for the new version). */
#define FULCRUM_ABI_VERSION 5

/* Default map sizes; fulcrumd may resize some before load (flows.capacity). */
#define FULCRUM_MAX_SERVICES 4096     /* service ids are 1..MAX-1 (fit a __u16); 0 means "none" */
#define FULCRUM_MAX_VIPS 4096
#define FULCRUM_MAX_BACKENDS 131072   /* backend ids are 1..MAX-1; 0 means "no backend" */
#define FULCRUM_DEFAULT_FLOWS 1000000
#define FULCRUM_MAX_INTERFACES 64     /* egress devmap for redirects to other interfaces */
#define FULCRUM_DEFAULT_TABLE_SIZE 65537
#define FULCRUM_MAX_TABLE_SIZE 1048573 /* largest prime table the daemon accepts */
#define FULCRUM_TUNNEL_TTL 64         /* outer TTL / hop limit of encapsulated packets */
#define FULCRUM_GUE_DEFAULT_PORT 6080 /* GUE's UDP destination port unless tunnel.gue_port says
                                       * otherwise (the port Linux `ip fou` and Katran use) */
#define FULCRUM_GUE_SPORT_BASE 49152  /* GUE's UDP source port: BASE + the low bits of the flow
                                       * hash (FULCRUM_GUE_SPORT_MASK), the ephemeral range of
                                       * RFC 6335, so ECMP and RSS on the UDP ports spread flows */
#define FULCRUM_GUE_SPORT_MASK 0x3fff

/* Address families as stored in keys (values of AF_INET / AF_INET6 on Linux). */
#define FULCRUM_AF_INET 2
#define FULCRUM_AF_INET6 10

/* An IPv4 or IPv6 address. IPv4 lives in w[0], the other words are zero, so keys compare exactly. */
struct fulcrum_addr {
	__be32 w[4];
};

/* vips: address -> what the VIP serves on every port. A miss means "not ours": XDP_PASS untouched,
 * after a single lookup, which keeps non-service traffic close to the cost of an empty program. */
struct fulcrum_vip_key {
	struct fulcrum_addr addr;
	__u8 family;     /* FULCRUM_AF_INET or FULCRUM_AF_INET6 */
	__u8 pad[3];
};
#define FULCRUM_VIP_PORT0_TCP (1u << 0) /* a port-0 (all ports) TCP service exists on this VIP */
#define FULCRUM_VIP_PORT0_UDP (1u << 1) /* a port-0 (all ports) UDP service exists on this VIP */
#define FULCRUM_VIP_SERVING (1u << 2)   /* some service of this VIP has a backend in its table:
                                         * echo requests are answered only then */
struct fulcrum_vip_value {
	__u32 flags;     /* FULCRUM_VIP_* */
};

/* services: (VIP, port, protocol) -> service; port 0 is the VIP's wildcard entry. */
struct fulcrum_service_key {
	struct fulcrum_addr vip;
	__be16 port;     /* 0 = every port of this VIP for this protocol */
	__u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;
};
/* Hash policy of a service: the fields of a flow left out of the hash that picks its Maglev slot
 * (flow_hash.h fulcrum_slot_hash). 0 hashes the whole 5-tuple. The flow tables still key on the
 * whole 5-tuple, and the entropy of the tunnel (outer source bits, IPv6 flow label) stays the
 * 5-tuple's hash: only the choice of backend for a new flow follows the policy. */
#define FULCRUM_HASH_NO_SRC_ADDR (1u << 0) /* the client address */
#define FULCRUM_HASH_NO_SRC_PORT (1u << 1) /* the client port */
#define FULCRUM_HASH_NO_DST_PORT (1u << 2) /* the VIP port (differs only within a port-0 service) */
#define FULCRUM_HASH_POLICY_MASK (FULCRUM_HASH_NO_SRC_ADDR | FULCRUM_HASH_NO_SRC_PORT | FULCRUM_HASH_NO_DST_PORT)
/* Encapsulation of a service's packets to its backends (config services[].encap). */
enum fulcrum_encap {
	FULCRUM_ENCAP_IPIP = 0, /* outer IPv4/IPv6 header only: IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6 */
	FULCRUM_ENCAP_GUE = 1,  /* outer IP + UDP to settings.gue_port, then the inner packet (GUE
	                         * variant 1, "direct IP": no GUE header; README "GUE") */
};
struct fulcrum_service_value {
	__u32 id;          /* index into maglev_tables and service_stats, 1..MAX_SERVICES-1 */
	__u32 table_size;  /* prime M of this service's Maglev table (slots; its inner map holds
	                    * FULCRUM_MAGLEV_CHUNKS(M) chunks of them) */
	__u32 hash_omit;   /* FULCRUM_HASH_NO_*: the service's hash policy */
	__u8 quic_id_offset; /* QUIC connection-ID routing (below): 0 = off; else the byte of the UDP
	                      * payload where the server id starts (1 + its offset in the DCID) */
	__u8 quic_id_bits;   /* width of the server id, 1..FULCRUM_QUIC_MAX_ID_BITS */
	__u8 encap;          /* enum fulcrum_encap */
	__u8 pad;
};

/* QUIC connection-ID routing (README "QUIC"), for UDP services with quic_id_offset != 0. A
 * short-header packet (first byte: 0x80 clear, fixed bit 0x40 set) carries the destination
 * connection ID right after its first byte; the server id is quic_id_bits bits from byte
 * quic_id_offset of the UDP payload, most significant bit first (big-endian, the top bits of
 * ceil(bits / 8) bytes). quic_ids maps (service id, server id) to a backend id; when that backend
 * is ACTIVE in this service the packet goes there whatever its 5-tuple, with no flow-table read or
 * write. Long headers (0x80 set), unknown ids, ids of draining/down/freed backends and packets too
 * short for the id take the usual path (flow tables, Maglev). Server id 0 means none: the daemon
 * never writes it and the program never looks it up. */
#define FULCRUM_QUIC_MAX_CID_LEN 20   /* QUIC v1 connection IDs are 0..20 bytes (RFC 9000 17.2) */
#define FULCRUM_QUIC_MAX_ID_BITS 32
#define FULCRUM_MAX_QUIC_IDS FULCRUM_MAX_BACKENDS /* at most one server id per backend */
struct fulcrum_quic_key {
	__u32 service_id;
	__u32 server_id;  /* host byte order: the id's bits as a number */
};
/* quic_events: per-CPU packet counters of a QUIC service's UDP packets, by outcome. */
enum fulcrum_quic_event {
	FULCRUM_QUIC_ROUTED_BY_ID = 0, /* short header, known id, active backend: sent there */
	FULCRUM_QUIC_LONG_HEADER,      /* long header (handshake): flow tables and Maglev */
	FULCRUM_QUIC_UNKNOWN_ID,       /* short header, no quic_ids entry for the id: fallback */
	FULCRUM_QUIC_UNUSABLE_ID,      /* the id's backend is draining, down or freed: fallback */
	FULCRUM_QUIC_TRUNCATED,        /* no payload, or it ends before the id: fallback */
	FULCRUM_QUIC_NOT_QUIC,         /* short header with the fixed bit clear: fallback */
	FULCRUM_QUIC_EVENT_COUNT
};

/* maglev_tables (lib/maps.h): service id -> that service's Maglev table, an inner array of chunks.
 * A table of M slots (M = table_size, a prime) is FULCRUM_MAGLEV_CHUNKS(M) chunks: slot h is
 * chunk h / N, entry h % N (N = FULCRUM_MAGLEV_CHUNK_SLOTS); the last chunk's entries past M are 0
 * and never read (h < M). Why chunks: the kernel stores an array value in a multiple of 8 bytes,
 * so a one-slot __u32 value took 8 bytes; a chunk of N slots takes exactly 4 per slot. N = 16:
 * a power of two (h >> 4, h & 15: no division), one 64-byte cache line per lookup, and at most
 * 60 bytes of padding per table. The inner arrays are BPF_F_MMAPABLE and contiguous (64 is a
 * multiple of 8), so fulcrumd fills a new table with one copy of its M slots through mmap. */
#define FULCRUM_MAGLEV_CHUNK_SHIFT 4
#define FULCRUM_MAGLEV_CHUNK_SLOTS (1u << FULCRUM_MAGLEV_CHUNK_SHIFT)
#define FULCRUM_MAGLEV_CHUNKS(slots) (((slots) + FULCRUM_MAGLEV_CHUNK_SLOTS - 1) >> FULCRUM_MAGLEV_CHUNK_SHIFT)
struct fulcrum_maglev_chunk {
	__u32 slot[FULCRUM_MAGLEV_CHUNK_SLOTS]; /* backend id per slot; 0 = no backend */
};

/* backends: backend id -> where to send. State is what the data plane needs to know of health. */
enum fulcrum_backend_state {
	FULCRUM_BACKEND_UNUSED = 0,   /* slot free: a flow pointing here is re-hashed */
	FULCRUM_BACKEND_ACTIVE = 1,   /* in tables; flows stick */
	FULCRUM_BACKEND_DRAINING = 2, /* out of tables; existing flows stick until they end */
	FULCRUM_BACKEND_DOWN = 3,     /* out of tables; existing flows re-hashed at once */
};
struct fulcrum_backend {
	struct fulcrum_addr addr;
	__u8 family;
	__u8 state;       /* enum fulcrum_backend_state. Taking a backend out: swap the tables first,
	                   * then set DRAINING/DOWN, so no packet finds it in a table while unusable. */
	__u16 service_id; /* the one service this backend id serves: a flow-table hit counts only if
	                   * it matches, so the daemon may reuse a freed id for another service
	                   * without stale flows following it there */
};

/* nexthops: backend id -> resolved L2 next hop, filled by fulcrumd from netlink (route + neighbour
 * of the backend address, egress MTU). When valid, the hot path uses it instead of bpf_fib_lookup
 * (about a third of a flow-table hit's program time); when not, it falls back to bpf_fib_lookup.
 * fulcrumd invalidates an entry (valid = 0) before it changes the backend, and on any route,
 * neighbour or link change that may affect it. */
struct fulcrum_nexthop {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex;   /* egress interface: XDP_TX when it is the receiving one, else tx_ports */
	__u32 mtu;       /* egress MTU: larger outer packets get the same too-big answer as the fib */
	__u32 valid;     /* 0: not resolved, use bpf_fib_lookup */
};

/* vip_filter: one bit per folded VIP address (FULCRUM_VIP_FILTER_WORDS x 64 bits). A clear bit
 * means "no VIP has this address"; a set bit sends the packet on to the exact vips lookup. The
 * daemon sets a bit before inserting a VIP and clears it only after the last VIP on it is gone. */
#define FULCRUM_VIP_FILTER_WORDS 1024
static inline __u32 fulcrum_vip_filter_fold(const struct fulcrum_addr *a)
{
	__u32 h = a->w[0] ^ a->w[1] ^ a->w[2] ^ a->w[3];

	return (h ^ (h >> 16)) & 0xffff; /* bit index: word = >> 6, bit = & 63 */
}

/* Flow state, two LRU tables with the same key and value (README "Flow table"):
 *   new_flows: first packets (TCP SYN, a UDP flow's first datagram) -> the backend chosen for them;
 *   flows:     confirmed flows, promoted from new_flows by the flow's next packet (TCP without SYN
 *              or RST, UDP). A flood of one-packet tuples churns new_flows only, so it cannot
 *              evict an idle established flow from flows.
 * For ICMP errors the key is the quoted flow's, turned around (client -> VIP). */
struct fulcrum_flow_key {
	struct fulcrum_addr src;
	struct fulcrum_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};
struct fulcrum_flow_value {
	__u32 backend_id; /* 0: no backend (treated as a miss) */
	__u32 hash;       /* flow hash, kept so a hit need not recompute it (outer source, flow label) */
	__u64 last_seen_ns; /* coarse monotonic clock; UDP entries older than the idle timeout expire */
};

/* settings: one entry, runtime knobs the daemon may change without reloading the program. */
#define FULCRUM_SETTING_VARY_SOURCE (1u << 0) /* vary the outer source per flow (RSS on backends) */
struct fulcrum_settings {
	__be32 source_v4;        /* outer source for IPv4 tunnels */
	__be32 source_v4_vary;   /* bits of source_v4 replaced by flow-hash bits when VARY_SOURCE */
	struct fulcrum_addr source_v6;
	__be32 source_v6_vary;   /* bits of the last word of source_v6 replaced likewise */
	__u32 hash_seed;         /* seed of the flow hash: same config, same choice, on every instance */
	__u32 flags;             /* FULCRUM_SETTING_* */
	__u32 new_flows_per_second;    /* per CPU: flow-table inserts beyond it are not made (the
	                                * packet is balanced by Maglev alone); 0 = no limit */
	__u32 icmp_replies_per_second; /* per CPU: echo and too-big replies beyond it are dropped
	                                * (FULCRUM_DROP_ICMP_RATE_LIMITED); 0 = no limit */
	__be16 gue_port;         /* UDP destination port of GUE services' tunnels (tunnel.gue_port) */
	__u16 pad;
};

/* budgets: per-CPU state of the rate limits above, one slot per FULCRUM_BUDGET_*. Time is cut
 * into windows of FULCRUM_BUDGET_WINDOW_NS; each window allows rate / windows-per-second. */
#define FULCRUM_BUDGET_NEW_FLOWS 0
#define FULCRUM_BUDGET_ICMP_REPLIES 1
#define FULCRUM_BUDGET_COUNT 2
#define FULCRUM_BUDGET_WINDOW_NS 125000000ULL /* 1/8 s: smooth, and cheap to compute */
#define FULCRUM_BUDGET_WINDOWS_PER_SECOND 8
struct fulcrum_budget {
	__u64 window_start_ns;
	__u64 used;
};

/* flow_events: per-CPU counters of flow-table decisions other than "recorded" (packets). */
enum fulcrum_flow_event {
	FULCRUM_FLOW_NOT_RECORDED_BUDGET = 0,  /* over flows.new_per_second on this CPU */
	FULCRUM_FLOW_NOT_RECORDED_MID_STREAM,  /* TCP without SYN (or with RST) of a flow we do not
	                                        * know: balanced by Maglev, never recorded */
	FULCRUM_FLOW_EVENT_COUNT
};

/* Per-CPU counters. */
struct fulcrum_service_stats {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 pad;
};
struct fulcrum_backend_stats {
	__u64 packets;
	__u64 bytes;
};
struct fulcrum_reason_stats {
	__u64 packets;
	__u64 bytes;
};

/* Why a packet left the balancer the way it did, other than "forwarded to a backend". One per-CPU
 * counter each; names map onto the Prometheus reason label (src/dataplane/reasons.cpp). */
enum fulcrum_reason {
	/* passed to the host stack, untouched */
	FULCRUM_PASS_NOT_IP = 0,        /* ARP, LLDP, other ethertypes */
	FULCRUM_PASS_NOT_VIP,           /* IPv4/IPv6 to an address that is not a VIP */
	/* answered from XDP (XDP_TX back to the sender) */
	FULCRUM_TX_ECHO_REPLY,          /* ICMP/ICMPv6 echo request to a VIP */
	FULCRUM_TX_TOO_BIG,             /* ICMP frag-needed / ICMPv6 packet-too-big sent to a client */
	/* forwarded to a backend but worth counting on their own */
	FULCRUM_FWD_ICMP_ERROR,         /* ICMP error quoting a VIP flow, steered to its backend */
	/* dropped */
	FULCRUM_DROP_PARSE_L2,          /* truncated Ethernet or 802.1Q header */
	FULCRUM_DROP_PARSE_L3,          /* truncated or malformed IPv4/IPv6 header or extension */
	FULCRUM_DROP_PARSE_L4,          /* to a VIP, truncated or malformed TCP/UDP/ICMP header */
	FULCRUM_DROP_FRAGMENT,          /* IP fragment to a VIP (policy: dropped, see README) */
	FULCRUM_DROP_PORT_UNSERVED,     /* VIP address, but no service on this port/protocol */
	FULCRUM_DROP_PROTO_UNSERVED,    /* VIP address, protocol other than TCP/UDP/ICMP */
	FULCRUM_DROP_ICMP_UNHANDLED,    /* ICMP to a VIP that is neither echo nor an error of a flow */
	FULCRUM_DROP_NO_BACKEND,        /* service has no usable backend */
	FULCRUM_DROP_NO_ROUTE,          /* no route to the backend */
	FULCRUM_DROP_FORWARDING_OFF,    /* IP forwarding disabled on the receiving interface */
	FULCRUM_DROP_NO_NEIGHBOUR,      /* route, but no ARP/ND entry for the next hop */
	FULCRUM_DROP_TOO_BIG_NO_DF,     /* IPv4 without DF too big after encapsulation (policy) */
	FULCRUM_DROP_NO_EGRESS,         /* egress interface not in the redirect map */
	FULCRUM_DROP_INTERNAL,          /* a helper failed (adjust_head, missing table) */
	FULCRUM_DROP_ICMP_RATE_LIMITED, /* echo or too-big reply over icmp.replies_per_second */
	FULCRUM_DROP_ECHO_NO_BACKEND,   /* echo request to a VIP none of whose services can serve */
	FULCRUM_DROP_ICMP_ERROR_TOO_BIG,/* ICMP error that does not fit the tunnel: no error about an
	                                 * error (RFC 1122 3.2.2, RFC 4443 2.4) */
	FULCRUM_DROP_VLAN,              /* 802.1Q-tagged frame to a service (policy: README) */
	FULCRUM_DROP_LENGTH,            /* IP length too large to encapsulate (outer length field) */
	FULCRUM_REASON_COUNT
};

/* operator_drains: backends drained with `fulcrumctl drain`, kept with the pinned state so that a
 * restarted fulcrumd restores them before its first apply. Read and written by fulcrumd only. */
#define FULCRUM_SERVICE_NAME_MAX 64       /* config: a service name has 1 to 64 characters */
#define FULCRUM_MAX_OPERATOR_DRAINS 65536
struct fulcrum_drain_key {
	char service[FULCRUM_SERVICE_NAME_MAX]; /* NUL-padded; not terminated when 64 long */
	struct fulcrum_addr backend;
	__u8 family;
	__u8 pad[3];
};

/* decap (backends). A tunnel packet (IP-in-IP, or GUE: UDP to the GUE port carrying an IP
 * packet) is decapsulated only when its outer source is one of the balancers' tunnel sources
 * (decap_sources) and both its outer and its inner destination are local addresses of this host
 * (decap_local); fulcrum-decap fills both maps. */

/* decap_local: the host's own addresses (interface addresses and VIPs on lo, without loopback
 * and IPv6 link-local), refreshed by `fulcrum-decap sync`. */
struct fulcrum_decap_key {
	struct fulcrum_addr addr;
	__u8 family;
	__u8 pad[3];
};

/* decap_sources: an LPM trie of the balancers' tunnel source prefixes, both families in one trie.
 * The matched data is the family word, then the address, so prefixlen is
 * FULCRUM_DECAP_FAMILY_BITS + the prefix length; pad stays zero so the family word compares
 * exactly. An IPv4 address lives in addr.w[0] as in every key. */
#define FULCRUM_DECAP_FAMILY_BITS 32
struct fulcrum_decap_source_key {
	__u32 prefixlen;  /* host byte order, as the LPM trie requires */
	__u8 family;      /* FULCRUM_AF_INET or FULCRUM_AF_INET6 */
	__u8 pad[3];
	struct fulcrum_addr addr;
};
#define FULCRUM_DECAP_MAX_SOURCES 256   /* balancer tunnel-source prefixes (--from) */
#define FULCRUM_DECAP_MAX_LOCAL 8192    /* local addresses (interface addresses and VIPs) */

enum fulcrum_decap_reason {
	FULCRUM_DECAP_PASS_OTHER = 0,   /* not a tunnel packet to a local address: untouched */
	FULCRUM_DECAP_DONE_V4_IN_V4,
	FULCRUM_DECAP_DONE_V6_IN_V6,
	FULCRUM_DECAP_DONE_V4_IN_V6,
	FULCRUM_DECAP_DROP_MALFORMED,   /* tunnel packet to us, inner header truncated or wrong */
	FULCRUM_DECAP_DROP_SOURCE,      /* tunnel packet to us from a source outside --from */
	FULCRUM_DECAP_DROP_INNER_NOT_LOCAL, /* from a balancer, inner destination not ours */
	FULCRUM_DECAP_DROP_ECN_NOT_ECT, /* outer CE over an inner Not-ECT packet (RFC 6040) */
	FULCRUM_DECAP_DONE_GUE_V4_IN_V4, /* the same three, carried in GUE (UDP to --gue-port) */
	FULCRUM_DECAP_DONE_GUE_V6_IN_V6,
	FULCRUM_DECAP_DONE_GUE_V4_IN_V6,
	FULCRUM_DECAP_REASON_COUNT
};

#endif /* FULCRUM_ABI_H */
