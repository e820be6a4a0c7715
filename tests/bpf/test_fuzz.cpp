// "A million hostile packets" (issue 12 point 9): the data-plane fuzzer. Frames from
// tests/bpf/fuzz_frames.h (service frames, mutations of them, random frames) go through
// BPF_PROG_TEST_RUN of the balancer and of decap; every output and every counter movement is
// checked against invariants and against an independent model of README's packet table.
//
//   FULCRUM_FUZZ_PACKETS  packets per program (default 1,000,000)
//   FULCRUM_FUZZ_SEED     seed (default below; printed), decimal or 0x-hex
//   FULCRUM_FUZZ_FIRST    index of the first packet (packet i depends only on seed and i, so
//                         FULCRUM_FUZZ_FIRST=i FULCRUM_FUZZ_PACKETS=1 replays one packet)
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "dataplane/decap_program.h"
#include "dataplane/reasons.h"
#include "flow_hash.h"
#include "fuzz_frames.h"
#include "map_dump.h"
#include "services.h"
#include "table.h"

using namespace fulcrum;
using namespace fulcrum::test;
using fuzz::Frame;
using fuzz::Rng;
using fuzz::kNoEgressBackend;
using fuzz::kVip4NoEgress;

namespace {

constexpr std::uint64_t kDefaultSeed = 0xf0c12a9d2026ULL;
constexpr std::uint32_t kMtu = 1500;  // of fl-main and fl-other (veth default)
constexpr std::uint32_t kIdsRead = 24;  // service and backend ids the per-packet checks read


// Decap with allowed tunnel sources (--from), inner destinations that must be local and RFC 6040
// ECN (abi.h defines FULCRUM_DECAP_MAX_SOURCES from then on).
#ifdef FULCRUM_DECAP_MAX_SOURCES
constexpr bool kDecapChecksSources = true;
constexpr int kDecapDropSource = FULCRUM_DECAP_DROP_SOURCE, kDecapDropInnerNotLocal = FULCRUM_DECAP_DROP_INNER_NOT_LOCAL,
              kDecapDropEcnNotEct = FULCRUM_DECAP_DROP_ECN_NOT_ECT;
#else
constexpr bool kDecapChecksSources = false;
constexpr int kDecapDropSource = -2, kDecapDropInnerNotLocal = -3, kDecapDropEcnNotEct = -4;
#endif

std::uint64_t env_u64(const char* name, std::uint64_t fallback)
{
    const char* v = std::getenv(name);
    if (!v || !*v)
        return fallback;
    char* end = nullptr;
    std::uint64_t x = std::strtoull(v, &end, 0);
    if (*end)
        throw std::invalid_argument(std::string(name) + ": not a number: " + v);
    return x;
}

std::uint16_t rd16(const Bytes& b, std::size_t at) { return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]); }

bool same(const Bytes& a, std::size_t a_at, const Bytes& b, std::size_t b_at, std::size_t len)
{
    return a_at + len <= a.size() && b_at + len <= b.size() && std::memcmp(a.data() + a_at, b.data() + b_at, len) == 0;
}

bool same(const Bytes& a, std::size_t a_at, const Bytes& b)
{
    return same(a, a_at, b, 0, b.size());
}

bool mac_is(const Bytes& f, std::size_t at, Mac m)
{
    return at + 6 <= f.size() && std::memcmp(f.data() + at, m.b, 6) == 0;
}

// One's-complement sum check of [from, from+len) plus a seed (pseudo-header): 0 when valid.
bool checksum_ok(const Bytes& f, std::size_t from, std::size_t len, std::uint32_t seed = 0)
{
    return from + len <= f.size() && inet_checksum(f.data() + from, len, seed) == 0;
}

std::uint32_t pseudo6(const Bytes& f, std::size_t ip, std::size_t upper_len, std::uint8_t next)
{
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < 32; i += 2)
        sum += rd16(f, ip + 8 + i);
    sum += static_cast<std::uint32_t>(upper_len >> 16) + static_cast<std::uint32_t>(upper_len & 0xffff) + next;
    return sum;
}

// ---------------------------------------------------------------------------------------------
// Per-CPU counters, read in one batch syscall (keys 0..count-1, summed over CPUs).

struct Count {
    std::uint64_t packets = 0, bytes = 0, new_flows = 0;
};

class PerCpuCounters {
public:
    // count 0: every key of the map.
    PerCpuCounters(int fd, std::uint32_t count, std::uint32_t value_size, int fields)
        : fd_(fd), count_(count ? count : max_entries(fd)), stride_((value_size + 7) / 8 * 8), fields_(fields),
          cpus_(libbpf_num_possible_cpus()), keys_(count_), values_(static_cast<std::size_t>(count_) * stride_ * cpus_),
          sums_(count_)
    {
    }
    static std::uint32_t max_entries(int fd)
    {
        bpf_map_info mi{};
        std::uint32_t len = sizeof mi;
        if (bpf_obj_get_info_by_fd(fd, &mi, &len) != 0)
            throw std::runtime_error("bpf_obj_get_info_by_fd(map) failed");
        return mi.max_entries;
    }
    ~PerCpuCounters() { close(fd_); }
    PerCpuCounters(const PerCpuCounters&) = delete;
    PerCpuCounters& operator=(const PerCpuCounters&) = delete;

    const std::vector<Count>& read()
    {
        std::uint32_t n = count_, out_batch = 0;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int err = bpf_map_lookup_batch(fd_, nullptr, &out_batch, keys_.data(), values_.data(), &n, &opts);
        if ((err && errno != ENOENT) || n != count_)
            throw std::runtime_error("bpf_map_lookup_batch: " + std::string(std::strerror(errno)));
        for (std::uint32_t k = 0; k < count_; k++) {
            Count c;
            const std::uint8_t* base = values_.data() + static_cast<std::size_t>(k) * stride_ * cpus_;
            for (int cpu = 0; cpu < cpus_; cpu++) {
                std::uint64_t v[3] = {};
                std::memcpy(v, base + static_cast<std::size_t>(cpu) * stride_, 8 * fields_);
                c.packets += v[0];
                c.bytes += v[1];
                c.new_flows += v[2];
            }
            sums_[keys_[k]] = c;
        }
        return sums_;
    }

private:
    int fd_;
    std::uint32_t count_, stride_;
    int fields_, cpus_;
    std::vector<std::uint32_t> keys_;
    std::vector<std::uint8_t> values_;
    std::vector<Count> sums_;
};

// What moved between two reads of a counter array: (key, packets, bytes, new_flows) per key.
struct Moved {
    std::uint32_t key;
    Count by;
};
void diff(const std::vector<Count>& before, const std::vector<Count>& after, std::vector<Moved>& out)
{
    out.clear();
    for (std::uint32_t k = 0; k < after.size(); k++)
        if (after[k].packets != before[k].packets || after[k].bytes != before[k].bytes ||
            after[k].new_flows != before[k].new_flows)
            out.push_back({k, {after[k].packets - before[k].packets, after[k].bytes - before[k].bytes,
                               after[k].new_flows - before[k].new_flows}});
}

// ---------------------------------------------------------------------------------------------
// Findings: failures (asserted) and known bugs (counted, printed, not asserted).

struct Findings {
    std::map<std::string, std::uint64_t> failures;    // invariant -> packets violating it
    std::vector<std::string> examples;               // the first few, with frame hex
    std::map<std::string, std::uint64_t> known;      // known bug -> packets showing it
    std::map<std::string, std::string> known_first;  // known bug -> its first packet
    std::uint64_t seed = 0;

    void note_known(const std::string& bug, const char* program, std::uint64_t index, const Frame& in)
    {
        if (known[bug]++ == 0)
            known_first[bug] = std::string("[") + program + "] packet " + std::to_string(index) + " (" + in.kind +
                               "): " + hex(in.bytes.size() > 128 ? slice(in.bytes, 0, 128) : in.bytes) +
                               (in.bytes.size() > 128 ? " ... (" + std::to_string(in.bytes.size()) + " bytes)" : "");
    }

    void fail(const std::string& invariant, const char* program, std::uint64_t index, const Frame& in, int action,
              const Bytes& out, const std::string& detail = "")
    {
        if (failures[invariant]++ < 2 && examples.size() < 24) {
            char head[200];
            std::snprintf(head, sizeof head, "[%s] packet %llu (seed 0x%llx, %s): %s -> %s", program,
                          static_cast<unsigned long long>(index), static_cast<unsigned long long>(seed),
                          in.kind.c_str(), invariant.c_str(), action_name(action));
            auto cut = [](const Bytes& b) {
                return b.size() <= 256 ? hex(b) : hex(slice(b, 0, 256)) + " ... (" + std::to_string(b.size()) + " bytes)";
            };
            examples.push_back(std::string(head) + (detail.empty() ? "" : " (" + detail + ")") + "\n    in:  " +
                               cut(in.bytes) + "\n    out: " + cut(out));
        }
    }
};

Bytes addr_of(const fulcrum_backend& b)
{
    const auto* a = reinterpret_cast<const std::uint8_t*>(b.addr.w);
    return Bytes(a, a + (b.family == FULCRUM_AF_INET ? 4 : 16));
}

Mac backend_mac_of(const fulcrum_backend& b)
{
    Bytes a = addr_of(b);
    std::size_t n = a.size();
    return Mac{{0x02, 0xbe, a[n - 4], a[n - 3], a[n - 2], a[n - 1]}};  // as lab.cpp's backend_mac
}

