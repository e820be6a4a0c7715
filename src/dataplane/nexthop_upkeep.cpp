// The next-hop cache's upkeep on the event loop; see nexthop_upkeep.h.
#include "dataplane/nexthop_upkeep.h"

#include <unistd.h>

#include <cerrno>

#include "dataplane/balancer_program.h"
#include "dataplane/nexthop_resolver.h"
#include "dataplane/nexthop_store.h"
#include "dataplane/rtnl.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

constexpr auto kNeighbourDelay = std::chrono::milliseconds(10);  // batch a burst of neighbour events
constexpr auto kRouteDelay = std::chrono::milliseconds(100);     // route/link changes come in bursts
// Safety net: every target is resolved again every kRefresh, in kRefreshSlices slices spread over
// it (at 100,000 backends all at once was ~1.7 s of CPU on the event loop, and a reload that came
// meanwhile waited for it).
constexpr auto kRefresh = std::chrono::seconds(10);
constexpr std::size_t kRefreshSlices = 10;

}  // namespace

NexthopUpkeep::NexthopUpkeep(boost::asio::io_context& io, BalancerProgram& program,
                             std::vector<std::string> interfaces)
    : program_(program), interfaces_(std::move(interfaces)), events_(io), batch_timer_(io), refresh_timer_(io)
{
    store_ = make_program_store(program);
    Result<std::unique_ptr<NexthopResolver>> resolver = make_kernel_resolver(interfaces_, std::nullopt);
    Result<netlink::Socket> events = resolver.ok() ? rtnl::open_event_socket() : resolver.status();
    if (!events.ok()) {
        // Without notifications a cached entry could go stale unnoticed: no cache at all.
        LOG_WARN("nexthops: next-hop cache off, every packet uses bpf_fib_lookup: %s", events.message().c_str());
        return;
    }
    resolver_ = std::move(resolver).value();
    events_socket_ = std::move(events).value();
    // The links as they are now (after the socket opened: a change from here on is notified).
    // Without them every first notification of a link counts as a change, which is safe.
    if (Result<rtnl::Client> client = rtnl::Client::open(); client.ok())
        if (Result<std::map<std::uint32_t, rtnl::LinkState>> links = client->link_states(); links.ok())
            links_.seed(std::move(links).value());
    cache_ = std::make_unique<NexthopCache>(*store_, *resolver_);
    boost::system::error_code ec;
    // Asio waits on a duplicate of the socket's descriptor (same socket, so the same readiness);
    // events_socket_ reads the notifications. Each closes its own descriptor.
    const int fd = dup(events_socket_.fd());
    if (fd >= 0)
        events_.assign(fd, ec);
    else
        ec.assign(errno, boost::system::system_category());
    if (ec) {
        if (fd >= 0)
            close(fd);
        LOG_WARN("nexthops: next-hop cache off: cannot watch netlink: %s", ec.message().c_str());
        cache_.reset();
        return;
    }
    wait_for_events();
    schedule_refresh(kRefresh);  // the first slice a whole period after start, as before slices
}

NexthopUpkeep::~NexthopUpkeep() = default;

void NexthopUpkeep::set_backends(std::vector<NexthopTarget> targets, std::optional<fulcrum_addr> source_v6)
{
    if (!cache_) {
        // Entries adopted from an earlier daemon must not be used without upkeep.
        for (const NexthopTarget& t : targets)
            if (Status s = program_.invalidate_nexthop(t.id); !s.ok())
                LOG_WARN("nexthops: %s", s.message().c_str());
        return;
    }
    resolver_->set_source_v6(source_v6);
    cache_->entries_touched_elsewhere();  // the reconciler's put_backend zeroes entries
    report("applied state", cache_->set_targets(std::move(targets)), true);
}

void NexthopUpkeep::prepare(std::vector<NexthopTarget> targets, bool entries_touched)
{
    if (!cache_)
        return;  // no cache: set_backends keeps every entry invalid
    if (entries_touched)
        cache_->entries_touched_elsewhere();
    report("backends about to enter a table", cache_->add_targets(std::move(targets)), false);
}

std::optional<std::vector<NeighbourKey>> NexthopUpkeep::nudge_addresses() const
{
    if (!cache_)
        return std::nullopt;
    return cache_->nudge_addresses();
}

void NexthopUpkeep::report(const char* what, const NexthopCache::Result& r, bool info)
{
    if (info)
        LOG_INFO("nexthops: %s: %zu backends use a cached next hop, %zu fall back to bpf_fib_lookup", what,
                 r.cached, r.fallback);
    else
        LOG_DEBUG("nexthops: %s: %zu cached, %zu fall back", what, r.cached, r.fallback);
    for (const std::string& f : r.fallbacks)
        LOG_DEBUG("nexthops: no cache for %s", f.c_str());
    for (const std::string& e : r.errors)
        LOG_WARN("nexthops: %s", e.c_str());
}

void NexthopUpkeep::wait_for_events()
{
    events_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        if (ec)
            return;
        on_events();
        wait_for_events();
    });
}

void NexthopUpkeep::on_events()
{
    std::vector<rtnl::Event> events;
    bool other = !rtnl::read_events(events_socket_, &events);
    if (other)
        LOG_WARN("nexthops: netlink notifications were lost; re-resolving every next hop");
    for (const rtnl::Event& e : events) {
        if (e.kind == rtnl::Event::Kind::link) {
            other = links_.changes_something(e) || other;
            continue;
        }
        if (e.kind != rtnl::Event::Kind::neighbour) {
            other = true;
            continue;
        }
        bool usable = !e.deleted && rtnl::neighbour_state_valid(e.state) && e.mac;
        cache_->neighbour_changed({e.family, e.addr, e.ifindex}, usable, e.mac ? e.mac->data() : nullptr);
    }
    if (other) {
        // A route, rule, link or nexthop change may move any backend: resolve every entry again
        // once the burst is over; publish() rewrites (invalidate, grace, write) the entries whose
        // answer changed and invalidates those that can no longer be cached. Entries stay in use
        // until then: with the host's forwarding off (the default) the fib path would drop every
        // packet, so invalidating at once would turn any route event (a VIP route fulcrumd adds
        // for BGP, an XDP attach) into 100 ms of loss; following the old next hop for that long
        // is what a router's own FIB update does too.
        cache_->mark_all_pending();
        arm(kRouteDelay);
    } else if (cache_->has_pending()) {
        arm(kNeighbourDelay);
    }
}

void NexthopUpkeep::arm(std::chrono::milliseconds delay)
{
    if (batch_armed_)
        return;
    batch_armed_ = true;
    batch_timer_.expires_after(delay);
    batch_timer_.async_wait([this](const boost::system::error_code& ec) {
        batch_armed_ = false;
        if (ec)
            return;
        report("after netlink changes", cache_->resolve_pending(), false);
    });
}

void NexthopUpkeep::schedule_refresh(std::chrono::milliseconds delay)
{
    refresh_timer_.expires_after(delay);
    refresh_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        const std::size_t slice = (cache_->targets() + kRefreshSlices - 1) / kRefreshSlices;
        report("periodic refresh", cache_->refresh_some(slice), false);
        schedule_refresh(kRefresh / kRefreshSlices);
    });
}

}  // namespace fulcrum::dataplane
