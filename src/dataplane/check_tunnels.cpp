// The kernel side of health checks through the tunnel (see check_tunnels.h).
#include "dataplane/check_tunnels.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/fib_rules.h>
#include <linux/lwtunnel.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "check_encap.skel.h"
#include "routes/vip_routes.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

// Room the route reserves for the outer header (IPv6 + UDP, the largest): the kernel lowers the
// route's MTU by it, so a check's packet still fits the interface once encapsulated.
constexpr std::uint32_t kHeadroom = 48;
constexpr char kProgramName[] = "fulcrum_check_encap";

const char* family_name(int family)
{
    return family == AF_INET ? "IPv4" : "IPv6";
}

std::string errno_text(int e)
{
    return std::strerror(e);
}

std::string hex(std::uint32_t v)
{
    char text[16];
    std::snprintf(text, sizeof text, "%#x", v);
    return text;
}

// The rule to the table (FR_ACT_TO_TBL) or, one priority later, the one that makes marked
// packets unreachable when the table has no route (FR_ACT_UNREACHABLE).
void fill_rule(netlink::Message& m, int family, const CheckNumbers& n, std::uint8_t action)
{
    auto* rule = m.fixed<fib_rule_hdr>();
    rule->family = static_cast<std::uint8_t>(family);
    rule->action = action;
    rule->table = RT_TABLE_UNSPEC;  // FRA_TABLE: above 255
    if (action == FR_ACT_TO_TBL)
        m.put_u32(FRA_TABLE, n.table);
    m.put_u32(FRA_PRIORITY, FULCRUM_CHECK_RULE_PRIORITY + (action == FR_ACT_TO_TBL ? 0 : 1));
    m.put_u32(FRA_FWMARK, n.mark_base);
    m.put_u32(FRA_FWMASK, FULCRUM_CHECK_MARK_MASK);
}

rtmsg* fill_default_route(netlink::Message& m, int family, const CheckNumbers& n)
{
    auto* rt = m.fixed<rtmsg>();
    rt->rtm_family = static_cast<unsigned char>(family);
    rt->rtm_table = RT_TABLE_UNSPEC;  // RTA_TABLE: above 255
    rt->rtm_protocol = routes::kRouteProtocol;
    m.put_u32(RTA_TABLE, n.table);
    return rt;
}

}  // namespace

CheckNumbers check_numbers(unsigned ifindex)
{
    return {FULCRUM_CHECK_MARK_PREFIX | (ifindex & 0xff) << 16, FULCRUM_CHECK_TABLE_BASE + ifindex};
}

CheckTunnels::CheckTunnels(check_encap_bpf* skel, std::string interface, CheckNumbers numbers)
    : skel_(skel), interface_(std::move(interface)), numbers_(numbers)
{
}

CheckTunnels::~CheckTunnels()
{
    remove_family(AF_INET);
    remove_family(AF_INET6);
    check_encap_bpf::destroy(skel_);
}

Result<std::unique_ptr<CheckTunnels>> CheckTunnels::load(std::string interface)
{
    const unsigned ifindex = if_nametoindex(interface.c_str());
    if (ifindex == 0)
        return Status::failure("health checks through the tunnel: interface " + interface + ": " + errno_text(errno));
    check_encap_bpf* skel = check_encap_bpf::open_and_load();
    if (!skel)
        return Status::failure("health checks through the tunnel: cannot load the check-encap program: " +
                               errno_text(errno));
    std::unique_ptr<CheckTunnels> tunnels(new CheckTunnels(skel, std::move(interface), check_numbers(ifindex)));
    if (int e = netlink::Socket::open({}, &tunnels->socket_); e != 0)
        return Status::failure("health checks through the tunnel: netlink: " + errno_text(e));
    // A previous fulcrumd's on this interface, if it died before removing them (the numbers are
    // this interface's: another fulcrumd's are left alone; one whose mark base collides with
    // ours is not touched either, and install() will say so).
    if (tunnels->check_mark_is_ours(AF_INET).ok() && tunnels->check_mark_is_ours(AF_INET6).ok())
        tunnels->retire({});
    return tunnels;
}

