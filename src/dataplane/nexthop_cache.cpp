// The next-hop cache: resolution, the write protocol, and its upkeep on the event loop; see
// nexthop_cache.h.
#include "dataplane/nexthop_cache.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/membarrier.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "dataplane/balancer_program.h"
#include "dataplane/rtnl.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

constexpr auto kNeighbourDelay = std::chrono::milliseconds(10);  // batch a burst of neighbour events
constexpr auto kRouteDelay = std::chrono::milliseconds(100);     // route/link changes come in bursts
constexpr auto kRefresh = std::chrono::seconds(10);              // safety net

std::size_t addr_len(std::uint8_t family) { return family == FULCRUM_AF_INET ? 4 : 16; }

std::string text_of(const fulcrum_addr& a, std::uint8_t family)
{
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(family == FULCRUM_AF_INET ? AF_INET : AF_INET6, a.w, text, sizeof text);
    return text;
}

bool same_fields(const fulcrum_nexthop& a, const fulcrum_nexthop& b)
{
    return std::memcmp(a.dmac, b.dmac, 6) == 0 && std::memcmp(a.smac, b.smac, 6) == 0 &&
           a.ifindex == b.ifindex && a.mtu == b.mtu;
}

std::string read_sysctl(const std::string& path)
{
    std::ifstream f(path);
    std::string v;
    f >> v;
    return v;
}

}  // namespace

bool NeighbourKey::operator<(const NeighbourKey& o) const
{
    if (family != o.family)
        return family < o.family;
    if (ifindex != o.ifindex)
        return ifindex < o.ifindex;
    return std::memcmp(addr.w, o.addr.w, sizeof addr.w) < 0;
}

// ---- NexthopCache ------------------------------------------------------------------------------

NexthopCache::Result NexthopCache::set_targets(std::vector<NexthopTarget> targets)
{
    targets_.clear();
    for (const NexthopTarget& t : targets)
        targets_[t.id] = t;
    std::vector<std::uint32_t> gone;
    for (const auto& [id, key] : watched_)
        if (!targets_.contains(id))
            gone.push_back(id);
    for (std::uint32_t id : gone)
        watch(id, std::nullopt);
    std::erase_if(pending_, [&](std::uint32_t id) { return !targets_.contains(id); });
    return refresh_all();
}

NexthopCache::Result NexthopCache::refresh_all()
{
    std::vector<std::uint32_t> ids;
    for (const auto& [id, t] : targets_)
        ids.push_back(id);
    pending_.clear();
    return resolve(ids);
}

NexthopCache::Result NexthopCache::resolve_pending()
{
    std::vector<std::uint32_t> ids(pending_.begin(), pending_.end());
    pending_.clear();
    return resolve(ids);
}

NexthopCache::Result NexthopCache::add_targets(std::vector<NexthopTarget> targets)
{
    std::vector<std::uint32_t> ids;
    for (const NexthopTarget& t : targets) {
        targets_[t.id] = t;
        pending_.erase(t.id);
        ids.push_back(t.id);
    }
    return resolve(ids);
}

void NexthopCache::mark_all_pending()
{
    for (const auto& [id, t] : targets_)
        pending_.insert(id);
}

void NexthopCache::invalidate_all()
{
    Result ignored;
    for (const auto& [id, t] : targets_) {
        if (std::optional<fulcrum_nexthop> cur = store_.get(id); cur && cur->valid)
            invalidate(id, *cur, &ignored);
        pending_.insert(id);
    }
    for (const std::string& e : ignored.errors)
        LOG_WARN("nexthops: %s", e.c_str());
}

void NexthopCache::neighbour_changed(const NeighbourKey& key, bool usable, const std::uint8_t* mac)
{
    auto it = by_neighbour_.find(key);
    if (it == by_neighbour_.end())
        return;
    Result ignored;
    for (std::uint32_t id : it->second) {
        std::optional<fulcrum_nexthop> cur = store_.get(id);
        const bool cached = cur && cur->valid;
        if (cached && usable && mac && std::memcmp(cur->dmac, mac, 6) == 0)
            continue;  // REACHABLE <-> STALE churn: nothing the program uses changed
        if (cached)
            invalidate(id, *cur, &ignored);  // at once: never send to the old MAC after this
        else if (!usable)
            continue;  // was not cached, and still cannot be
        pending_.insert(id);
    }
    for (const std::string& e : ignored.errors)
        LOG_WARN("nexthops: %s", e.c_str());
}

