// Route injection for a BGP speaker (ARCHITECTURE.md "routes"; config `routes.table`,
// `routes.need`): each VIP that has a service with at least `need` healthy backends is a host
// route (/32, /128) in kernel table `table`, `VIP dev lo proto 201`; a BIRD `protocol kernel` on
// that table (`learn`) or FRR picks it up and announces it. When no service on the VIP has
// enough healthy backends the route is withdrawn, and routers stop sending the VIP here.
//
// Fulcrum's routes carry routing protocol number kRouteProtocol (201), so fulcrumd only ever
// lists, adds or deletes its own routes; a route of another protocol in the table is left alone.
// The kernel is the state: every sync() lists our routes in the table and adds or deletes the
// difference, so it is idempotent, repairs a route deleted by hand, and at start removes the
// routes a crashed or killed fulcrumd left for VIPs that are no longer wanted.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "routes/rtnetlink.h"
#include "util/status.h"

namespace fulcrum::plan {
struct Desired;
}

namespace fulcrum::routes {

// The routing protocol number of Fulcrum's routes (`ip route show table T proto 201`; name it in
// /etc/iproute2/rt_protos.d/fulcrum.conf as "201 fulcrum"; BIRD sees it as krt_source = 201).
inline constexpr std::uint8_t kRouteProtocol = 201;

// One service, as route injection sees it: its VIP and how many of its backends are healthy
// (up and not drained).
struct ServiceRoute {
    config::Address vip;
    std::uint32_t healthy = 0;
};

// The services of a plan (plan::ServicePlan::healthy), in plan order.
std::vector<ServiceRoute> service_routes(const plan::Desired& desired);

// The kernel side, as VipRoutes needs it: host routes of kRouteProtocol in one table. The
// production one is rtnetlink (make_kernel_route_table); tests use an in-memory fake. Each call
// returns 0 or an errno.
class RouteTable {
public:
    virtual ~RouteTable() = default;
    virtual int list(std::uint32_t table, std::vector<HostRoute>* out) = 0;
    virtual int add(std::uint32_t table, const HostRoute& route) = 0;     // EEXIST if any route is there
    virtual int remove(std::uint32_t table, const HostRoute& route) = 0;  // a missing route is success
};
std::unique_ptr<RouteTable> make_kernel_route_table();

class VipRoutes {
public:
    // table 0: route injection is off; sync() and withdraw_all() do nothing.
    VipRoutes(std::uint32_t table, std::uint32_t need);
    VipRoutes(std::uint32_t table, std::uint32_t need, std::unique_ptr<RouteTable> kernel);

    // Announces every VIP that has a service with healthy >= need, withdraws every other route
    // of ours in the table. Does all it can; the Status lists every failure, each naming the
    // VIP, the table and the errno text.
    Status sync(const std::vector<ServiceRoute>& services);
    // Withdraws every route of ours in the table (`on_exit: detach`, or routes turned off).
    Status withdraw_all();
    // New routes.table / routes.need from a reload. A changed table withdraws everything from
    // the old one first (the next sync() announces in the new one).
    Status reconfigure(std::uint32_t table, std::uint32_t need);

    std::uint32_t table() const { return table_; }
    std::uint32_t need() const { return need_; }
    // What the last sync() left announced (as far as it succeeded).
    const std::set<HostRoute>& announced() const { return announced_; }

private:
    Status apply(const std::set<HostRoute>& wanted, const std::string& why_withdrawn);

    std::uint32_t table_;
    std::uint32_t need_;
    std::unique_ptr<RouteTable> kernel_;
    std::set<HostRoute> announced_;
    bool first_ = true;  // routes found at the first sync were left by an earlier fulcrumd
};

}  // namespace fulcrum::routes
