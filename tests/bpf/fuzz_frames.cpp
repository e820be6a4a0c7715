// Frame generators and mutations of the data-plane fuzzer: see fuzz_frames.h.
#include "fuzz_frames.h"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "lab.h"
#include "services.h"

namespace fulcrum::test::fuzz {
namespace {

constexpr std::uint16_t kEthQinQ = 0x88a8, kEthQinQOld = 0x9100, kEthLldp = 0x88cc, kEthMpls = 0x8847;

std::string v4_in_bench(Rng& rng)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "198.%u.%u.%u", 18 + rng.below(2), rng.below(256), rng.below(256));
    return buf;
}

std::string client4(Rng& rng)
{
    if (rng.percent(70)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "198.18.50.%u", 1 + rng.below(16));  // few: flows repeat
        return buf;
    }
    return v4_in_bench(rng);
}

std::string client6(Rng& rng)
{
    char buf[64];
    if (rng.percent(70))
        std::snprintf(buf, sizeof buf, "2001:db8:50::%x", 1 + rng.below(16));
    else
        std::snprintf(buf, sizeof buf, "2001:db8:%x:%x::%x", rng.below(0x10000), rng.below(0x10000),
                      rng.below(0x10000));
    return buf;
}

std::string non_vip4(Rng& rng)
{
    static const char* const fixed[] = {"198.18.0.1", "198.18.100.9", "198.18.100.200", "198.18.100.0",
                                        "198.18.0.11", "198.19.100.1", "198.18.101.1"};
    return rng.percent(60) ? std::string(rng.pick(fixed)) : v4_in_bench(rng);
}

std::string non_vip6(Rng& rng)
{
    static const char* const fixed[] = {"2001:db8:0:1::1", "2001:db8:100::2", "2001:db8:100::", "2001:db8:0:1::11",
                                        "2001:db8:100::1:1"};
    if (rng.percent(60))
        return rng.pick(fixed);
    char buf[64];
    std::snprintf(buf, sizeof buf, "2001:db8:%x::%x", rng.below(0x10000), rng.below(0x10000));
    return buf;
}

Mac random_mac(Rng& rng)
{
    Mac m{};
    for (auto& b : m.b)
        b = rng.byte();
    return m;
}

std::optional<std::uint16_t> maybe_vlan(Rng& rng)
{
    if (!rng.percent(20))
        return std::nullopt;
    return static_cast<std::uint16_t>(rng.below(0x10000));
}

Bytes random_bytes(Rng& rng, std::size_t n)
{
    Bytes b(n);
    for (auto& x : b)
        x = rng.byte();
    return b;
}

std::size_t payload_len(Rng& rng)
{
    std::uint32_t p = rng.below(100);
    if (p < 70)
        return rng.below(64);
    if (p < 85)
        return rng.below(1600);
    return rng.range(1400, 1500);  // around the tunnel MTU (1500 - 20 or - 40)
}

Bytes v4_options(Rng& rng)
{
    Bytes o;
    switch (rng.below(5)) {
    case 0: o = {1, 1, 1, 0}; break;                                  // NOP NOP NOP EOL
    case 1: o = {7, 7, 4, 0, 0, 0, 0, 1}; break;                      // record route, 1 slot
    case 2: o = {0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}; break;      // timestamp
    case 3: o = {0x94, 4, 0, 0}; break;                               // router alert
    default: o = random_bytes(rng, 4 * rng.range(1, 10)); break;      // anything, up to 40 bytes
    }
    while (o.size() % 4)
        o.push_back(0);
    return o;
}

// An IPv6 extension-header chain (hop-by-hop, routing, destination options, sometimes a
// fragment header) ending in `last`; *first is the first header's type.
Bytes ext_chain(Rng& rng, std::uint8_t last, std::uint8_t* first)
{
    static const std::uint8_t kinds[] = {kHopByHop, kRouting, kDstOpts};
    std::uint32_t n = rng.percent(50) ? rng.below(3) : rng.below(7);
    Bytes chain;
    std::uint8_t next = last;
    for (std::uint32_t i = 0; i < n; i++) {
        std::uint8_t kind = rng.percent(8) ? kFragment : rng.pick(kinds);
        Bytes h;
        if (kind == kFragment) {
            h = fragment_header(next, static_cast<std::uint16_t>(rng.percent(50) ? 0 : rng.below(8192)),
                                rng.percent(50), static_cast<std::uint32_t>(rng.next()));
        } else {
            std::uint8_t len = static_cast<std::uint8_t>(rng.percent(70) ? 0 : rng.below(3));
            h = Bytes((len + 1) * 8, 0);
            h[0] = next;
            h[1] = len;
            h[2] = 1;  // PadN filling the rest
            h[3] = static_cast<std::uint8_t>(h.size() - 4);
        }
        chain = concat(h, chain);
        next = kind;
    }
    *first = next;
    return chain;
}

