// fulcrumd's life: see daemon.h. Every failure message names the subsystem, the object, the
// interface and the errno (the helpers below produce them); a start-up failure is fatal before
// anything is attached.
#include "daemon/daemon.h"

#include <systemd/sd-daemon.h>

#include <fcntl.h>
#include <malloc.h>
#include <net/if.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <set>

#include "config/config.h"
#include "dataplane/balancer_program.h"
#include "dataplane/bpffs.h"
#include "dataplane/neighbours.h"
#include "dataplane/xdp_attach.h"
#include "health/check.h"
#include "metrics/collector.h"
#include "plan/desired.h"
#include "plan/reconciler.h"
#include "daemon/daemon_impl.h"

#include <malloc.h>
#include "util/log.h"

namespace fulcrum::daemon {
namespace {

constexpr auto kNeighbourWait = std::chrono::milliseconds(1000);
constexpr auto kNeighbourRefresh = std::chrono::seconds(20);
constexpr std::size_t kNeighbourSlices = 10;
// How soon a check route the kernel removed (interface down and up, source address re-added) is
// put back: a few netlink requests, and only while some check goes through the tunnel.
constexpr auto kCheckTunnelRefresh = std::chrono::seconds(2);

void log_warnings(const std::vector<config::Error>& warnings)
{
    for (const config::Error& w : warnings)
        LOG_WARN("config: %s", w.to_string().c_str());
}

void print_errors(const std::vector<config::Error>& errors)
{
    for (const config::Error& e : errors)
        std::fprintf(stderr, "%s\n", e.to_string().c_str());
    std::fprintf(stderr, "%zu error%s\n", errors.size(), errors.size() == 1 ? "" : "s");
}

dataplane::XdpMode to_mode(config::AttachMode m)
{
    switch (m) {
    case config::AttachMode::native: return dataplane::XdpMode::native;
    case config::AttachMode::generic: return dataplane::XdpMode::generic;
    case config::AttachMode::automatic: return dataplane::XdpMode::automatic;
    }
    return dataplane::XdpMode::automatic;
}

// The forwarding sysctls are left as they are: service packets leave through the next-hop cache
// (dataplane/nexthop_cache.h), which fulcrumd fills from its own route and neighbour lookups, so
// the host need not route (on an edge box, forwarding on would route arbitrary traffic). Only a
// backend whose next hop cannot be cached uses bpf_fib_lookup, which needs forwarding on.
void log_forwarding(const std::string& iface)
{
    auto read = [](const std::string& path) {
        std::ifstream f(path);
        std::string v;
        f >> v;
        return v;
    };
    const bool v4 = read("/proc/sys/net/ipv4/conf/" + iface + "/forwarding") == "1";
    const bool v6 = read("/proc/sys/net/ipv6/conf/" + iface + "/forwarding") == "1";
    if (!v4 || !v6)
        LOG_INFO("sysctl: IP forwarding is off on %s (%s%s%s): not needed, fulcrumd forwards service packets "
                 "through its next-hop cache and the host routes nothing itself",
                 iface.c_str(), v4 ? "" : "ipv4", !v4 && !v6 ? ", " : "", v6 ? "" : "ipv6");
    else
        LOG_DEBUG("sysctl: IP forwarding is on for %s (fulcrumd does not need it)", iface.c_str());
}

// One fulcrumd per pin path: an exclusive flock on the pin directory itself, held for the life of
// the process. The directory's inode is the identity, so every spelling of one path ("/x/", "/x",
// "//x", "/a/../x") meets the same lock and different directories never do (the lock files in
// /run/fulcrum of earlier versions were named after the path text); it needs nothing outside the
// pins, and dies with the process.
Result<int> take_lock(const std::string& pin_path)
{
    int fd = open(pin_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return Status::failure("lock: cannot open " + pin_path + ": " + std::strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return Status::failure("lock: another fulcrumd already owns the pins under " + pin_path +
                               " (it holds the lock on that directory); refusing to start");
    }
    return fd;
}

// Backend addresses of d, each once; with `known`, only those no applied service has yet (a
// reload resolves new backends; the periodic refresh keeps the others fresh).
std::vector<dataplane::NeighbourTarget> neighbour_targets(const plan::Desired& d,
                                                          const plan::Reconciler* known = nullptr)
{
    // Most backends of a reload are known to their own service; the set of every applied
    // address (100,000 strings at scale) is made only for one that is not.
    std::optional<std::set<std::string>> have;
    auto known_anywhere = [&](const std::string& address) {
        if (!have) {
            have.emplace();
            for (const auto& [name, svc] : known->services())
                for (const auto& [a, b] : svc.backends)
                    have->insert(a);
        }
        return have->contains(address);
    };
    std::set<std::string> seen;
    std::vector<dataplane::NeighbourTarget> out;
    for (const plan::ServicePlan& s : d.services) {
        const plan::AppliedService* applied = nullptr;
        if (known)
            if (auto it = known->services().find(s.name); it != known->services().end())
                applied = &it->second;
        for (const plan::BackendPlan& b : s.backends) {
            if (known && ((applied && applied->backends.contains(b.address)) || known_anywhere(b.address)))
                continue;
            if (seen.insert(b.address).second)
                out.push_back({b.addr, b.family});
        }
    }
    return out;
}

// Every backend of the applied state, for the next-hop cache.
std::vector<dataplane::NexthopTarget> nexthop_targets(const plan::Reconciler& r)
{
    std::vector<dataplane::NexthopTarget> out;
    for (const auto& [name, svc] : r.services())
        for (const auto& [address, b] : svc.backends)
            out.push_back({b.id, b.value.addr, b.value.family});
    return out;
}

std::vector<metrics::ServiceLabel> topology(const plan::Reconciler& r, const plan::Desired& d,
                                            const std::set<health::BackendKey>& down)
{
    std::vector<metrics::ServiceLabel> out;
    for (const plan::ServicePlan& plan : d.services) {
        auto it = r.services().find(plan.name);
        if (it == r.services().end())
            continue;
        metrics::ServiceLabel s{it->second.id, plan.name, plan.vip, {}, plan.panic};
        for (const plan::BackendPlan& b : plan.backends) {
            auto be = it->second.backends.find(b.address);
            if (be != it->second.backends.end())
                s.backends.push_back({be->second.id, b.address, b.weight, !down.contains({plan.name, b.address})});
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace

// An apply, in four steps:
//   plan       the desired data-plane state from the config, overrides and seed (plan::make_desired),
//              its Maglev tables included (tables_); a plan that fails writes nothing;
//   resolve    wait, up to kNeighbourWait, for the kernel's neighbour entry of the next hop
//              (gateway, or itself when on-link) of each backend no applied service has yet: a
//              backend enters a Maglev table only once its packets can be forwarded (else they
//              are dropped as no_neighbour). The wait runs on the event loop's timers
//              (dataplane::NeighbourWaiter), so status, metrics, health checks and signals are
//              served meanwhile; past the bound the apply goes ahead anyway;
//   reconcile  write the maps, all or nothing (plan/reconciler.h);
//   notify     the listeners that follow the applied state (next hops, metric labels, routes,
//              panic lines).
// Applies stay one at a time and in order because every apply after the first is a job of
// apply_queue_ (daemon/apply_queue.h), which starts a job only once the one before has finished;
// a job reads its inputs when it starts, so it applies on top of the previous one.
void Daemon::apply(std::shared_ptr<const config::Config> cfg, const plan::Overrides& overrides, std::uint32_t seed,
                   const char* cause, Applied done)
{
    Result<PlannedApply> plan = plan_apply(std::move(cfg), overrides, seed, cause);
    if (!plan.ok())
        return done(plan.status());  // nothing written, nothing to notify
    auto planned = std::make_shared<PlannedApply>(std::move(plan).value());
    std::vector<dataplane::NeighbourTarget> targets = planned->new_backends;
    neighbours_.start(std::move(targets), kNeighbourWait,
                      [this, planned, done = std::move(done)](std::vector<std::string> unresolved) {
                          Status applied = reconcile(*planned, unresolved);
                          notify(*planned->cfg, applied.ok());
                          done(applied);
                      });
}

// The first apply runs before the event loop does (nothing else to serve yet): the same steps,
// with the neighbour wait blocking.
Status Daemon::apply_at_start()
{
    Result<PlannedApply> plan = plan_apply(config_, overrides_, hash_seed_, "config");
    if (!plan.ok())
        return plan.status();
    PlannedApply& planned = *plan;
    Status applied = reconcile(planned, dataplane::resolve_neighbours(planned.new_backends, kNeighbourWait));
    notify(*planned.cfg, applied.ok());
    return applied;
}

Result<Daemon::PlannedApply> Daemon::plan_apply(std::shared_ptr<const config::Config> cfg, const plan::Overrides& overrides,
                                        std::uint32_t seed, const char* cause)
{
    collector_->count_apply(cause);
    PlannedApply p{std::move(cfg), overrides, seed, {}, {}};
    p.desired = plan::make_desired(*p.cfg, seed, overrides);
    if (Status s = tables_.build(p.desired); !s.ok())
        return s;  // nothing written
    p.new_backends = neighbour_targets(p.desired, reconciler_.get());
    return p;
}

Status Daemon::reconcile(PlannedApply& planned, const std::vector<std::string>& unresolved)
{
    for (const std::string& a : unresolved)
        LOG_INFO("neighbours: no ARP/ND entry yet for backend %s (it or its gateway is not answering)",
                 a.c_str());
    // All or nothing (plan/reconciler.h): on failure the maps and the applied state are the
    // previous ones, and so is everything that follows them (desired state, overrides, seed,
    // topology, routes); the caller keeps its config and health as they were.
    Status applied = reconciler_->apply(planned.desired);
    if (applied.ok()) {
        desired_ = std::move(planned.desired);
        tables_.drop_slots(desired_);  // the kernel holds them now (plan/tables.h)
        overrides_ = planned.overrides;
        hash_seed_ = planned.seed;
    }
    planned.desired = {};
    return applied;
}

void Daemon::notify(const config::Config& cfg, bool applied)
{
    nexthops_follow(cfg);
    if (applied) {
        publish_topology();
        routes_follow(cfg);
        log_panic_changes();
    }
    // An apply's plan, new tables and the listeners' temporaries were the daemon's peak; glibc
    // keeps freed pages for reuse, and without this the RSS stays at that peak between applies.
    malloc_trim(0);
}

// Also after a failed apply: re-resolves whatever the undo put back.
void Daemon::nexthops_follow(const config::Config& cfg)
{
    if (nexthops_)
        nexthops_->set_backends(nexthop_targets(*reconciler_),
                                cfg.tunnel.source_v6 ? std::optional(plan::to_fulcrum_addr(*cfg.tunnel.source_v6))
                                                     : std::nullopt);
}

void Daemon::publish_topology()
{
    collector_->set_topology(topology(*reconciler_, desired_, overrides_.down));
}

// Maps are applied; routes follow them (a reload's routes.table/need too). A route problem is
// logged and must not fail the change. None yet during the first apply: bring_up announces VIPs
// once the program is attached.
void Daemon::routes_follow(const config::Config& cfg)
{
    if (!routes_)
        return;
    if (Status s = routes_->reconfigure(cfg.routes_table, cfg.routes_need); !s.ok())
        LOG_WARN("%s", s.message().c_str());
    if (Status s = routes_->sync(routes::service_routes(desired_)); !s.ok())
        LOG_WARN("%s", s.message().c_str());
}

void Daemon::log_panic_changes()
{
    if (health_ && !health_->settled()) {
        LOG_INFO("health: first checks pending: every non-drained backend is in use until each has been checked");
        return;
    }
    std::set<std::string> panicking;
    for (const plan::ServicePlan& s : desired_.services)
        if (s.panic) {
            panicking.insert(s.name);
            if (!panicking_.contains(s.name))
                LOG_WARN("health: service %s in PANIC: %u of %u needed backends healthy (min_healthy); "
                         "using all its non-drained backends rather than none",
                         s.name.c_str(), s.healthy, s.needed);
        }
    for (const std::string& name : panicking_)
        if (!panicking.contains(name))
            LOG_INFO("health: service %s out of panic", name.c_str());
    panicking_ = std::move(panicking);
}

Daemon::~Daemon()
{
    // Scrapes run on the HTTP server's thread and call back into health_: stop it first.
    http_.reset();
}

// Health changed (batched by the manager): the down set feeds the planner; one apply per batch.
// While an apply is pending, later batches share one queued apply, which reads the down set
// when it starts (the latest).
void Daemon::on_health_change()
{
    if (!health_->settled())
        return;  // first results still coming in: keep the start-up table (see Manager::settled)
    if (health_apply_queued_)
        return;
    health_apply_queued_ = true;
    apply_queue_.push("health", [this](ApplyQueue::Done finished) {
        health_apply_queued_ = false;
        plan::Overrides next = overrides_;
        next.down = health_->down();
        apply(config_, next, hash_seed_, "health", [finished](Status s) {
            if (!s.ok())
                LOG_ERROR("health: cannot apply the new backend states (the data plane keeps the previous ones "
                          "until the next health change): %s", s.message().c_str());
            finished();
        });
    });
}

// Operator drains pinned by an earlier fulcrumd (BalancerProgram::operator_drains) are restored
// before the first apply, so the tables it computes are the ones in the maps and no flow moves.
// A drain of a backend the file no longer has is dropped, with a line.
void Daemon::restore_operator_drains(const config::Config& cfg)
{
    Result<std::vector<std::pair<std::string, std::string>>> drains = program_->operator_drains();
    if (!drains.ok()) {
        LOG_ERROR("control: operator drains not restored from the pinned state: %s", drains.message().c_str());
        return;
    }
    for (const auto& [service, address] : *drains) {
        bool known = false;  // the file's backends, in the planner's canonical text
        for (const config::Service& s : cfg.services)
            if (s.name == service)
                for (const config::Backend& b : s.backends)
                    known |= plan::address_text(plan::to_fulcrum_addr(b.address), plan::to_fulcrum_family(b.address)) ==
                             address;
        if (known) {
            overrides_.drained.insert({service, address});
            LOG_INFO("control: operator drain of %s in %s restored from the pinned state", address.c_str(),
                     service.c_str());
            continue;
        }
        LOG_WARN("control: operator drain of %s in %s dropped: %s has no such backend", address.c_str(),
                 service.c_str(), path_.c_str());
        if (Status s = program_->keep_operator_drain(service, address, false); !s.ok())
            LOG_WARN("%s", s.message().c_str());
    }
}

Status Daemon::bring_up()
{
    config::ParseResult parsed = config::load_file(path_);
    if (!parsed.errors.empty()) {
        print_errors(parsed.errors);
        return Status::failure("config: " + path_ + " is not valid; nothing was attached");
    }
    config_ = std::make_shared<const config::Config>(std::move(*parsed.config));
    const config::Config& cfg = *config_;

    if (Status s = dataplane::ensure_bpffs_dir(cfg.pin_path); !s.ok())
        return s;
    Result<int> lock = take_lock(cfg.pin_path);
    if (!lock.ok())
        return lock.status();
    lock_fd_ = *lock;

    dataplane::LoadOptions options;
    options.udp_idle_timeout_ns = static_cast<std::uint64_t>(cfg.flows.udp_idle_timeout.count()) * 1'000'000;
    options.flow_capacity = cfg.flows.capacity;
    options.pin_path = cfg.pin_path;
    loaded_udp_idle_timeout_ns_ = options.udp_idle_timeout_ns;
    Result<std::unique_ptr<dataplane::BalancerProgram>> program = dataplane::BalancerProgram::load(options);
    if (!program.ok())
        return program.status();
    program_ = std::move(program).value();
    // The ring is mapped only while a capture runs (dataplane/capture_ring.h).
    Result<std::unique_ptr<dataplane::CaptureRing>> ring =
        dataplane::CaptureRing::open(program_->capture_ring_fd(), program_->capture_control());
    if (!ring.ok())
        return ring.status();
    capture_ = std::make_unique<CaptureSession>(io_, std::move(ring).value(),
                                                [this](std::uint32_t id) { return service_name_of(id); });
    LOG_INFO("bpf: balancer loaded; %d pinned maps adopted from %s", program_->adopted_pins(),
             cfg.pin_path.c_str());
    log_warnings(parsed.warnings);
    // The seed itself is not logged: it is what keeps the hash private, and logs travel further
    // (journald readers, log shippers) than the root-only pins and config file.
    // A seed that cannot be read is not taken for none: a new one would move every flow.
    Result<fulcrum_settings> pinned = program_->read_settings();
    if (!pinned.ok())
        return pinned.status();
    plan::SeedChoice seed = plan::choose_hash_seed(cfg.hash_seed, pinned->hash_seed, plan::random_seed);
    hash_seed_ = seed.seed;
    LOG_INFO("bpf: flow-hash seed from %s (%s)", plan::to_string(seed.source),
             seed.source == plan::SeedSource::config      ? "bpf.hash_seed in the file"
             : seed.source == plan::SeedSource::pinned    ? "kept from the pinned settings of an earlier fulcrumd"
                                                          : "new random seed, pinned with the maps from now on; "
                                                            "balancers of one ECMP group need bpf.hash_seed set");

    for (const config::Interface& i : cfg.interfaces) {
        unsigned ifindex = if_nametoindex(i.name.c_str());
        if (ifindex == 0)
            return Status::failure("xdp: no interface " + i.name + ": " + std::strerror(errno));
        if (Status s = program_->put_tx_port(ifindex); !s.ok())
            return s;
    }

    collector_ = std::make_shared<metrics::Collector>(*program_, kVersion, "balancer");
    writer_ = std::make_unique<dataplane::NexthopWriter>(*program_);
    reconciler_ = std::make_unique<plan::Reconciler>(*writer_);
    std::set<health::BackendKey> was_active;  // adopted from a running data plane: assumed up
    if (program_->adopted_pins() > 0) {
        Result<dataplane::MapSnapshot> snapshot = program_->snapshot();
        if (!snapshot.ok())
            return snapshot.status();
        reconciler_->adopt(*snapshot, plan::make_desired(cfg, hash_seed_));
        for (const auto& [name, svc] : reconciler_->services())
            for (const auto& [address, b] : svc.backends)
                if (b.value.state == FULCRUM_BACKEND_ACTIVE)
                    was_active.insert({name, address});
    }
    restore_operator_drains(cfg);
    // tcp checks by raw SYNs (health/syn_prober.h), opened now while fulcrumd holds CAP_NET_RAW;
    // without it they connect(2) as the other types do, at several times the CPU per check.
    if (auto prober = health::SynProber::open(io_); prober.ok())
        syn_prober_ = std::move(*prober);
    else
        LOG_WARN("%s; tcp checks connect(2) instead", prober.message().c_str());
    // The check-encap program is loaded now, with every capability held; rules, routes and its
    // map follow each config. A config that needs it when it cannot load does not start.
    if (auto tunnels = dataplane::CheckTunnels::load(cfg.interfaces.front().name); tunnels.ok()) {
        check_tunnels_ = std::move(*tunnels);
        tunnel_paths_.set_mark_base(check_tunnels_->numbers().mark_base);
    } else
        LOG_WARN("%s; checks with via: tunnel cannot run", tunnels.message().c_str());
    if (Status s = prepare_check_tunnels(cfg); !s.ok())
        return s;
    health_ = std::make_unique<health::Manager>(
        io_,
        [this](const config::HealthCheck& c, const health::Target& t, health::Done d) {
            // A check through the tunnel connects: its socket carries the tunnel's mark.
            if (c.type == config::CheckType::tcp && syn_prober_ && t.mark == 0)
                syn_prober_->probe(c, t, std::move(d));
            else
                health::run_check(io_, c, t, std::move(d));
        },
        [this] { on_health_change(); });
    health_->set_tunnel_paths(&tunnel_paths_);
    health_->sync(config_, was_active);  // kept: a reload then syncs only the services it changes
    overrides_.down = health_->down();
    collector_->set_health_source([this] {
        std::map<std::pair<std::string, std::string>, metrics::HealthStats> out;
        for (const auto& [key, r] : health_->snapshot())
            out[key] = {r.failures,
                        {health::kDurationBuckets.begin(), health::kDurationBuckets.end()},
                        {r.duration_buckets.begin(), r.duration_buckets.end()},
                        r.duration_sum, r.duration_count};
        return out;
    });
    std::vector<std::string> interface_names;
    for (const config::Interface& i : cfg.interfaces)
        interface_names.push_back(i.name);
    nexthops_ = std::make_unique<dataplane::NexthopUpkeep>(io_, *program_, std::move(interface_names));
    writer_->set_upkeep(nexthops_.get());
    if (Status s = apply_at_start(); !s.ok())
        return s;
    collector_->set_generation(++generation_);
    collector_->count_reload(true);
    reloads_ok_++;

    // Listeners before attaching: a start that fails must not leave a program behind (the
    // attachments made here detach when their handles go, unless kept).
    if (Status s = start_http(cfg.metrics_listen); !s.ok())
        return s;
    control_ = std::make_unique<control::Server>(io_, cfg.control_socket,
                                                 [this](const control::Request& r, control::Server::Reply reply) { handle(r, std::move(reply)); });
    if (Status s = control_->start(); !s.ok())
        return s;
    std::vector<dataplane::XdpAttachment> attachments;
    for (const config::Interface& i : cfg.interfaces) {
        log_forwarding(i.name);
        // Only the balancer pinned under our pin path (an earlier run of this instance) is
        // ours to replace; a balancer of another pin path belongs to another fulcrumd.
        Result<dataplane::XdpInterface> read = dataplane::read_xdp(i.name);
        if (!read.ok())
            return read.status();
        const dataplane::XdpInterface& on = *read;
        const dataplane::XdpOwner owner{"balancer", program_->previous_program_id(), false};
        const dataplane::XdpProgramRef* ours = dataplane::find_ours(on, owner);
        const dataplane::XdpProgramRef* other = dataplane::find_namesake(on, owner);
        if (!ours && other) {
            return Status::failure("xdp: " + i.name + " already runs a Fulcrum balancer (program id " +
                                   std::to_string(other->id) + ") that is not the one pinned under " +
                                   cfg.pin_path + ": it belongs to another fulcrumd (another bpf.pin_path); "
                                   "refusing to replace it. If no fulcrumd owns it any more, detach it first "
                                   "(ip link set dev " + i.name + " xdp off)");
        } else if (dataplane::occupied_by_other(on, owner)) {  // implies !ours
            return Status::failure("xdp: " + i.name + " already runs XDP program \"" + on.programs.front().name +
                                   "\" (id " + std::to_string(on.main_id) + ", " + on.mode_name() +
                                   " mode), not Fulcrum's; refusing to replace it");
        }
        Result<dataplane::XdpAttachment> a =
            ours ? dataplane::XdpAttachment::replace(on, *ours, program_->program_fd())
                 : dataplane::XdpAttachment::attach(program_->program_fd(), i.name, to_mode(i.mode));
        if (!a.ok())
            return a.status();
        attachments.push_back(std::move(a).value());
    }
    attachments_ = std::move(attachments);

    // Announce VIPs only once the program is attached and serving them.
    routes_ = std::make_unique<routes::VipRoutes>(cfg.routes_table, cfg.routes_need);
    if (Status s = routes_->sync(routes::service_routes(desired_)); !s.ok())
        LOG_WARN("%s", s.message().c_str());
    LOG_INFO("fulcrumd %s: %zu services on %zu interfaces; metrics on http://%s/metrics", kVersion,
             cfg.services.size(), attachments_.size(), cfg.metrics_listen.c_str());
    return {};
}

// Re-reads the file and applies the difference. A bad file (or a failed apply) changes nothing
// the running configuration depends on; the error is logged, counted and passed to done.
void Daemon::reload(Applied done)
{
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               static_cast<unsigned long long>(
                   std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count()));
    LOG_INFO("config: reloading %s", path_.c_str());
    config::ParseResult parsed = config::load_file(path_);
    if (!parsed.errors.empty()) {
        std::string text;
        for (const config::Error& e : parsed.errors) {
            LOG_ERROR("config: %s", e.to_string().c_str());
            text += e.to_string() + "\n";
        }
        text += "reload refused: the running configuration stays in force";
        Status result = Status::failure(text);
        finish_reload(result, true);
        done(result);
        return;
    }
    auto next = std::make_shared<const config::Config>(std::move(*parsed.config));
    if (next->pin_path != config_->pin_path || next->flows.capacity != config_->flows.capacity ||
        next->flows.udp_idle_timeout != config_->flows.udp_idle_timeout ||
        next->control_socket != config_->control_socket || next->metrics_listen != config_->metrics_listen)
        LOG_WARN("config: bpf.pin_path, flows.capacity, flows.udp_idle_timeout, control.socket and "
                 "metrics.listen take effect at the next restart");
    log_warnings(parsed.warnings);
    // Planned with the health the new file will have, but health itself, like the routes (in
    // notify), follows only a successful apply: a failed reload changes nothing.
    if (Status s = prepare_check_tunnels(*next); !s.ok()) {
        settle_check_tunnels(*config_);
        Status result = Status::failure(s.message() + "\nreload refused: the running configuration stays in force");
        finish_reload(result, false);
        done(result);
        return;
    }
    const ReloadInputs inputs = reload_inputs(*next);
    const std::uint32_t old_seed = hash_seed_;
    apply(next, inputs.overrides, inputs.seed.seed, "config",
          [this, next, source = inputs.seed.source, old_seed, done = std::move(done)](Status result) {
              if (result.ok()) {
                  if (hash_seed_ != old_seed)
                      LOG_INFO("bpf: flow-hash seed changed (now from %s): every Maglev table is rebuilt; recorded "
                               "flows keep their backend", plan::to_string(source));
                  health_->sync(next);  // checks start for new backends, stop for removed ones
                  collector_->set_generation(++generation_);
                  config_ = next;
              }
              settle_check_tunnels(*config_);
              finish_reload(result, false);
              done(result);
          });
}

void Daemon::finish_reload(Status result, bool parse_failed)
{
    // The previous file (replaced just before) and the health sync's temporaries go back to
    // the kernel too, not only what the apply freed (notify).
    malloc_trim(0);
    collector_->count_reload(result.ok());
    if (result.ok()) {
        reloads_ok_++;
        last_reload_error_.clear();
        LOG_INFO("config: generation %llu applied", static_cast<unsigned long long>(generation_));
    } else {
        reloads_failed_++;
        last_reload_error_ = result.message();
        // Parse errors were logged one by one; an apply error is the reason itself.
        if (!parse_failed)
            LOG_ERROR("config: reload failed: %s", result.message().c_str());
        LOG_ERROR("config: reload failed; the running configuration stays in force");
    }
    sd_notify(0, "READY=1");
}

// A reload waits for the applies asked before it; `who` names it in fulcrumctl status.
void Daemon::queue_reload(std::string who, Applied done)
{
    apply_queue_.push(std::move(who), [this, done = std::move(done)](ApplyQueue::Done finished) {
        reload([done, finished](Status s) {
            done(s);
            finished();
        });
    });
}

Status Daemon::prepare_check_tunnels(const config::Config& next)
{
    Result<dataplane::CheckRouting> routing = tunnel_paths_.plan(next);
    if (!routing.ok())
        return routing.status();
    if (routing->empty())
        return {};
    if (!check_tunnels_)
        return Status::failure("health checks through the tunnel (via: tunnel) need the check-encap program, "
                               "which did not load at start (see the log)");
    return check_tunnels_->install(*routing);
}

void Daemon::schedule_check_tunnel_refresh()
{
    check_tunnel_timer_.expires_after(kCheckTunnelRefresh);
    check_tunnel_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        refresh_check_tunnels();
        schedule_check_tunnel_refresh();
    });
}

void Daemon::refresh_check_tunnels()
{
    if (!check_tunnels_)
        return;
    Status s = check_tunnels_->refresh();
    if (s.ok() == check_tunnels_ok_)
        return;  // logged when it changes, not every 2 s
    check_tunnels_ok_ = s.ok();
    if (s.ok())
        LOG_INFO("health checks through the tunnel: rules and routes in place again");
    else
        LOG_WARN("%s; checks through the tunnel fail until it works (tried again every 2 s)", s.message().c_str());
}

void Daemon::settle_check_tunnels(const config::Config& in_force)
{
    tunnel_paths_.keep_only(in_force);
    if (!check_tunnels_)
        return;
    Result<dataplane::CheckRouting> routing = tunnel_paths_.plan(in_force);
    if (!routing.ok())
        return;
    // After a failed reload: what the refused file updated (a route's source, a tunnel's port)
    // goes back to the running file's values. After a good one this changes nothing.
    if (!routing->empty())
        if (Status s = check_tunnels_->install(*routing); !s.ok())
            LOG_WARN("%s", s.message().c_str());
    check_tunnels_->retire(*routing);
}

Daemon::ReloadInputs Daemon::reload_inputs(const config::Config& next) const
{
    ReloadInputs inputs{overrides_, {}};
    inputs.overrides.down = health_->down_after(next);
    // The running seed plays the pinned one: a file without bpf.hash_seed keeps it.
    inputs.seed = plan::choose_hash_seed(next.hash_seed, hash_seed_, plan::random_seed);
    return inputs;
}

void Daemon::wait_for_reload()
{
    reload_signal_.async_wait([this](const boost::system::error_code& ec, int) {
        if (ec)
            return;
        queue_reload("reload (SIGHUP)", [](Status) {});  // logged and counted inside; no one to answer
        wait_for_reload();
    });
}

// Every kNeighbourRefresh the kernel is nudged to keep the backends' next hops resolved: the
// next-hop cache's nudge addresses (each gateway once, however many backends are behind it),
// or every backend without the cache. In kNeighbourSlices slices spread over the period, so that
// 100,000 on-link backends never hold the event loop (and a reload waiting on it) at once.
void Daemon::schedule_neighbour_refresh(std::chrono::milliseconds delay)
{
    neighbour_timer_.expires_after(delay);
    neighbour_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        if (neighbour_slice_ == 0) {  // a new round: the addresses of now
            neighbour_round_.clear();
            if (auto hops = nexthops_ ? nexthops_->nudge_addresses() : std::nullopt)
                for (const dataplane::NeighbourKey& k : *hops)
                    neighbour_round_.push_back({k.addr, k.family});
            else
                neighbour_round_ = neighbour_targets(desired_);
        }
        const std::size_t n = neighbour_round_.size();
        const auto first = neighbour_round_.begin() + static_cast<std::ptrdiff_t>(n * neighbour_slice_ / kNeighbourSlices);
        const auto last = neighbour_round_.begin() + static_cast<std::ptrdiff_t>(n * (neighbour_slice_ + 1) / kNeighbourSlices);
        dataplane::nudge_neighbours(std::vector<dataplane::NeighbourTarget>(first, last));
        neighbour_slice_ = (neighbour_slice_ + 1) % kNeighbourSlices;
        schedule_neighbour_refresh(kNeighbourRefresh / kNeighbourSlices);
    });
}

void Daemon::shut_down()
{
    capture_.reset();  // capture off: a balancer kept attached must not fill a ring nobody reads
    // A pending apply has written nothing yet (it writes the maps only once its neighbour wait
    // is over): it and the applies queued after it are dropped, and a fulcrumctl waiting on one
    // sees its connection closed unanswered.
    if (!apply_queue_.running().empty())
        LOG_WARN("fulcrumd: stopping with an apply pending (%s) and %zu queued: not applied; the maps keep the "
                 "last applied state", apply_queue_.running().c_str(), apply_queue_.queued());
    if (config_ && config_->on_exit == config::OnExit::detach) {
        for (dataplane::XdpAttachment& a : attachments_)
            if (Status s = a.detach(); !s.ok())
                LOG_ERROR("%s", s.message().c_str());
        program_->unpin();
        if (routes_)
            if (Status s = routes_->withdraw_all(); !s.ok())
                LOG_ERROR("%s", s.message().c_str());
        LOG_INFO("fulcrumd: detached, unpinned and VIP routes withdrawn (on_exit: detach)");
    } else {
        for (dataplane::XdpAttachment& a : attachments_)
            a.keep();
        LOG_INFO("fulcrumd: exiting; the balancer stays attached and pinned (on_exit: keep)");
    }
}

void Daemon::schedule_rate_sample()
{
    rate_timer_.expires_after(std::chrono::seconds(1));
    rate_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        // Every counter in two batched reads (not one syscall per backend: 10,000 a second at
        // 10,000 backends), then the rates of the ids in use.
        std::uint32_t services_end = 0, backends_end = 0;
        for (const auto& [name, svc] : reconciler_->services()) {
            services_end = std::max(services_end, svc.id + 1);
            for (const auto& [address, b] : svc.backends)
                backends_end = std::max(backends_end, b.id + 1);
        }
        const auto service_counts = program_->service_counters_below(services_end);
        const auto backend_counts = program_->backend_counters_below(backends_end);
        for (const auto& [name, svc] : reconciler_->services()) {
            const dataplane::ServiceCounters& now = service_counts[svc.id];
            ServiceRates& rates = service_rates_[svc.id];
            rates.packets.sample(now.packets);
            rates.bytes.sample(now.bytes);
            rates.new_flows.sample(now.new_flows);
            for (const auto& [address, b] : svc.backends) {
                const dataplane::PacketCounters& bnow = backend_counts[b.id];
                BackendRates& brates = backend_rates_[b.id];
                brates.packets.sample(bnow.packets);
                brates.bytes.sample(bnow.bytes);
            }
        }
        for (int r = 0; r < FULCRUM_REASON_COUNT; r++)
            reason_rates_[r].sample(program_->reason_counters(static_cast<fulcrum_reason>(r)).packets);
        schedule_rate_sample();
    });
}

