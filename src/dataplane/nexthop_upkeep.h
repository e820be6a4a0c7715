// The next-hop cache on the daemon's event loop: netlink notifications, batching, the periodic
// refresh (nexthop_cache.h has the design).
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/nexthop_cache.h"
#include "dataplane/rtnl.h"
#include "netlink/netlink.h"

namespace fulcrum::dataplane {

class BalancerProgram;

// Runs the cache on the daemon's io_context: notifications, batching, the periodic refresh.
// Without netlink (or the map) it keeps every entry of its targets invalid: always correct.
class NexthopUpkeep {
public:
    NexthopUpkeep(boost::asio::io_context& io, BalancerProgram& program, std::vector<std::string> interfaces);
    ~NexthopUpkeep();
    // After each apply: the backends of the applied state, and the IPv6 tunnel source.
    void set_backends(std::vector<NexthopTarget> targets, std::optional<fulcrum_addr> source_v6);
    // During an apply, before a table may name them: entries for these backends now.
    // entries_touched: something else invalidated valid entries since the last write (readers
    // must be waited for before rewriting them).
    void prepare(std::vector<NexthopTarget> targets, bool entries_touched);
    // The addresses to nudge so that the kernel keeps the targets' neighbour entries resolved
    // (NexthopCache::nudge_addresses); nullopt without a cache (then every backend is nudged).
    std::optional<std::vector<NeighbourKey>> nudge_addresses() const;

private:
    void wait_for_events();
    void on_events();
    void arm(std::chrono::milliseconds delay);
    void schedule_refresh(std::chrono::milliseconds delay);
    void report(const char* what, const NexthopCache::Result& r, bool info);

    BalancerProgram& program_;
    std::vector<std::string> interfaces_;
    std::unique_ptr<NexthopStore> store_;
    std::unique_ptr<NexthopResolver> resolver_;
    std::unique_ptr<NexthopCache> cache_;
    netlink::Socket events_socket_;                  // route, neighbour, link, rule notifications
    rtnl::LinkTracker links_;                        // link notifications that change nothing are ignored
    boost::asio::posix::stream_descriptor events_;  // readiness of events_socket_ for the loop
    boost::asio::steady_timer batch_timer_, refresh_timer_;
    bool batch_armed_ = false;
};

}  // namespace fulcrum::dataplane