struct Target {
    const std::string* vip;
    std::uint16_t port;  // 0: any port
    std::uint8_t proto;
};

// Service (and near-service) destinations of standard_services.
const Target kTargets[] = {
    {&kVip4, 80, kTcp},       {&kVip4, 53, kUdp},        {&kVip6, 443, kTcp},       {&kVip6, 53, kUdp},
    {&kVip4Port0, 0, kTcp},   {&kVip4Empty, 80, kTcp},   {&kVip4NoNeigh, 80, kTcp}, {&kVip4NoRoute, 80, kTcp},
    {&kVip4Other, 80, kTcp},  {&kVip4Multi, 80, kTcp},   {&kVip4Multi, 80, kTcp},   {&kVip4, 80, kTcp},
    {&kVip4, 0, kTcp},        {&kVip4, 0, kUdp},         {&kVip6, 0, kTcp},         {&kVip4Port0, 0, kUdp},
    {&kVip4Multi, 0, kUdp},   {&kVip6, 0, kUdp},         {&kVip4NoEgress, 80, kTcp},
    {&kVip4Multi, kQuicPort, kUdp}, {&kVip4Multi, kQuicPort, kUdp},
};

bool is_v6(const std::string& a) { return a.find(':') != std::string::npos; }

// A QUIC-shaped datagram payload: short headers (fixed bit set or not) naming a known, unknown or
// zero server id, long headers, and any of them cut short before or inside the id.
Bytes quic_payload(Rng& rng)
{
    std::uint32_t p = rng.below(100);
    std::uint8_t first = p < 60 ? static_cast<std::uint8_t>(0x40 | (rng.byte() & 0x3f))
                         : p < 85 ? static_cast<std::uint8_t>(0x80 | rng.byte())
                                  : static_cast<std::uint8_t>(rng.byte() & 0x3f);  // fixed bit clear
    std::uint32_t id = rng.percent(70) ? rng.pick(kQuicIds) : rng.percent(50) ? 0 : rng.below(0x10000);
    Bytes b{first, static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id)};
    std::size_t rest = rng.percent(80) ? rng.below(60) : 0;
    for (std::size_t i = 0; i < rest; i++)
        b.push_back(rng.byte());
    if (rng.percent(15))
        b.resize(rng.below(3));  // truncated: nothing, the first byte, half the id
    return b;
}

Bytes l4_of(Rng& rng, std::uint8_t proto, std::uint16_t sport, std::uint16_t dport)
{
    if (proto == kUdp && dport == kQuicPort && rng.percent(90)) {
        Bytes payload = quic_payload(rng);
        Bytes u = udp(sport, dport, payload.size());
        std::copy(payload.begin(), payload.end(), u.begin() + 8);
        return u;
    }
    std::size_t len = payload_len(rng);
    return proto == kTcp ? tcp(sport, dport, len) : udp(sport, dport, len);
}

// Wraps an IP packet in Ethernet (maybe tagged), maybe pads it (zeros to the 60-byte minimum,
// or bytes beyond the IP total length).
Frame finish(Rng& rng, const Bytes& ip, bool v6, std::string kind)
{
    Mac dst = rng.percent(95) ? kBalancerMac : random_mac(rng);
    Mac src = rng.percent(95) ? kRouterMac : random_mac(rng);
    auto vlan = maybe_vlan(rng);
    Bytes f = ethernet(dst, src, v6 ? kEthIPv6 : kEthIPv4, ip, vlan);
    if (vlan)
        kind += "+vlan";
    std::uint32_t p = rng.below(100);
    if (p < 25) {
        while (f.size() < 60)
            f.push_back(0);
    } else if (p < 40) {
        std::size_t extra = rng.range(1, 40);
        Bytes pad = rng.percent(50) ? Bytes(extra, 0) : random_bytes(rng, extra);
        f = concat(f, pad);
        kind += "+padding";
    }
    return {f, kind};
}