// systemd's watchdog is fed from the event loop: if the loop hangs, systemd notices.
void Daemon::schedule_watchdog(std::uint64_t interval_usec)
{
    watchdog_timer_.expires_after(std::chrono::microseconds(interval_usec));
    watchdog_timer_.async_wait([this, interval_usec](const boost::system::error_code& ec) {
        if (ec)
            return;
        sd_notify(0, "WATCHDOG=1");
        schedule_watchdog(interval_usec);
    });
}

void Daemon::wait_for_stop()
{
    stop_signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
        if (ec)
            return;
        LOG_INFO("fulcrumd: %s received, stopping", strsignal(signo));
        sd_notify(0, "STOPPING=1");
        io_.stop();
    });
}

int Daemon::run()
{
    log::route_bpf_libraries();
    // Large blocks (a Maglev table being built is 256 KiB at 65537 slots, a thousand of them at a
    // cold start) straight from mmap and back to the kernel when freed. glibc's default raises
    // this threshold to the size of the largest block freed, after which such blocks land in the
    // heap (or a worker thread's arena) and stay resident there long after the apply.
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (Status s = bring_up(); !s.ok()) {
        LOG_ERROR("%s", s.message().c_str());
        return 1;
    }
    // Up: give up what only the start needed before serving anything. A daemon that cannot is
    // not left running with root's full set.
    if (Status s = drop_privileges(); !s.ok()) {
        LOG_ERROR("%s; stopping", s.message().c_str());
        shut_down();
        return 1;
    }
    wait_for_stop();
    wait_for_reload();
    schedule_neighbour_refresh(kNeighbourRefresh);  // the first round a whole period after start
    schedule_check_tunnel_refresh();
    schedule_rate_sample();
    std::uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) > 0)
        schedule_watchdog(watchdog_usec / 2);
    sd_notify(0, "READY=1");
    io_.run();
    shut_down();
    return 0;
}

int check_config(const std::string& path)
{
    config::ParseResult parsed = config::load_file(path);
    if (!parsed.errors.empty()) {
        print_errors(parsed.errors);
        return 1;
    }
    std::printf("%s: OK (%zu services)\n", path.c_str(), parsed.config->services.size());
    for (const config::Error& w : parsed.warnings)
        std::printf("%s\n", w.to_string().c_str());
    if (!parsed.config->hash_seed)
        std::printf("%s: note: bpf.hash_seed is not set: fulcrumd generates a random seed at its first start "
                    "and keeps it pinned under bpf.pin_path; the balancers of one ECMP group must all set the "
                    "same bpf.hash_seed\n",
                    path.c_str());
    return 0;
}

int run(const std::string& path)
{
    Daemon daemon(path);
    return daemon.run();
}

}  // namespace fulcrum::daemon
