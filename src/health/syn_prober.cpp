// The raw SYN prober of tcp checks; see syn_prober.h.
#include "health/syn_prober.h"

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <random>

#include "health/check_common.h"

namespace fulcrum::health {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr int kPorts = 8;                 // reserved source ports per family
constexpr std::size_t kSynLen = 24;       // TCP header with one option (MSS)
constexpr std::size_t kBatch = 64;        // answers read per recvmmsg
constexpr std::size_t kAnswerLen = 128;   // enough for an IP header with options and the TCP header
constexpr auto kFirstRto = std::chrono::milliseconds(1000);  // the kernel's initial SYN RTO
constexpr auto kSlack = std::chrono::milliseconds(2);        // timers due this close together fire together
constexpr std::uint8_t kSyn = 0x02, kRst = 0x04, kAck = 0x10;

std::uint16_t load16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t load32(const std::uint8_t* p)
{
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}
void store16(std::uint8_t* p, std::uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}
void store32(std::uint8_t* p, std::uint32_t v)
{
    store16(p, v >> 16);
    store16(p + 2, v & 0xffff);
}

// Ones' complement sum (RFC 1071), for the IPv4 pseudo-header checksum.
std::uint32_t sum16(const std::uint8_t* p, std::size_t len, std::uint32_t sum = 0)
{
    for (std::size_t i = 0; i + 1 < len; i += 2) sum += load16(p + i);
    if (len & 1) sum += std::uint32_t(p[len - 1]) << 8;
    return sum;
}
std::uint16_t fold(std::uint32_t sum)
{
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

boost::system::error_code sys_error(int err) { return {err, boost::system::system_category()}; }

std::string peer_text(bool v6, const std::uint8_t* addr, std::uint16_t port)
{
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(v6 ? AF_INET6 : AF_INET, addr, text, sizeof text);
    return v6 ? "[" + std::string(text) + "]:" + std::to_string(port) : std::string(text) + ":" + std::to_string(port);
}

// A socket filter that keeps only SYN-ACKs and RSTs to the reserved ports: the raw socket would
// otherwise get a copy of every TCP segment this host receives. IPv4 raw sockets see the IP
// header, IPv6 ones start at the TCP header.
std::vector<sock_filter> answer_filter(bool v6, const std::array<std::uint16_t, kPorts>& ports)
{
    std::vector<sock_filter> f;
    if (v6) {
        f.push_back(BPF_STMT(BPF_LDX | BPF_IMM, 0));
    } else {
        f.push_back(BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));  // x = IP header length
    }
    f.push_back(BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2));  // destination port
    for (int i = 0; i < kPorts; ++i)
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ports[i], static_cast<std::uint8_t>(kPorts - i), 0));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, 0));
    f.push_back(BPF_STMT(BPF_LD | BPF_B | BPF_IND, 13));  // flags
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, kSyn | kRst, 1, 0));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, 0));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, 0xffff));
    return f;
}

}  // namespace

struct SynProber::Family {
    Family(asio::io_context& io, int fd, bool v6) : sd(io, fd), v6(v6) {}
    asio::posix::stream_descriptor sd;  // the raw socket
    bool v6;
    std::array<int, kPorts> holders{};  // TCP sockets bound to the reserved ports, never listening
    std::array<std::uint16_t, kPorts> ports{};
    unsigned next_port = 0;
    struct Out {
        std::array<std::uint8_t, 20 + kSynLen> packet;
        sockaddr_in6 to;  // sockaddr_in for IPv4
        alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in6_pktinfo))> control;
        std::size_t len, control_len;
        std::uint32_t slot;
    };
    std::vector<Out> outs, sending;  // SYNs waiting for the next flush; the batch being sent
    std::vector<mmsghdr> msgs;
    std::vector<iovec> iovs;
    std::array<std::array<std::uint8_t, kAnswerLen>, kBatch> in{};
    std::array<sockaddr_in6, kBatch> from{};
    std::array<mmsghdr, kBatch> in_msgs{};
    std::array<iovec, kBatch> in_iovs{};
    std::vector<std::array<std::uint8_t, 17>> good_sources;  // `source` addresses bind(2) accepted
    ~Family()
    {
        for (int fd : holders)
            if (fd > 0) ::close(fd);
    }
};