// A valid frame to a service or near-service destination.
Frame service_frame(Rng& rng)
{
    const Target& t = rng.pick(kTargets);
    bool v6 = is_v6(*t.vip);
    std::uint16_t dport = t.port ? t.port : static_cast<std::uint16_t>(rng.below(0x10000));
    if (t.port && rng.percent(5))
        dport = static_cast<std::uint16_t>(rng.below(0x10000));  // unserved port
    std::uint16_t sport = static_cast<std::uint16_t>(rng.percent(70) ? 40000 + rng.below(64) : rng.below(0x10000));
    Bytes l4 = l4_of(rng, t.proto, sport, dport);
    if (t.proto == kTcp) {  // SYN opens a flow, others confirm or follow one (README "Flow table")
        static const std::uint8_t flags[] = {0x02, 0x02, 0x02, 0x10, 0x10, 0x18, 0x12, 0x04, 0x14, 0x11, 0x01, 0x00};
        l4[13] = rng.percent(90) ? rng.pick(flags) : rng.byte();
    }
    std::string kind = std::string(v6 ? "v6" : "v4") + (t.proto == kTcp ? "-tcp" : "-udp") + "-service";
    if (!v6) {
        V4 h{.src = client4(rng), .dst = *t.vip, .proto = t.proto};
        h.tos = rng.percent(30) ? rng.byte() : 0;
        h.ttl = rng.byte();
        h.id = static_cast<std::uint16_t>(rng.next());
        h.flags_frag = rng.percent(85) ? 0x4000 : 0;
        if (rng.percent(15)) {
            h.options = v4_options(rng);
            kind += "+options";
        }
        return finish(rng, ipv4(h, l4), false, kind);
    }
    V6 h{.src = client6(rng), .dst = *t.vip, .next = t.proto};
    h.traffic_class = rng.percent(30) ? rng.byte() : 0;
    h.flow_label = rng.percent(30) ? rng.below(1u << 20) : 0;
    h.hop_limit = rng.byte();
    if (rng.percent(25)) {
        std::uint8_t first = t.proto;
        Bytes chain = ext_chain(rng, t.proto, &first);
        h.next = first;
        l4 = concat(chain, l4);
        kind += "+ext";
    }
    return finish(rng, ipv6(h, l4), true, kind);
}

// The first bytes of a reply a backend sent for a flow (VIP -> client), as an ICMP error quotes it.
Bytes quoted_reply(Rng& rng, bool v6, const std::string& vip, std::string* kind)
{
    const Target& t = rng.pick(kTargets);
    std::string from = vip;
    std::uint8_t proto = rng.percent(50) ? kTcp : kUdp;
    std::uint16_t vip_port = static_cast<std::uint16_t>(rng.below(0x10000));
    if (is_v6(*t.vip) == v6 && rng.percent(80)) {
        from = *t.vip;
        proto = t.proto;
        vip_port = t.port ? t.port : vip_port;
    }
    std::uint32_t variant = rng.below(100);
    std::uint16_t client_port = static_cast<std::uint16_t>(40000 + rng.below(64));
    Bytes l4 = proto == kTcp ? tcp(vip_port, client_port, rng.below(40)) : udp(vip_port, client_port, rng.below(40));
    if (variant < 8) {
        static const std::uint8_t others[] = {kIcmp, kIcmp6, 47, 50, 132, kIpip};
        proto = rng.pick(others);
        *kind += "-quote-proto";
    }
    if (variant >= 8 && variant < 16) {
        from = v6 ? client6(rng) : client4(rng);  // not sent from this VIP
        *kind += "-quote-foreign";
    }
    Bytes quoted;
    if (!v6) {
        V4 h{.src = from, .dst = client4(rng), .proto = proto};
        if (variant >= 16 && variant < 22)
            h.options = v4_options(rng);
        quoted = ipv4(h, l4);
        if (rng.percent(60))
            quoted = slice(quoted, 0, std::min<std::size_t>(quoted.size(), 20 + h.options.size() + 8));
    } else {
        V6 h{.src = from, .dst = client6(rng), .next = proto};
        quoted = ipv6(h, l4);
    }
    if (variant >= 22 && variant < 32) {
        quoted = slice(quoted, 0, rng.below(static_cast<std::uint32_t>(quoted.size())));
        *kind += "-quote-truncated";
    }
    return quoted;
}

