// Marks of the checks through the tunnel (see tunnel_paths.h).
#include "health/tunnel_paths.h"

#include <arpa/inet.h>

#include <cstring>
#include <set>

namespace fulcrum::health {
namespace {

template <typename Visit>
void each_tunnel_checked(const config::Config& cfg, Visit visit)
{
    for (const config::Service& svc : cfg.services)
        for (const config::Backend& b : svc.backends)
            if (check_of(svc, b).via == config::CheckVia::tunnel)
                visit(svc, b);
}

}  // namespace

TunnelPaths::Key TunnelPaths::key_of(const config::Service& svc, const config::Backend& b)
{
    const std::size_t length = b.address.family == AF_INET ? 4 : 16;
    std::string bytes(1, static_cast<char>(b.address.family));
    bytes.append(reinterpret_cast<const char*>(b.address.bytes), length);
    return {svc.encap, std::move(bytes)};
}

fulcrum::Result<dataplane::CheckRouting> TunnelPaths::plan(const config::Config& cfg)
{
    // New tunnels get the lowest free indexes; counted first, so a plan that does not fit
    // changes nothing.
    std::set<Key> fresh;
    each_tunnel_checked(cfg, [&](const config::Service& svc, const config::Backend& b) {
        Key key = key_of(svc, b);
        if (!marks_.contains(key))
            fresh.insert(std::move(key));
    });
    if (marks_.size() + fresh.size() > FULCRUM_CHECK_MARK_MAX)
        return Status::failure("health checks through the tunnel: " + std::to_string(marks_.size() + fresh.size()) +
                               " backend tunnels (address and encap) to check, at most " +
                               std::to_string(FULCRUM_CHECK_MARK_MAX));
    std::uint32_t index = 1;
    for (const Key& key : fresh) {
        while (by_mark_.contains(mark_base_ | index))
            ++index;
        marks_[key] = mark_base_ | index;
        by_mark_[mark_base_ | index] = key;
    }

    dataplane::CheckRouting routing;
    each_tunnel_checked(cfg, [&](const config::Service& svc, const config::Backend& b) {
        const std::uint32_t m = marks_.at(key_of(svc, b));
        if (routing.tunnels.contains(m))
            return;
        const bool v4 = b.address.family == AF_INET;
        const auto& source = v4 ? cfg.tunnel.source_v4 : cfg.tunnel.source_v6;
        fulcrum_check_tunnel t{};
        t.family = v4 ? 4 : 6;
        t.gue = svc.encap == config::Encap::gue;
        t.gue_port = htons(cfg.tunnel.gue_port);
        if (source)
            std::memcpy(t.src, source->bytes, v4 ? 4 : 16);
        std::memcpy(t.dst, b.address.bytes, v4 ? 4 : 16);
        routing.tunnels[m] = t;
        // The inner packet leaves from the tunnel source of the VIP's family.
        if (svc.vip.family == AF_INET)
            routing.source_v4 = cfg.tunnel.source_v4;
        else
            routing.source_v6 = cfg.tunnel.source_v6;
    });
    return routing;
}

void TunnelPaths::keep_only(const config::Config& cfg)
{
    std::set<Key> used;
    each_tunnel_checked(cfg, [&](const config::Service& svc, const config::Backend& b) { used.insert(key_of(svc, b)); });
    for (auto it = marks_.begin(); it != marks_.end();) {
        if (used.contains(it->first)) {
            ++it;
            continue;
        }
        by_mark_.erase(it->second);
        it = marks_.erase(it);
    }
}

std::uint32_t TunnelPaths::mark(const config::Service& svc, const config::Backend& b) const
{
    if (check_of(svc, b).via != config::CheckVia::tunnel)
        return 0;
    auto it = marks_.find(key_of(svc, b));
    return it == marks_.end() ? 0 : it->second;
}

}  // namespace fulcrum::health
