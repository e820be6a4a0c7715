// The kernel's answers for the next-hop cache; see nexthop_resolver.h.
#include "dataplane/nexthop_resolver.h"

#include <linux/rtnetlink.h>
#include <net/if.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "dataplane/rtnl.h"
#include "util/address.h"

namespace fulcrum::dataplane {
namespace {

std::string read_sysctl(const std::string& path)
{
    std::ifstream f(path);
    std::string v;
    f >> v;
    return v;
}

class KernelResolver final : public NexthopResolver {
public:
    KernelResolver(rtnl::Client client, std::vector<std::string> interfaces)
        : client_(std::move(client)), interfaces_(std::move(interfaces)) {}

    void set_source_v6(std::optional<fulcrum_addr> source) override { source_v6_ = source; }

    void begin() override
    {
        egress_.clear();
        links_.clear();
        neighbours_.clear();
        prefetched_.clear();
        for (std::uint8_t family : {FULCRUM_AF_INET, FULCRUM_AF_INET6}) {
            // The forwarding sysctls do not matter here: the cache is how service packets are
            // forwarded with them off (their default; bpf_fib_lookup then answers FWD_DISABLED,
            // with or without BPF_FIB_LOOKUP_OUTPUT), so the host need not route anything itself.
            family_why_[family] = client_.default_rules_only(family).message();
        }
        for (const std::string& i : interfaces_)
            if (unsigned index = if_nametoindex(i.c_str()))
                egress_.insert(index);
    }

    // Both route questions of every target resolve() will ask about, in batches (one round trip
    // per batch instead of two per target); resolve() takes its answers from here.
    void prefetch(std::span<const NexthopTarget> targets) override
    {
        prefetched_.clear();
        std::vector<rtnl::Client::RouteQuestion> questions;
        std::vector<const NexthopTarget*> asked;
        for (const NexthopTarget& t : targets) {
            if (refused_before_routes(t.addr, t.family))
                continue;
            const fulcrum_addr* src = source_for(t.family);
            questions.push_back({t.family, t.addr, src, true});
            questions.push_back({t.family, t.addr, src, false});
            asked.push_back(&t);
        }
        std::vector<Result<rtnl::Route>> answers = client_.routes(questions);
        for (std::size_t i = 0; i < asked.size(); i++)
            prefetched_.emplace(key_of(asked[i]->addr, asked[i]->family),
                                Asked{std::move(answers[2 * i]), std::move(answers[2 * i + 1])});
    }