Frame icmp_frame(Rng& rng)
{
    bool v6 = rng.percent(40);
    static const std::string* const vips4[] = {&kVip4, &kVip4Multi, &kVip4Port0, &kVip4Other, &kVip4Empty,
                                               &kVip4NoNeigh, &kVip4NoRoute, &kVip4NoEgress};
    const std::string& to = v6 ? kVip6 : *rng.pick(vips4);
    std::string kind = v6 ? "icmp6" : "icmp4";
    std::uint32_t what = rng.below(100);
    Bytes body;
    std::uint8_t type, code = 0;
    std::uint32_t rest = static_cast<std::uint32_t>(rng.next());
    if (what < 35) {
        type = v6 ? 128 : 8;
        body = random_bytes(rng, rng.percent(90) ? rng.below(64) : rng.range(1400, 1500));
        kind += "-echo";
    } else if (what < 85) {
        static const std::uint8_t errs6[] = {1, 2};
        type = v6 ? rng.pick(errs6) : 3;
        code = static_cast<std::uint8_t>(rng.below(v6 ? 8 : 16));
        kind += "-error";
        body = quoted_reply(rng, v6, to, &kind);
        if (rng.percent(3)) {
            body = concat(body, Bytes(rng.range(1400, 1500), 0x55));  // oversized error
            kind += "-big";
        }
    } else {
        static const std::uint8_t other4[] = {0, 4, 5, 11, 12, 13, 14, 15, 17, 30, 42, 255};
        static const std::uint8_t other6[] = {3, 4, 129, 130, 133, 134, 135, 136, 137, 143, 200, 255};
        type = v6 ? rng.pick(other6) : rng.pick(other4);
        body = rng.percent(50) ? random_bytes(rng, rng.below(48)) : quoted_reply(rng, v6, to, &kind);
        kind += "-type" + std::to_string(type);
    }
    std::string src = rng.percent(50) ? (v6 ? client6(rng) : client4(rng)) : (v6 ? "2001:db8:0:1::fe" : "198.18.0.254");
    if (!v6) {
        V4 h{.src = src, .dst = to, .proto = kIcmp};
        h.flags_frag = rng.percent(80) ? 0x4000 : 0;
        h.ttl = rng.byte();
        if (rng.percent(8))
            h.options = v4_options(rng);
        Bytes m = icmp4(type, code, rest, body);
        if (rng.percent(5)) {
            m[2] ^= static_cast<std::uint8_t>(1 + rng.below(255));  // bad ICMP checksum
            kind += "-badsum";
        }
        return finish(rng, ipv4(h, m), false, kind);
    }
    V6 h{.src = src, .dst = to, .next = kIcmp6};
    h.hop_limit = rng.byte();
    Bytes m = icmp6(src, to, type, code, rest, body);
    if (rng.percent(5)) {
        m[2] ^= static_cast<std::uint8_t>(1 + rng.below(255));
        kind += "-badsum";
    }
    if (rng.percent(15)) {
        std::uint8_t first = kIcmp6;
        Bytes chain = ext_chain(rng, kIcmp6, &first);
        h.next = first;
        m = concat(chain, m);
        kind += "+ext";
    }
    return finish(rng, ipv6(h, m), true, kind);
}