// ---------------------------------------------------------------------------------------------
// The balancer's model: README's packet table over the standard services, written from the
// README and RFCs (not from balancer.bpf.c). Lab facts it relies on (tests/bpf/lab.cpp): fl-main
// has 198.18.0.0/24 and 2001:db8:0:1::/64 with neighbours for .11-.13 and .21-.23 (and ::11-::13),
// fl-other has 198.18.2.0/24 with a neighbour for .11; there is no other route; MTU 1500.

enum class Kind { Pass, Drop, Forward, Echo, TooBig };
const char* kind_name(Kind k)
{
    switch (k) {
    case Kind::Pass: return "pass";
    case Kind::Drop: return "drop";
    case Kind::Forward: return "forward";
    case Kind::Echo: return "echo reply";
    case Kind::TooBig: return "too-big reply";
    }
    return "?";
}

// What a packet may do to flow state (README "Flow table"): a TCP SYN (without ACK) opens a
// flow, other TCP confirms one it finds, a RST only follows one, every UDP datagram opens or
// confirms, an ICMP error only follows.
enum class Role { Opens, Confirms, Datagram, Follows, Error };

struct Expect {
    Kind kind = Kind::Drop;
    int reason = -1;  // the one reason counter (Forward: FULCRUM_FWD_ICMP_ERROR for errors, else -1)
    std::uint32_t service = 0, backend = 0;
    bool redirect = false;
    Mac dmac{}, smac{};     // Forward: the next hop's MACs
    std::uint32_t mtu = 0;  // TooBig: the MTU announced
    // What the frame is, as far as it was parsed.
    std::size_t l2 = 14, ip = 14, l4 = 0, ip_len = 0;
    bool vlan = false, v6 = false, icmp_error = false;
    bool gue = false;  // Forward / TooBig: the service's tunnel is GUE (outer IP + UDP)
    std::uint16_t tci = 0;
    std::uint8_t tos = 0, proto = 0;
    Role role = Role::Error;
    fulcrum_flow_key key{};
    std::uint32_t hash = 0;
    int quic = -1;  // the quic_events counter this packet moves (fulcrum_quic_event), -1 none

    std::string describe() const
    {
        std::string s = kind_name(kind);
        if (reason >= 0)
            s += std::string(" ") + std::string(dataplane::reason_name(static_cast<fulcrum_reason>(reason)));
        if (kind == Kind::Forward)
            s += " service " + std::to_string(service) + " backend " + std::to_string(backend) +
                 (redirect ? " (redirect)" : "");
        return s;
    }
};

class BalancerModel {
public:
    BalancerModel(BalancerLab& lab) : lab_(lab)
    {
        Result<dataplane::MapSnapshot> read = lab.program().snapshot();
        if (!read.ok())
            throw std::runtime_error(read.message());
        const dataplane::MapSnapshot& snap = *read;
        vips_ = snap.vips;
        services_ = snap.services;
        for (const auto& [id, b] : snap.backends)
            backends_[id] = b;
        for (const auto& [key, backend_id] : snap.quic_ids)
            quic_ids_[{key.service_id, key.server_id}] = backend_id;
    }

    Expect predict(const Bytes& f) const
    {
        Expect e;
        std::uint16_t et = rd16(f, 12);
        if (et == kEthVlan) {
            if (f.size() < 18)
                return drop(e, FULCRUM_DROP_PARSE_L2);
            e.vlan = true;
            e.tci = rd16(f, 14);
            et = rd16(f, 16);
            e.l2 = 18;
        }
        e.ip = e.l2;
        if (et == kEthIPv4)
            return ipv4(f, e);
        if (et == kEthIPv6)
            return ipv6(f, e);
        e.kind = Kind::Pass;
        e.reason = FULCRUM_PASS_NOT_IP;
        return e;
    }

    // A valid next-hop cache entry the fuzzer wrote (used instead of the fib).
    struct Cached {
        Mac dmac, smac;
        std::uint32_t mtu;
        bool other;  // egress fl-other (redirect), else fl-main
    };
    void set_cached(std::uint32_t backend_id, Cached c) { cache_[backend_id] = c; }

    const fulcrum_backend* backend(std::uint32_t id) const
    {
        auto it = backends_.find(id);
        return it == backends_.end() ? nullptr : &it->second;
    }

private:
    static Expect drop(Expect e, fulcrum_reason r)
    {
        e.kind = Kind::Drop;
        e.reason = r;
        return e;
    }

    const fulcrum_vip_value* vip(const std::uint8_t* addr, bool v6) const
    {
        fulcrum_vip_key k{};
        std::memcpy(k.addr.w, addr, v6 ? 16 : 4);
        k.family = v6 ? FULCRUM_AF_INET6 : FULCRUM_AF_INET;
        for (const auto& [key, value] : vips_)
            if (std::memcmp(&key, &k, sizeof k) == 0)
                return &value;
        return nullptr;
    }

    const fulcrum_service_value* service(const fulcrum_addr& vip_addr, std::uint8_t family, std::uint16_t port,
                                         std::uint8_t proto, std::uint32_t vip_flags) const
    {
        auto find = [&](std::uint16_t p) -> const fulcrum_service_value* {
            for (const auto& [key, value] : services_)
                if (std::memcmp(&key.vip, &vip_addr, sizeof vip_addr) == 0 && key.family == family &&
                    key.proto == proto && ntohs(key.port) == p)
                    return &value;
            return nullptr;
        };
        if (const auto* s = find(port))
            return s;
        std::uint32_t wildcard = proto == kTcp ? FULCRUM_VIP_PORT0_TCP : FULCRUM_VIP_PORT0_UDP;
        return (vip_flags & wildcard) ? find(0) : nullptr;
    }

    Expect ipv4(const Bytes& f, Expect e) const
    {
        std::size_t ip = e.ip, n = f.size();
        if (n < ip + 20)
            return drop(e, FULCRUM_DROP_PARSE_L3);
        const fulcrum_vip_value* vv = vip(&f[ip + 16], false);
        if (!vv) {
            e.kind = Kind::Pass;
            e.reason = FULCRUM_PASS_NOT_VIP;
            return e;
        }
        std::size_t ihl = (f[ip] & 0xf) * 4u, tot = rd16(f, ip + 2);
        if ((f[ip] >> 4) != 4 || ihl < 20 || tot < ihl || ip + tot > n)
            return drop(e, FULCRUM_DROP_PARSE_L3);
        if (rd16(f, ip + 6) & 0x3fff)
            return drop(e, FULCRUM_DROP_FRAGMENT);
        e.ip_len = tot;
        e.tos = f[ip + 1];
        e.l4 = ip + ihl;
        e.key.family = FULCRUM_AF_INET;
        std::memcpy(e.key.src.w, &f[ip + 12], 4);
        std::memcpy(e.key.dst.w, &f[ip + 16], 4);
        bool df = rd16(f, ip + 6) & 0x4000;
        return upper(f, e, f[ip + 9], ip + tot, *vv, df);
    }

    Expect ipv6(const Bytes& f, Expect e) const
    {
        std::size_t ip = e.ip, n = f.size();
        if (n < ip + 40)
            return drop(e, FULCRUM_DROP_PARSE_L3);
        const fulcrum_vip_value* vv = vip(&f[ip + 24], true);
        if (!vv) {
            e.kind = Kind::Pass;
            e.reason = FULCRUM_PASS_NOT_VIP;
            return e;
        }
        std::size_t end = ip + 40 + rd16(f, ip + 4);
        if ((f[ip] >> 4) != 6 || end > n)
            return drop(e, FULCRUM_DROP_PARSE_L3);
        e.v6 = true;
        e.ip_len = end - ip;
        e.tos = static_cast<std::uint8_t>(rd16(f, ip) >> 4);
        std::size_t cur = ip + 40;
        std::uint8_t next = f[ip + 6];
        auto is_ext = [](std::uint8_t h) { return h == kHopByHop || h == kRouting || h == kDstOpts; };
        for (int i = 0; i < 4 && is_ext(next); i++) {  // README: at most 4 extension headers
            if (cur + 8 > end)
                return drop(e, FULCRUM_DROP_PARSE_L3);
            std::size_t len = (f[cur + 1] + 1u) * 8;
            next = f[cur];
            cur += len;
            if (cur > end)
                return drop(e, FULCRUM_DROP_PARSE_L3);
        }
        if (is_ext(next))
            return drop(e, FULCRUM_DROP_PARSE_L3);
        if (next == kFragment)
            return drop(e, FULCRUM_DROP_FRAGMENT);
        e.l4 = cur;
        e.key.family = FULCRUM_AF_INET6;
        std::memcpy(e.key.src.w, &f[ip + 8], 16);
        std::memcpy(e.key.dst.w, &f[ip + 24], 16);
        return upper(f, e, next, end, *vv, true);
    }

