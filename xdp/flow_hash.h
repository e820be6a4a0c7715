/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The flow hash, shared verbatim by the XDP program and fulcrumd (fulcrumctl lookup, tests), so
 * both pick the same Maglev slot for the same flow. Murmur3-style mixing of the key's 32-bit words
 * with a seed from the config: deterministic across instances, cheap, and well spread. */
#ifndef FULCRUM_FLOW_HASH_H
#define FULCRUM_FLOW_HASH_H

#include "abi.h"

static inline __u32 fulcrum_rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static inline __u32 fulcrum_hash_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = fulcrum_rotl32(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = fulcrum_rotl32(h, 13);
	return h * 5u + 0xe6546b64u;
}

static inline __u32 fulcrum_hash_final(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Always inlined (both compilers): with a constant `omit` the masks fold away, so the 5-tuple
 * hash costs what it cost before policies existed, and BPF gets no subprogram call. */
#define FULCRUM_HASH_INLINE static inline __attribute__((always_inline))

/* Hash of a flow key with the fields of `omit` (abi.h FULCRUM_HASH_NO_*) taken as zero: the one
 * definition of which fields enter, for the XDP program and fulcrumd alike. IPv4 keys mix only the
 * words that can be non-zero (fewer instructions on the hot path); the result depends only on the
 * key's content, `omit` and the seed. With omit 0 it is the 5-tuple hash, bit for bit the one of
 * versions without policies (tests/unit/test_flow_hash_kat.cpp). */
FULCRUM_HASH_INLINE __u32 fulcrum_hash_fields(const struct fulcrum_flow_key *k, __u32 seed, __u32 omit)
{
	__u32 src_mask = (omit & FULCRUM_HASH_NO_SRC_ADDR) ? 0 : 0xffffffffu;
	__u32 ports = 0;
	__u32 h = seed;

	if (!(omit & FULCRUM_HASH_NO_SRC_PORT))
		ports |= (__u32)k->sport << 16;
	if (!(omit & FULCRUM_HASH_NO_DST_PORT))
		ports |= k->dport;
	h = fulcrum_hash_mix(h, k->src.w[0] & src_mask);
	h = fulcrum_hash_mix(h, k->dst.w[0]);
	if (k->family == FULCRUM_AF_INET6) {
		h = fulcrum_hash_mix(h, k->src.w[1] & src_mask);
		h = fulcrum_hash_mix(h, k->src.w[2] & src_mask);
		h = fulcrum_hash_mix(h, k->src.w[3] & src_mask);
		h = fulcrum_hash_mix(h, k->dst.w[1]);
		h = fulcrum_hash_mix(h, k->dst.w[2]);
		h = fulcrum_hash_mix(h, k->dst.w[3]);
	}
	h = fulcrum_hash_mix(h, ports);
	h = fulcrum_hash_mix(h, ((__u32)k->proto << 8) | k->family);
	return fulcrum_hash_final(h ^ 40u);
}

/* The 5-tuple hash: the entropy of a flow's tunnel (outer source bits, IPv6 flow label), kept in
 * its flow-table entry, and the Maglev hash of a service with the default policy. */
FULCRUM_HASH_INLINE __u32 fulcrum_flow_hash(const struct fulcrum_flow_key *k, __u32 seed)
{
	return fulcrum_hash_fields(k, seed, 0);
}

/* The hash that picks a new flow's Maglev slot (slot = hash % table_size) in a service whose
 * policy is `omit` (fulcrum_service_value.hash_omit). `flow_hash` is fulcrum_flow_hash of the
 * same key, reused when the policy is the 5-tuple. */
FULCRUM_HASH_INLINE __u32 fulcrum_slot_hash(const struct fulcrum_flow_key *k, __u32 seed, __u32 omit,
					    __u32 flow_hash)
{
	omit &= FULCRUM_HASH_POLICY_MASK;
	return omit ? fulcrum_hash_fields(k, seed, omit) : flow_hash;
}

/* The UDP source port (host order) of a GUE service's tunnel for a flow whose 5-tuple hash (the
 * hash kept in its flow-table entry) is `flow_hash`: the ephemeral range, the low bits from the
 * hash, so ECMP and the backend's RSS spread flows while each flow keeps one port. */
FULCRUM_HASH_INLINE __u16 fulcrum_gue_sport(__u32 flow_hash)
{
	return (__u16)(FULCRUM_GUE_SPORT_BASE | (flow_hash & FULCRUM_GUE_SPORT_MASK));
}

#endif /* FULCRUM_FLOW_HASH_H */
