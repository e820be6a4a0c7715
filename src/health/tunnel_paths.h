// Which check socket mark names which backend's tunnel (README "Health checks through the
// tunnel"). A backend whose check says `via: tunnel` gets a mark per tunnel it is reached by
// (its address and the service's encap): services that share a backend and an encap share its
// mark. A mark is kept while the backend is checked this way, across reloads, so a check in
// flight during a reload still leaves by its own tunnel. Plain logic; the kernel side is
// dataplane/check_tunnels.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "config/config.h"
#include "dataplane/check_tunnels.h"
#include "util/status.h"

namespace fulcrum::health {

class TunnelPaths {
public:
    // Marks are mark_base | index (dataplane::CheckNumbers); set before the first plan.
    void set_mark_base(std::uint32_t mark_base) { mark_base_ = mark_base; }

    // Gives a mark to every tunnel `cfg` checks through that has none (keeping the others) and
    // returns what the kernel must hold for `cfg`. Fails when more than FULCRUM_CHECK_MARK_MAX
    // tunnels would be in use; then nothing changed.
    fulcrum::Result<dataplane::CheckRouting> plan(const config::Config& cfg);
    // Forgets the marks `cfg` does not use: call once `cfg` is the one in force.
    void keep_only(const config::Config& cfg);
    // The mark for a check of `b` of `svc` (the check as in effect for it), 0 when it is direct
    // or the tunnel has no mark (plan not called for this config).
    std::uint32_t mark(const config::Service& svc, const config::Backend& b) const;
    std::size_t size() const { return marks_.size(); }

private:
    // (encap, address bytes with the family in front)
    using Key = std::pair<config::Encap, std::string>;
    static Key key_of(const config::Service& svc, const config::Backend& b);
    std::uint32_t mark_base_ = FULCRUM_CHECK_MARK_PREFIX;
    std::map<Key, std::uint32_t> marks_;
    std::map<std::uint32_t, Key> by_mark_;
};

// The check in effect for backend `b` of `svc`: its own, else the service's.
inline const config::HealthCheck& check_of(const config::Service& svc, const config::Backend& b)
{
    return b.healthcheck ? *b.healthcheck : svc.healthcheck;
}

}  // namespace fulcrum::health