void NexthopCache::watch(std::uint32_t id, const std::optional<NeighbourKey>& key)
{
    if (auto it = watched_.find(id); it != watched_.end()) {
        auto users = by_neighbour_.find(it->second);
        if (users != by_neighbour_.end()) {
            users->second.erase(id);
            if (users->second.empty())
                by_neighbour_.erase(users);
        }
        watched_.erase(it);
    }
    if (key) {
        watched_[id] = *key;
        by_neighbour_[*key].insert(id);
    }
}

NexthopCache::Result NexthopCache::resolve(const std::vector<std::uint32_t>& ids)
{
    Result result;
    if (ids.empty())
        return result;
    resolver_.begin();
    // One set of questions per address, however many services share the backend.
    std::map<std::pair<std::uint8_t, std::string>, Resolution> answers;
    std::vector<std::pair<std::uint32_t, std::optional<fulcrum_nexthop>>> wanted;
    for (std::uint32_t id : ids) {
        auto t = targets_.find(id);
        if (t == targets_.end())
            continue;
        const NexthopTarget& target = t->second;
        std::pair<std::uint8_t, std::string> key{
            target.family, std::string(reinterpret_cast<const char*>(target.addr.w), addr_len(target.family))};
        auto a = answers.find(key);
        if (a == answers.end())
            a = answers.emplace(key, resolver_.resolve(target.addr, target.family)).first;
        const Resolution& r = a->second;
        watch(id, r.neighbour);
        wanted.emplace_back(id, r.entry);
        if (r.entry) {
            result.cached++;
        } else {
            result.fallback++;
            result.fallbacks.push_back(text_of(target.addr, target.family) + " (id " + std::to_string(id) +
                                       "): " + r.why_not);
        }
    }
    publish(wanted, &result);
    return result;
}

void NexthopCache::invalidate(std::uint32_t id, const fulcrum_nexthop& current, Result* result)
{
    fulcrum_nexthop off = current;  // old fields kept: a reader that saw valid = 1 reads them
    off.valid = 0;
    if (Status s = store_.put(id, off); !s.ok())
        result->errors.push_back(s.message());
    need_grace_ = true;
}

void NexthopCache::publish(const std::vector<std::pair<std::uint32_t, std::optional<fulcrum_nexthop>>>& wanted,
                           Result* result)
{
    std::vector<std::pair<std::uint32_t, fulcrum_nexthop>> writes;
    for (const auto& [id, want] : wanted) {
        std::optional<fulcrum_nexthop> cur = store_.get(id);
        const bool cached = cur && cur->valid;
        if (want && cached && same_fields(*cur, *want))
            continue;  // unchanged: no write at all
        if (cached)
            invalidate(id, *cur, result);  // step 1
        if (want)
            writes.emplace_back(id, *want);
    }
    if (writes.empty())
        return;
    if (need_grace_) {  // step 2: no reader still holds an old valid = 1
        store_.wait_for_readers();
        need_grace_ = false;
    }
    for (auto& [id, entry] : writes) {
        entry.valid = 0;  // step 3: new fields, unused while valid = 0
        Status s = store_.put(id, entry);
        if (s.ok()) {
            entry.valid = 1;  // step 4: only `valid` changes
            s = store_.put(id, entry);
        }
        if (!s.ok()) {
            result->errors.push_back(s.message());
            entry.valid = 0;
            (void)store_.put(id, entry);
            need_grace_ = true;
        }
    }
}

// ---- the kernel's answers ----------------------------------------------------------------------

namespace {

class KernelResolver final : public NexthopResolver {
public:
    KernelResolver(rtnl::Client client, std::vector<std::string> interfaces)
        : client_(std::move(client)), interfaces_(std::move(interfaces)) {}

    void set_source_v6(std::optional<fulcrum_addr> source) override { source_v6_ = source; }

    void begin() override
    {
        egress_.clear();
        links_.clear();
        for (std::uint8_t family : {FULCRUM_AF_INET, FULCRUM_AF_INET6}) {
            std::string& why = family_why_[family];
            why.clear();
            // The forwarding sysctls do not matter here: the cache is how service packets are
            // forwarded with them off (their default; bpf_fib_lookup then answers FWD_DISABLED,
            // with or without BPF_FIB_LOOKUP_OUTPUT), so the host need not route anything itself.
            (void)client_.default_rules_only(family, &why);
        }
        for (const std::string& i : interfaces_)
            if (unsigned index = if_nametoindex(i.c_str()))
                egress_.insert(index);
    }