    Expect upper(const Bytes& f, Expect e, std::uint8_t proto, std::size_t bound, const fulcrum_vip_value& vv,
                 bool df) const
    {
        std::size_t l4 = e.l4;
        e.proto = proto;
        if (proto == kTcp || proto == kUdp) {
            if (l4 + (proto == kTcp ? 20 : 8) > bound)
                return drop(e, FULCRUM_DROP_PARSE_L4);
            e.key.sport = htons(rd16(f, l4));
            e.key.dport = htons(rd16(f, l4 + 2));
            e.key.proto = proto;
            const auto* svc = service(e.key.dst, e.key.family, rd16(f, l4 + 2), proto, vv.flags);
            if (!svc)
                return drop(e, FULCRUM_DROP_PORT_UNSERVED);
            if (e.vlan)  // policy: tagged frames to a service are refused
                return drop(e, FULCRUM_DROP_VLAN);
            std::uint8_t flags = proto == kTcp ? f[l4 + 13] : 0;
            e.role = proto == kUdp ? Role::Datagram
                     : (flags & 0x04) ? Role::Follows
                     : (flags & 0x12) == 0x02 ? Role::Opens
                                              : Role::Confirms;
            if (proto == kUdp && svc->quic_id_offset)
                return forward(e, *svc, df, quic_choice(f, e, *svc, l4 + 8, bound));
            return forward(e, *svc, df);
        }
        bool icmp = (!e.v6 && proto == kIcmp) || (e.v6 && proto == kIcmp6);
        if (!icmp)
            return drop(e, proto == kFragment && e.v6 ? FULCRUM_DROP_FRAGMENT : FULCRUM_DROP_PROTO_UNSERVED);
        if (l4 + 8 > bound)
            return drop(e, FULCRUM_DROP_PARSE_L4);
        std::uint8_t type = f[l4];
        if (type == (e.v6 ? 128 : 8)) {
            if (!(vv.flags & FULCRUM_VIP_SERVING))  // echo only for a VIP that can serve
                return drop(e, FULCRUM_DROP_ECHO_NO_BACKEND);
            e.kind = Kind::Echo;
            e.reason = FULCRUM_TX_ECHO_REPLY;
            return e;
        }
        bool error = e.v6 ? (type == 1 || type == 2) : type == 3;
        if (!error)
            return drop(e, FULCRUM_DROP_ICMP_UNHANDLED);
        // The quoted packet: a backend's reply VIP -> client of a flow client -> VIP.
        std::size_t q = l4 + 8;
        std::size_t qhdr = e.v6 ? 40 : 20;
        if (q + qhdr > bound)
            return drop(e, FULCRUM_DROP_ICMP_UNHANDLED);
        std::size_t ports;
        std::uint8_t qproto;
        if (!e.v6) {
            if ((f[q] >> 4) != 4 || (f[q] & 0xf) < 5 || !same(f, q + 12, f, e.ip + 16, 4))
                return drop(e, FULCRUM_DROP_ICMP_UNHANDLED);
            qproto = f[q + 9];
            ports = q + (f[q] & 0xf) * 4u;
        } else {
            if ((f[q] >> 4) != 6 || !same(f, q + 8, f, e.ip + 24, 16))
                return drop(e, FULCRUM_DROP_ICMP_UNHANDLED);
            qproto = f[q + 6];
            ports = q + 40;
        }
        if ((qproto != kTcp && qproto != kUdp) || ports + 4 > bound)
            return drop(e, FULCRUM_DROP_ICMP_UNHANDLED);
        fulcrum_flow_key k{};
        k.family = e.key.family;
        std::memcpy(k.src.w, &f[q + (e.v6 ? 24 : 16)], e.v6 ? 16 : 4);  // quoted destination: the client
        std::memcpy(k.dst.w, &f[q + (e.v6 ? 8 : 12)], e.v6 ? 16 : 4);   // quoted source: the VIP
        k.sport = htons(rd16(f, ports + 2));
        k.dport = htons(rd16(f, ports));
        k.proto = qproto;
        e.key = k;
        e.icmp_error = true;
        const auto* svc = service(k.dst, k.family, rd16(f, ports), qproto, vv.flags);
        if (!svc)
            return drop(e, FULCRUM_DROP_ICMP_UNHANDLED);
        if (e.vlan)
            return drop(e, FULCRUM_DROP_VLAN);
        e.role = Role::Error;
        return forward(e, *svc, df);
    }

    // Where the lab can reach a backend (see the comment above the class).
    enum class Hop { Main, Other, NoRoute, NoNeighbour, NoEgress };
    static Hop hop(const fulcrum_backend& b)
    {
        const auto* a = reinterpret_cast<const std::uint8_t*>(b.addr.w);
        if (b.family == FULCRUM_AF_INET) {
            if (a[0] == 198 && a[1] == 18 && a[2] == 0)
                return (a[3] >= 11 && a[3] <= 13) || (a[3] >= 21 && a[3] <= 23) ? Hop::Main : Hop::NoNeighbour;
            if (a[0] == 198 && a[1] == 18 && a[2] == 2)
                return a[3] == 11 ? Hop::Other : Hop::NoNeighbour;
            if (a[0] == 198 && a[1] == 18 && a[2] == 3)  // fl-fz0: not in the redirect map
                return a[3] == 11 ? Hop::NoEgress : Hop::NoNeighbour;
            return Hop::NoRoute;
        }
        static const Bytes prefix = slice(addr_bytes("2001:db8:0:1::"), 0, 8);
        if (std::memcmp(a, prefix.data(), 8) != 0)
            return Hop::NoRoute;
        static const Bytes n11 = addr_bytes("2001:db8:0:1::11");
        bool known = std::memcmp(a, n11.data(), 15) == 0 && a[15] >= 0x11 && a[15] <= 0x13;
        return known ? Hop::Main : Hop::NoNeighbour;
    }

    // README "QUIC connection-ID routing": the backend a datagram's server id names (0: the usual
    // path), and the outcome it counts in e.quic. `payload` .. `bound`: the UDP payload.
    std::uint32_t quic_choice(const Bytes& f, Expect& e, const fulcrum_service_value& svc, std::size_t payload,
                              std::size_t bound) const
    {
        const std::size_t have = bound > payload ? bound - payload : 0;
        if (have < 1)
            return e.quic = FULCRUM_QUIC_TRUNCATED, 0;
        if (f[payload] & 0x80)
            return e.quic = FULCRUM_QUIC_LONG_HEADER, 0;
        if (!(f[payload] & 0x40))
            return e.quic = FULCRUM_QUIC_NOT_QUIC, 0;
        const std::size_t bytes = (svc.quic_id_bits + 7u) / 8;
        if (have < svc.quic_id_offset + bytes)
            return e.quic = FULCRUM_QUIC_TRUNCATED, 0;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < bytes; i++)
            v = v << 8 | f[payload + svc.quic_id_offset + i];
        const auto server_id = static_cast<std::uint32_t>(v >> (bytes * 8 - svc.quic_id_bits));
        auto it = quic_ids_.find({svc.id, server_id});
        if (server_id == 0 || it == quic_ids_.end() || it->second == 0)
            return e.quic = FULCRUM_QUIC_UNKNOWN_ID, 0;
        const fulcrum_backend* be = backend(it->second);
        if (!be || be->service_id != svc.id || be->state != FULCRUM_BACKEND_ACTIVE)
            return e.quic = FULCRUM_QUIC_UNUSABLE_ID, 0;
        e.quic = FULCRUM_QUIC_ROUTED_BY_ID;
        return it->second;
    }

    // `by_id`: the backend a QUIC server id chose (0: the flow table / Maglev, which the lab's
    // fixed tables make the same choice).
    Expect forward(Expect e, const fulcrum_service_value& svc, bool df, std::uint32_t by_id = 0) const
    {
        e.service = svc.id;
        e.hash = fulcrum_flow_hash(&e.key, kHashSeed);
        std::uint32_t id = by_id ? by_id : lab_.maglev_pick(svc.id, e.key, svc.hash_omit);  // the policy as the map holds it
        const fulcrum_backend* be = backend(id);
        if (!id || !be || be->state != FULCRUM_BACKEND_ACTIVE)
            return drop(e, FULCRUM_DROP_NO_BACKEND);
        e.backend = id;
        e.gue = svc.encap == FULCRUM_ENCAP_GUE;
        std::uint32_t overhead = (be->family == FULCRUM_AF_INET ? 20 : 40) + (e.gue ? 8 : 0);
        if (e.ip_len + overhead > 0xffff)  // the outer length field cannot say it
            return drop(e, FULCRUM_DROP_LENGTH);
        auto cached = cache_.find(id);
        Hop h = cached != cache_.end() ? (cached->second.other ? Hop::Other : Hop::Main) : hop(*be);
        std::uint32_t mtu = cached != cache_.end() ? cached->second.mtu : kMtu;
        if (h == Hop::NoRoute)
            return drop(e, FULCRUM_DROP_NO_ROUTE);
        if (e.ip_len + overhead > mtu) {  // the fib checks the MTU before the neighbour
            if (e.icmp_error)  // no ICMP error about an ICMP error (RFC 1122 3.2.2, RFC 4443 2.4)
                return drop(e, FULCRUM_DROP_ICMP_ERROR_TOO_BIG);
            if (!e.v6 && !df)
                return drop(e, FULCRUM_DROP_TOO_BIG_NO_DF);
            e.kind = Kind::TooBig;
            e.reason = FULCRUM_TX_TOO_BIG;
            e.mtu = mtu - overhead;
            if (e.v6 && e.mtu < 1280)
                e.mtu = 1280;
            return e;
        }
        if (h == Hop::NoNeighbour)
            return drop(e, FULCRUM_DROP_NO_NEIGHBOUR);
        if (h == Hop::NoEgress)
            return drop(e, FULCRUM_DROP_NO_EGRESS);
        e.kind = Kind::Forward;
        e.reason = e.icmp_error ? FULCRUM_FWD_ICMP_ERROR : -1;
        e.redirect = h == Hop::Other;
        if (cached != cache_.end()) {
            e.dmac = cached->second.dmac;
            e.smac = cached->second.smac;
        } else {
            e.dmac = backend_mac_of(*be);
            e.smac = e.redirect ? kOtherMac : kBalancerMac;
        }
        return e;
    }

    BalancerLab& lab_;
    std::vector<std::pair<fulcrum_vip_key, fulcrum_vip_value>> vips_;
    std::vector<std::pair<fulcrum_service_key, fulcrum_service_value>> services_;
    std::map<std::uint32_t, fulcrum_backend> backends_;
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> quic_ids_;  // (service, server id) -> backend
    std::map<std::uint32_t, Cached> cache_;
};

