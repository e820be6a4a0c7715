// Test frames for the bench: Ethernet + IPv4 + TCP or UDP, built by hand (bench links no test code).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace fulcrum::bench {

using Bytes = std::vector<std::uint8_t>;
using Mac = std::array<std::uint8_t, 6>;

struct TcpFrame {
    Mac dst_mac{}, src_mac{};
    std::string src, dst;          // IPv4 addresses as text
    std::uint16_t sport = 0, dport = 0;
    std::uint8_t tcp_flags = 0x10;  // ACK: an established flow's packet; 0x02 (SYN) opens one
};

// A 60-byte frame (the Ethernet minimum without FCS): 14 + 20 (IPv4, checksum set) + 20 (TCP ACK)
// + 6 bytes of payload. The TCP checksum is left 0: nothing on the measured paths verifies it.
Bytes tcp_frame(const TcpFrame& f);

struct UdpFrame {
    Mac dst_mac{}, src_mac{};
    std::string src, dst;          // IPv4 addresses as text
    std::uint16_t sport = 0, dport = 0;
    Bytes payload;
};

// Ethernet + IPv4 (checksum set, DF) + UDP + the payload; the UDP checksum is left 0 ("none").
Bytes udp_frame(const UdpFrame& f);

// Network-order IPv4 address of a dotted quad; aborts on a malformed literal (they are constants).
std::uint32_t ipv4(const std::string& text);

std::string mac_text(const Mac& mac);

}  // namespace fulcrum::bench
