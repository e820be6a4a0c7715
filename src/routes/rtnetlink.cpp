// VIP host routes on the netlink layer (see rtnetlink.h).
#include "routes/rtnetlink.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace fulcrum::routes {
namespace {

constexpr int kDumpRetries = 5;  // a dump interrupted by a concurrent change is started again

unsigned address_length(int family)
{
    return family == AF_INET ? 4 : 16;
}

// Fills a request for `route` in `table` with `protocol`; the caller sets type and scope in the
// rtmsg returned (it lives in the request's buffer).
rtmsg* fill_route(netlink::Message& m, std::uint32_t table, std::uint8_t protocol, const HostRoute& route)
{
    auto* rt = m.fixed<rtmsg>();
    rt->rtm_family = static_cast<unsigned char>(route.family);
    rt->rtm_dst_len = static_cast<unsigned char>(address_length(route.family) * 8);
    // Tables above 255 only fit in RTA_TABLE; the kernel reads RTA_TABLE first.
    rt->rtm_table = table < 256 ? static_cast<unsigned char>(table) : static_cast<unsigned char>(RT_TABLE_UNSPEC);
    rt->rtm_protocol = protocol;
    m.put(RTA_DST, route.addr.data(), address_length(route.family));
    m.put_u32(RTA_TABLE, table);
    return rt;
}

}  // namespace

std::string HostRoute::text() const
{
    char buf[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family, addr.data(), buf, sizeof(buf));
    return buf;
}

int Rtnetlink::open_socket()
{
    if (socket_)
        return 0;
    netlink::Options options;
    options.strict_dumps = true;  // the kernel filters dumps by table and protocol (4.20+)
    return netlink::Socket::open(options, &socket_);
}

int Rtnetlink::dump(int family, std::uint32_t table, std::uint8_t protocol, std::vector<HostRoute>* out)
{
    if (int e = open_socket(); e != 0)
        return e;
    for (int attempt = 0; attempt < kDumpRetries; ++attempt) {
        netlink::Message request(RTM_GETROUTE, NLM_F_DUMP);
        auto* rt = request.fixed<rtmsg>();
        rt->rtm_family = static_cast<unsigned char>(family);
        rt->rtm_protocol = protocol;
        request.put_u32(RTA_TABLE, table);
        std::vector<HostRoute> found;
        int e = socket_.transact(request, [&](const nlmsghdr* m) {
            const auto* r = netlink::fixed_of<rtmsg>(m);
            if (m->nlmsg_type != RTM_NEWROUTE || !r || r->rtm_family != family || r->rtm_protocol != protocol ||
                (r->rtm_flags & RTM_F_CLONED) || r->rtm_dst_len != address_length(family) * 8 ||
                r->rtm_type != RTN_UNICAST)
                return;
            netlink::Attributes attrs(m, sizeof(rtmsg));
            std::span<const std::uint8_t> dst = attrs.bytes(RTA_DST);
            if (dst.size() != address_length(family) || attrs.u32(RTA_TABLE).value_or(r->rtm_table) != table)
                return;
            HostRoute route;
            route.family = family;
            std::memcpy(route.addr.data(), dst.data(), dst.size());
            found.push_back(route);
        });
        if (e == EINTR)
            continue;  // the table changed while we read it: read it again
        if (e == ENOENT)
            return 0;  // no such table (strict dumps): nothing of ours in it
        if (e != 0)
            return e;
        out->insert(out->end(), found.begin(), found.end());
        return 0;
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
    if (int e = open_socket(); e != 0)
        return e;
    unsigned lo = if_nametoindex("lo");
    if (lo == 0)
        return errno;
    netlink::Message request(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    rtmsg* rt = fill_route(request, table, protocol, route);
    rt->rtm_type = RTN_UNICAST;
    // What `ip route add ADDR dev lo` makes: a link-scope route for IPv4 (IPv6 has no scopes).
    rt->rtm_scope = route.family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    request.put_u32(RTA_OIF, lo);
    return socket_.transact(request, [](const nlmsghdr*) {});
}

int Rtnetlink::remove(std::uint32_t table, std::uint8_t protocol, const HostRoute& route)
{
    if (int e = open_socket(); e != 0)
        return e;
    netlink::Message request(RTM_DELROUTE, NLM_F_ACK);
    rtmsg* rt = fill_route(request, table, protocol, route);
    // Match any scope and type, but only our protocol (the kernel compares a non-zero protocol).
    rt->rtm_scope = RT_SCOPE_NOWHERE;
    rt->rtm_type = RTN_UNSPEC;
    int e = socket_.transact(request, [](const nlmsghdr*) {});
    return e == ESRCH ? 0 : e;
}

}  // namespace fulcrum::routes
