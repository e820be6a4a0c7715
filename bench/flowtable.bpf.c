// SPDX-License-Identifier: GPL-2.0
/* flowtable.bpf.c: flow-table layout microbench (bench/flowtable_bench.cpp loads it).
 * One XDP program runs `nops` map operations per BPF_PROG_TEST_RUN call through bpf_loop, on the
 * real flow key/value types. The loader picks the layout before load: `flows` gets its type
 * (LRU_HASH / LRU_PERCPU_HASH) and flags (BPF_F_NO_COMMON_LRU) set at runtime; with use_outer the
 * program instead looks up the calling CPU's own LRU_HASH in an ARRAY_OF_MAPS (Katran style).
 * The packet is never touched, so plain repeat mode is exact. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

char LICENSE[] SEC("license") = "GPL";

struct flow_lru {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct fulcrum_flow_key);
	__type(value, struct fulcrum_flow_value);
};

struct flow_lru flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct flow_lru);
} cpu_flows SEC(".maps");

const volatile int use_outer = 0;

enum {
	OP_NONE = 0,      /* build the key only: the floor subtracted from every other mode */
	OP_HIT = 1,       /* lookup of keys in [0, hit_keys) (a permutation, so every key is touched) */
	OP_INSERT = 2,    /* update of a key never seen before (ins_ctr counts up) */
	OP_MISS = 3,      /* lookup of a key that is never inserted */
	OP_FLOOD = 4,     /* the datapath's "lookup, insert on miss" on the flood sequence */
	OP_TOUCH = 5,     /* lookup of the established keys [0, est_keys) */
	OP_ESTABLISH = 6, /* insert of the established keys [0, est_keys) */
};

__u32 mode;
__u32 nops;
__u32 hit_mask;      /* hit_keys - 1, hit_keys a power of two */
__u32 est_keys;
__u32 flood_window;  /* distinct tuples a flood cycles through before moving on */
__u32 flood_repeat;  /* k: times each flood tuple is sent */
__u64 ctr;           /* op counter of HIT / MISS */
__u64 ins_ctr;       /* next fresh key of INSERT */
__u64 flood_ctr;     /* next op of FLOOD */
__u64 flood_hits, flood_inserts, found, sink;

#define TAG_HIT 1   /* hit keys, also the keys the fill inserts */
#define TAG_INS 2
#define TAG_MISS 3
#define TAG_FLOOD 4
#define TAG_EST 5

static __always_inline void make_key(struct fulcrum_flow_key *k, __u32 tag, __u64 idx)
{
	k->src.w[0] = bpf_htonl(0xc6120000 | (tag << 8));      /* 198.18.tag.0 */
	k->src.w[1] = (__u32)idx;
	k->src.w[2] = (__u32)(idx >> 32);
	k->src.w[3] = 0;
	k->dst.w[0] = bpf_htonl(0xc6130001);                     /* 198.19.0.1 */
	k->dst.w[1] = 0;
	k->dst.w[2] = 0;
	k->dst.w[3] = 0;
	k->sport = (__u16)idx;
	k->dport = bpf_htons(80);
	k->proto = 6;
	k->family = FULCRUM_AF_INET;
	k->pad = 0;
}

static __always_inline void *table(void)
{
	if (use_outer) {
		__u32 cpu = bpf_get_smp_processor_id();

		return bpf_map_lookup_elem(&cpu_flows, &cpu);
	}
	return &flows;
}

static long one_op(__u32 i, void *unused)
{
	struct fulcrum_flow_key k;
	struct fulcrum_flow_value v = { .backend_id = 1, .hash = i, .last_seen_ns = 0 };
	struct fulcrum_flow_value *p;
	void *map = table();
	__u64 idx;

	if (!map)
		return 1;
	switch (mode) {
	case OP_NONE:
		make_key(&k, TAG_HIT, ctr++);
		sink += k.src.w[1];
		break;
	case OP_HIT:
		idx = (ctr++ * 2654435761ULL) & hit_mask;
		make_key(&k, TAG_HIT, idx);
		p = bpf_map_lookup_elem(map, &k);
		if (p && p->backend_id) /* a per-CPU map has 0 on CPUs that never wrote the key */
			found++;
		break;
	case OP_INSERT:
		make_key(&k, TAG_INS, ins_ctr++);
		bpf_map_update_elem(map, &k, &v, BPF_ANY);
		break;
	case OP_MISS:
		make_key(&k, TAG_MISS, ctr++);
		p = bpf_map_lookup_elem(map, &k);
		if (p)
			found++;
		break;
	case OP_FLOOD: {
		__u64 n = flood_ctr++;
		__u64 block = flood_window * (__u64)flood_repeat;

		if (!block)
			return 1;
		idx = (n / block) * flood_window + (n % block) % flood_window;
		make_key(&k, TAG_FLOOD, idx);
		p = bpf_map_lookup_elem(map, &k);
		if (p && p->backend_id) {
			flood_hits++;
		} else {
			bpf_map_update_elem(map, &k, &v, BPF_ANY);
			flood_inserts++;
		}
		break;
	}
	case OP_TOUCH:
		make_key(&k, TAG_EST, i % (est_keys ? est_keys : 1));
		p = bpf_map_lookup_elem(map, &k);
		if (p)
			found++;
		break;
	case OP_ESTABLISH:
		make_key(&k, TAG_EST, i);
		bpf_map_update_elem(map, &k, &v, BPF_ANY);
		break;
	case 7: /* fill: insert the hit keys [ctr, ...) */
		make_key(&k, TAG_HIT, ctr++);
		bpf_map_update_elem(map, &k, &v, BPF_ANY);
		break;
	}
	return 0;
}

SEC("xdp")
int flowtable_ops(struct xdp_md *ctx)
{
	bpf_loop(nops, one_op, 0, 0);
	return XDP_DROP;
}

/* Loaded only by the probe: does the verifier accept bpf_map_lookup_percpu_elem on `flows`? */
SEC("xdp")
int percpu_probe(struct xdp_md *ctx)
{
	struct fulcrum_flow_key k;
	struct fulcrum_flow_value *p;

	make_key(&k, TAG_EST, 0);
	p = bpf_map_lookup_percpu_elem(&flows, &k, 1);
	return p ? XDP_PASS : XDP_DROP;
}
