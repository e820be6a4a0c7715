// VIP route injection: see vip_routes.h.
#include "routes/vip_routes.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <map>

#include "plan/desired.h"
#include "util/log.h"

namespace fulcrum::routes {
namespace {

class KernelRouteTable final : public RouteTable {
public:
    int list(std::uint32_t table, std::vector<HostRoute>* out) override
    {
        return netlink_.list(table, kRouteProtocol, out);
    }
    int add(std::uint32_t table, const HostRoute& route) override
    {
        return netlink_.add(table, kRouteProtocol, route);
    }
    int remove(std::uint32_t table, const HostRoute& route) override
    {
        return netlink_.remove(table, kRouteProtocol, route);
    }

private:
    Rtnetlink netlink_;
};

HostRoute to_route(const config::Address& a)
{
    HostRoute r;
    r.family = a.family;
    std::memcpy(r.addr.data(), a.bytes, a.family == AF_INET ? 4 : 16);
    return r;
}

std::string tbl(std::uint32_t table)
{
    return std::to_string(table);
}

}  // namespace

std::unique_ptr<RouteTable> make_kernel_route_table()
{
    return std::make_unique<KernelRouteTable>();
}

std::vector<ServiceRoute> service_routes(const plan::Desired& desired)
{
    std::vector<ServiceRoute> out;
    for (const plan::ServicePlan& s : desired.services) {
        ServiceRoute r;
        r.vip.family = s.key.family == FULCRUM_AF_INET6 ? AF_INET6 : AF_INET;
        std::memcpy(r.vip.bytes, s.key.vip.w, r.vip.family == AF_INET ? 4 : 16);
        r.vip.text = s.vip;
        r.healthy = s.healthy;
        out.push_back(std::move(r));
    }
    return out;
}

VipRoutes::VipRoutes(std::uint32_t table, std::uint32_t need)
    : VipRoutes(table, need, make_kernel_route_table())
{
}

VipRoutes::VipRoutes(std::uint32_t table, std::uint32_t need, std::unique_ptr<RouteTable> kernel)
    : table_(table), need_(need), kernel_(std::move(kernel))
{
}

Status VipRoutes::sync(const std::vector<ServiceRoute>& services)
{
    if (table_ == 0)
        return {};
    // A VIP is wanted when ANY service on it has enough healthy backends.
    std::map<HostRoute, std::uint32_t> best;  // VIP -> the most healthy backends of its services
    for (const ServiceRoute& s : services) {
        auto [it, fresh] = best.try_emplace(to_route(s.vip), s.healthy);
        if (!fresh && s.healthy > it->second)
            it->second = s.healthy;
    }
    std::set<HostRoute> wanted;
    for (const auto& [vip, healthy] : best)
        if (healthy >= need_)
            wanted.insert(vip);
    Status s = apply(wanted, "no service on it has >= " + std::to_string(need_) + " healthy backends");
    if (s.ok()) {
        for (const auto& [vip, healthy] : best)
            if (healthy < need_)
                LOG_DEBUG("routes: VIP %s not announced: its best service has %u healthy backends, routes.need is %u",
                          vip.text().c_str(), healthy, need_);
    }
    return s;
}

Status VipRoutes::withdraw_all()
{
    if (table_ == 0)
        return {};
    first_ = false;  // everything goes, stale or not: say "withdrew"
    return apply({}, "withdrawing all of Fulcrum's routes");
}

Status VipRoutes::reconfigure(std::uint32_t table, std::uint32_t need)
{
    Status s;
    if (table != table_) {
        s = withdraw_all();
        announced_.clear();
        first_ = true;
    }
    table_ = table;
    need_ = need;
    return s;
}

Status VipRoutes::apply(const std::set<HostRoute>& wanted, const std::string& why_withdrawn)
{
    std::string errors;
    auto fail = [&errors](const std::string& m) { errors += (errors.empty() ? "" : "\n") + m; };

    std::vector<HostRoute> listed;
    if (int e = kernel_->list(table_, &listed); e != 0)
        return Status::failure("routes: cannot list Fulcrum's routes (protocol " + std::to_string(kRouteProtocol) +
                               ") in table " + tbl(table_) + ": " + std::strerror(e));
    std::set<HostRoute> present(listed.begin(), listed.end());
    std::set<HostRoute> now = present;

    for (const HostRoute& r : present) {
        if (wanted.contains(r))
            continue;
        if (int e = kernel_->remove(table_, r); e != 0) {
            fail("routes: cannot withdraw VIP " + r.text() + " from table " + tbl(table_) + ": " + std::strerror(e));
            continue;
        }
        now.erase(r);
        if (first_)
            LOG_INFO("routes: removed stale route for VIP %s from table %u (left by an earlier fulcrumd)",
                     r.text().c_str(), table_);
        else
            LOG_INFO("routes: withdrew VIP %s from table %u (%s)", r.text().c_str(), table_, why_withdrawn.c_str());
    }
    for (const HostRoute& r : wanted) {
        if (present.contains(r))
            continue;
        if (int e = kernel_->add(table_, r); e != 0) {
            std::string why = std::strerror(e);
            if (e == EEXIST)
                why += " (a route for it that is not Fulcrum's, protocol " + std::to_string(kRouteProtocol) +
                       ", is in the table; Fulcrum leaves it alone)";
            fail("routes: cannot announce VIP " + r.text() + " in table " + tbl(table_) + ": " + why);
            continue;
        }
        now.insert(r);
        LOG_INFO("routes: announced VIP %s in table %u (a service on it has >= %u healthy backends)", r.text().c_str(),
                 table_, need_);
    }
    announced_ = std::move(now);
    first_ = false;
    return errors.empty() ? Status{} : Status::failure(errors);
}

}  // namespace fulcrum::routes
