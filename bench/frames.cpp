// Test frames for the bench: see frames.h.
#include "frames.h"

#include <arpa/inet.h>

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

Bytes tcp_frame(const TcpFrame& f)
{
    constexpr std::size_t kEth = 14, kIp = 20, kTcp = 20, kPayload = 6;
    Bytes b(kEth + kIp + kTcp + kPayload, 0);
    std::memcpy(&b[0], f.dst_mac.data(), 6);
    std::memcpy(&b[6], f.src_mac.data(), 6);
    b[12] = 0x08;  // IPv4
    b[13] = 0x00;

    std::uint8_t* ip = &b[kEth];
    ip[0] = 0x45;
    std::uint16_t total = htons(kIp + kTcp + kPayload);
    std::memcpy(ip + 2, &total, 2);
    ip[6] = 0x40;  // DF, as TCP stacks send
    ip[8] = 64;    // TTL
    ip[9] = 6;     // TCP
    std::uint32_t src = ipv4(f.src), dst = ipv4(f.dst);
    std::memcpy(ip + 12, &src, 4);
    std::memcpy(ip + 16, &dst, 4);
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < kIp; i += 2)
        sum += static_cast<std::uint32_t>(ip[i] << 8 | ip[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    std::uint16_t check = htons(static_cast<std::uint16_t>(~sum));
    std::memcpy(ip + 10, &check, 2);

    std::uint8_t* tcp = ip + kIp;
    std::uint16_t sport = htons(f.sport), dport = htons(f.dport);
    std::memcpy(tcp, &sport, 2);
    std::memcpy(tcp + 2, &dport, 2);
    tcp[12] = 5 << 4;  // data offset: 20 bytes
    tcp[13] = f.tcp_flags;
    tcp[14] = 0xff;    // window
    return b;
}

}  // namespace fulcrum::bench
