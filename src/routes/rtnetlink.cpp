// rtnetlink for VIP host routes (see rtnetlink.h). Messages are built by hand: a header, an
// rtmsg, and a few attributes; no library beyond the kernel's uapi headers.
#include "routes/rtnetlink.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fulcrum::routes {
namespace {

constexpr int kDumpRetries = 5;  // a dump interrupted by a concurrent change is started again

struct RouteRequest {
    nlmsghdr header;
    rtmsg route;
    char attributes[128];
};

// Appends an attribute to the request (its buffer is big enough for the few we send).
void add_attribute(RouteRequest* r, unsigned short type, const void* data, unsigned short length)
{
    char* base = reinterpret_cast<char*>(r);
    std::size_t at = NLMSG_ALIGN(r->header.nlmsg_len);
    if (at + RTA_SPACE(length) > sizeof(RouteRequest))
        return;  // not reached: our requests carry at most three small attributes
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<unsigned short>(RTA_LENGTH(length));
    std::memcpy(base + at, &a, sizeof(a));
    std::memcpy(base + at + RTA_LENGTH(0), data, length);
    r->header.nlmsg_len = static_cast<std::uint32_t>(at + RTA_ALIGN(a.rta_len));
}

unsigned address_length(int family)
{
    return family == AF_INET ? 4 : 16;
}

// Fills a request for `route` in `table` with `protocol`; the caller sets type, scope and flags.
void fill(RouteRequest* r, std::uint16_t type, std::uint16_t flags, std::uint32_t table, std::uint8_t protocol,
          const HostRoute& route)
{
    std::memset(r, 0, sizeof(*r));
    r->header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    r->header.nlmsg_type = type;
    r->header.nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    r->route.rtm_family = static_cast<unsigned char>(route.family);
    r->route.rtm_dst_len = static_cast<unsigned char>(address_length(route.family) * 8);
    // Tables above 255 only fit in RTA_TABLE; the kernel reads RTA_TABLE first.
    r->route.rtm_table = table < 256 ? static_cast<unsigned char>(table)
                                   : static_cast<unsigned char>(RT_TABLE_UNSPEC);
    r->route.rtm_protocol = protocol;
    add_attribute(r, RTA_DST, route.addr.data(), static_cast<unsigned short>(address_length(route.family)));
    add_attribute(r, RTA_TABLE, &table, sizeof(table));
}

}  // namespace

std::string HostRoute::text() const
{
    char buf[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family, addr.data(), buf, sizeof(buf));
    return buf;
}

Rtnetlink::~Rtnetlink()
{
    if (fd_ >= 0)
        close(fd_);
}

int Rtnetlink::open_socket()
{
    if (fd_ >= 0)
        return 0;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return errno;
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    // Let the kernel filter dumps by table and protocol (4.20+); without it we filter below anyway.
    int one = 1;
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
    fd_ = fd;
    return 0;
}

int Rtnetlink::request(void* message, std::uint32_t length)
{
    if (int e = open_socket(); e != 0)
        return e;
    auto* h = static_cast<nlmsghdr*>(message);
    h->nlmsg_seq = ++seq_;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd_, message, length, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
        return errno;
    alignas(nlmsghdr) char buf[8192];
    for (;;) {
        ssize_t n = recv(fd_, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        int len = static_cast<int>(n);
        for (auto* r = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(r, len); r = NLMSG_NEXT(r, len)) {
            if (r->nlmsg_seq != h->nlmsg_seq || r->nlmsg_type != NLMSG_ERROR)
                continue;  // an answer to an earlier request that we stopped reading
            const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(r));
            return -err->error;  // 0 is the ACK
        }
    }
}

