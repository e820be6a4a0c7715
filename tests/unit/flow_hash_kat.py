#!/usr/bin/python3
"""Known answers for tests/unit/test_flow_hash_kat.cpp, computed without the C code.

fulcrum_flow_hash (xdp/flow_hash.h) is MurmurHash3_x86_32 (Austin Appleby's reference, SMHasher)
over the flow key's words, with one deviation for IPv4 (below). This script implements Murmur3
from its published description, checks it against Murmur3's published test vectors, and prints
the known answers for several flow keys and seeds as C++ table rows. Run it to reproduce the
literals pinned in the test:   /usr/bin/python3 tests/unit/flow_hash_kat.py

The flow key, as the byte string Murmur3 consumes (4-byte blocks read little-endian, as the
x86-64 and BPF little-endian targets load the key's words):
  IPv6:  src[0:4] dst[0:4] src[4:16] dst[4:16] dport(be) sport(be) family proto 0 0  = 40 bytes,
         i.e. exactly murmur3_32(bytes, seed) (ports word = sport << 16 | dport as loaded,
         little-endian, hence dport's bytes first; last word = proto << 8 | family).
  IPv4:  src dst dport(be) sport(be) family proto 0 0  = 16 bytes (only the words that can be
         non-zero), but the final step XORs 40 (the key's size), not 16.
"""
import ipaddress
import socket
import struct

M = 0xFFFFFFFF


def rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & M


def fmix(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M
    h ^= h >> 16
    return h


def murmur3_32(data, seed, length=None):
    """MurmurHash3_x86_32; `length` replaces len(data) in the final XOR (Fulcrum's IPv4 case)."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & M
    n = len(data) // 4
    for i in range(n):
        k = struct.unpack_from("<I", data, 4 * i)[0]
        k = (k * c1) & M
        k = rotl(k, 15)
        k = (k * c2) & M
        h ^= k
        h = rotl(h, 13)
        h = (h * 5 + 0xE6546B64) & M
    tail = data[4 * n:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & M
        k = rotl(k, 15)
        k = (k * c2) & M
        h ^= k
    h ^= len(data) if length is None else length
    return fmix(h)


# Published MurmurHash3_x86_32 vectors (SMHasher's verification set as commonly quoted).
VECTORS = [
    (b"", 0, 0x00000000),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
    (b"\x21\x43\x65\x87", 0, 0xF55B516B),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"abcd", 0x9747B28C, 0xF0478627),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58

# (src, sport, dst, dport, proto, seed)
KEYS = [
    ("198.18.0.100", 40000, "198.18.100.10", 80, TCP, 0),
    ("198.18.0.100", 40000, "198.18.100.10", 80, TCP, 1),
    ("198.18.0.100", 40001, "198.18.100.10", 80, TCP, 0),
    ("198.18.0.100", 40000, "198.18.100.10", 80, UDP, 0),
    ("198.18.0.100", 53000, "198.18.100.10", 53, UDP, 0xDEADBEEF),
    ("198.19.255.254", 65535, "198.18.0.1", 1, TCP, 0xFFFFFFFF),
    ("0.0.0.0", 0, "0.0.0.0", 0, 0, 0),
    ("198.18.0.7", 0, "198.18.100.10", 0, ICMP, 0x2A),
    ("2001:db8::100", 40000, "2001:db8:100::10", 80, TCP, 0),
    ("2001:db8::100", 40000, "2001:db8:100::10", 80, TCP, 0x9747B28C),
    ("2001:db8:1:2:3:4:5:6", 53000, "2001:db8:100::10", 53, UDP, 0xDEADBEEF),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "2001:db8::1", 443, TCP, 0xFFFFFFFF),
    ("::", 0, "::", 0, 0, 0),
    ("2001:db8::7", 0, "2001:db8:100::10", 0, ICMPV6, 0x2A),
]


def key_bytes(src, sport, dst, dport, proto):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    assert s.version == d.version
    family = socket.AF_INET if s.version == 4 else socket.AF_INET6   # 2 and 10 on Linux
    assert family in (2, 10)
    tail = struct.pack(">HH", dport, sport) + bytes([family, proto, 0, 0])
    if s.version == 4:
        return s.packed + d.packed + tail, 40
    sp, dp = s.packed, d.packed
    return sp[0:4] + dp[0:4] + sp[4:16] + dp[4:16] + tail, None


# Hash policies (xdp/abi.h FULCRUM_HASH_NO_*): the omitted fields enter as zero.
NO_SRC_ADDR, NO_SRC_PORT, NO_DST_PORT = 1, 2, 4
POLICIES = [("5-tuple", 0), ("src-ip", NO_SRC_PORT | NO_DST_PORT), ("src-ip-dst-port", NO_SRC_PORT),
            ("dst-port", NO_SRC_ADDR | NO_SRC_PORT)]
POLICY_KEYS = [KEYS[0], KEYS[4], KEYS[9], KEYS[10]]


def with_policy(src, sport, dst, dport, omit):
    if omit & NO_SRC_ADDR:
        src = "0.0.0.0" if ":" not in src else "::"
    if omit & NO_SRC_PORT:
        sport = 0
    if omit & NO_DST_PORT:
        dport = 0
    return src, sport, dst, dport


def main():
    for data, seed, want in VECTORS:
        got = murmur3_32(data, seed)
        assert got == want, f"murmur3_32({data!r}, {seed:#x}) = {got:#010x}, published {want:#010x}"
    print(f"// {len(VECTORS)} published MurmurHash3_x86_32 vectors reproduced")
    for src, sport, dst, dport, proto, seed in KEYS:
        data, length = key_bytes(src, sport, dst, dport, proto)
        h = murmur3_32(data, seed, length)
        print(f'    {{"{src}", {sport}, "{dst}", {dport}, {proto}, 0x{seed:08x}u, 0x{h:08x}u}},')
    print("// per hash policy: (src, sport, dst, dport, proto, seed, omit, hash)")
    for src, sport, dst, dport, proto, seed in POLICY_KEYS:
        for name, omit in POLICIES:
            data, length = key_bytes(*with_policy(src, sport, dst, dport, omit), proto)
            h = murmur3_32(data, seed, length)
            print(f'    {{"{src}", {sport}, "{dst}", {dport}, {proto}, 0x{seed:08x}u, {omit}, 0x{h:08x}u}},  // {name}')


if __name__ == "__main__":
    main()