// What the balancer did, from its verdict and the counters that moved.
struct Observed {
    Kind kind = Kind::Drop;
    int reason = -1;
    std::uint32_t service = 0, backend = 0;
    bool redirect = false;
};

bool matches(const Observed& o, const Expect& e)
{
    return o.kind == e.kind && o.reason == e.reason && o.service == (e.kind == Kind::Forward ? e.service : 0) &&
           o.backend == (e.kind == Kind::Forward ? e.backend : 0) && o.redirect == e.redirect;
}

std::string describe(const Observed& o)
{
    Expect e;
    e.kind = o.kind;
    e.reason = o.reason;
    e.service = o.service;
    e.backend = o.backend;
    e.redirect = o.redirect;
    return e.describe();
}

bool is_drop_reason(int r)
{
    return r >= FULCRUM_DROP_PARSE_L2 && r < FULCRUM_REASON_COUNT;
}

// ---------------------------------------------------------------------------------------------

struct Stats {
    std::map<std::string, std::uint64_t> balancer, decap;
    std::uint64_t balancer_packets = 0, decap_packets = 0, balancer_bytes = 0;
    std::map<int, Count> reasons;                     // model totals
    std::map<std::uint32_t, Count> services, backends;  // model totals
    std::map<std::uint32_t, std::uint64_t> quic, quic_model;  // quic_events: moved, and the model's
    std::map<int, Count> decap_reasons;
};

class Fuzzer {
public:
    Fuzzer(std::uint64_t seed) : model_(init_lab())
    {
        findings_.seed = seed;
        init_nexthop_cache();
        int prog = lab_->program().program_fd();
        reasons_ = std::make_unique<PerCpuCounters>(map_fd_by_name(prog, "reason_stats"), FULCRUM_REASON_COUNT,
                                                    sizeof(fulcrum_reason_stats), 2);
        services_ = std::make_unique<PerCpuCounters>(map_fd_by_name(prog, "service_stats"), kIdsRead,
                                                     sizeof(fulcrum_service_stats), 3);
        backends_ = std::make_unique<PerCpuCounters>(map_fd_by_name(prog, "backend_stats"), kIdsRead,
                                                     sizeof(fulcrum_backend_stats), 2);
        quic_ = std::make_unique<PerCpuCounters>(map_fd_by_name(prog, "quic_events"), FULCRUM_QUIC_EVENT_COUNT,
                                                 sizeof(std::uint64_t), 1);
        Result<std::unique_ptr<dataplane::DecapProgram>> decap = dataplane::DecapProgram::load();
        if (!decap.ok())
            throw std::runtime_error(decap.message());
        decap_ = std::move(decap).value();
        // Local addresses: every backend of the standard services (tunnel endpoints), and (with
        // inner-destination checks) the VIPs, which backends have on lo.
        std::vector<std::string> locals(fuzz::kDecapAddresses, fuzz::kDecapAddresses + fuzz::kDecapAddressCount);
        if (kDecapChecksSources)
            for (const std::string* vip : {&kVip4, &kVip4Port0, &kVip4Empty, &kVip4NoNeigh, &kVip4NoRoute, &kVip4Other,
                                           &kVip4Multi, &kVip6})
                locals.push_back(*vip);
        for (const std::string& address : locals) {
            fulcrum_decap_key key{};
            key.addr = to_addr(address);
            key.family = family_of(address);
#ifdef FULCRUM_DECAP_MAX_SOURCES
            REQUIRE(decap_->add_local_address(key).ok());
#else
            REQUIRE(decap_->add_address(key).ok());
#endif
            decap_local_.insert(std::string(reinterpret_cast<const char*>(key.addr.w), 16) +
                                static_cast<char>(key.family));
        }
#ifdef FULCRUM_DECAP_MAX_SOURCES
        for (const auto& [address, bits] : {std::pair<std::string, std::uint32_t>{"198.18.0.0", 28}, {"2001:db8:0:1::", 120}}) {
            fulcrum_decap_source_key key{};
            key.family = family_of(address);
            key.addr = to_addr(address);
            key.prefixlen = FULCRUM_DECAP_FAMILY_BITS + bits;
            REQUIRE(decap_->add_source(key).ok());
        }
#endif
        decap_counters_ = std::make_unique<PerCpuCounters>(decap_stats_fd(), FULCRUM_DECAP_REASON_COUNT,
                                                           sizeof(fulcrum_reason_stats), 2);
        main_ifindex_ = ifindex("fl-main");
        r_before_ = reasons_->read();
        s_before_ = services_->read();
        b_before_ = backends_->read();
        q_before_ = quic_->read();
        d_before_ = decap_counters_->read();
        out_.resize(8192);
    }

    void run(std::uint64_t index)
    {
        Rng rng(fuzz_seed_of(index));
        Frame in = fuzz::balancer_frame(rng);
        int action = test_run(lab_->program().program_fd(), in.bytes);
        Bytes out = out_bytes_;
        check_balancer(index, in, action, out);

        // Decap: the balancer's own tunnel frame (as is, or mutated), else a tunnel-ish frame.
        Frame d;
        bool end_to_end = false;
        if ((action == XDP_TX || action == XDP_REDIRECT) && last_forwarded_ && rng.percent(60)) {
            d = Frame{out, "balancer-output"};
            if (rng.percent(40))
                fuzz::mutate(rng, d);
            else
                end_to_end = true;
        } else {
            d = rng.percent(75) ? fuzz::decap_frame(rng) : in;
        }
        int daction = test_run(decap_->program_fd(), d.bytes);
        check_decap(index, d, daction, out_bytes_, end_to_end ? &in : nullptr);
    }

    void finish();
    Findings& findings() { return findings_; }
    Stats& stats() { return stats_; }

private:
    BalancerLab& init_lab()
    {
        lab_ = std::make_unique<BalancerLab>();
        standard_services(*lab_);
        // The fuzzer's own service: its backend is routed through fl-fz0, which is not in the
        // redirect map (README: counted no_egress). In the lab's namespace, gone with it.
        for (const std::string& command :
             {std::string("ip link add fl-fz0 type veth peer name fl-fz0-peer"), std::string("ip link set fl-fz0 up"),
              std::string("ip link set fl-fz0-peer up"), std::string("ip addr add 198.18.3.1/24 dev fl-fz0"),
              "ip neigh add " + kNoEgressBackend + " lladdr 02:be:c6:12:03:0b dev fl-fz0 nud permanent"})
            if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
                throw std::runtime_error("fuzz lab setup failed: " + command);
        lab_->add_backend(14, kNoEgressBackend, 11);
        lab_->add_service(11, kVip4NoEgress, 80, kTcp, fill(14));
        // Hash policies (abi.h FULCRUM_HASH_NO_*): the multi-backend service hashes the client
        // address only, and a port-0 UDP service of the same VIP the VIP port only, so mutated
        // and random frames meet both the 5-tuple and the reduced inputs.
        std::vector<std::uint32_t> round_robin;
        for (std::uint32_t i = 0; i < 13; i++)
            round_robin.push_back(11 + i % 3);
        lab_->add_service(9, kVip4Multi, 80, kTcp, round_robin, FULCRUM_HASH_NO_SRC_PORT | FULCRUM_HASH_NO_DST_PORT);
        // (ids below kIdsRead: the per-packet counter checks read ids 0..kIdsRead-1)
        lab_->add_backend(10, "198.18.0.21", 12);
        lab_->add_backend(15, "198.18.0.22", 12);
        // GUE (abi.h FULCRUM_ENCAP_GUE): that port-0 UDP service (IPv4 over IPv4) and the IPv6
        // UDP service (IPv6 over IPv6) send GUE, the others IP-in-IP; decap strips both.
        lab_->add_service(12, kVip4Multi, 0, kUdp, {10, 15, 10, 15, 15, 10, 15},
                          FULCRUM_HASH_NO_SRC_ADDR | FULCRUM_HASH_NO_SRC_PORT, FULCRUM_ENCAP_GUE);
        // QUIC connection-ID routing (fuzz_frames.h kQuicIds): service 16 on kVip4Multi UDP 443,
        // backends 16 and 17 active, 18 draining (out of the table, its id not followed).
        lab_->add_backend(16, "198.18.0.21", 16);
        lab_->add_backend(17, "198.18.0.22", 16);
        lab_->add_backend(18, "198.18.0.23", 16, FULCRUM_BACKEND_DRAINING);
        lab_->add_service(16, kVip4Multi, fuzz::kQuicPort, kUdp, {16, 17, 16, 17, 17, 16, 17});
        lab_->set_quic(16, 1, 16);
        for (std::uint32_t i = 0; i < 3; i++)
            REQUIRE(lab_->program().put_quic_id(fulcrum_quic_key{16, fuzz::kQuicIds[i]}, 16 + i).ok());
        lab_->add_service(10, kVip6, 53, kUdp, fill(9), 0, FULCRUM_ENCAP_GUE);
        return *lab_;
    }

    // Next-hop cache entries (used instead of the fib): backend 12 with a cached MAC and a
    // smaller MTU, backend 13 through fl-other (a redirect the fib would not choose).
    void init_nexthop_cache()
    {
        const BalancerModel::Cached entries[] = {
            {Mac{{0x02, 0xca, 0xc4, 0xed, 0, 0x0c}}, kBalancerMac, 1400, false},
            {Mac{{0x02, 0xca, 0xc4, 0xed, 0, 0x0d}}, kOtherMac, 1500, true},
        };
        for (std::uint32_t i = 0; i < 2; i++) {
            const auto& c = entries[i];
            fulcrum_nexthop nh{};
            std::memcpy(nh.dmac, c.dmac.b, 6);
            std::memcpy(nh.smac, c.smac.b, 6);
            nh.ifindex = static_cast<std::uint32_t>(ifindex(c.other ? "fl-other" : "fl-main"));
            nh.mtu = c.mtu;
            nh.valid = 1;
            REQUIRE(lab_->program().put_nexthop(12 + i, nh).ok());
            model_.set_cached(12 + i, c);
        }
    }
    std::uint64_t fuzz_seed_of(std::uint64_t index) const
    {
        Rng mix(findings_.seed ^ (index * 0xd1342543de82ef95ULL));
        return mix.next();
    }
    int decap_stats_fd() const { return dup(decap_->stats_map_fd()); }