Status CheckTunnels::install(const CheckRouting& wanted)
{
    if (wanted.source_v4)
        if (Status s = install_family(AF_INET, *wanted.source_v4); !s.ok())
            return s;
    if (wanted.source_v6)
        if (Status s = install_family(AF_INET6, *wanted.source_v6); !s.ok())
            return s;
    const int map = bpf_map__fd(skel_->maps.check_tunnels);
    for (const auto& [mark, tunnel] : wanted.tunnels) {
        auto it = installed_.find(mark);
        if (it != installed_.end() && std::memcmp(&it->second, &tunnel, sizeof tunnel) == 0)
            continue;
        if (bpf_map_update_elem(map, &mark, &tunnel, BPF_ANY) != 0)
            return Status::failure("health checks through the tunnel: map update: " + errno_text(errno));
        installed_[mark] = tunnel;
    }
    return {};
}

Status CheckTunnels::install_family(int family, const config::Address& source)
{
    if (Status s = check_mark_is_ours(family); !s.ok())
        return s;
    if (Status s = add_rules(family); !s.ok())
        return s;
    if (Status s = add_route(family, source, NLM_F_REPLACE); !s.ok())
        return s;
    sources_[family == AF_INET ? 0 : 1] = source;
    return {};
}

Status CheckTunnels::check_mark_is_ours(int family)
{
    netlink::Message dump(RTM_GETRULE, NLM_F_DUMP);
    dump.fixed<fib_rule_hdr>()->family = static_cast<std::uint8_t>(family);
    std::optional<std::uint32_t> foreign;
    int e = socket_.transact(dump, [&](const nlmsghdr* m) {
        const auto* r = netlink::fixed_of<fib_rule_hdr>(m);
        if (m->nlmsg_type != RTM_NEWRULE || !r || r->action != FR_ACT_TO_TBL)
            return;
        netlink::Attributes attrs(m, sizeof(fib_rule_hdr));
        const std::uint32_t table = attrs.u32(FRA_TABLE).value_or(r->table);
        if (attrs.u32(FRA_FWMARK) == numbers_.mark_base && attrs.u32(FRA_FWMASK) == FULCRUM_CHECK_MARK_MASK &&
            table != numbers_.table)
            foreign = table;
    });
    if (e != 0)
        return Status::failure("health checks through the tunnel: reading the ip rules: " + errno_text(e));
    if (foreign)
        return Status::failure(std::string("health checks through the tunnel: an ") + family_name(family) + " rule " +
                               "already sends fwmark " + hex(numbers_.mark_base) + "/" + hex(FULCRUM_CHECK_MARK_MASK) +
                               " to table " + std::to_string(*foreign) + ", not to this fulcrumd's " +
                               std::to_string(numbers_.table) + " (another fulcrumd on an interface whose index " +
                               "has the same low byte?)");
    return {};
}