    Resolution resolve(const fulcrum_addr& addr, std::uint8_t family) override
    {
        Resolution r;
        auto fail = [&](std::string why) {
            r.why_not = std::move(why);
            return r;
        };
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(addr.w);
        if (family == FULCRUM_AF_INET6 && (bytes[0] == 0xff || (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80)))
            return fail("link-local or multicast address (the fib path refuses to forward it)");
        if (!family_why_[family].empty())
            return fail(family_why_[family]);
        std::string err;
        const fulcrum_addr* src = family == FULCRUM_AF_INET6 && source_v6_ ? &*source_v6_ : nullptr;
        // The fib entry itself: its type, paths, metrics.
        std::optional<rtnl::Route> fib = client_.route(family, addr, src, true, &err);
        if (!fib)
            return fail("no route (" + err + ")");
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
        std::optional<rtnl::Route> out = client_.route(family, addr, src, false, &err);
        if (!out)
            return fail("no route (" + err + ")");
        if (out->mtu_metric)
            return fail("path MTU exception (" + std::to_string(out->mtu_metric) + ")");
        if (out->oif != fib->oif || out->gateway.has_value() != fib->gateway.has_value() ||
            (out->gateway && std::memcmp(out->gateway->w, fib->gateway->w, 16) != 0))
            return fail("route lookup and fib entry disagree (changing?)");

        NeighbourKey key{family, fib->gateway.value_or(addr), fib->oif};
        r.neighbour = key;
        if (!egress_.contains(fib->oif))
            return fail("egress interface " + std::to_string(fib->oif) + " is not one fulcrumd runs on");
        std::optional<rtnl::Neighbour> n = client_.neighbour(family, key.addr, key.ifindex, &err);
        const std::string nh = text_of(key.addr, family);
        if (!n)
            return fail("no ARP/ND entry for next hop " + nh + " (" + err + ")");
        if (!rtnl::neighbour_state_valid(n->state) || !n->mac)
            return fail("next hop " + nh + " has no usable ARP/ND entry (state 0x" + std::to_string(n->state) + ")");
        auto l = links_.find(fib->oif);
        if (l == links_.end()) {
            std::optional<rtnl::Link> got = client_.link(fib->oif, &err);
            if (!got || !got->mac || !got->mtu)
                return fail("cannot read egress interface " + std::to_string(fib->oif) + " (" + err + ")");
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
    rtnl::Client client_;
    std::vector<std::string> interfaces_;
    std::optional<fulcrum_addr> source_v6_;
    std::set<std::uint32_t> egress_;
    std::map<std::uint32_t, rtnl::Link> links_;  // per batch
    std::map<std::uint8_t, std::string> family_why_;
};

class ProgramNexthopStore final : public NexthopStore {
public:
    ProgramNexthopStore(BalancerProgram& program, int fd) : program_(program), fd_(fd) {}
    ~ProgramNexthopStore() override { close(fd_); }

    std::optional<fulcrum_nexthop> get(std::uint32_t id) override
    {
        fulcrum_nexthop v{};
        if (bpf_map_lookup_elem(fd_, &id, &v) != 0)
            return std::nullopt;
        return v;
    }
    Status put(std::uint32_t id, const fulcrum_nexthop& entry) override { return program_.put_nexthop(id, entry); }
    void wait_for_readers() override
    {
        // MEMBARRIER_CMD_GLOBAL is synchronize_rcu(); XDP programs run inside RCU read-side
        // sections (NAPI softirq, or generic XDP under rcu_read_lock), so once it returns every
        // run that started before has ended. Refused on nohz_full kernels: then wait far longer
        // than any program run (microseconds) instead.
        if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

private:
    BalancerProgram& program_;
    int fd_;
};

}  // namespace

std::unique_ptr<NexthopResolver> make_kernel_resolver(std::vector<std::string> interfaces,
                                                      std::optional<fulcrum_addr> source_v6, std::string* error)
{
    std::optional<rtnl::Client> client = rtnl::Client::open(error);
    if (!client)
        return nullptr;
    auto r = std::make_unique<KernelResolver>(std::move(*client), std::move(interfaces));
    r->set_source_v6(source_v6);
    return r;
}

std::unique_ptr<NexthopStore> make_program_store(BalancerProgram& program, std::string* error)
{
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(program.program_fd(), &info, &len) != 0) {
        *error = std::string("bpf: cannot read the balancer's program info: ") + std::strerror(errno);
        return nullptr;
    }
    std::vector<std::uint32_t> ids(info.nr_map_ids);
    info = {};
    info.nr_map_ids = static_cast<std::uint32_t>(ids.size());
    info.map_ids = reinterpret_cast<std::uint64_t>(ids.data());
    len = sizeof info;
    if (bpf_obj_get_info_by_fd(program.program_fd(), &info, &len) != 0) {
        *error = std::string("bpf: cannot read the balancer's map ids: ") + std::strerror(errno);
        return nullptr;
    }
    for (std::uint32_t id : ids) {
        int fd = bpf_map_get_fd_by_id(id);
        if (fd < 0)
            continue;
        bpf_map_info m{};
        std::uint32_t mlen = sizeof m;
        if (bpf_obj_get_info_by_fd(fd, &m, &mlen) == 0 && std::strcmp(m.name, "nexthops") == 0 &&
            m.value_size == sizeof(fulcrum_nexthop))
            return std::make_unique<ProgramNexthopStore>(program, fd);
        close(fd);
    }
    *error = "bpf: the balancer program has no nexthops map";
    return nullptr;
}

// ---- upkeep on the event loop --------------------------------------------------------------------

NexthopUpkeep::NexthopUpkeep(boost::asio::io_context& io, BalancerProgram& program,
                             std::vector<std::string> interfaces)
    : program_(program), interfaces_(std::move(interfaces)), events_(io), batch_timer_(io), refresh_timer_(io)
{
    std::string error;
    store_ = make_program_store(program, &error);
    if (store_)
        resolver_ = make_kernel_resolver(interfaces_, std::nullopt, &error);
    if (resolver_)
        events_socket_ = rtnl::open_event_socket(&error);
    if (!events_socket_) {
        // Without notifications a cached entry could go stale unnoticed: no cache at all.
        LOG_WARN("nexthops: next-hop cache off, every packet uses bpf_fib_lookup: %s", error.c_str());
        resolver_.reset();
        return;
    }
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
    schedule_refresh();
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

void NexthopUpkeep::schedule_refresh()
{
    refresh_timer_.expires_after(kRefresh);
    refresh_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        report("periodic refresh", cache_->refresh_all(), false);
        schedule_refresh();
    });
}

}  // namespace fulcrum::dataplane