int Rtnetlink::dump(int family, std::uint32_t table, std::uint8_t protocol, std::vector<HostRoute>* out)
{
    if (int e = open_socket(); e != 0)
        return e;
    for (int attempt = 0; attempt < kDumpRetries; ++attempt) {
        RouteRequest r{};
        r.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
        r.header.nlmsg_type = RTM_GETROUTE;
        r.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        r.header.nlmsg_seq = ++seq_;
        r.route.rtm_family = static_cast<unsigned char>(family);
        r.route.rtm_protocol = protocol;
        add_attribute(&r, RTA_TABLE, &table, sizeof(table));
        sockaddr_nl kernel{};
        kernel.nl_family = AF_NETLINK;
        if (sendto(fd_, &r, r.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
            return errno;

        std::vector<HostRoute> found;
        bool done = false, interrupted = false;
        alignas(nlmsghdr) static thread_local char buf[32768];
        while (!done) {
            ssize_t n = recv(fd_, buf, sizeof(buf), 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return errno;
            }
            int len = static_cast<int>(n);
            for (auto* m = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
                if (m->nlmsg_seq != r.header.nlmsg_seq)
                    continue;
                if (m->nlmsg_flags & NLM_F_DUMP_INTR)
                    interrupted = true;
                if (m->nlmsg_type == NLMSG_DONE) {
                    // A dump's error comes in NLMSG_DONE's payload. A table that does not exist
                    // yet (ENOENT, strict dumps) holds no routes of ours.
                    int status = 0;
                    if (m->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
                        std::memcpy(&status, NLMSG_DATA(m), sizeof(int));
                    if (status < 0 && -status != ENOENT)
                        return -status;
                    done = true;
                    break;
                }
                if (m->nlmsg_type == NLMSG_ERROR) {
                    int e = -static_cast<const nlmsgerr*>(NLMSG_DATA(m))->error;
                    if (e == ENOENT)
                        return 0;  // no such table: nothing of ours in it
                    if (e != 0)
                        return e;
                    continue;
                }
                if (m->nlmsg_type != RTM_NEWROUTE)
                    continue;
                const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(m));
                if (rt->rtm_family != family || rt->rtm_protocol != protocol || (rt->rtm_flags & RTM_F_CLONED) ||
                    rt->rtm_dst_len != address_length(family) * 8 || rt->rtm_type != RTN_UNICAST)
                    continue;
                std::uint32_t route_table = rt->rtm_table;
                HostRoute route;
                route.family = family;
                bool has_dst = false;
                int attr_len = static_cast<int>(RTM_PAYLOAD(m));
                for (auto* a = RTM_RTA(rt); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len)) {
                    if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= sizeof(std::uint32_t))
                        std::memcpy(&route_table, RTA_DATA(a), sizeof(std::uint32_t));
                    else if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == address_length(family)) {
                        std::memcpy(route.addr.data(), RTA_DATA(a), address_length(family));
                        has_dst = true;
                    }
                }
                if (has_dst && route_table == table)
                    found.push_back(route);
            }
        }
        if (!interrupted) {
            out->insert(out->end(), found.begin(), found.end());
            return 0;
        }
    }
    return EINTR;  // the table kept changing while we read it
}

int Rtnetlink::list(std::uint32_t table, std::uint8_t protocol, std::vector<HostRoute>* out)
{
    out->clear();
    if (int e = dump(AF_INET, table, protocol, out); e != 0)
        return e;
    return dump(AF_INET6, table, protocol, out);
}

int Rtnetlink::add(std::uint32_t table, std::uint8_t protocol, const HostRoute& route)
{
    unsigned lo = if_nametoindex("lo");
    if (lo == 0)
        return errno;
    RouteRequest r;
    fill(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, table, protocol, route);
    r.route.rtm_type = RTN_UNICAST;
    // What `ip route add ADDR dev lo` makes: a link-scope route for IPv4 (IPv6 has no scopes).
    r.route.rtm_scope = route.family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    std::uint32_t oif = lo;
    add_attribute(&r, RTA_OIF, &oif, sizeof(oif));
    return request(&r, r.header.nlmsg_len);
}

int Rtnetlink::remove(std::uint32_t table, std::uint8_t protocol, const HostRoute& route)
{
    RouteRequest r;
    fill(&r, RTM_DELROUTE, 0, table, protocol, route);
    // Match any scope and type, but only our protocol (the kernel compares a non-zero protocol).
    r.route.rtm_scope = RT_SCOPE_NOWHERE;
    r.route.rtm_type = RTN_UNSPEC;
    int e = request(&r, r.header.nlmsg_len);
    return e == ESRCH ? 0 : e;
}

}  // namespace fulcrum::routes