struct SynProber::Probe {
    bool used = false;
    bool v6 = false;
    bool has_source = false;
    std::uint8_t peer[16] = {};
    std::uint8_t source[16] = {};
    std::uint16_t peer_port = 0, our_port = 0;
    std::uint32_t seq = 0;
    std::chrono::milliseconds timeout{0}, rto{0};
    Clock::time_point start{}, deadline{}, next_syn{};
    Done done;
};

SynProber::SynProber(asio::io_context& io) : io_(io), timer_(io)
{
    std::random_device rd;
    secret_ = rd();
    rng_ = (std::uint64_t(rd()) << 32 | rd()) | 1;
}

SynProber::~SynProber() = default;

fulcrum::Result<std::unique_ptr<SynProber>> SynProber::open(asio::io_context& io)
{
    std::unique_ptr<SynProber> p(new SynProber(io));
    for (bool v6 : {false, true}) {
        const int family = v6 ? AF_INET6 : AF_INET;
        const char* name = v6 ? "IPv6" : "IPv4";
        int fd = ::socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0)
            return Status::failure(std::string("health: cannot open a raw ") + name + " TCP socket for tcp checks: " +
                                   errno_text(errno));
        auto f = std::make_unique<Family>(io, fd, v6);
        const int one = 1, size = 4 << 20;
        // Bursts of answers must not be dropped (a drop is a false timeout); root may exceed rmem_max.
        if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
            ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        bool ok;
        if (v6) {
            const int offset = 16;  // the kernel fills the TCP checksum, pseudo-header included
            ok = ::setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &offset, sizeof offset) == 0 &&
                 ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one) == 0;
        } else {
            ok = ::setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) == 0 &&
                 ::setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) == 0;
        }
        if (!ok)
            return Status::failure(std::string("health: cannot set up the raw ") + name + " socket: " +
                                   errno_text(errno));
        for (int i = 0; i < kPorts; ++i) {
            int h = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (h < 0)
                return Status::failure(std::string("health: cannot reserve a source port: ") + errno_text(errno));
            f->holders[i] = h;
            sockaddr_in6 any{};
            socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
            any.sin6_family = static_cast<sa_family_t>(family);  // sin_family sits at the same offset
            if (v6) ::setsockopt(h, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            if (::bind(h, reinterpret_cast<sockaddr*>(&any), len) < 0 ||
                ::getsockname(h, reinterpret_cast<sockaddr*>(&any), &len) < 0)
                return Status::failure(std::string("health: cannot reserve a source port: ") + errno_text(errno));
            f->ports[i] = ntohs(v6 ? any.sin6_port : reinterpret_cast<sockaddr_in*>(&any)->sin_port);
        }
        auto filter = answer_filter(v6, f->ports);
        sock_fprog prog{static_cast<unsigned short>(filter.size()), filter.data()};
        if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
            return Status::failure(std::string("health: cannot attach the answer filter: ") + errno_text(errno));
        for (std::size_t i = 0; i < kBatch; ++i) {
            f->in_iovs[i] = {f->in[i].data(), kAnswerLen};
            f->in_msgs[i].msg_hdr.msg_iov = &f->in_iovs[i];
            f->in_msgs[i].msg_hdr.msg_iovlen = 1;
        }
        (v6 ? p->v6_ : p->v4_) = std::move(f);
    }
    p->wait_readable(*p->v4_);
    p->wait_readable(*p->v6_);
    return p;
}

