// `fulcrumd --withdraw-routes`: the VIP routes of a fulcrumd that has stopped for good.
//
// With `on_exit: keep` fulcrumd leaves its routes when it exits, because the usual exit is a restart
// (upgrade, crash, watchdog) and the pinned program keeps forwarding meanwhile: withdrawing would
// send every VIP's traffic away and back for nothing. When it stops for good (`systemctl stop`, or
// the start limit is reached) nothing checks the backends any more, so the routes must go, or the
// routers keep sending traffic to a balancer whose health is frozen. The daemon cannot tell the
// two apart when it gets SIGTERM; systemd can, and runs this command then (fulcrum.service's
// ExecStopPost= and fulcrum-withdraw.service).
#include <cstdio>
#include <string>

#include "config/config.h"
#include "daemon/daemon.h"
#include "routes/vip_routes.h"
#include "util/log.h"

namespace fulcrum::daemon {

int withdraw_routes(const std::string& path)
{
    config::ParseResult parsed = config::load_file(path);
    if (!parsed.errors.empty()) {
        for (const config::Error& e : parsed.errors)
            std::fprintf(stderr, "%s\n", e.to_string().c_str());
        std::fprintf(stderr, "fulcrumd: %s is not valid, so the routes table is unknown; no route withdrawn "
                             "(withdraw by hand: ip route flush table TABLE proto %u)\n",
                     path.c_str(), static_cast<unsigned>(routes::kRouteProtocol));
        return 1;
    }
    const config::Config& cfg = *parsed.config;
    if (cfg.routes_table == 0) {
        LOG_INFO("routes: route injection is off (routes.table 0); nothing to withdraw");
        return 0;
    }
    routes::VipRoutes routes(cfg.routes_table, cfg.routes_need);
    if (Status s = routes.withdraw_all(); !s.ok()) {
        LOG_ERROR("%s", s.message().c_str());
        return 1;
    }
    LOG_INFO("routes: every Fulcrum route (protocol %u) in table %u withdrawn: fulcrumd stopped for good",
             static_cast<unsigned>(routes::kRouteProtocol), cfg.routes_table);
    return 0;
}

}  // namespace fulcrum::daemon
