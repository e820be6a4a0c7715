// Test packets built byte by byte, independently of the BPF code: Ethernet (+802.1Q), IPv4 (with
// options, fragments), IPv6 (with extension headers), TCP, UDP, ICMP, ICMPv6, with checksums.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fulcrum::test {

using Bytes = std::vector<std::uint8_t>;

struct Mac {
    std::uint8_t b[6];
};

inline constexpr std::uint16_t kEthIPv4 = 0x0800, kEthIPv6 = 0x86dd, kEthArp = 0x0806,
                               kEthVlan = 0x8100;
inline constexpr std::uint8_t kTcp = 6, kUdp = 17, kIcmp = 1, kIcmp6 = 58, kIpip = 4, kIpv6 = 41,
                              kHopByHop = 0, kRouting = 43, kFragment = 44, kDstOpts = 60;

Bytes ethernet(Mac dst, Mac src, std::uint16_t ethertype, const Bytes& payload,
               std::optional<std::uint16_t> vlan_tci = std::nullopt);

struct V4 {
    std::string src, dst;
    std::uint8_t proto = kTcp;
    std::uint8_t tos = 0;
    std::uint8_t ttl = 64;
    std::uint16_t id = 0x1234;
    std::uint16_t flags_frag = 0x4000;  // DF; MF = 0x2000, offset in 8-byte units below it
    Bytes options;                      // padded to 4 bytes by the caller
};
Bytes ipv4(const V4& h, const Bytes& payload);

struct V6 {
    std::string src, dst;
    std::uint8_t next = kTcp;
    std::uint8_t traffic_class = 0;
    std::uint32_t flow_label = 0;
    std::uint8_t hop_limit = 64;
};
Bytes ipv6(const V6& h, const Bytes& payload);
// An extension header (hop-by-hop, routing, destination options) of 8 bytes carrying next.
Bytes ext_header(std::uint8_t next, std::uint8_t type_specific = 0);
Bytes fragment_header(std::uint8_t next, std::uint16_t offset, bool more, std::uint32_t id);

inline constexpr std::uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;
Bytes tcp(std::uint16_t sport, std::uint16_t dport, std::size_t payload_len = 0,
          std::uint8_t flags = kTcpSyn);
Bytes udp(std::uint16_t sport, std::uint16_t dport, std::size_t payload_len = 0);
// GUE variant 1 as Fulcrum sends it: a UDP header (checksum zero) with `inner` right after it.
Bytes gue(std::uint16_t sport, std::uint16_t dport, const Bytes& inner);
Bytes icmp4(std::uint8_t type, std::uint8_t code, std::uint32_t rest, const Bytes& body);
Bytes icmp6(const std::string& src, const std::string& dst, std::uint8_t type, std::uint8_t code,
            std::uint32_t rest, const Bytes& body);

std::uint16_t inet_checksum(const std::uint8_t* data, std::size_t len, std::uint32_t seed = 0);
Bytes addr_bytes(const std::string& address);  // 4 or 16 bytes, network order
Bytes concat(const Bytes& a, const Bytes& b);
Bytes slice(const Bytes& b, std::size_t from, std::size_t len);
std::string hex(const Bytes& b);

}  // namespace fulcrum::test