    int test_run(int prog_fd, const Bytes& frame)
    {
        xdp_md ctx{};
        ctx.data_end = static_cast<std::uint32_t>(frame.size());
        ctx.ingress_ifindex = static_cast<std::uint32_t>(main_ifindex_);
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out_.data(),
                    .data_size_in = static_cast<std::uint32_t>(frame.size()),
                    .data_size_out = static_cast<std::uint32_t>(out_.size()), .ctx_in = &ctx,
                    .ctx_size_in = sizeof ctx, .repeat = 1);
        if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
            throw std::runtime_error("BPF_PROG_TEST_RUN (" + std::to_string(frame.size()) + " bytes): " +
                                     std::strerror(errno) + "\n  frame: " + hex(frame));
        out_bytes_.assign(out_.begin(), out_.begin() + opts.data_size_out);
        return static_cast<int>(opts.retval);
    }

    void check_balancer(std::uint64_t index, const Frame& in, int action, const Bytes& out);
    void check_forward(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Expect& e);
    void check_echo(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Expect& e);
    void check_too_big(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Expect& e);
    void check_decap(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Frame* client);

    void fail(const std::string& invariant, std::uint64_t index, const Frame& in, int action, const Bytes& out,
              const std::string& detail = "")
    {
        findings_.fail(invariant, "balancer", index, in, action, out, detail);
    }
    void known(const std::string& bug, std::uint64_t index, const Frame& in)
    {
        findings_.note_known(bug, "balancer", index, in);
    }

    std::unique_ptr<BalancerLab> lab_;
    BalancerModel model_;
    std::unique_ptr<dataplane::DecapProgram> decap_;
    std::set<std::string> decap_local_;
    std::unique_ptr<PerCpuCounters> reasons_, services_, backends_, decap_counters_, quic_;
    std::vector<Count> r_before_, s_before_, b_before_, d_before_, q_before_;
    std::vector<Moved> moved_;
    int main_ifindex_ = 0;
    std::vector<std::uint8_t> out_;
    Bytes out_bytes_;
    bool last_forwarded_ = false;
    std::set<std::string> flows_seen_;
    Findings findings_;
    Stats stats_;
};

void Fuzzer::check_balancer(std::uint64_t index, const Frame& in, int action, const Bytes& out)
{
    const std::uint64_t len = in.bytes.size();
    stats_.balancer_packets++;
    stats_.balancer_bytes += len;
    last_forwarded_ = false;

    // Counters: what moved in this run.
    const auto& r_after = reasons_->read();
    diff(r_before_, r_after, moved_);
    std::vector<Moved> reasons = moved_;
    r_before_ = r_after;
    const auto& s_after = services_->read();
    diff(s_before_, s_after, moved_);
    std::vector<Moved> services = moved_;
    s_before_ = s_after;
    const auto& b_after = backends_->read();
    diff(b_before_, b_after, moved_);
    std::vector<Moved> backends = moved_;
    b_before_ = b_after;
    const auto& q_after = quic_->read();
    diff(q_before_, q_after, moved_);
    std::vector<Moved> quic = moved_;
    q_before_ = q_after;
    for (const Moved& m : quic)
        stats_.quic[m.key] += m.by.packets;

    // Totals of what moved, packet by packet: at the end they must equal the whole maps (nothing
    // moved where the per-packet reads do not look) and sum to the packets sent.
    for (const Moved& m : reasons) {
        stats_.reasons[m.key].packets += m.by.packets;
        stats_.reasons[m.key].bytes += m.by.bytes;
    }
    for (const Moved& m : services) {
        stats_.services[m.key].packets += m.by.packets;
        stats_.services[m.key].bytes += m.by.bytes;
        stats_.services[m.key].new_flows += m.by.new_flows;
    }
    for (const Moved& m : backends) {
        stats_.backends[m.key].packets += m.by.packets;
        stats_.backends[m.key].bytes += m.by.bytes;
    }

    Observed o;
    bool counted_ok = true;
    for (const Moved& m : reasons)
        if (m.by.packets != 1 || m.by.bytes != len) {
            fail("a reason counter moved by other than 1 packet of the frame's length", index, in, action, out,
                 std::string(dataplane::reason_name(static_cast<fulcrum_reason>(m.key))) + " +" +
                     std::to_string(m.by.packets) + " packets +" + std::to_string(m.by.bytes) + " bytes");
            counted_ok = false;
        }
    bool forwarded = !services.empty() || !backends.empty();
    if (forwarded) {
        if (services.size() != 1 || backends.size() != 1 || services[0].by.packets != 1 ||
            services[0].by.bytes != len || backends[0].by.packets != 1 || backends[0].by.bytes != len ||
            services[0].by.new_flows > 1) {
            fail("a forwarded packet counts once in one service and one backend (packets, bytes)", index, in,
                 action, out);
            counted_ok = false;
        }
        if (!(reasons.empty() || (reasons.size() == 1 && reasons[0].key == FULCRUM_FWD_ICMP_ERROR))) {
            fail("a forwarded packet counts under no reason but icmp_error_forwarded", index, in, action, out);
            counted_ok = false;
        }
        if (!services.empty())
            o.service = services[0].key;
        if (!backends.empty())
            o.backend = backends[0].key;
        o.kind = Kind::Forward;
        o.reason = reasons.size() == 1 ? static_cast<int>(reasons[0].key) : -1;
        o.redirect = action == XDP_REDIRECT;
        if (action != XDP_TX && action != XDP_REDIRECT) {
            fail("service/backend counters moved for a packet not transmitted", index, in, action, out);
            counted_ok = false;
        }
    } else {
        if (reasons.size() != 1) {
            fail("every packet counts under exactly one reason counter", index, in, action, out,
                 std::to_string(reasons.size()) + " reasons moved");
            counted_ok = false;
        } else {
            o.reason = static_cast<int>(reasons[0].key);
        }
        switch (action) {
        case XDP_PASS:
            o.kind = Kind::Pass;
            if (o.reason != FULCRUM_PASS_NOT_IP && o.reason != FULCRUM_PASS_NOT_VIP)
                fail("XDP_PASS only as not_ip or not_vip", index, in, action, out);
            break;
        case XDP_DROP:
            o.kind = Kind::Drop;
            if (!is_drop_reason(o.reason))
                fail("XDP_DROP counts under a drop reason", index, in, action, out);
            break;
        case XDP_TX:
            o.kind = o.reason == FULCRUM_TX_TOO_BIG ? Kind::TooBig : Kind::Echo;
            if (o.reason != FULCRUM_TX_ECHO_REPLY && o.reason != FULCRUM_TX_TOO_BIG)
                fail("XDP_TX is a forward, an echo reply or a too-big reply", index, in, action, out);
            break;
        default:
            fail("verdict is XDP_PASS, XDP_DROP, XDP_TX or XDP_REDIRECT", index, in, action, out);
            counted_ok = false;
        }
    }
    // Nothing is ever passed changed.
    if (action == XDP_PASS && out != in.bytes)
        fail("XDP_PASS leaves the frame byte for byte unchanged", index, in, action, out);

    // The model: README's table. A known bug may allow a second outcome (counted, not asserted).
    Expect want = model_.predict(in.bytes);
    const Expect* e = nullptr;
    if (matches(o, want)) {
        e = &want;
    } else if (counted_ok) {
        auto short_name = [](const Expect& x) {
            return std::string(kind_name(x.kind)) +
                   (x.reason >= 0 ? std::string(" ") + std::string(dataplane::reason_name(static_cast<fulcrum_reason>(x.reason)))
                                  : std::string());
        };
        Expect got;
        got.kind = o.kind;
        got.reason = o.reason;
        fail("outcome as README's packet table says: expected " + short_name(want) + ", got " + short_name(got), index,
             in, action, out, "expected " + want.describe() + ", got " + describe(o));
    }
    if (!counted_ok || !e)
        return;
    // QUIC routing: exactly the outcome the model read from the datagram, once.
    const bool quic_ok = want.quic < 0 ? quic.empty()
                                       : quic.size() == 1 && quic[0].key == static_cast<std::uint32_t>(want.quic) &&
                                             quic[0].by.packets == 1;
    if (!quic_ok)
        fail("a QUIC service's datagram counts one QUIC outcome, the one its header says (others none)", index, in,
             action, out,
             "expected " + (want.quic < 0 ? std::string("none")
                                          : std::string(dataplane::quic_event_name(static_cast<fulcrum_quic_event>(want.quic)))) +
                 ", " + std::to_string(quic.size()) + " moved");
    if (want.quic >= 0)
        stats_.quic_model[static_cast<std::uint32_t>(want.quic)]++;

    // Model totals (the end-of-run comparison of every counter).
    std::string outcome = std::string(action_name(action)) + " " +
                          (o.reason >= 0 ? std::string(dataplane::reason_name(static_cast<fulcrum_reason>(o.reason)))
                                         : std::string("forwarded"));
    stats_.balancer[outcome]++;
    if (e->kind == Kind::Forward) {
        last_forwarded_ = true;
        std::uint64_t nf = services[0].by.new_flows;
        std::string key(reinterpret_cast<const char*>(&e->key), sizeof e->key);
        if (e->quic == FULCRUM_QUIC_ROUTED_BY_ID) {
            // README "QUIC connection-ID routing": routed by its server id, no flow-table entry.
            if (nf != 0)
                fail("a QUIC datagram routed by its server id opens no flow (new_flows)", index, in, action, out);
        } else if (e->role != Role::Opens && e->role != Role::Datagram) {
            if (nf != 0)
                fail("only a TCP SYN or a UDP datagram opens a flow (new_flows)", index, in, action, out);
        } else {
            // The flow tables are LRU (4096 entries in the lab) and UDP entries expire: a flow
            // recorded before may be new again; one never recorded must be new.
            if (!flows_seen_.count(key) && nf != 1)
                fail("the first packet of a flow counts as a new flow", index, in, action, out);
            flows_seen_.insert(key);
        }
        check_forward(index, in, action, out, *e);
    } else if (e->kind == Kind::Echo) {
        check_echo(index, in, action, out, *e);
    } else if (e->kind == Kind::TooBig) {
        check_too_big(index, in, action, out, *e);
    }
}