Frame fragment_frame(Rng& rng)
{
    if (rng.percent(50)) {
        V4 h{.src = client4(rng), .dst = rng.percent(80) ? kVip4 : kVip4Multi, .proto = rng.percent(70) ? kTcp : kUdp};
        h.flags_frag = static_cast<std::uint16_t>((rng.percent(50) ? 0x2000 : 0) | (rng.percent(30) ? 0 : rng.range(1, 0x1fff)) |
                                                  (rng.percent(50) ? 0x4000 : 0));
        if (!(h.flags_frag & 0x3fff))
            h.flags_frag |= 0x2000;
        return finish(rng, ipv4(h, l4_of(rng, h.proto, 40000, 80)), false, "v4-fragment");
    }
    std::uint8_t proto = rng.percent(70) ? kTcp : kUdp;
    Bytes body = concat(fragment_header(proto, static_cast<std::uint16_t>(rng.percent(40) ? 0 : rng.below(8192)),
                                        rng.percent(50), static_cast<std::uint32_t>(rng.next())),
                        l4_of(rng, proto, 40000, proto == kTcp ? 443 : 53));
    std::uint8_t first = kFragment;
    if (rng.percent(30)) {
        Bytes chain = ext_chain(rng, kFragment, &first);
        body = concat(chain, body);
    }
    return finish(rng, ipv6(V6{.src = client6(rng), .dst = kVip6, .next = first}, body), true, "v6-fragment");
}

Frame non_vip_frame(Rng& rng)
{
    static const std::uint8_t protos[] = {kTcp, kUdp, kIcmp, kIcmp6, kIpip, kIpv6, 47, 50, 89, 132};
    std::uint8_t proto = rng.pick(protos);
    Bytes l4 = proto == kTcp || proto == kUdp ? l4_of(rng, proto, static_cast<std::uint16_t>(rng.next()), 80)
                                             : random_bytes(rng, rng.below(80));
    if (rng.percent(50)) {
        V4 h{.src = client4(rng), .dst = non_vip4(rng), .proto = proto};
        if (rng.percent(10))
            h.options = v4_options(rng);
        h.flags_frag = static_cast<std::uint16_t>(rng.percent(90) ? 0x4000 : rng.below(0x10000));
        return finish(rng, ipv4(h, l4), false, "v4-not-vip");
    }
    return finish(rng, ipv6(V6{.src = client6(rng), .dst = non_vip6(rng), .next = proto}, l4), true, "v6-not-vip");
}

// Frames whose L2 is not plain Ethernet + IP: other EtherTypes, QinQ, stacked tags, raw bytes.
Frame other_l2_frame(Rng& rng)
{
    Bytes ip = rng.percent(60) ? ipv4(V4{.src = client4(rng), .dst = kVip4}, tcp(40000, 80, rng.below(20)))
                               : ipv6(V6{.src = client6(rng), .dst = kVip6}, tcp(40000, 443, rng.below(20)));
    bool v6 = (ip[0] >> 4) == 6;
    std::uint16_t inner = v6 ? kEthIPv6 : kEthIPv4;
    auto tag = [&](std::uint16_t tpid, std::uint16_t next) {
        Bytes t;
        std::uint16_t tci = static_cast<std::uint16_t>(rng.below(0x10000));
        t.push_back(static_cast<std::uint8_t>(tci >> 8));
        t.push_back(static_cast<std::uint8_t>(tci));
        t.push_back(static_cast<std::uint8_t>(next >> 8));
        t.push_back(static_cast<std::uint8_t>(next));
        (void)tpid;
        return t;
    };
    switch (rng.below(7)) {
    case 0:  // QinQ: S-tag 0x88a8, C-tag 0x8100, IP to a VIP
        return {ethernet(kBalancerMac, kRouterMac, kEthQinQ, concat(tag(kEthQinQ, kEthVlan), concat(tag(kEthVlan, inner), ip))),
                "qinq-88a8"};
    case 1:  // two 802.1Q tags
        return {ethernet(kBalancerMac, kRouterMac, kEthVlan, concat(tag(kEthVlan, kEthVlan), concat(tag(kEthVlan, inner), ip))),
                "qinq-8100-8100"};
    case 2:  // old QinQ TPID, or 802.1Q carrying QinQ
        return {ethernet(kBalancerMac, kRouterMac, rng.percent(50) ? kEthQinQOld : kEthVlan,
                         concat(tag(0, rng.percent(50) ? kEthQinQ : inner), ip)),
                "qinq-9100"};
    case 3: {  // ARP, LLDP, MPLS, and any EtherType at all
        static const std::uint16_t types[] = {kEthArp, kEthLldp, kEthMpls, 0x0000, 0x05dc, 0x0600, 0x0801, 0x86dc,
                                              0x86de, 0x88e5, 0x8906, 0xffff};
        std::uint16_t et = rng.percent(50) ? rng.pick(types) : static_cast<std::uint16_t>(rng.below(0x10000));
        return {ethernet(kBalancerMac, kRouterMac, et, rng.percent(50) ? ip : random_bytes(rng, rng.below(100))),
                "ethertype"};
    }
    case 4:  // IPv4 EtherType carrying IPv6 and the reverse
        return {ethernet(kBalancerMac, kRouterMac, v6 ? kEthIPv4 : kEthIPv6, ip), "ethertype-swapped"};
    case 5: {  // random bytes after an IP EtherType
        Bytes junk = random_bytes(rng, rng.below(80));
        if (junk.size() >= 20 && rng.percent(50)) {  // ...to a VIP
            Bytes d = addr_bytes(kVip4);
            std::copy(d.begin(), d.end(), junk.begin() + 16);
        }
        return {ethernet(kBalancerMac, kRouterMac, rng.percent(50) ? kEthIPv4 : kEthIPv6, junk, maybe_vlan(rng)),
                "ip-junk"};
    }
    default:  // anything at all, at least an Ethernet header
        return {random_bytes(rng, rng.range(14, 120)), "random"};
    }
}

