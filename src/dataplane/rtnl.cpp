// rtnetlink requests and notifications for the next-hop cache; see rtnl.h.
#include "dataplane/rtnl.h"

#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace fulcrum::dataplane::rtnl {
namespace {

constexpr std::size_t kBuffer = 65536;

std::string errno_text(const char* what, int err)
{
    return std::string(what) + ": " + std::strerror(err);
}

std::uint8_t to_kernel_family(std::uint8_t family) { return family == FULCRUM_AF_INET ? AF_INET : AF_INET6; }
std::size_t addr_len(std::uint8_t family) { return family == FULCRUM_AF_INET ? 4 : 16; }

// A request: header, fixed part, then attributes appended with add().
struct Request {
    alignas(nlmsghdr) char buf[512] = {};
    nlmsghdr* nh() { return reinterpret_cast<nlmsghdr*>(buf); }
    Request(std::uint16_t type, std::uint16_t flags, const void* fixed, std::size_t fixed_len)
    {
        nh()->nlmsg_type = type;
        nh()->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
        std::memcpy(NLMSG_DATA(nh()), fixed, fixed_len);
        nh()->nlmsg_len = static_cast<std::uint32_t>(NLMSG_LENGTH(fixed_len));
    }
    void add(std::uint16_t type, const void* data, std::size_t len)
    {
        auto* a = reinterpret_cast<rtattr*>(buf + NLMSG_ALIGN(nh()->nlmsg_len));
        a->rta_type = type;
        a->rta_len = static_cast<std::uint16_t>(RTA_LENGTH(len));
        std::memcpy(RTA_DATA(a), data, len);
        nh()->nlmsg_len = static_cast<std::uint32_t>(NLMSG_ALIGN(nh()->nlmsg_len) + RTA_ALIGN(a->rta_len));
    }
};

// Calls f(type, data, len) for each attribute after a fixed header of fixed_len bytes.
template <typename F>
void for_each_attr(const nlmsghdr* nh, std::size_t fixed_len, F f)
{
    int len = static_cast<int>(nh->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(fixed_len));
    auto* a = reinterpret_cast<const rtattr*>(static_cast<const char*>(NLMSG_DATA(nh)) + NLMSG_ALIGN(fixed_len));
    for (; len > 0 && RTA_OK(a, len); a = RTA_NEXT(a, len))
        f(static_cast<std::uint16_t>(a->rta_type & NLA_TYPE_MASK), RTA_DATA(a), RTA_PAYLOAD(a));
}

std::optional<std::array<std::uint8_t, 6>> mac_of(const void* data, std::size_t len)
{
    if (len != 6)
        return std::nullopt;
    std::array<std::uint8_t, 6> mac{};
    std::memcpy(mac.data(), data, 6);
    return mac;
}

}  // namespace

bool neighbour_state_valid(std::uint16_t state)
{
    return state & (NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY);
}