void Fuzzer::check_forward(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Expect& e)
{
    const fulcrum_backend* be = model_.backend(e.backend);
    const Bytes& f = in.bytes;
    bool outer6 = be->family == FULCRUM_AF_INET6;
    std::size_t l2 = e.l2, ip_overhead = outer6 ? 40 : 20, overhead = ip_overhead + (e.gue ? 8 : 0);
    std::size_t inner_len = e.ip_len;  // lengths from the IP header: link padding is not sent on
    if (out.size() != l2 + overhead + inner_len) {
        fail("forwarded frame is L2 + outer header (+ UDP for GUE) + the inner IP packet", index, in, action, out);
        return;
    }
    if (e.gue) {
        // GUE variant 1: UDP from the ephemeral port the flow hash picks to 6080, length of UDP +
        // inner, checksum zero (README "GUE").
        std::size_t u = l2 + ip_overhead;
        if (rd16(out, u) != (49152 | (e.hash & 0x3fff)) || rd16(out, u + 2) != FULCRUM_GUE_DEFAULT_PORT ||
            rd16(out, u + 4) != inner_len + 8 || rd16(out, u + 6) != 0)
            fail("GUE: UDP source port from the flow hash, destination 6080, length, zero checksum", index, in,
                 action, out);
    }
    // L2: to the backend's MAC from the egress interface's, the tag kept.
    if (!mac_is(out, 0, e.dmac) || !mac_is(out, 6, e.smac))
        fail("forwarded frame: L2 to the backend's next hop from the egress interface's MAC", index, in, action, out);
    std::uint16_t outer_et = outer6 ? kEthIPv6 : kEthIPv4;
    bool l2_ok = e.vlan ? rd16(out, 12) == kEthVlan && rd16(out, 14) == e.tci && rd16(out, 16) == outer_et
                        : rd16(out, 12) == outer_et;
    if (!l2_ok)
        fail("forwarded frame: EtherType of the outer family, 802.1Q tag kept", index, in, action, out);
    std::size_t o = l2;
    std::uint8_t inner_proto = e.gue ? kUdp : e.v6 ? kIpv6 : kIpip;
    Bytes src = addr_bytes(outer6 ? kTunnelV6 : kTunnelV4), dst = addr_of(*be);
    bool length_consistent;
    if (!outer6) {
        bool ok = out[o] == 0x45 && out[o + 1] == e.tos && rd16(out, o + 4) == 0 && rd16(out, o + 6) == 0x4000 &&
                  out[o + 8] == 64 && same(out, o + 12, src) && same(out, o + 16, dst);
        if (!ok)
            fail("outer IPv4 header: version, ToS copied, DF, TTL 64, tunnel source, backend", index, in, action, out);
        if (out[o + 9] != inner_proto)
            fail("outer protocol matches the inner family", index, in, action, out);
        if (!checksum_ok(out, o, 20))
            fail("outer IPv4 header checksum", index, in, action, out);
        if (rd16(out, o + 2) != e.ip_len + overhead)
            fail("outer IPv4 total length = inner IP total length + 20 (+ 8 for GUE)", index, in, action, out);
        length_consistent = rd16(out, o + 2) == out.size() - l2;
    } else {
        std::uint32_t w = static_cast<std::uint32_t>(rd16(out, o)) << 16 | rd16(out, o + 2);
        bool ok = (w >> 28) == 6 && ((w >> 20) & 0xff) == e.tos && (w & 0xfffff) == (e.hash & 0xfffff) &&
                  out[o + 7] == 64 && same(out, o + 8, src) && same(out, o + 24, dst);
        if (!ok)
            fail("outer IPv6 header: version, traffic class copied, flow label = flow hash, hop limit 64, "
                 "tunnel source, backend",
                 index, in, action, out);
        if (out[o + 6] != inner_proto)
            fail("outer next header matches the inner family", index, in, action, out);
        if (rd16(out, o + 4) != e.ip_len + overhead - 40)
            fail("outer IPv6 payload length = inner IP total length (+ 8 for GUE)", index, in, action, out);
        length_consistent = rd16(out, o + 4) == out.size() - l2 - 40;
    }
    if (!length_consistent)
        fail("outer length = frame length - L2 - outer header", index, in, action, out);
    if (!same(out, l2 + overhead, f, e.ip, inner_len))
        fail("inner packet byte for byte the client's IP packet", index, in, action, out);
}

void Fuzzer::check_echo(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Expect& e)
{
    const Bytes& f = in.bytes;
    std::size_t ip = e.ip, l4 = e.l4, end = ip + e.ip_len;
    if (out.size() != f.size()) {
        fail("echo reply has the request's length", index, in, action, out);
        return;
    }
    if (!mac_is(out, 0, Mac{{f[6], f[7], f[8], f[9], f[10], f[11]}}) ||
        !mac_is(out, 6, Mac{{f[0], f[1], f[2], f[3], f[4], f[5]}}) || !same(out, 12, f, 12, ip - 12))
        fail("echo reply: back to the sender's MAC, tag kept", index, in, action, out);
    bool request_sums_ok;
    if (!e.v6) {
        std::size_t ihl = l4 - ip;
        bool ok = same(out, ip, f, ip, 8) && out[ip + 8] == 64 && out[ip + 9] == kIcmp && same(out, ip + 12, f, ip + 16, 4) &&
                  same(out, ip + 16, f, ip + 12, 4) && same(out, ip + 20, f, ip + 20, ihl - 20);
        if (!ok)
            fail("echo reply: IPv4 addresses swapped, TTL 64, rest of the header kept", index, in, action, out);
        request_sums_ok = checksum_ok(f, ip, ihl) && checksum_ok(f, l4, end - l4);
        if (request_sums_ok && (!checksum_ok(out, ip, ihl) || !checksum_ok(out, l4, end - l4)))
            fail("echo reply: IPv4 header and ICMP checksums valid", index, in, action, out);
        if (out[l4] != 0 || out[l4 + 1] != f[l4 + 1])
            fail("echo reply: type 0, code kept", index, in, action, out);
    } else {
        bool ok = same(out, ip, f, ip, 7) && out[ip + 7] == 64 && same(out, ip + 8, f, ip + 24, 16) &&
                  same(out, ip + 24, f, ip + 8, 16) && same(out, ip + 40, f, ip + 40, l4 - ip - 40);
        if (!ok)
            fail("echo reply: IPv6 addresses swapped, hop limit 64, rest of the header kept", index, in, action, out);
        request_sums_ok = checksum_ok(f, l4, end - l4, pseudo6(f, ip, end - l4, kIcmp6));
        if (request_sums_ok && !checksum_ok(out, l4, end - l4, pseudo6(out, ip, end - l4, kIcmp6)))
            fail("echo reply: ICMPv6 checksum valid", index, in, action, out);
        if (out[l4] != 129 || out[l4 + 1] != f[l4 + 1])
            fail("echo reply: type 129, code kept", index, in, action, out);
    }
    if (!request_sums_ok)
        // KNOWN BUG (reported): checksums of echo requests are not verified; a request with a bad
        // IP or ICMP checksum is answered, and the reply carries a bad checksum.
        known("echo request with a bad checksum answered with a bad checksum (replies not asserted for those)", index, in);
    if (!same(out, l4 + 4, f, l4 + 4, f.size() - l4 - 4))
        fail("echo reply: identifier, sequence and data kept", index, in, action, out);
}