// Offsets of the layers of a frame, as far as they can be read (for mutations that aim at
// header fields and layer boundaries).
struct Layers {
    std::size_t l2 = 14;
    bool v4 = false, v6 = false;
    std::size_t l4 = 0;  // 0: unknown
};

Layers layers_of(const Bytes& f)
{
    Layers l;
    if (f.size() < 14)
        return l;
    std::uint16_t et = static_cast<std::uint16_t>(f[12] << 8 | f[13]);
    if (et == kEthVlan && f.size() >= 18) {
        l.l2 = 18;
        et = static_cast<std::uint16_t>(f[16] << 8 | f[17]);
    }
    l.v4 = et == kEthIPv4;
    l.v6 = et == kEthIPv6;
    if (l.v4 && f.size() >= l.l2 + 20)
        l.l4 = l.l2 + (f[l.l2] & 0xf) * 4u;
    if (l.v6 && f.size() >= l.l2 + 40)
        l.l4 = l.l2 + 40;
    return l;
}

void put16(Bytes& f, std::size_t at, std::uint16_t v)
{
    if (at + 2 <= f.size()) {
        f[at] = static_cast<std::uint8_t>(v >> 8);
        f[at + 1] = static_cast<std::uint8_t>(v);
    }
}

std::uint16_t new_length(Rng& rng, std::uint16_t old, std::size_t actual)
{
    switch (rng.below(5)) {
    case 0: return static_cast<std::uint16_t>(old + rng.range(1, 8));
    case 1: return static_cast<std::uint16_t>(old - rng.range(1, 8));
    case 2: return static_cast<std::uint16_t>(actual + rng.range(0, 4) - 2);
    case 3: return rng.percent(50) ? 0 : 0xffff;
    default: return static_cast<std::uint16_t>(rng.below(0x10000));
    }
}

}  // namespace

const char* const kDecapAddresses[] = {"198.18.0.11", "198.18.0.12", "198.18.0.20", "198.18.0.21", "198.18.0.22",
                                       "198.18.0.23", "198.18.2.11", "198.18.3.11", "198.19.200.1", "2001:db8:0:1::11",
                                       "2001:db8:0:1::12", "2001:db8:0:1::13"};
const std::size_t kDecapAddressCount = sizeof kDecapAddresses / sizeof kDecapAddresses[0];