// ---- the reconciler's writer -----------------------------------------------------------------------

namespace fulcrum::dataplane {

Status NexthopWriter::set_settings(const fulcrum_settings& settings) { return program_.set_settings(settings); }
Status NexthopWriter::put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value)
{
    return program_.put_vip(key, value);
}
Status NexthopWriter::delete_vip(const fulcrum_vip_key& key) { return program_.delete_vip(key); }
Status NexthopWriter::put_service(const fulcrum_service_key& key, const fulcrum_service_value& value)
{
    return program_.put_service(key, value);
}
Status NexthopWriter::delete_service(const fulcrum_service_key& key) { return program_.delete_service(key); }
Status NexthopWriter::put_table(std::uint32_t service_id, std::span<const std::uint32_t> table)
{
    return program_.put_table(service_id, table);
}
Status NexthopWriter::delete_table(std::uint32_t service_id) { return program_.delete_table(service_id); }

Status NexthopWriter::put_backend(std::uint32_t id, const fulcrum_backend& backend)
{
    const std::uint64_t before = program_.nexthop_invalidations();
    if (Status s = program_.update_backend(id, backend); !s.ok())
        return s;
    touched_ = touched_ || program_.nexthop_invalidations() != before;
    if (backend.state != FULCRUM_BACKEND_UNUSED)
        written_.push_back({id, backend.addr, backend.family});
    return {};
}

Status NexthopWriter::backends_written()
{
    if (upkeep_ && !written_.empty())
        upkeep_->prepare(std::move(written_), touched_);
    written_.clear();
    touched_ = false;
    return {};  // an entry that cannot be made leaves the fib path, which decides and counts
}

}  // namespace fulcrum::dataplane