Socket& Socket::operator=(Socket&& o) noexcept
{
    if (this != &o) {
        if (fd_ >= 0)
            close(fd_);
        fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
}

Socket::~Socket()
{
    if (fd_ >= 0)
        close(fd_);
}

std::optional<Client> Client::open(std::string* error)
{
    Socket s(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!s) {
        *error = errno_text("netlink: cannot open a NETLINK_ROUTE socket", errno);
        return std::nullopt;
    }
    timeval tv{1, 0};
    setsockopt(s.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(s.fd(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    return Client(std::move(s));
}

bool Client::transact(void* req, std::uint32_t len, std::vector<std::vector<char>>* replies, std::string* error)
{
    auto* nh = static_cast<nlmsghdr*>(req);
    const std::uint32_t seq = ++seq_;
    nh->nlmsg_seq = seq;
    const bool dump = nh->nlmsg_flags & NLM_F_DUMP;
    if (send(socket_.fd(), req, len, 0) < 0) {
        *error = errno_text("netlink: send", errno);
        return false;
    }
    std::vector<char> buf(kBuffer);
    while (true) {
        ssize_t n = recv(socket_.fd(), buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *error = errno_text("netlink: receive", errno);
            return false;
        }
        int left = static_cast<int>(n);
        for (auto* m = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(m, static_cast<unsigned>(left));
             m = NLMSG_NEXT(m, left)) {
            if (m->nlmsg_seq != seq)
                continue;  // a late answer to an earlier (timed-out) request
            if (m->nlmsg_type == NLMSG_ERROR) {
                auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(m));
                if (e->error == 0)
                    return true;
                *error = std::strerror(-e->error);
                errno = -e->error;
                return false;
            }
            if (m->nlmsg_type == NLMSG_DONE)
                return true;
            const char* p = reinterpret_cast<const char*>(m);
            replies->emplace_back(p, p + m->nlmsg_len);
            if (!dump)
                return true;
        }
    }
}

std::optional<Route> Client::route(std::uint8_t family, const fulcrum_addr& dst, const fulcrum_addr* src,
                                   bool fib_match, std::string* error)
{
    rtmsg rt{};
    rt.rtm_family = to_kernel_family(family);
    rt.rtm_dst_len = static_cast<unsigned char>(addr_len(family) * 8);
    rt.rtm_src_len = src ? rt.rtm_dst_len : 0;
    rt.rtm_flags = fib_match ? RTM_F_FIB_MATCH : 0;
    Request req(RTM_GETROUTE, 0, &rt, sizeof rt);
    req.add(RTA_DST, dst.w, addr_len(family));
    if (src)
        req.add(RTA_SRC, src->w, addr_len(family));
    std::vector<std::vector<char>> replies;
    if (!transact(req.buf, req.nh()->nlmsg_len, &replies, error))
        return std::nullopt;
    if (replies.empty() || reinterpret_cast<nlmsghdr*>(replies[0].data())->nlmsg_type != RTM_NEWROUTE) {
        *error = "netlink: unexpected answer to RTM_GETROUTE";
        return std::nullopt;
    }
    const auto* m = reinterpret_cast<const nlmsghdr*>(replies[0].data());
    const auto* r = static_cast<const rtmsg*>(NLMSG_DATA(m));
    Route out;
    out.type = r->rtm_type;
    out.src_len = r->rtm_src_len;
    out.tos = r->rtm_tos;
    for_each_attr(m, sizeof(rtmsg), [&](std::uint16_t type, const void* data, std::size_t len) {
        switch (type) {
        case RTA_OIF:
            if (len >= 4)
                std::memcpy(&out.oif, data, 4);
            break;
        case RTA_GATEWAY:
            if (len == addr_len(family)) {
                fulcrum_addr gw{};
                std::memcpy(gw.w, data, len);
                out.gateway = gw;
            }
            break;
        case RTA_MULTIPATH: out.multipath = true; break;
        case RTA_VIA: out.via = true; break;
        case RTA_ENCAP: out.encap = true; break;
        case RTA_METRICS: {
            int mlen = static_cast<int>(len);
            for (auto* a = static_cast<const rtattr*>(data); RTA_OK(a, mlen); a = RTA_NEXT(a, mlen))
                if (a->rta_type == RTAX_MTU && RTA_PAYLOAD(a) >= 4)
                    std::memcpy(&out.mtu_metric, RTA_DATA(a), 4);
            break;
        }
        default: break;
        }
    });
    return out;
}

std::optional<Neighbour> Client::neighbour(std::uint8_t family, const fulcrum_addr& dst, std::uint32_t ifindex,
                                           std::string* error)
{
    ndmsg nd{};
    nd.ndm_family = to_kernel_family(family);
    nd.ndm_ifindex = static_cast<int>(ifindex);
    Request req(RTM_GETNEIGH, 0, &nd, sizeof nd);
    req.add(NDA_DST, dst.w, addr_len(family));
    std::vector<std::vector<char>> replies;
    if (!transact(req.buf, req.nh()->nlmsg_len, &replies, error)) {
        if (errno == ENOENT)
            *error = "no entry";
        return std::nullopt;
    }
    if (replies.empty() || reinterpret_cast<nlmsghdr*>(replies[0].data())->nlmsg_type != RTM_NEWNEIGH) {
        *error = "netlink: unexpected answer to RTM_GETNEIGH";
        return std::nullopt;
    }
    const auto* m = reinterpret_cast<const nlmsghdr*>(replies[0].data());
    Neighbour out;
    out.state = static_cast<const ndmsg*>(NLMSG_DATA(m))->ndm_state;
    for_each_attr(m, sizeof(ndmsg), [&](std::uint16_t type, const void* data, std::size_t len) {
        if (type == NDA_LLADDR)
            out.mac = mac_of(data, len);
    });
    return out;
}

std::optional<Link> Client::link(std::uint32_t ifindex, std::string* error)
{
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = static_cast<int>(ifindex);
    Request req(RTM_GETLINK, 0, &ifi, sizeof ifi);
    std::uint32_t mask = RTEXT_FILTER_SKIP_STATS;
    req.add(IFLA_EXT_MASK, &mask, sizeof mask);
    std::vector<std::vector<char>> replies;
    if (!transact(req.buf, req.nh()->nlmsg_len, &replies, error))
        return std::nullopt;
    if (replies.empty() || reinterpret_cast<nlmsghdr*>(replies[0].data())->nlmsg_type != RTM_NEWLINK) {
        *error = "netlink: unexpected answer to RTM_GETLINK";
        return std::nullopt;
    }
    const auto* m = reinterpret_cast<const nlmsghdr*>(replies[0].data());
    Link out;
    for_each_attr(m, sizeof(ifinfomsg), [&](std::uint16_t type, const void* data, std::size_t len) {
        if (type == IFLA_ADDRESS)
            out.mac = mac_of(data, len);
        else if (type == IFLA_MTU && len >= 4)
            std::memcpy(&out.mtu, data, 4);
        else if (type == IFLA_IFNAME)
            out.name.assign(static_cast<const char*>(data), strnlen(static_cast<const char*>(data), len));
    });
    return out;
}

bool Client::default_rules_only(std::uint8_t family, std::string* error)
{
    fib_rule_hdr hdr{};
    hdr.family = to_kernel_family(family);
    Request req(RTM_GETRULE, NLM_F_DUMP, &hdr, sizeof hdr);
    std::vector<std::vector<char>> replies;
    if (!transact(req.buf, req.nh()->nlmsg_len, &replies, error)) {
        *error = "cannot read the ip rules: " + *error;
        return false;
    }
    for (const auto& reply : replies) {
        const auto* m = reinterpret_cast<const nlmsghdr*>(reply.data());
        if (m->nlmsg_type != RTM_NEWRULE)
            continue;
        const auto* r = static_cast<const fib_rule_hdr*>(NLMSG_DATA(m));
        std::uint32_t table = r->table, priority = 0;
        bool other = r->action != FR_ACT_TO_TBL || r->src_len || r->dst_len || r->tos || r->flags;
        for_each_attr(m, sizeof(fib_rule_hdr), [&](std::uint16_t type, const void* data, std::size_t len) {
            if (type == FRA_TABLE && len >= 4)
                std::memcpy(&table, data, 4);
            else if (type == FRA_PRIORITY && len >= 4)
                std::memcpy(&priority, data, 4);
            else if (type == FRA_SUPPRESS_PREFIXLEN || type == FRA_SUPPRESS_IFGROUP)
                other |= len < 4 || std::memcmp(data, "\xff\xff\xff\xff", 4) != 0;  // -1: unset (dumped anyway)
            else if (type != FRA_PROTOCOL)
                other = true;  // any selector or option (iif, fwmark, suppress_prefixlength, ...)
        });
        if (other || (table != RT_TABLE_LOCAL && table != RT_TABLE_MAIN && table != RT_TABLE_DEFAULT)) {
            *error = "a policy-routing rule (priority " + std::to_string(priority) + ", table " +
                     std::to_string(table) + ") may make the route depend on the packet";
            return false;
        }
    }
    return true;
}

Socket open_event_socket(std::string* error)
{
    Socket s(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
    if (!s) {
        *error = errno_text("netlink: cannot open the notification socket", errno);
        return {};
    }
    int size = 4 << 20;
    if (setsockopt(s.fd(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt(s.fd(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    if (bind(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        *error = errno_text("netlink: cannot bind the notification socket", errno);
        return {};
    }
    for (int group : {RTNLGRP_NEIGH, RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV4_RULE,
                      RTNLGRP_IPV6_RULE, RTNLGRP_IPV4_NETCONF, RTNLGRP_IPV6_NETCONF, RTNLGRP_NEXTHOP})
        if (setsockopt(s.fd(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0) {
            *error = errno_text(("netlink: cannot join notification group " + std::to_string(group)).c_str(), errno);
            return {};
        }
    return s;
}

bool read_events(int fd, std::vector<Event>* out)
{
    bool complete = true;
    std::vector<char> buf(kBuffer);
    while (true) {
        ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS) {  // overflowed: notifications were dropped; keep draining
                complete = false;
                continue;
            }
            return complete;  // EAGAIN: drained
        }
        if (n == 0)
            return complete;
        int left = static_cast<int>(n);
        for (auto* m = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(m, static_cast<unsigned>(left));
             m = NLMSG_NEXT(m, left)) {
            if (m->nlmsg_type != RTM_NEWNEIGH && m->nlmsg_type != RTM_DELNEIGH) {
                if (m->nlmsg_type >= RTM_BASE)
                    out->push_back(Event{});  // route, rule, link, netconf, nexthop: "other"
                continue;
            }
            const auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(m));
            if (nd->ndm_family != AF_INET && nd->ndm_family != AF_INET6)
                continue;  // bridge FDB and the like: not a next hop
            Event e;
            e.kind = Event::Kind::neighbour;
            e.family = nd->ndm_family == AF_INET ? FULCRUM_AF_INET : FULCRUM_AF_INET6;
            e.ifindex = static_cast<std::uint32_t>(nd->ndm_ifindex);
            e.deleted = m->nlmsg_type == RTM_DELNEIGH;
            e.state = nd->ndm_state;
            bool have_dst = false;
            for_each_attr(m, sizeof(ndmsg), [&](std::uint16_t type, const void* data, std::size_t len) {
                if (type == NDA_DST && len == addr_len(e.family)) {
                    std::memcpy(e.addr.w, data, len);
                    have_dst = true;
                } else if (type == NDA_LLADDR) {
                    e.mac = mac_of(data, len);
                }
            });
            if (have_dst)
                out->push_back(e);
        }
    }
}

}  // namespace fulcrum::dataplane::rtnl