void Fuzzer::check_too_big(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Expect& e)
{
    const Bytes& f = in.bytes;
    std::size_t ip = e.ip, l2 = e.l2;
    if (e.icmp_error)
        fail("no ICMP error about an ICMP error", index, in, action, out);
    if (!mac_is(out, 0, Mac{{f[6], f[7], f[8], f[9], f[10], f[11]}}) ||
        !mac_is(out, 6, Mac{{f[0], f[1], f[2], f[3], f[4], f[5]}}))
        fail("too-big reply: back to the sender's MAC", index, in, action, out);
    bool l2_ok = e.vlan ? rd16(out, 12) == kEthVlan && rd16(out, 14) == e.tci && rd16(out, 16) == (e.v6 ? kEthIPv6 : kEthIPv4)
                        : rd16(out, 12) == (e.v6 ? kEthIPv6 : kEthIPv4);
    if (!l2_ok)
        fail("too-big reply: EtherType, tag kept", index, in, action, out);
    if (!e.v6) {
        std::size_t quote = (e.l4 - ip) + 8;
        if (out.size() != l2 + 28 + quote) {
            fail("frag-needed: IPv4 + ICMP + the IP header and 8 bytes quoted", index, in, action, out);
            return;
        }
        bool ok = out[l2] == 0x45 && rd16(out, l2 + 2) == 28 + quote && out[l2 + 8] == 64 && out[l2 + 9] == kIcmp &&
                  same(out, l2 + 12, f, ip + 16, 4) && same(out, l2 + 16, f, ip + 12, 4);
        if (!ok)
            fail("frag-needed: IPv4 from the VIP to the sender, length right", index, in, action, out);
        if (!checksum_ok(out, l2, 20) || !checksum_ok(out, l2 + 20, 8 + quote))
            fail("frag-needed: IPv4 header and ICMP checksums valid", index, in, action, out);
        if (out[l2 + 20] != 3 || out[l2 + 21] != 4 || rd16(out, l2 + 24) != 0 || rd16(out, l2 + 26) != e.mtu)
            fail("frag-needed: type 3 code 4, MTU = path MTU - tunnel overhead", index, in, action, out,
                 "want MTU " + std::to_string(e.mtu));
        if (!same(out, l2 + 28, f, ip, quote))
            fail("frag-needed: quotes the packet's IP header and 8 bytes", index, in, action, out);
    } else {
        if (out.size() != l2 + 48 + 1232) {
            fail("packet-too-big: IPv6 + ICMPv6 + 1232 bytes quoted", index, in, action, out);
            return;
        }
        bool ok = rd16(out, l2) == 0x6000 && rd16(out, l2 + 2) == 0 && rd16(out, l2 + 4) == 1240 && out[l2 + 6] == kIcmp6 &&
                  out[l2 + 7] == 64 && same(out, l2 + 8, f, ip + 24, 16) && same(out, l2 + 24, f, ip + 8, 16);
        if (!ok)
            fail("packet-too-big: IPv6 from the VIP to the sender, length right", index, in, action, out);
        if (!checksum_ok(out, l2 + 40, 1240, pseudo6(out, l2, 1240, kIcmp6)))
            fail("packet-too-big: ICMPv6 checksum valid", index, in, action, out);
        std::uint32_t mtu = static_cast<std::uint32_t>(rd16(out, l2 + 44)) << 16 | rd16(out, l2 + 46);
        if (out[l2 + 40] != 2 || out[l2 + 41] != 0 || mtu != e.mtu)
            fail("packet-too-big: type 2 code 0, MTU = path MTU - tunnel overhead", index, in, action, out);
        if (!same(out, l2 + 48, f, ip, 1232))
            fail("packet-too-big: quotes the first 1232 bytes of the packet", index, in, action, out);
    }
}

// Decap's model (README "Decap on backends"): a well-formed tunnel packet (outer IPv4/IPv6 to a
// local address carrying a whole inner IPv4/IPv6 header within the outer packet) is
// decapsulated; once decap checks sources (--from) and inner destinations, only from an allowed
// source to a local inner destination. Any other tunnel packet to us is dropped and counted (or
// passed untouched); everything else passes untouched.
void Fuzzer::check_decap(std::uint64_t index, const Frame& in, int action, const Bytes& out, const Frame* client)
{
    const Bytes& f = in.bytes;
    const std::uint64_t len = f.size();
    stats_.decap_packets++;
    auto dfail = [&](const std::string& invariant, const std::string& detail = "") {
        findings_.fail(invariant, "decap", index, in, action, out, detail);
    };
    const auto& after = decap_counters_->read();
    diff(d_before_, after, moved_);
    d_before_ = after;
    int reason = -1;
    for (const Moved& m : moved_) {
        stats_.decap_reasons[m.key].packets += m.by.packets;
        stats_.decap_reasons[m.key].bytes += m.by.bytes;
    }
    if (moved_.size() != 1 || moved_[0].by.packets != 1 || moved_[0].by.bytes != len)
        dfail("decap: every packet counts under exactly one reason, with its length");
    else
        reason = static_cast<int>(moved_[0].key);

    // The model: want is the one outcome (reason) expected, or NotWellFormed (not decapsulated:
    // dropped with any reason, or passed untouched).
    constexpr int kNotWellFormed = -10;
    int want = FULCRUM_DECAP_PASS_OTHER, done_reason = -1;
    std::string why;
    std::size_t l2 = 14, outer = 0;
    std::uint16_t et = rd16(f, 12), tci = 0;
    bool vlan = false, inner6 = false;
    std::uint8_t outer_ecn = 0;
    auto local = [&](std::size_t at, bool v6) {
        std::string k(16, '\0');
        std::memcpy(k.data(), &f[at], v6 ? 16 : 4);
        return decap_local_.count(k + static_cast<char>(v6 ? FULCRUM_AF_INET6 : FULCRUM_AF_INET)) > 0;
    };
    auto source_allowed = [&](std::size_t at, bool v6) {
        if (!kDecapChecksSources)
            return true;
        // The lab's --from prefixes: 198.18.0.0/28 and 2001:db8:0:1::/120.
        static const Bytes p4 = addr_bytes("198.18.0.0"), p6 = addr_bytes("2001:db8:0:1::");
        return v6 ? same(f, at, p6, 0, 15) : same(f, at, p4, 0, 3) && (f[at + 3] & 0xf0) == 0;
    };
    if (et == kEthVlan) {
        if (f.size() >= 18) {
            vlan = true;
            tci = rd16(f, 14);
            et = rd16(f, 16);
            l2 = 18;
        } else {
            et = 0;
        }
    }
    std::size_t ip = l2, end = 0;
    // GUE (README "GUE"): UDP to the GUE port, over IPv4 unfragmented and without options; any
    // other UDP is ordinary traffic and passes. The inner packet follows the 8-byte UDP header.
    bool gue4 = et == kEthIPv4 && f.size() >= ip + 28 && f[ip + 9] == kUdp && (f[ip] & 0xf) == 5 &&
                !(rd16(f, ip + 6) & 0x3fff) && rd16(f, ip + 22) == FULCRUM_GUE_DEFAULT_PORT;
    bool gue6 = et == kEthIPv6 && f.size() >= ip + 48 && f[ip + 6] == kUdp && rd16(f, ip + 42) == FULCRUM_GUE_DEFAULT_PORT;
    if (et == kEthIPv4 && f.size() >= ip + 20 && (f[ip + 9] == kIpip || gue4) && local(ip + 16, false)) {
        outer = gue4 ? 28 : 20;
        end = ip + rd16(f, ip + 2);
        outer_ecn = f[ip + 1] & 3;
        done_reason = gue4 ? FULCRUM_DECAP_DONE_GUE_V4_IN_V4 : FULCRUM_DECAP_DONE_V4_IN_V4;
        if (!source_allowed(ip + 12, false))
            want = kDecapDropSource;
        else if ((f[ip] & 0xf) != 5 || (rd16(f, ip + 6) & 0x3fff))
            want = FULCRUM_DECAP_DROP_MALFORMED;  // README: options or a fragment
        else if ((f[ip] >> 4) != 4)
            why = "outer IPv4 header of another version";
        else if (end > f.size())
            why = "outer IPv4 total length beyond the frame";
        else if (!checksum_ok(f, ip, 20))
            why = "outer IPv4 header checksum wrong";
        else if (gue4 && (rd16(f, ip + 24) != rd16(f, ip + 2) - 20 || f.size() < ip + 29 || (f[ip + 28] >> 4) != 4))
            want = FULCRUM_DECAP_DROP_MALFORMED;  // UDP length, or not IPv4 inside (variant 0, IPv6)
        else
            want = -1;  // go on with the inner header
    } else if (et == kEthIPv6 && f.size() >= ip + 40 && (f[ip + 6] == kIpip || f[ip + 6] == kIpv6 || gue6) &&
               local(ip + 24, true)) {
        outer = gue6 ? 48 : 40;
        end = ip + 40 + rd16(f, ip + 4);
        inner6 = gue6 ? f.size() >= ip + 49 && (f[ip + 48] >> 4) == 6 : f[ip + 6] == kIpv6;
        outer_ecn = (f[ip + 1] >> 4) & 3;
        done_reason = gue6 ? (inner6 ? FULCRUM_DECAP_DONE_GUE_V6_IN_V6 : FULCRUM_DECAP_DONE_GUE_V4_IN_V6)
                           : (inner6 ? FULCRUM_DECAP_DONE_V6_IN_V6 : FULCRUM_DECAP_DONE_V4_IN_V6);
        if (!source_allowed(ip + 8, true))
            want = kDecapDropSource;
        else if ((f[ip] >> 4) != 6)
            why = "outer IPv6 header of another version";
        else if (end > f.size())
            why = "outer IPv6 payload length beyond the frame";
        else if (gue6 && (rd16(f, ip + 44) != rd16(f, ip + 4) || f.size() < ip + 49 ||
                          ((f[ip + 48] >> 4) != 4 && (f[ip + 48] >> 4) != 6)))
            want = FULCRUM_DECAP_DROP_MALFORMED;
        else
            want = -1;
    }
    std::size_t inner = ip + outer;
    if (!why.empty()) {
        want = kNotWellFormed;
    } else if (want == -1) {
        // The inner header: whole, of the family the outer header names, within the outer packet.
        std::size_t need = inner6 ? 40 : 20;
        if (inner + need > f.size() || (inner6 ? (f[inner] >> 4) != 6 : (f[inner] >> 4) != 4 || (f[inner] & 0xf) < 5))
            want = FULCRUM_DECAP_DROP_MALFORMED;
        else if (inner + need > end)
            want = kNotWellFormed, why = "inner header beyond the outer packet's length";
        else if (kDecapChecksSources && !local(inner + (inner6 ? 24 : 16), inner6))
            want = kDecapDropInnerNotLocal;
        else if (kDecapChecksSources && outer_ecn == 3 && ((inner6 ? (f[inner + 1] >> 4) : f[inner + 1]) & 3) == 0)
            want = kDecapDropEcnNotEct;  // RFC 6040: CE on the tunnel, inner Not-ECT
        else
            want = done_reason;
    }

    auto name = [](int r) {
        return r >= 0 ? std::string(dataplane::decap_reason_name(static_cast<fulcrum_decap_reason>(r))) : std::string("?");
    };
    bool decapsulated = (reason >= FULCRUM_DECAP_DONE_V4_IN_V4 && reason <= FULCRUM_DECAP_DONE_V4_IN_V6) ||
                        (reason >= FULCRUM_DECAP_DONE_GUE_V4_IN_V4 && reason <= FULCRUM_DECAP_DONE_GUE_V4_IN_V6);
    bool ok;
    std::string expected;
    if (want == FULCRUM_DECAP_PASS_OTHER) {
        ok = action == XDP_PASS && reason == want && out == f;
        expected = "XDP_PASS untouched (pass_other)";
    } else if (want == kNotWellFormed) {
        ok = (action == XDP_DROP && reason > FULCRUM_DECAP_DONE_V4_IN_V6 && reason <= FULCRUM_DECAP_DROP_ECN_NOT_ECT) ||
             (action == XDP_PASS && reason == FULCRUM_DECAP_PASS_OTHER && out == f);
        expected = "not decapsulated (" + why + ")";
    } else if (want == done_reason) {
        ok = action == XDP_PASS && reason == want;
        expected = "XDP_PASS " + name(want);
    } else {
        ok = action == XDP_DROP && reason == want;
        expected = "XDP_DROP " + name(want);
    }
    std::string got = std::string(action_name(action)) + " " + name(reason);
    if (!ok) {
        dfail(decapsulated && want != done_reason ? "decap: decapsulates only well-formed tunnel packets it may: expected " + expected
                                                  : "decap: outcome as README says: expected " + expected + ", got " + got,
              "expected " + expected + ", got " + got);
        return;
    }
    stats_.decap[got]++;
    if (!decapsulated)
        return;
    // Exactly the inner packet (RFC 6040: outer CE copied into an ECN-capable inner packet), with
    // the original L2 header (EtherType of the inner family).
    Bytes want_inner = slice(f, inner, f.size() - inner);
    if (kDecapChecksSources && outer_ecn == 3) {
        if (inner6) {
            want_inner[1] |= 0x30;
        } else {
            std::uint16_t old = rd16(want_inner, 0);
            want_inner[1] |= 3;
            std::uint32_t sum = static_cast<std::uint16_t>(~rd16(want_inner, 10));  // RFC 1624 eqn. 3
            sum += static_cast<std::uint16_t>(~old);
            sum += rd16(want_inner, 0);
            while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
            want_inner[10] = static_cast<std::uint8_t>(~sum >> 8);
            want_inner[11] = static_cast<std::uint8_t>(~sum);
        }
    }
    std::uint16_t inner_et = inner6 ? kEthIPv6 : kEthIPv4;
    bool l2_ok = out.size() == f.size() - outer && same(out, 0, f, 0, 12) &&
                 (vlan ? rd16(out, 12) == kEthVlan && rd16(out, 14) == tci && rd16(out, 16) == inner_et
                       : rd16(out, 12) == inner_et);
    if (!l2_ok || !same(out, l2, want_inner))
        dfail("decap: output is the original L2 header + the inner packet");
    if (client && want == done_reason) {
        // Balancer then decap: the backend gets the client's IP packet, without link padding.
        Expect c = model_.predict(client->bytes);
        std::size_t len_ip = c.ip_len;
        if (out.size() != l2 + len_ip || !same(out, l2, client->bytes, c.ip, len_ip))
            dfail("balancer then decap gives the backend the client's IP packet");
    }
}