void SynProber::probe(const config::HealthCheck& check, const Target& target, Done done)
{
    const bool v6 = target.address.family == AF_INET6;
    Family& f = v6 ? *v6_ : *v4_;
    const std::string peer = peer_text(v6, target.address.bytes, target.port);
    auto fail_soon = [&](Failure failure, std::string detail) {
        // `done` never runs inside probe().
        asio::post(io_, [done = std::move(done), failure, detail = std::move(detail), start = Clock::now()] {
            Result r;
            r.failure = failure;
            r.detail = detail;
            r.duration = Clock::now() - start;
            done(std::move(r));
        });
    };
    if (target.address.family != AF_INET && target.address.family != AF_INET6)
        return fail_soon(Failure::other, "no target address");

    std::uint8_t source[16] = {};
    bool has_source = false;
    if (check.source) {
        const config::Address& s = *check.source;
        if ((s.family == AF_INET6) != v6)
            return fail_soon(Failure::other, "source " + detail::address_text(s) + " is " +
                                                 (s.family == AF_INET6 ? "IPv6" : "IPv4") + " but the target is " +
                                                 (v6 ? "IPv6" : "IPv4"));
        std::array<std::uint8_t, 17> key{};
        key[0] = v6;
        std::memcpy(key.data() + 1, s.bytes, 16);
        if (std::find(f.good_sources.begin(), f.good_sources.end(), key) == f.good_sources.end()) {
            // As the connect check does on every check: the source must be an address of this host.
            int h = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in6 sa{};
            socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
            if (v6) {
                sa.sin6_family = AF_INET6;
                std::memcpy(&sa.sin6_addr, s.bytes, 16);
            } else {
                auto* sin = reinterpret_cast<sockaddr_in*>(&sa);
                sin->sin_family = AF_INET;
                std::memcpy(&sin->sin_addr, s.bytes, 4);
            }
            const int rc = h < 0 ? -1 : ::bind(h, reinterpret_cast<sockaddr*>(&sa), len);
            const int err = errno;
            if (h >= 0) ::close(h);
            if (rc < 0)
                return fail_soon(Failure::other, "bind to source " + detail::address_text(s) + ": " + errno_text(err));
            f.good_sources.push_back(key);
        }
        std::memcpy(source, s.bytes, 16);
        has_source = true;
    } else if (!v6) {
        // The kernel's source for this target, for the pseudo-header checksum.
        std::uint32_t dst;
        std::memcpy(&dst, target.address.bytes, 4);
        auto it = source_v4_.find(dst);
        if (it == source_v4_.end()) {
            int u = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            sockaddr_in sin{};
            sin.sin_family = AF_INET;
            sin.sin_port = htons(target.port);
            sin.sin_addr.s_addr = dst;
            socklen_t len = sizeof sin;
            int rc = u < 0 ? -1 : ::connect(u, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
            if (rc == 0) rc = ::getsockname(u, reinterpret_cast<sockaddr*>(&sin), &len);
            const int err = errno;
            if (u >= 0) ::close(u);
            if (rc < 0) {
                auto o = detail::socket_error(sys_error(err), "connect to " + peer);
                return fail_soon(o.failure, std::move(o.detail));
            }
            it = source_v4_.emplace(dst, sin.sin_addr.s_addr).first;
        }
        std::memcpy(source, &it->second, 4);
    }

    std::uint32_t slot;
    if (!free_.empty()) {
        slot = free_.back();
        free_.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(probes_.size());
        if (slot >= (1u << 20))
            return fail_soon(Failure::other, "too many tcp checks in flight");
        probes_.emplace_back();
    }
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    Probe& p = probes_[slot];
    p.used = true;
    p.v6 = v6;
    p.has_source = has_source;
    std::memcpy(p.peer, target.address.bytes, v6 ? 16 : 4);
    std::memcpy(p.source, source, 16);
    p.peer_port = target.port;
    p.our_port = f.ports[f.next_port++ % kPorts];
    p.seq = (slot << 12 | static_cast<std::uint32_t>(rng_ & 0xfff)) ^ secret_;
    p.timeout = check.timeout;
    p.rto = kFirstRto;
    p.start = Clock::now();
    p.deadline = p.start + check.timeout;
    p.next_syn = p.start + p.rto;
    p.done = std::move(done);
    ++in_flight_;
    send(slot);
    timers_.push_back({std::min(p.deadline, p.next_syn), slot, p.seq});
    std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
    arm_timer();
}

void SynProber::send(std::uint32_t slot)
{
    const Probe& p = probes_[slot];
    Family& f = p.v6 ? *v6_ : *v4_;
    Family::Out& o = f.outs.emplace_back();
    o.slot = slot;
    o.control_len = 0;
    std::uint8_t* tcp = o.packet.data() + (p.v6 ? 0 : 20);
    std::memset(tcp, 0, kSynLen);
    store16(tcp, p.our_port);
    store16(tcp + 2, p.peer_port);
    store32(tcp + 4, p.seq);
    tcp[12] = (kSynLen / 4) << 4;
    tcp[13] = kSyn;
    store16(tcp + 14, 64240);               // window
    tcp[20] = 2;                            // MSS option, as any SYN carries
    tcp[21] = 4;
    store16(tcp + 22, p.v6 ? 1440 : 1460);
    std::memset(&o.to, 0, sizeof o.to);
    if (p.v6) {
        o.len = kSynLen;
        o.to.sin6_family = AF_INET6;
        std::memcpy(&o.to.sin6_addr, p.peer, 16);
        if (p.has_source) {
            auto* c = reinterpret_cast<cmsghdr*>(o.control.data());
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
            in6_pktinfo info{};
            std::memcpy(&info.ipi6_addr, p.source, 16);
            std::memcpy(CMSG_DATA(c), &info, sizeof info);
            o.control_len = CMSG_SPACE(sizeof(in6_pktinfo));
        }
    } else {
        o.len = 20 + kSynLen;
        std::uint8_t* ip = o.packet.data();
        std::memset(ip, 0, 20);
        ip[0] = 0x45;
        ip[8] = 64;  // TTL
        ip[9] = IPPROTO_TCP;
        std::memcpy(ip + 12, p.source, 4);
        std::memcpy(ip + 16, p.peer, 4);
        // The kernel fills the IP checksum, length and id; the TCP checksum is ours.
        std::uint32_t sum = sum16(ip + 12, 8) + IPPROTO_TCP + kSynLen;
        store16(tcp + 16, fold(sum16(tcp, kSynLen, sum)));
        auto* sin = reinterpret_cast<sockaddr_in*>(&o.to);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, p.peer, 4);
    }
    ++syns_sent_;
    if (!flush_posted_) {
        flush_posted_ = true;
        // Every SYN of this event-loop turn goes out in one sendmmsg.
        asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
            if (alive.expired()) return;
            flush_posted_ = false;
            flush();
        });
    }
}

