// rtnetlink requests and notifications for the next-hop cache, on the netlink layer
// (netlink/netlink.h); see rtnl.h.
#include "dataplane/rtnl.h"

#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

namespace fulcrum::dataplane::rtnl {
namespace {

Status errno_failure(const char* what, int err)
{
    return Status::failure(std::string(what) + ": " + std::strerror(err));
}

std::uint8_t to_kernel_family(std::uint8_t family) { return family == FULCRUM_AF_INET ? AF_INET : AF_INET6; }
std::size_t addr_len(std::uint8_t family) { return family == FULCRUM_AF_INET ? 4 : 16; }

std::optional<std::array<std::uint8_t, 6>> mac_of(std::span<const std::uint8_t> bytes)
{
    if (bytes.size() != 6)
        return std::nullopt;
    std::array<std::uint8_t, 6> mac{};
    std::memcpy(mac.data(), bytes.data(), 6);
    return mac;
}

// One answer of a get request: its first message if of the expected type (and long enough for
// the fixed header F), else nullptr.
template <typename F>
const nlmsghdr* only_answer(const std::vector<std::vector<char>>& answers, std::uint16_t type)
{
    if (answers.empty())
        return nullptr;
    const auto* m = reinterpret_cast<const nlmsghdr*>(answers[0].data());
    return m->nlmsg_type == type && netlink::fixed_of<F>(m) ? m : nullptr;
}

Status unexpected_answer(const char* what)
{
    return Status::failure(std::string("netlink: unexpected answer to ") + what);
}

}  // namespace

bool neighbour_state_valid(std::uint16_t state)
{
    return state & (NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY);
}

Result<Client> Client::open()
{
    netlink::Socket s;
    netlink::Options options;
    options.receive_timeout_ms = 1000;
    options.receive_buffer = 512 * 1024;  // routes(): a batch's answers queue up before they are read
    if (int e = netlink::Socket::open(options, &s); e != 0)
        return errno_failure("netlink: cannot open a NETLINK_ROUTE socket", e);
    return Client(std::move(s));
}

Status Client::transact(netlink::Message& request, std::vector<std::vector<char>>* answers)
{
    int e = socket_.transact(request, [&](const nlmsghdr* m) {
        const char* p = reinterpret_cast<const char*>(m);
        answers->emplace_back(p, p + m->nlmsg_len);
    });
    if (e != 0) {
        errno = e;
        return Status::failure(std::strerror(e));
    }
    return {};
}

namespace {

void route_request(netlink::Message& req, const Client::RouteQuestion& q)
{
    auto* rt = req.fixed<rtmsg>();
    rt->rtm_family = to_kernel_family(q.family);
    rt->rtm_dst_len = static_cast<unsigned char>(addr_len(q.family) * 8);
    rt->rtm_src_len = q.src ? rt->rtm_dst_len : 0;
    rt->rtm_flags = q.fib_match ? RTM_F_FIB_MATCH : 0;
    req.put(RTA_DST, q.dst.w, addr_len(q.family));
    if (q.src)
        req.put(RTA_SRC, q.src->w, addr_len(q.family));
}

Result<Route> route_of(const nlmsghdr* m, std::uint8_t family)
{
    if (!m || m->nlmsg_type != RTM_NEWROUTE || !netlink::fixed_of<rtmsg>(m))
        return unexpected_answer("RTM_GETROUTE");
    const auto* r = netlink::fixed_of<rtmsg>(m);
    Route out;
    out.type = r->rtm_type;
    out.src_len = r->rtm_src_len;
    out.tos = r->rtm_tos;
    netlink::Attributes attrs(m, sizeof(rtmsg));
    out.oif = attrs.u32(RTA_OIF).value_or(0);
    if (auto gw = attrs.bytes(RTA_GATEWAY); gw.size() == addr_len(family)) {
        fulcrum_addr g{};
        std::memcpy(g.w, gw.data(), gw.size());
        out.gateway = g;
    }
    out.multipath = attrs.has(RTA_MULTIPATH);
    out.via = attrs.has(RTA_VIA);
    out.encap = attrs.has(RTA_ENCAP);
    if (const nlattr* metrics = attrs.get(RTA_METRICS))
        out.mtu_metric = netlink::Attributes::nested(metrics).u32(RTAX_MTU).value_or(0);
    return out;
}

}  // namespace

Result<Route> Client::route(std::uint8_t family, const fulcrum_addr& dst, const fulcrum_addr* src, bool fib_match)
{
    netlink::Message req(RTM_GETROUTE, 0);
    route_request(req, {family, dst, src, fib_match});
    std::vector<std::vector<char>> answers;
    if (Status s = transact(req, &answers); !s.ok())
        return s;
    return route_of(only_answer<rtmsg>(answers, RTM_NEWROUTE), family);
}

std::vector<Result<Route>> Client::routes(std::span<const RouteQuestion> questions)
{
    std::vector<Result<Route>> out;
    out.reserve(questions.size());
    std::vector<std::unique_ptr<netlink::Message>> requests;
    std::vector<netlink::Message*> batch;
    for (std::size_t first = 0; first < questions.size(); first += netlink::Socket::kBatch) {
        const std::size_t count = std::min(netlink::Socket::kBatch, questions.size() - first);
        requests.clear();
        batch.clear();
        for (std::size_t i = 0; i < count; i++) {
            requests.push_back(std::make_unique<netlink::Message>(RTM_GETROUTE, 0));
            route_request(*requests.back(), questions[first + i]);
            batch.push_back(requests.back().get());
        }
        std::vector<std::optional<Result<Route>>> answers(count);
        std::vector<int> status = socket_.ask_each(batch, [&](std::size_t i, const nlmsghdr* m) {
            answers[i] = route_of(m, questions[first + i].family);
        });
        for (std::size_t i = 0; i < count; i++) {
            const RouteQuestion& q = questions[first + i];
            if (status[i] == 0 && answers[i])
                out.push_back(std::move(*answers[i]));
            else if (status[i] == EMSGSIZE || status[i] == EPROTO || status[i] == ENOBUFS)
                out.push_back(route(q.family, q.dst, q.src, q.fib_match));  // asked alone, as before
            else
                out.push_back(Status::failure(std::strerror(status[i])));
        }
    }
    return out;
}

Result<Neighbour> Client::neighbour(std::uint8_t family, const fulcrum_addr& dst, std::uint32_t ifindex)
{
    netlink::Message req(RTM_GETNEIGH, 0);
    auto* nd = req.fixed<ndmsg>();
    nd->ndm_family = to_kernel_family(family);
    nd->ndm_ifindex = static_cast<int>(ifindex);
    req.put(NDA_DST, dst.w, addr_len(family));
    std::vector<std::vector<char>> answers;
    if (Status s = transact(req, &answers); !s.ok())
        return errno == ENOENT ? Status::failure("no entry") : s;
    const nlmsghdr* m = only_answer<ndmsg>(answers, RTM_NEWNEIGH);
    if (!m)
        return unexpected_answer("RTM_GETNEIGH");
    const auto* got = netlink::fixed_of<ndmsg>(m);
    Neighbour out;
    out.state = got->ndm_state;
    out.mac = mac_of(netlink::Attributes(m, sizeof(ndmsg)).bytes(NDA_LLADDR));
    return out;
}

Result<Link> Client::link(std::uint32_t ifindex)
{
    netlink::Message req(RTM_GETLINK, 0);
    auto* ifi = req.fixed<ifinfomsg>();
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = static_cast<int>(ifindex);
    req.put_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    std::vector<std::vector<char>> answers;
    if (Status s = transact(req, &answers); !s.ok())
        return s;
    const nlmsghdr* m = only_answer<ifinfomsg>(answers, RTM_NEWLINK);
    if (!m)
        return unexpected_answer("RTM_GETLINK");
    netlink::Attributes attrs(m, sizeof(ifinfomsg));
    Link out;
    out.mac = mac_of(attrs.bytes(IFLA_ADDRESS));
    out.mtu = attrs.u32(IFLA_MTU).value_or(0);
    std::span<const std::uint8_t> name = attrs.bytes(IFLA_IFNAME);
    out.name.assign(reinterpret_cast<const char*>(name.data()),
                    strnlen(reinterpret_cast<const char*>(name.data()), name.size()));
    return out;
}

namespace {

LinkState link_state_of(const nlmsghdr* m)
{
    const auto* ifi = netlink::fixed_of<ifinfomsg>(m);
    netlink::Attributes attrs(m, sizeof(ifinfomsg));
    LinkState out;
    out.flags = ifi->ifi_flags;
    std::span<const std::uint8_t> oper = attrs.bytes(IFLA_OPERSTATE);
    out.operstate = oper.empty() ? 0 : oper[0];
    out.mtu = attrs.u32(IFLA_MTU).value_or(0);
    out.mac = mac_of(attrs.bytes(IFLA_ADDRESS));
    out.master = attrs.u32(IFLA_MASTER).value_or(0);
    return out;
}

}  // namespace

Result<std::map<std::uint32_t, LinkState>> Client::link_states()
{
    netlink::Message req(RTM_GETLINK, NLM_F_DUMP);
    req.fixed<ifinfomsg>()->ifi_family = AF_UNSPEC;
    req.put_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    std::vector<std::vector<char>> answers;
    if (Status s = transact(req, &answers); !s.ok())
        return s;
    std::map<std::uint32_t, LinkState> out;
    for (const std::vector<char>& a : answers) {
        const auto* m = reinterpret_cast<const nlmsghdr*>(a.data());
        if (m->nlmsg_type == RTM_NEWLINK && netlink::fixed_of<ifinfomsg>(m))
            out[static_cast<std::uint32_t>(netlink::fixed_of<ifinfomsg>(m)->ifi_index)] = link_state_of(m);
    }
    return out;
}

bool LinkTracker::changes_something(const Event& e)
{
    auto it = links_.find(e.ifindex);
    const bool same = !e.deleted && it != links_.end() && it->second == e.link;
    if (e.deleted)
        links_.erase(e.ifindex);
    else
        links_[e.ifindex] = e.link;
    return !same;
}

Status Client::default_rules_only(std::uint8_t family)
{
    netlink::Message req(RTM_GETRULE, NLM_F_DUMP);
    req.fixed<fib_rule_hdr>()->family = to_kernel_family(family);
    std::vector<std::vector<char>> answers;
    if (Status s = transact(req, &answers); !s.ok())
        return Status::failure("cannot read the ip rules: " + s.message());
    for (const auto& answer : answers) {
        const auto* m = reinterpret_cast<const nlmsghdr*>(answer.data());
        const auto* r = netlink::fixed_of<fib_rule_hdr>(m);
        if (m->nlmsg_type != RTM_NEWRULE || !r)
            continue;
        netlink::Attributes attrs(m, sizeof(fib_rule_hdr));
        // A rule only for marked packets never sees ours: the data plane's packets and this
        // cache's route questions carry no mark. fulcrumd's own rule for health checks through
        // the tunnel (dataplane/check_tunnels.h) is one.
        // (`not fwmark` rules are the opposite: they match every unmarked packet.)
        if (auto fwmark = attrs.u32(FRA_FWMARK);
            fwmark && (*fwmark & attrs.u32(FRA_FWMASK).value_or(~0u)) != 0 && !(r->flags & FIB_RULE_INVERT))
            continue;
        std::uint32_t table = attrs.u32(FRA_TABLE).value_or(r->table);
        std::uint32_t priority = attrs.u32(FRA_PRIORITY).value_or(0);
        bool other = r->action != FR_ACT_TO_TBL || r->src_len || r->dst_len || r->tos || r->flags;
        for (std::uint16_t type : attrs.types()) {
            if (type == FRA_TABLE || type == FRA_PRIORITY || type == FRA_PROTOCOL)
                continue;
            if (type == FRA_SUPPRESS_PREFIXLEN || type == FRA_SUPPRESS_IFGROUP)
                other |= attrs.u32(type) != 0xffffffffu;  // -1: unset (dumped anyway)
            else
                other = true;  // any selector or option (iif, fwmark, ...)
        }
        if (other || (table != RT_TABLE_LOCAL && table != RT_TABLE_MAIN && table != RT_TABLE_DEFAULT))
            return Status::failure("a policy-routing rule (priority " + std::to_string(priority) + ", table " +
                                   std::to_string(table) + ") may make the route depend on the packet");
    }
    return {};
}

Result<netlink::Socket> open_event_socket()
{
    netlink::Socket s;
    netlink::Options options;
    options.nonblocking = true;
    options.groups = {RTNLGRP_NEIGH,      RTNLGRP_LINK,      RTNLGRP_IPV4_ROUTE,   RTNLGRP_IPV6_ROUTE,
                      RTNLGRP_IPV4_RULE,  RTNLGRP_IPV6_RULE, RTNLGRP_IPV4_NETCONF, RTNLGRP_IPV6_NETCONF,
                      RTNLGRP_NEXTHOP};
    options.receive_buffer = 4 << 20;  // a burst of route changes must not overflow it
    if (int e = netlink::Socket::open(options, &s); e != 0)
        return errno_failure("netlink: cannot open the notification socket", e);
    return s;
}

bool read_events(netlink::Socket& socket, std::vector<Event>* out)
{
    return socket.read_notifications([&](const nlmsghdr* m) {
        if (m->nlmsg_type == RTM_NEWLINK || m->nlmsg_type == RTM_DELLINK) {
            const auto* ifi = netlink::fixed_of<ifinfomsg>(m);
            Event e;  // another family's (AF_INET6: its MTU, ...) stays "other"
            if (ifi && ifi->ifi_family == AF_UNSPEC) {
                e.kind = Event::Kind::link;
                e.ifindex = static_cast<std::uint32_t>(ifi->ifi_index);
                e.deleted = m->nlmsg_type == RTM_DELLINK;
                e.link = link_state_of(m);
            }
            out->push_back(e);
            return;
        }
        if (m->nlmsg_type != RTM_NEWNEIGH && m->nlmsg_type != RTM_DELNEIGH) {
            if (m->nlmsg_type >= RTM_BASE)
                out->push_back(Event{});  // route, rule, link, netconf, nexthop: "other"
            return;
        }
        const auto* nd = netlink::fixed_of<ndmsg>(m);
        if (!nd || (nd->ndm_family != AF_INET && nd->ndm_family != AF_INET6))
            return;  // bridge FDB and the like: not a next hop
        Event e;
        e.kind = Event::Kind::neighbour;
        e.family = nd->ndm_family == AF_INET ? FULCRUM_AF_INET : FULCRUM_AF_INET6;
        e.ifindex = static_cast<std::uint32_t>(nd->ndm_ifindex);
        e.deleted = m->nlmsg_type == RTM_DELNEIGH;
        e.state = nd->ndm_state;
        netlink::Attributes attrs(m, sizeof(ndmsg));
        std::span<const std::uint8_t> dst = attrs.bytes(NDA_DST);
        if (dst.size() != addr_len(e.family))
            return;
        std::memcpy(e.addr.w, dst.data(), dst.size());
        e.mac = mac_of(attrs.bytes(NDA_LLADDR));
        out->push_back(e);
    });
}

}  // namespace fulcrum::dataplane::rtnl