    Resolution resolve(const fulcrum_addr& addr, std::uint8_t family) override
    {
        Resolution r;
        auto fail = [&](std::string why) {
            r.why_not = std::move(why);
            return r;
        };
        if (link_local_or_multicast(addr, family))
            return fail("link-local or multicast address (the fib path refuses to forward it)");
        if (!family_why_[family].empty())
            return fail(family_why_[family]);
        const fulcrum_addr* src = source_for(family);
        std::optional<Asked> ahead;
        if (auto p = prefetched_.find(key_of(addr, family)); p != prefetched_.end())
            ahead.emplace(std::move(prefetched_.extract(p).mapped()));
        // The fib entry itself: its type, paths, metrics.
        Result<rtnl::Route> fib = ahead ? std::move(ahead->fib) : client_.route(family, addr, src, true);
        if (!fib.ok())
            return fail("no route (" + fib.message() + ")");
        if (fib->type != RTN_UNICAST)
            return fail("route type " + std::to_string(fib->type) + " is not unicast");
        if (fib->multipath)
            return fail("multipath route (the fib path spreads flows over its next hops)");
        if (fib->via || fib->encap)
            return fail(fib->via ? "route via another family's gateway" : "route with a lightweight tunnel");
        if (fib->src_len || fib->tos)
            return fail("source- or TOS-specific route");
        if (fib->mtu_metric)
            return fail("route has an MTU metric (" + std::to_string(fib->mtu_metric) + ")");
        if (!fib->oif)
            return fail("route without a single output interface");
        // The resolved route: shows a path-MTU exception, which the fib path would honour.
        Result<rtnl::Route> out = ahead ? std::move(ahead->out) : client_.route(family, addr, src, false);
        if (!out.ok())
            return fail("no route (" + out.message() + ")");
        if (out->mtu_metric)
            return fail("path MTU exception (" + std::to_string(out->mtu_metric) + ")");
        if (out->oif != fib->oif || out->gateway.has_value() != fib->gateway.has_value() ||
            (out->gateway && std::memcmp(out->gateway->w, fib->gateway->w, 16) != 0))
            return fail("route lookup and fib entry disagree (changing?)");

        NeighbourKey key{family, fib->gateway.value_or(addr), fib->oif};
        r.neighbour = key;
        if (!egress_.contains(fib->oif))
            return fail("egress interface " + std::to_string(fib->oif) + " is not one fulcrumd runs on");
        auto asked = neighbours_.find(key);
        if (asked == neighbours_.end())
            asked = neighbours_.emplace(key, client_.neighbour(family, key.addr, key.ifindex)).first;
        const Result<rtnl::Neighbour>& n = asked->second;
        const std::string nh = address_text(key.addr, family);
        if (!n.ok())
            return fail("no ARP/ND entry for next hop " + nh + " (" + n.message() + ")");
        if (!rtnl::neighbour_state_valid(n->state) || !n->mac)
            return fail("next hop " + nh + " has no usable ARP/ND entry (state 0x" + std::to_string(n->state) + ")");
        auto l = links_.find(fib->oif);
        if (l == links_.end()) {
            Result<rtnl::Link> got = client_.link(fib->oif);
            if (!got.ok())
                return fail("cannot read egress interface " + std::to_string(fib->oif) + " (" + got.message() + ")");
            if (!got->mac || !got->mtu)
                return fail("egress interface " + std::to_string(fib->oif) + " has no MAC address or MTU");
            l = links_.emplace(fib->oif, *got).first;
        }
        fulcrum_nexthop e{};
        std::memcpy(e.dmac, n->mac->data(), 6);
        std::memcpy(e.smac, l->second.mac->data(), 6);
        e.ifindex = fib->oif;
        if (family == FULCRUM_AF_INET) {
            e.mtu = std::min<std::uint32_t>(l->second.mtu, 0xFFF0);  // the kernel's IP_MAX_MTU
        } else {
            // IPv6 uses the device's mtu6 (may differ from the link MTU, e.g. set by an RA).
            std::string v = read_sysctl("/proc/sys/net/ipv6/conf/" + l->second.name + "/mtu");
            e.mtu = static_cast<std::uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
            if (!e.mtu)
                return fail("cannot read the IPv6 MTU of " + l->second.name);
        }
        e.valid = 1;
        r.entry = e;
        return r;
    }

private:
    // Both route questions of one target, asked ahead (prefetch).
    struct Asked {
        Result<rtnl::Route> fib, out;
    };
    using AddrKey = std::pair<std::uint8_t, std::string>;  // family, raw address bytes

    static AddrKey key_of(const fulcrum_addr& addr, std::uint8_t family)
    {
        return {family, std::string(reinterpret_cast<const char*>(addr.w), family == FULCRUM_AF_INET ? 4 : 16)};
    }
    static bool link_local_or_multicast(const fulcrum_addr& addr, std::uint8_t family)
    {
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(addr.w);
        return family == FULCRUM_AF_INET6 && (bytes[0] == 0xff || (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80));
    }
    // resolve() fails these before asking any route question.
    bool refused_before_routes(const fulcrum_addr& addr, std::uint8_t family)
    {
        return link_local_or_multicast(addr, family) || !family_why_[family].empty();
    }
    const fulcrum_addr* source_for(std::uint8_t family) const
    {
        return family == FULCRUM_AF_INET6 && source_v6_ ? &*source_v6_ : nullptr;
    }

    rtnl::Client client_;
    std::vector<std::string> interfaces_;
    std::optional<fulcrum_addr> source_v6_;
    std::set<std::uint32_t> egress_;
    std::map<std::uint32_t, rtnl::Link> links_;  // per batch
    // Per batch too: backends behind one gateway share its entry, asked about once (at 100,000
    // backends behind a router, one question instead of 100,000).
    std::map<NeighbourKey, Result<rtnl::Neighbour>> neighbours_;
    std::map<std::uint8_t, std::string> family_why_;
    std::map<AddrKey, Asked> prefetched_;  // from the last prefetch, each taken by its resolve()
};

}  // namespace

Result<std::unique_ptr<NexthopResolver>> make_kernel_resolver(std::vector<std::string> interfaces,
                                                              std::optional<fulcrum_addr> source_v6)
{
    Result<rtnl::Client> client = rtnl::Client::open();
    if (!client.ok())
        return client.status();
    auto r = std::make_unique<KernelResolver>(std::move(client).value(), std::move(interfaces));
    r->set_source_v6(source_v6);
    return std::unique_ptr<NexthopResolver>(std::move(r));
}

}  // namespace fulcrum::dataplane
