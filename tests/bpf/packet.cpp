// Test packet builder: see packet.h. Written from the RFCs, sharing no code with xdp/.
#include "packet.h"

#include <arpa/inet.h>

#include <cstdio>
#include <stdexcept>

namespace fulcrum::test {
namespace {

void put16(Bytes& b, std::size_t at, std::uint16_t v)
{
    b[at] = static_cast<std::uint8_t>(v >> 8);
    b[at + 1] = static_cast<std::uint8_t>(v);
}

void push16(Bytes& b, std::uint16_t v)
{
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

void push32(Bytes& b, std::uint32_t v)
{
    push16(b, static_cast<std::uint16_t>(v >> 16));
    push16(b, static_cast<std::uint16_t>(v));
}

Bytes pattern(std::size_t len)
{
    Bytes p(len);
    for (std::size_t i = 0; i < len; i++)
        p[i] = static_cast<std::uint8_t>(0xa0 + i % 17);
    return p;
}

}  // namespace

std::uint16_t inet_checksum(const std::uint8_t* data, std::size_t len, std::uint32_t seed)
{
    std::uint64_t sum = seed;
    for (std::size_t i = 0; i + 1 < len; i += 2)
        sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (len % 2)
        sum += static_cast<std::uint32_t>(data[len - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

Bytes addr_bytes(const std::string& address)
{
    Bytes out(16);
    if (inet_pton(AF_INET, address.c_str(), out.data()) == 1) {
        out.resize(4);
        return out;
    }
    if (inet_pton(AF_INET6, address.c_str(), out.data()) == 1)
        return out;
    throw std::invalid_argument("not an address: " + address);
}

Bytes concat(const Bytes& a, const Bytes& b)
{
    Bytes out = a;
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

Bytes slice(const Bytes& b, std::size_t from, std::size_t len)
{
    return Bytes(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + len));
}

std::string hex(const Bytes& b)
{
    std::string s;
    char buf[4];
    for (std::size_t i = 0; i < b.size(); i++) {
        std::snprintf(buf, sizeof buf, "%02x", b[i]);
        s += buf;
        if (i % 2 == 1 && i + 1 < b.size())
            s += ' ';
    }
    return s;
}

Bytes ethernet(Mac dst, Mac src, std::uint16_t ethertype, const Bytes& payload,
               std::optional<std::uint16_t> vlan_tci)
{
    Bytes f;
    for (std::uint8_t byte : dst.b)  // (not insert(): g++ 12 warns falsely on it at -O2)
        f.push_back(byte);
    for (std::uint8_t byte : src.b)
        f.push_back(byte);
    if (vlan_tci) {
        push16(f, kEthVlan);
        push16(f, *vlan_tci);
    }
    push16(f, ethertype);
    return concat(f, payload);
}

Bytes ipv4(const V4& h, const Bytes& payload)
{
    Bytes ip;
    std::size_t header_len = 20 + h.options.size();
    ip.push_back(static_cast<std::uint8_t>(0x40 | header_len / 4));
    ip.push_back(h.tos);
    push16(ip, static_cast<std::uint16_t>(header_len + payload.size()));
    push16(ip, h.id);
    push16(ip, h.flags_frag);
    ip.push_back(h.ttl);
    ip.push_back(h.proto);
    push16(ip, 0);
    Bytes s = addr_bytes(h.src), d = addr_bytes(h.dst);
    ip.insert(ip.end(), s.begin(), s.end());
    ip.insert(ip.end(), d.begin(), d.end());
    ip.insert(ip.end(), h.options.begin(), h.options.end());
    put16(ip, 10, inet_checksum(ip.data(), ip.size()));
    return concat(ip, payload);
}

Bytes ipv6(const V6& h, const Bytes& payload)
{
    Bytes ip;
    push32(ip, 6u << 28 | static_cast<std::uint32_t>(h.traffic_class) << 20 | (h.flow_label & 0xfffff));
    push16(ip, static_cast<std::uint16_t>(payload.size()));
    ip.push_back(h.next);
    ip.push_back(h.hop_limit);
    Bytes s = addr_bytes(h.src), d = addr_bytes(h.dst);
    ip.insert(ip.end(), s.begin(), s.end());
    ip.insert(ip.end(), d.begin(), d.end());
    return concat(ip, payload);
}

Bytes ext_header(std::uint8_t next, std::uint8_t type_specific)
{
    // 8 bytes: next header, length 0 (= 8 bytes), then PadN-style filler.
    return Bytes{next, 0, type_specific, 4, 0, 0, 0, 0};
}

Bytes fragment_header(std::uint8_t next, std::uint16_t offset, bool more, std::uint32_t id)
{
    Bytes f{next, 0};
    push16(f, static_cast<std::uint16_t>(offset << 3 | (more ? 1 : 0)));
    push32(f, id);
    return f;
}

Bytes tcp(std::uint16_t sport, std::uint16_t dport, std::size_t payload_len, std::uint8_t flags)
{
    Bytes t;
    push16(t, sport);
    push16(t, dport);
    push32(t, 1000);        // sequence
    push32(t, 0);           // ack
    push16(t, static_cast<std::uint16_t>(5 << 12 | flags));  // data offset 5, flags
    push16(t, 65535);       // window
    push16(t, 0);           // checksum: the balancer never reads or writes it
    push16(t, 0);           // urgent
    return concat(t, pattern(payload_len));
}

Bytes udp(std::uint16_t sport, std::uint16_t dport, std::size_t payload_len)
{
    Bytes u;
    push16(u, sport);
    push16(u, dport);
    push16(u, static_cast<std::uint16_t>(8 + payload_len));
    push16(u, 0);  // no checksum (IPv4); never read by the balancer
    return concat(u, pattern(payload_len));
}

Bytes gue(std::uint16_t sport, std::uint16_t dport, const Bytes& inner)
{
    Bytes u;
    push16(u, sport);
    push16(u, dport);
    push16(u, static_cast<std::uint16_t>(8 + inner.size()));
    push16(u, 0);  // zero checksum: IPv4 "none", IPv6 RFC 6935/6936 (README "GUE")
    return concat(u, inner);
}

Bytes icmp4(std::uint8_t type, std::uint8_t code, std::uint32_t rest, const Bytes& body)
{
    Bytes m{type, code, 0, 0};
    push32(m, rest);
    m = concat(m, body);
    put16(m, 2, inet_checksum(m.data(), m.size()));
    return m;
}

Bytes icmp6(const std::string& src, const std::string& dst, std::uint8_t type, std::uint8_t code,
            std::uint32_t rest, const Bytes& body)
{
    Bytes m{type, code, 0, 0};
    push32(m, rest);
    m = concat(m, body);
    Bytes pseudo = concat(addr_bytes(src), addr_bytes(dst));
    push32(pseudo, static_cast<std::uint32_t>(m.size()));
    push32(pseudo, kIcmp6);
    std::uint16_t partial = static_cast<std::uint16_t>(~inet_checksum(pseudo.data(), pseudo.size()));
    put16(m, 2, inet_checksum(m.data(), m.size(), partial));
    return m;
}

}  // namespace fulcrum::test