void SynProber::flush()
{
    flush(*v4_);
    flush(*v6_);
}

void SynProber::flush(Family& f)
{
    if (f.outs.empty()) return;
    f.sending.swap(f.outs);  // finishing a probe below may start another: it goes to `outs`
    const std::size_t n = f.sending.size();
    f.msgs.resize(n);
    f.iovs.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        Family::Out& o = f.sending[i];
        f.iovs[i] = {o.packet.data(), o.len};
        msghdr& h = f.msgs[i].msg_hdr;
        h = {};
        h.msg_name = &o.to;
        h.msg_namelen = f.v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        h.msg_iov = &f.iovs[i];
        h.msg_iovlen = 1;
        if (o.control_len) {
            h.msg_control = o.control.data();
            h.msg_controllen = o.control_len;
        }
    }
    std::vector<std::pair<std::uint32_t, int>> failed;  // rare: allocates only on errors
    for (std::size_t i = 0; i < n;) {
        // At most kBatch SYNs per call, their answers read in between: on a veth (or loopback)
        // the answers arrive during the call itself, and after a stall of the event loop
        // thousands of checks start at once, more answers than a receive buffer holds.
        const std::size_t chunk = std::min(n - i, kBatch);
        const int sent = ::sendmmsg(f.sd.native_handle(), f.msgs.data() + i, static_cast<unsigned>(chunk), 0);
        if (sent > 0) {
            i += static_cast<std::size_t>(sent);
            if (i < n) drain(f);
            continue;
        }
        const int err = errno;
        if (err == EINTR) continue;
        // A full send buffer only delays this SYN (its retransmit or timeout follows); anything
        // else (no route, a source not on this host) fails the check as connect(2) would.
        if (err != EAGAIN && err != ENOBUFS) failed.emplace_back(f.sending[i].slot, err);
        ++i;
    }
    f.sending.clear();
    for (auto [slot, err] : failed) {
        const Probe& p = probes_[slot];
        if (!p.used) continue;
        auto o = detail::socket_error(sys_error(err), "connect to " + peer_text(p.v6, p.peer, p.peer_port));
        finish(slot, o.failure, std::move(o.detail));
    }
}