void mutate(Rng& rng, Frame& frame)
{
    Bytes& f = frame.bytes;
    std::uint32_t count = rng.percent(70) ? 1 : rng.range(2, 3);
    for (std::uint32_t i = 0; i < count; i++) {
        Layers l = layers_of(f);
        std::size_t header_end = std::min(f.size(), l.l4 ? l.l4 + 48 : l.l2 + 60);
        switch (rng.below(11)) {
        case 0:  // flip a bit anywhere
            if (!f.empty())
                f[rng.below(static_cast<std::uint32_t>(f.size()))] ^= static_cast<std::uint8_t>(1u << rng.below(8));
            frame.kind += "+bitflip";
            break;
        case 1:  // a random byte in the headers
        case 2:
            if (header_end)
                f[rng.below(static_cast<std::uint32_t>(header_end))] = rng.byte();
            frame.kind += "+byte";
            break;
        case 3:  // IP length field
            if (l.v4 && f.size() >= l.l2 + 4)
                put16(f, l.l2 + 2, new_length(rng, static_cast<std::uint16_t>(f[l.l2 + 2] << 8 | f[l.l2 + 3]), f.size() - l.l2));
            else if (l.v6 && f.size() >= l.l2 + 6)
                put16(f, l.l2 + 4, new_length(rng, static_cast<std::uint16_t>(f[l.l2 + 4] << 8 | f[l.l2 + 5]), f.size() - l.l2 - 40));
            frame.kind += "+iplen";
            break;
        case 4:  // header length: IPv4 IHL, IPv6 first extension header's length, quoted IHL
            if (l.v4 && f.size() > l.l2)
                f[l.l2] = static_cast<std::uint8_t>((f[l.l2] & 0xf0) | rng.below(16));
            else if (l.v6 && f.size() > l.l2 + 41)
                f[l.l2 + 41] = static_cast<std::uint8_t>(rng.below(rng.percent(50) ? 4 : 256));
            frame.kind += "+hdrlen";
            break;
        case 5: {  // truncation, preferably at or next to a layer boundary
            std::size_t cuts[] = {14, 16, 18, l.l2 + 1, l.l2 + 19, l.l2 + 20, l.l2 + 39, l.l2 + 40,
                                  l.l4, l.l4 + 4, l.l4 + 7, l.l4 + 8, l.l4 + 19, l.l4 + 20, l.l4 + 28, l.l4 + 48};
            std::size_t at = rng.percent(60) ? cuts[rng.below(16)] + rng.below(3) - 1
                                             : rng.below(static_cast<std::uint32_t>(f.size()));
            if (at < f.size())
                f.resize(std::max<std::size_t>(at, 14));
            frame.kind += "+truncated";
            break;
        }
        case 6: {  // bytes beyond the IP packet (Ethernet padding)
            std::size_t n = rng.range(1, 48);
            Bytes pad = rng.percent(40) ? Bytes(n, 0) : random_bytes(rng, n);
            f = concat(f, pad);
            frame.kind += "+padding";
            break;
        }
        case 7:  // the (inner) EtherType, or a tag added
            if (rng.percent(50) && f.size() >= 14) {
                static const std::uint16_t types[] = {kEthIPv4, kEthIPv6, kEthVlan, kEthQinQ, kEthArp};
                put16(f, l.l2 - 2, rng.pick(types));
            } else {
                Bytes tag{static_cast<std::uint8_t>(kEthVlan >> 8), static_cast<std::uint8_t>(kEthVlan & 0xff),
                          rng.byte(), rng.byte()};
                f.insert(f.begin() + 12, tag.begin(), tag.end());
            }
            frame.kind += "+ethertype";
            break;
        case 8: {  // protocol / next header
            static const std::uint8_t protos[] = {kTcp, kUdp, kIcmp, kIcmp6, kFragment, kHopByHop, kRouting,
                                                  kDstOpts, kIpip, kIpv6, 47, 50, 59, 255};
            if (l.v4 && f.size() > l.l2 + 9)
                f[l.l2 + 9] = rng.pick(protos);
            else if (l.v6 && f.size() > l.l2 + 6)
                f[l.l2 + 6] = rng.pick(protos);
            frame.kind += "+proto";
            break;
        }
        case 9: {  // a byte of the destination address (VIP <-> not a VIP)
            std::size_t at = l.v4 ? l.l2 + 16 + rng.below(4) : l.l2 + 24 + rng.below(16);
            if (at < f.size())
                f[at] ^= static_cast<std::uint8_t>(1u << rng.below(8));
            frame.kind += "+daddr";
            break;
        }
        default:  // ports, ICMP type/code, quoted header bytes
            if (l.l4 && l.l4 < f.size()) {
                std::size_t at = l.l4 + rng.below(static_cast<std::uint32_t>(std::min<std::size_t>(f.size() - l.l4, 60)));
                f[at] = rng.byte();
            }
            frame.kind += "+l4";
            break;
        }
    }
    if (f.size() < 14)
        f.resize(14, 0);
    if (f.size() > 3000)
        f.resize(3000);
}

