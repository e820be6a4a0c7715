/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* How QUIC connection-ID routing reads a datagram (abi.h fulcrum_quic_key, README "QUIC"), shared
 * verbatim by the XDP program and fulcrumd (fulcrumctl lookup --quic-dcid), so both find the same
 * server id in the same bytes. The program reads the id's bytes itself, each proven inside the
 * frame for the verifier; fulcrumd reads them from an operator's connection ID. Both then call
 * these. */
#ifndef FULCRUM_QUIC_ID_H
#define FULCRUM_QUIC_ID_H

#include "abi.h"

#define FULCRUM_QUIC_INLINE static inline __attribute__((always_inline))

/* The first byte of the UDP payload: a long header (0x80 set: the handshake, whose connection ID
 * the client chose) carries no server id, nor does a short header without the fixed bit (0x40,
 * RFC 9000 17.3; RFC 9287 greasing is not detected). `first` is that byte widened: with a __u8
 * parameter clang lays the program out otherwise (with it, the object is the one of before). */
FULCRUM_QUIC_INLINE __u32 fulcrum_quic_long_header(__u32 first)
{
	return first & 0x80;
}

FULCRUM_QUIC_INLINE __u32 fulcrum_quic_fixed_bit(__u32 first)
{
	return first & 0x40;
}

/* The byte of the UDP payload where the id starts (fulcrum_service_value.quic_id_offset: the
 * daemon writes 1..20; the mask bounds it for the verifier). */
FULCRUM_QUIC_INLINE __u32 fulcrum_quic_id_start(__u8 quic_id_offset)
{
	return quic_id_offset & 31;
}

/* The id's width in bits (fulcrum_service_value.quic_id_bits: the daemon writes 1..32; anything
 * else reads as 32). */
FULCRUM_QUIC_INLINE __u32 fulcrum_quic_id_width(__u32 quic_id_bits)
{
	if (quic_id_bits - 1 >= FULCRUM_QUIC_MAX_ID_BITS)
		quic_id_bits = FULCRUM_QUIC_MAX_ID_BITS;
	return quic_id_bits;
}

/* How many bytes from the start the id spans: 1..4. */
FULCRUM_QUIC_INLINE __u32 fulcrum_quic_id_bytes(__u32 width)
{
	return (width + 7) >> 3;
}

/* The server id: the top `width` bits of the `bytes` bytes read most significant first into
 * `raw` (raw = b0 << 8*(bytes-1) | ... | b[bytes-1]). 0 means none: never looked up. */
FULCRUM_QUIC_INLINE __u32 fulcrum_quic_server_id(__u32 raw, __u32 bytes, __u32 width)
{
	return raw >> (bytes * 8 - width);
}

#endif /* FULCRUM_QUIC_ID_H */
