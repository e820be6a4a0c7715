// Test frames for the bench: see frames.h.
#include "frames.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fulcrum::bench {

std::uint32_t ipv4(const std::string& text)
{
    in_addr a{};
    if (inet_pton(AF_INET, text.c_str(), &a) != 1) {
        std::fprintf(stderr, "fulcrum-bench: bad IPv4 literal %s\n", text.c_str());
        std::abort();
    }
    return a.s_addr;
}

std::string mac_text(const Mac& m)
{
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return buf;
}

namespace {

constexpr std::size_t kEth = 14, kIp = 20;

// Ethernet + IPv4 header (DF, TTL 64, checksum set) for `l4_len` bytes of protocol `proto`;
// returns the frame with the L4 bytes zeroed, to be filled from offset kEth + kIp.
Bytes ipv4_frame(const Mac& dst_mac, const Mac& src_mac, const std::string& src, const std::string& dst,
                 std::uint8_t proto, std::size_t l4_len)
{
    Bytes b(kEth + kIp + l4_len, 0);
    std::memcpy(&b[0], dst_mac.data(), 6);
    std::memcpy(&b[6], src_mac.data(), 6);
    b[12] = 0x08;  // IPv4
    b[13] = 0x00;

    std::uint8_t* ip = &b[kEth];
    ip[0] = 0x45;
    std::uint16_t total = htons(static_cast<std::uint16_t>(kIp + l4_len));
    std::memcpy(ip + 2, &total, 2);
    ip[6] = 0x40;  // DF, as TCP stacks and QUIC send
    ip[8] = 64;    // TTL
    ip[9] = proto;
    std::uint32_t s = ipv4(src), d = ipv4(dst);
    std::memcpy(ip + 12, &s, 4);
    std::memcpy(ip + 16, &d, 4);
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < kIp; i += 2)
        sum += static_cast<std::uint32_t>(ip[i] << 8 | ip[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    std::uint16_t check = htons(static_cast<std::uint16_t>(~sum));
    std::memcpy(ip + 10, &check, 2);
    return b;
}

}  // namespace

Bytes tcp_frame(const TcpFrame& f)
{
    constexpr std::size_t kTcp = 20, kPayload = 6;
    Bytes b = ipv4_frame(f.dst_mac, f.src_mac, f.src, f.dst, 6, kTcp + kPayload);
    std::uint8_t* tcp = &b[kEth + kIp];
    std::uint16_t sport = htons(f.sport), dport = htons(f.dport);
    std::memcpy(tcp, &sport, 2);
    std::memcpy(tcp + 2, &dport, 2);
    tcp[12] = 5 << 4;  // data offset: 20 bytes
    tcp[13] = f.tcp_flags;
    tcp[14] = 0xff;    // window
    return b;
}

Bytes udp_frame(const UdpFrame& f)
{
    constexpr std::size_t kUdp = 8;
    Bytes b = ipv4_frame(f.dst_mac, f.src_mac, f.src, f.dst, 17, kUdp + f.payload.size());
    std::uint8_t* udp = &b[kEth + kIp];
    std::uint16_t sport = htons(f.sport), dport = htons(f.dport),
                  len = htons(static_cast<std::uint16_t>(kUdp + f.payload.size()));
    std::memcpy(udp, &sport, 2);
    std::memcpy(udp + 2, &dport, 2);
    std::memcpy(udp + 4, &len, 2);
    std::copy(f.payload.begin(), f.payload.end(), udp + kUdp);
    return b;
}

}  // namespace fulcrum::bench