void Fuzzer::finish()
{
    // Every counter against the model's totals, over the whole maps; and the sums.
    auto whole = [](int fd, std::uint32_t count, std::uint32_t size, int fields) {
        PerCpuCounters c(fd, count, size, fields);
        return c.read();
    };
    int prog = lab_->program().program_fd();
    auto reasons = whole(map_fd_by_name(prog, "reason_stats"), FULCRUM_REASON_COUNT, sizeof(fulcrum_reason_stats), 2);
    auto services = whole(map_fd_by_name(prog, "service_stats"), 0, sizeof(fulcrum_service_stats), 3);
    auto backends = whole(map_fd_by_name(prog, "backend_stats"), 0, sizeof(fulcrum_backend_stats), 2);
    auto decap = whole(decap_stats_fd(), FULCRUM_DECAP_REASON_COUNT, sizeof(fulcrum_reason_stats), 2);
    std::uint64_t reason_sum = 0, forwarded = 0;
    for (int r = 0; r < FULCRUM_REASON_COUNT; r++) {
        INFO("reason " << dataplane::reason_name(static_cast<fulcrum_reason>(r)));
        CHECK(reasons[r].packets == stats_.reasons[r].packets);
        CHECK(reasons[r].bytes == stats_.reasons[r].bytes);
        if (r != FULCRUM_FWD_ICMP_ERROR)
            reason_sum += reasons[r].packets;
    }
    for (std::uint32_t s = 0; s < services.size(); s++) {
        INFO("service " << s);
        auto it = stats_.services.find(s);
        Count want = it == stats_.services.end() ? Count{} : it->second;
        CHECK(services[s].packets == want.packets);
        CHECK(services[s].bytes == want.bytes);
        CHECK(services[s].new_flows == want.new_flows);
        forwarded += services[s].packets;
    }
    for (std::uint32_t b = 0; b < backends.size(); b++) {
        INFO("backend " << b);
        auto it = stats_.backends.find(b);
        Count want = it == stats_.backends.end() ? Count{} : it->second;
        CHECK(backends[b].packets == want.packets);
        CHECK(backends[b].bytes == want.bytes);
    }
    // Reasons (ICMP errors forwarded are in both) + forwarded = packets sent.
    CHECK(reason_sum + forwarded == stats_.balancer_packets);
    std::uint64_t decap_sum = 0;
    for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; r++) {
        INFO("decap reason " << r);
        CHECK(decap[r].packets == stats_.decap_reasons[r].packets);
        CHECK(decap[r].bytes == stats_.decap_reasons[r].bytes);
        decap_sum += decap[r].packets;
    }
    CHECK(decap_sum == stats_.decap_packets);
    // QUIC outcomes: the whole map equals what moved packet by packet, and every outcome was met.
    auto quic = whole(map_fd_by_name(prog, "quic_events"), FULCRUM_QUIC_EVENT_COUNT, sizeof(std::uint64_t), 1);
    for (int q = 0; q < FULCRUM_QUIC_EVENT_COUNT; q++) {
        INFO("quic outcome " << dataplane::quic_event_name(static_cast<fulcrum_quic_event>(q)));
        CHECK(quic[q].packets == stats_.quic[q]);
        if (stats_.balancer_packets >= 100000)
            CHECK(stats_.quic_model[q] > 0);
    }
}

}  // namespace

TEST_CASE("fuzz: a million hostile packets through the balancer and decap", "[bpf][fuzz]")
{
    const std::uint64_t packets = env_u64("FULCRUM_FUZZ_PACKETS", 1'000'000);
    const std::uint64_t seed = env_u64("FULCRUM_FUZZ_SEED", kDefaultSeed);
    const std::uint64_t first = env_u64("FULCRUM_FUZZ_FIRST", 0);
    std::printf("fuzz: seed 0x%llx, packets %llu from %llu (replay: FULCRUM_FUZZ_SEED=0x%llx FULCRUM_FUZZ_FIRST=N "
                "FULCRUM_FUZZ_PACKETS=1)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(packets),
                static_cast<unsigned long long>(first), static_cast<unsigned long long>(seed));
    std::fflush(stdout);

    Fuzzer fuzzer(seed);
    auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = first; i < first + packets; i++)
        fuzzer.run(i);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fuzzer.finish();

    const Stats& st = fuzzer.stats();
    const Findings& fd = fuzzer.findings();
    std::printf("fuzz: balancer %llu packets, decap %llu packets in %.1f s (%.0f packets/s through both, "
                "counters read after every run)\n",
                static_cast<unsigned long long>(st.balancer_packets), static_cast<unsigned long long>(st.decap_packets),
                seconds, static_cast<double>(st.balancer_packets + st.decap_packets) / seconds);
    std::printf("balancer outcomes:\n");
    for (const auto& [what, n] : st.balancer)
        std::printf("  %-40s %llu\n", what.c_str(), static_cast<unsigned long long>(n));
    std::printf("decap outcomes:\n");
    for (const auto& [what, n] : st.decap)
        std::printf("  %-40s %llu\n", what.c_str(), static_cast<unsigned long long>(n));
    for (const auto& [bug, n] : fd.known)
        std::printf("known, not asserted: %s: %llu packets\n    first: %s\n", bug.c_str(),
                    static_cast<unsigned long long>(n), fd.known_first.at(bug).c_str());
    for (const auto& [invariant, n] : fd.failures)
        std::printf("FAILED: %s: %llu packets\n", invariant.c_str(), static_cast<unsigned long long>(n));
    for (const auto& example : fd.examples)
        std::printf("%s\n", example.c_str());
    std::fflush(stdout);

    for (const auto& [invariant, n] : fd.failures) {
        INFO(invariant << ": " << n << " packets (seed 0x" << std::hex << seed << std::dec << ")");
        CHECK(n == 0);
    }
    if (!fd.examples.empty()) {
        std::string all;
        for (const auto& example : fd.examples)
            all += example + "\n";
        FAIL_CHECK("first failures:\n" << all);
    }
}