Status CheckTunnels::add_rules(int family)
{
    // The same rule twice would be two rules; EEXIST (NLM_F_EXCL) says it is there.
    for (std::uint8_t action : {FR_ACT_TO_TBL, FR_ACT_UNREACHABLE}) {
        netlink::Message rule(RTM_NEWRULE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        fill_rule(rule, family, numbers_, action);
        if (int e = socket_.transact(rule, [](const nlmsghdr*) {}); e != 0 && e != EEXIST)
            return Status::failure(std::string("health checks through the tunnel: ") + family_name(family) +
                                   " rule: " + errno_text(e));
    }
    return {};
}

Status CheckTunnels::add_route(int family, const config::Address& source, std::uint16_t replace)
{
    const unsigned ifindex = if_nametoindex(interface_.c_str());
    if (ifindex == 0)
        return Status::failure("health checks through the tunnel: interface " + interface_ + ": " + errno_text(errno));
    netlink::Message route(RTM_NEWROUTE, static_cast<std::uint16_t>(NLM_F_ACK | NLM_F_CREATE | replace));
    rtmsg* rt = fill_default_route(route, family, numbers_);
    rt->rtm_type = RTN_UNICAST;
    rt->rtm_scope = family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    route.put_u32(RTA_OIF, ifindex);
    route.put(RTA_PREFSRC, source.bytes, family == AF_INET ? 4 : 16);
    const std::uint16_t encap_type = LWTUNNEL_ENCAP_BPF;
    route.put(RTA_ENCAP_TYPE, &encap_type, sizeof encap_type);
    nlattr* encap = route.begin_nest(RTA_ENCAP);
    nlattr* xmit = route.begin_nest(LWT_BPF_XMIT);
    route.put_u32(LWT_BPF_PROG_FD, static_cast<std::uint32_t>(bpf_program__fd(skel_->progs.check_encap)));
    route.put(LWT_BPF_PROG_NAME, kProgramName, sizeof kProgramName);
    route.end_nest(xmit);
    route.put_u32(LWT_BPF_XMIT_HEADROOM, kHeadroom);
    route.end_nest(encap);
    int e = socket_.transact(route, [](const nlmsghdr*) {});
    if (e == EEXIST && !(replace & NLM_F_REPLACE))
        return {};  // refresh: it is there
    if (e != 0)
        return Status::failure(std::string("health checks through the tunnel: ") + family_name(family) +
                               " route (table " + std::to_string(numbers_.table) + ", dev " + interface_ +
                               ", src " + source.text + "): " + errno_text(e) +
                               (e == EINVAL ? " (is the source a local address of this host?)" : ""));
    return {};
}

Status CheckTunnels::refresh()
{
    for (int family : {AF_INET, AF_INET6}) {
        const auto& source = sources_[family == AF_INET ? 0 : 1];
        if (!source)
            continue;
        if (Status s = add_rules(family); !s.ok())
            return s;
        if (Status s = add_route(family, *source, NLM_F_EXCL); !s.ok())
            return s;
    }
    return {};
}

void CheckTunnels::retire(const CheckRouting& wanted)
{
    if (!wanted.source_v4)
        remove_family(AF_INET);
    if (!wanted.source_v6)
        remove_family(AF_INET6);
    const int map = bpf_map__fd(skel_->maps.check_tunnels);
    for (auto it = installed_.begin(); it != installed_.end();) {
        if (wanted.tunnels.contains(it->first)) {
            ++it;
            continue;
        }
        if (bpf_map_delete_elem(map, &it->first) != 0 && errno != ENOENT)
            LOG_WARN("health checks through the tunnel: map delete: %s", errno_text(errno).c_str());
        it = installed_.erase(it);
    }
}

void CheckTunnels::remove_family(int family)
{
    if (!socket_)
        return;
    sources_[family == AF_INET ? 0 : 1].reset();
    // Both rules, every copy (NLM_F_EXCL keeps each to one; an older fulcrumd's may be there too).
    // The table names this fulcrumd's: another's rule to its own table is never matched.
    for (std::uint8_t action : {FR_ACT_TO_TBL, FR_ACT_UNREACHABLE})
        for (int i = 0; i < 8; ++i) {
            netlink::Message rule(RTM_DELRULE, NLM_F_ACK);
            fill_rule(rule, family, numbers_, action);
            int e = socket_.transact(rule, [](const nlmsghdr*) {});
            if (e == ENOENT)
                break;
            if (e != 0) {
                LOG_WARN("health checks through the tunnel: removing the %s rule: %s", family_name(family),
                         errno_text(e).c_str());
                break;
            }
        }
    netlink::Message route(RTM_DELROUTE, NLM_F_ACK);
    rtmsg* rt = fill_default_route(route, family, numbers_);
    rt->rtm_scope = RT_SCOPE_NOWHERE;
    rt->rtm_type = RTN_UNSPEC;
    if (int e = socket_.transact(route, [](const nlmsghdr*) {}); e != 0 && e != ESRCH && e != ENOENT)
        LOG_WARN("health checks through the tunnel: removing the %s route: %s", family_name(family),
                 errno_text(e).c_str());
}

}  // namespace fulcrum::dataplane