void SynProber::wait_readable(Family& f)
{
    f.sd.async_wait(asio::posix::descriptor_base::wait_read,
                    [this, &f, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
                        if (alive.expired() || ec == asio::error::operation_aborted) return;
                        drain_errors(f);
                        drain(f);
                        wait_readable(f);
                    });
}

void SynProber::drain(Family& f)
{
    const int fd = f.sd.native_handle();
    for (;;) {
        for (std::size_t i = 0; i < kBatch; ++i) {
            f.in_msgs[i].msg_hdr.msg_name = &f.from[i];
            f.in_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in6);
            f.in_msgs[i].msg_hdr.msg_flags = 0;
        }
        const int n = ::recvmmsg(fd, f.in_msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            return;  // EAGAIN: all read (an error here is a pending ICMP error, drained next time)
        }
        for (int i = 0; i < n; ++i) {
            const std::uint8_t* data = f.in[i].data();
            std::size_t len = std::min<std::size_t>(f.in_msgs[i].msg_len, kAnswerLen);
            if (f.v6) {
                answer(f, data, len, reinterpret_cast<const std::uint8_t*>(&f.from[i].sin6_addr));
            } else {
                if (len < 20) continue;
                const std::size_t ihl = (data[0] & 0xf) * 4u;
                if (ihl < 20 || len < ihl) continue;
                answer(f, data + ihl, len - ihl, data + 12);
            }
        }
        if (static_cast<std::size_t>(n) < kBatch) return;
    }
}

SynProber::Probe* SynProber::find(std::uint32_t seq, int family, const std::uint8_t* peer, std::uint16_t peer_port,
                                   std::uint16_t our_port)
{
    const std::uint32_t slot = (seq ^ secret_) >> 12;
    if (slot >= probes_.size()) return nullptr;
    Probe& p = probes_[slot];
    if (!p.used || p.seq != seq || p.v6 != (family == AF_INET6) || p.peer_port != peer_port ||
        p.our_port != our_port || std::memcmp(p.peer, peer, p.v6 ? 16 : 4) != 0)
        return nullptr;
    return &p;
}

void SynProber::answer(Family& f, const std::uint8_t* tcp, std::size_t len, const std::uint8_t* from)
{
    if (len < 20) return;
    const std::uint8_t flags = tcp[13];
    if (!(flags & kAck)) return;  // the answer to a SYN acknowledges it (a SYN-ACK, or RST+ACK)
    Probe* p = find(load32(tcp + 8) - 1, f.v6 ? AF_INET6 : AF_INET, from, load16(tcp), load16(tcp + 2));
    if (!p) return;
    const std::uint32_t slot = static_cast<std::uint32_t>(p - probes_.data());
    if ((flags & (kSyn | kRst)) == kSyn) {
        finish(slot, Failure::none, {});
    } else if (flags & kRst) {
        finish(slot, Failure::refused,
               "connect to " + peer_text(p->v6, p->peer, p->peer_port) + ": " + errno_text(ECONNREFUSED));
    }
}