Frame balancer_frame(Rng& rng)
{
    std::uint32_t p = rng.below(100);
    Frame f;
    if (p < 40)
        f = service_frame(rng);
    else if (p < 62)
        f = icmp_frame(rng);
    else if (p < 70)
        f = fragment_frame(rng);
    else if (p < 82)
        f = non_vip_frame(rng);
    else
        f = other_l2_frame(rng);
    if (rng.percent(p < 40 ? 55 : 35))
        mutate(rng, f);
    return f;
}

Frame decap_frame(Rng& rng)
{
    // Inner: a client packet to a VIP, or junk.
    bool inner6 = rng.percent(40);
    std::uint8_t inner_tos = rng.percent(30) ? rng.byte() : 0;
    bool local_inner = rng.percent(80);  // to a VIP (local on backends), or elsewhere
    Bytes inner = inner6 ? ipv6(V6{.src = client6(rng), .dst = local_inner ? kVip6 : non_vip6(rng), .traffic_class = inner_tos},
                                tcp(40000, 443, rng.below(60)))
                         : ipv4(V4{.src = client4(rng), .dst = local_inner ? kVip4 : non_vip4(rng),
                                   .proto = rng.percent(50) ? kTcp : kUdp, .tos = inner_tos},
                                tcp(40000, 80, rng.below(60)));
    std::string kind = inner6 ? "tunnel-v6inner" : "tunnel-v4inner";
    if (rng.percent(10)) {
        inner = random_bytes(rng, rng.below(60));
        kind = "tunnel-junkinner";
    }
    bool outer6 = inner6 || rng.percent(40);
    std::string to = kDecapAddresses[rng.below(static_cast<std::uint32_t>(kDecapAddressCount))];
    while ((to.find(':') != std::string::npos) != outer6)
        to = kDecapAddresses[rng.below(static_cast<std::uint32_t>(kDecapAddressCount))];
    if (rng.percent(15))
        to = outer6 ? non_vip6(rng) : non_vip4(rng);
    // GUE (README "GUE"): the inner packet behind UDP, mostly to the GUE port decap listens on.
    bool gue_tunnel = rng.percent(30);
    if (gue_tunnel) {
        std::uint16_t port = rng.percent(85) ? FULCRUM_GUE_DEFAULT_PORT : static_cast<std::uint16_t>(rng.below(0x10000));
        inner = gue(static_cast<std::uint16_t>(rng.range(49152, 65535)), port, inner);
        kind = "gue-" + kind;
    }
    Bytes ip;
    if (!outer6) {
        V4 h{.src = rng.percent(80) ? kTunnelV4 : client4(rng), .dst = to, .proto = gue_tunnel ? kUdp : kIpip, .id = 0};
        h.tos = rng.percent(70) ? inner_tos : rng.byte();  // the balancer copies it; ECN may differ
        if (rng.percent(5))
            h.options = v4_options(rng);
        if (rng.percent(5))
            h.flags_frag = static_cast<std::uint16_t>(rng.below(0x10000));
        if (rng.percent(5))
            h.proto = rng.percent(50) ? kIpv6 : kTcp;
        ip = ipv4(h, inner);
    } else {
        V6 h{.src = rng.percent(80) ? kTunnelV6 : client6(rng), .dst = to,
             .next = gue_tunnel ? kUdp : inner6 ? kIpv6 : kIpip};
        h.traffic_class = rng.percent(70) ? inner_tos : rng.byte();
        if (rng.percent(5))
            h.next = rng.percent(50) ? (inner6 ? kIpip : kIpv6) : kHopByHop;
        ip = ipv6(h, inner);
    }
    Mac dst = backend_mac(to.find(':') != std::string::npos ? "2001:db8:0:1::11" : "198.18.0.11");
    auto vlan = maybe_vlan(rng);
    Bytes f = ethernet(dst, kBalancerMac, outer6 ? kEthIPv6 : kEthIPv4, ip, vlan);
    if (rng.percent(20)) {
        f = concat(f, Bytes(rng.range(1, 30), 0));
        kind += "+padding";
    }
    Frame frame{f, kind};
    if (rng.percent(50))
        mutate(rng, frame);
    return frame;
}

}  // namespace fulcrum::test::fuzz
