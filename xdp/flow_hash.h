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

/* Hash of a flow key. IPv4 keys mix only the words that can be non-zero (fewer instructions on
 * the hot path); the result depends only on the key's content and the seed. */
static inline __u32 fulcrum_flow_hash(const struct fulcrum_flow_key *k, __u32 seed)
{
	__u32 h = seed;
	__u32 ports = ((__u32)k->sport << 16) | k->dport;

	h = fulcrum_hash_mix(h, k->src.w[0]);
	h = fulcrum_hash_mix(h, k->dst.w[0]);
	if (k->family == FULCRUM_AF_INET6) {
		h = fulcrum_hash_mix(h, k->src.w[1]);
		h = fulcrum_hash_mix(h, k->src.w[2]);
		h = fulcrum_hash_mix(h, k->src.w[3]);
		h = fulcrum_hash_mix(h, k->dst.w[1]);
		h = fulcrum_hash_mix(h, k->dst.w[2]);
		h = fulcrum_hash_mix(h, k->dst.w[3]);
	}
	h = fulcrum_hash_mix(h, ports);
	h = fulcrum_hash_mix(h, ((__u32)k->proto << 8) | k->family);
	return fulcrum_hash_final(h ^ 40u);
}

#endif /* FULCRUM_FLOW_HASH_H */