void SynProber::drain_errors(Family& f)
{
    // ICMP errors about our SYNs (IP_RECVERR): the offending packet comes back, IPv4 from its IP
    // header (IP_HDRINCL), IPv6 from its TCP header with the destination in msg_name.
    const int fd = f.sd.native_handle();
    for (;;) {
        std::array<std::uint8_t, kAnswerLen> buf;
        sockaddr_in6 to{};
        alignas(cmsghdr) std::array<char, 512> control;
        iovec iov{buf.data(), buf.size()};
        msghdr h{};
        h.msg_name = &to;
        h.msg_namelen = sizeof to;
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        h.msg_control = control.data();
        h.msg_controllen = control.size();
        const ssize_t n = ::recvmsg(fd, &h, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        const sock_extended_err* ee = nullptr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c))
            if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
                (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR))
                ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
        if (!ee || ee->ee_errno == 0) continue;
        const std::uint8_t* tcp = buf.data();
        std::size_t len = static_cast<std::size_t>(n);
        const std::uint8_t* peer;
        if (f.v6) {
            peer = reinterpret_cast<const std::uint8_t*>(&to.sin6_addr);
        } else {
            if (len < 20) continue;
            const std::size_t ihl = (buf[0] & 0xf) * 4u;
            if (len < ihl + 8) continue;
            peer = buf.data() + 16;
            tcp += ihl;
            len -= ihl;
        }
        if (len < 8) continue;  // ports and sequence number: what an ICMP error always quotes
        Probe* p = find(load32(tcp + 4), f.v6 ? AF_INET6 : AF_INET, peer, load16(tcp + 2), load16(tcp));
        if (!p) continue;  // about another socket's segment
        const std::uint32_t slot = static_cast<std::uint32_t>(p - probes_.data());
        auto o = detail::socket_error(sys_error(static_cast<int>(ee->ee_errno)),
                                      "connect to " + peer_text(p->v6, p->peer, p->peer_port));
        finish(slot, o.failure, std::move(o.detail));
    }
}

void SynProber::arm_timer()
{
    // An answered probe's deadline does not wake the loop: most probes are answered well before
    // theirs, and each stale deadline was a wake (hundreds a second at 10,000 checks/s).
    while (!timers_.empty()) {
        const Probe& p = probes_[timers_.front().slot];
        if (p.used && p.seq == timers_.front().seq) break;
        std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
        timers_.pop_back();
    }
    if (timers_.empty()) return;
    const auto at = timers_.front().at + kSlack;
    if (timer_armed_ && timer_at_ <= at) return;
    timer_armed_ = true;
    timer_at_ = at;
    timer_.expires_at(at);
    timer_.async_wait([this, at, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
        if (alive.expired() || ec || at != timer_at_) return;  // replaced by an earlier one
        timer_armed_ = false;
        on_timer();
    });
}

void SynProber::on_timer()
{
    // Answers that came while the event loop was busy elsewhere (an apply, a scrape) are read
    // before any deadline is judged: a stalled loop must not turn answered checks into timeouts,
    // which would take backends down and start yet another apply.
    for (Family* f : {v4_.get(), v6_.get()}) {
        drain_errors(*f);
        drain(*f);
    }
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.front().at <= now + kSlack) {
        std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
        const Timer t = timers_.back();
        timers_.pop_back();
        Probe& p = probes_[t.slot];
        if (!p.used || p.seq != t.seq) continue;  // answered meanwhile
        if (now + kSlack >= p.deadline) {
            finish(t.slot, Failure::timeout,
                   "timed out after " + detail::ms_text(p.timeout) + " while connecting to " +
                       peer_text(p.v6, p.peer, p.peer_port));
            continue;
        }
        // The kernel's SYN retransmits: after 1 s, then 2 s, 4 s, ... while the timeout allows.
        send(t.slot);
        Probe& q = probes_[t.slot];
        q.rto *= 2;
        q.next_syn += q.rto;
        timers_.push_back({std::min(q.deadline, q.next_syn), t.slot, q.seq});
        std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
    }
    arm_timer();
}

void SynProber::finish(std::uint32_t slot, Failure failure, std::string detail)
{
    Probe& p = probes_[slot];
    Done done = std::move(p.done);
    Result r;
    r.failure = failure;
    r.detail = std::move(detail);
    r.duration = Clock::now() - p.start;
    if (failure != Failure::none) {
        // Ask again for the kernel's source and try `source` again before this target's next check.
        if (!p.v6 && !p.has_source) {
            std::uint32_t dst;
            std::memcpy(&dst, p.peer, 4);
            source_v4_.erase(dst);
        }
        if (p.has_source) {
            Family& f = p.v6 ? *v6_ : *v4_;
            std::array<std::uint8_t, 17> key{};
            key[0] = p.v6;
            std::memcpy(key.data() + 1, p.source, 16);
            std::erase(f.good_sources, key);
        }
    }
    p.used = false;
    p.done = nullptr;
    free_.push_back(slot);
    --in_flight_;
    done(std::move(r));  // may start another probe: nothing of probes_ is held past this
}

}  // namespace fulcrum::health
