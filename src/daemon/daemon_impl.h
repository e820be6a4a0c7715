// The Daemon object (internal to src/daemon): lifecycle in daemon.cpp, control-socket commands
// in commands.cpp.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <functional>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/server.h"
#include "daemon/apply_queue.h"
#include "daemon/capture_session.h"
#include "daemon/status_view.h"
#include "dataplane/balancer_program.h"
#include "dataplane/check_tunnels.h"
#include "dataplane/neighbours.h"
#include "dataplane/nexthop_store.h"
#include "dataplane/nexthop_upkeep.h"
#include "dataplane/xdp_attach.h"
#include "health/manager.h"
#include "health/syn_prober.h"
#include "routes/vip_routes.h"
#include "metrics/collector.h"
#include "metrics/http_server.h"
#include "metrics/scrape.h"
#include "plan/desired.h"
#include "plan/reconciler.h"
#include "plan/tables.h"

namespace fulcrum::daemon {

class Daemon {
public:
    explicit Daemon(std::string path) : path_(std::move(path)) {}
    ~Daemon();
    int run();

private:
    // lifecycle (daemon.cpp)
    Status bring_up();
    void restore_operator_drains(const config::Config& cfg);

    // An apply is plan -> resolve -> reconcile -> notify (daemon.cpp, Daemon::apply). Between its
    // plan and its reconcile it may wait for the neighbour entries of new backends, on the event
    // loop's timers; every apply after the first runs as a job of apply_queue_, so applies stay
    // one at a time and in order while the loop serves everything else.
    using Applied = std::function<void(Status)>;
    struct PlannedApply {
        std::shared_ptr<const config::Config> cfg;
        plan::Overrides overrides;
        std::uint32_t seed = 0;  // the flow-hash seed it plans with (hash_seed_ once applied)
        plan::Desired desired;
        std::vector<dataplane::NeighbourTarget> new_backends;  // not in any applied service yet
    };
    // `cause` (config, health, operator) labels fulcrum_applies_total.
    Result<PlannedApply> plan_apply(std::shared_ptr<const config::Config> cfg, const plan::Overrides& overrides,
                                    std::uint32_t seed, const char* cause);
    // Writes the maps (all or nothing); on success the plan becomes the daemon's state.
    Status reconcile(PlannedApply& planned, const std::vector<std::string>& unresolved);
    // Only from a job of apply_queue_: calls done(result) on the loop once the apply is over.
    void apply(std::shared_ptr<const config::Config> cfg, const plan::Overrides& overrides, std::uint32_t seed,
               const char* cause, Applied done);
    // The first apply, at start-up: the same steps, waiting for neighbours before the loop runs.
    Status apply_at_start();
    // Checks through the tunnel: marks and the kernel's rules, routes and map entries for `next`,
    // added before it applies (nothing removed: the running checks keep theirs if it fails) ...
    Status prepare_check_tunnels(const config::Config& next);
    // ... and, once `in_force` is the config in force (the new one, or the old one after a
    // failure), the kernel side made exactly its: what it does not use removed, the rest as it says.
    void settle_check_tunnels(const config::Config& in_force);
    // Every kCheckTunnelRefresh (2 s): puts back what the kernel removed (interface down and up,
    // source address removed and added); logs only changes.
    void schedule_check_tunnel_refresh();
    void refresh_check_tunnels();
    bool check_tunnels_ok_ = true;
    // The listeners of an apply, called by notify(): each follows the applied state.
    void notify(const config::Config& cfg, bool applied);
    void nexthops_follow(const config::Config& cfg);  // after every apply, failed ones too
    void publish_topology();                           // metric labels
    void routes_follow(const config::Config& cfg);     // VIP routes for a BGP speaker
    void log_panic_changes();                          // services entering or leaving panic

    // Re-reads the file and applies it (a job of apply_queue_); done(result) once over.
    void reload(Applied done);
    void queue_reload(std::string who, Applied done);
    void finish_reload(Status result, bool parse_failed);
    // What a reload of `next` would apply with: the health it would have (new backends start down
    // unless start_up; kept ones keep theirs) and the flow-hash seed (a file without
    // bpf.hash_seed keeps the running one). Shared by reload and diff.
    struct ReloadInputs {
        plan::Overrides overrides;
        plan::SeedChoice seed;
    };
    ReloadInputs reload_inputs(const config::Config& next) const;
    // After bring_up: every capability but the few the event loop uses is gone (privileges.cpp).
    Status drop_privileges();
    void shut_down();
    void wait_for_stop();
    void wait_for_reload();
    void schedule_neighbour_refresh(std::chrono::milliseconds delay);
    void schedule_rate_sample();
    void schedule_watchdog(std::uint64_t interval_usec);
    void on_health_change();

    // control commands (commands.cpp)
    void handle(const control::Request& request, control::Server::Reply reply);
    control::Response answer_now(const control::Request& request);  // the commands that apply nothing
    control::Response cmd_status(bool json);
    void cmd_reload(bool json, control::Server::Reply reply);
    void cmd_drain(bool json, const std::vector<std::string>& args, bool drain, control::Server::Reply reply);
    // cmd_drain's job, once the applies queued before it are done.
    void run_drain(bool json, const std::vector<std::string>& args, bool drain, control::Server::Reply reply,
                   ApplyQueue::Done finished);
    control::Response cmd_lookup(bool json, const std::vector<std::string>& args);
    control::Response cmd_stats(bool json);
    control::Response cmd_diff(bool json, const std::vector<std::string>& args);  // diff_command.cpp
    control::Response cmd_top(bool json);                                         // top_command.cpp
    void cmd_capture(const std::vector<std::string>& args, control::Server::Reply reply);  // capture_command.cpp
    std::string service_name_of(std::uint32_t id) const;  // "" if no applied service has it
    // What status, top and the status page show (status_view.cpp).
    StatusView status_view();
    std::vector<DropView> drop_view();
    // The listener of metrics.listen: /metrics, and the status page (status_page.h) on the event loop.
    Status start_http(const std::string& listen);
    // The applied state of a service, or nullptr: commands never assume a name is there.
    const plan::AppliedService* applied_service(const std::string& name) const;

    // First member, so destroyed last: timers, sockets and the control server below hold it.
    boost::asio::io_context io_;
    std::string path_;
    std::shared_ptr<const config::Config> config_;  // the file in force (shared with a pending apply)
    plan::Overrides overrides_;
    plan::Desired desired_;
    plan::TableCache tables_;
    // The periodic neighbour nudges (schedule_neighbour_refresh): this round's addresses and the
    // slice of them that is next.
    std::vector<dataplane::NeighbourTarget> neighbour_round_;
    std::size_t neighbour_slice_ = 0;  // the last Maglev table of each service (plan/tables.h)
    int lock_fd_ = -1;
    std::unique_ptr<dataplane::BalancerProgram> program_;
    std::unique_ptr<dataplane::NexthopWriter> writer_;  // the reconciler's maps (next hops first)
    std::unique_ptr<plan::Reconciler> reconciler_;
    std::shared_ptr<metrics::Collector> collector_;
    std::unique_ptr<metrics::Scrape> scrape_;     // /metrics (outlives http_, which calls it)
    std::unique_ptr<metrics::HttpServer> http_;  // metrics.listen: /metrics and the status page
    std::unique_ptr<control::Server> control_;
    // Checks through the tunnel (healthcheck.via: tunnel): marks per backend tunnel, and the
    // program, rules and routes that carry marked packets (both outlive health_, which uses them).
    health::TunnelPaths tunnel_paths_;
    std::unique_ptr<dataplane::CheckTunnels> check_tunnels_;
    std::unique_ptr<health::SynProber> syn_prober_;  // tcp checks; outlives health_, which uses it
    std::unique_ptr<health::Manager> health_;
    std::unique_ptr<routes::VipRoutes> routes_;  // host routes of VIPs for a BGP speaker
    std::set<std::string> panicking_;  // services in panic at the last apply (logged on change)
    // Our program on each interface. Each handle holds its own descriptor of the program, so
    // on_exit: detach works after CAP_SYS_ADMIN is given up; shut_down() detaches or keeps them.
    std::vector<dataplane::XdpAttachment> attachments_;
    boost::asio::signal_set stop_signals_{io_, SIGTERM, SIGINT};
    boost::asio::signal_set reload_signal_{io_, SIGHUP};
    boost::asio::steady_timer neighbour_timer_{io_};
    boost::asio::steady_timer check_tunnel_timer_{io_};
    boost::asio::steady_timer rate_timer_{io_};
    boost::asio::steady_timer watchdog_timer_{io_};
    ApplyQueue apply_queue_{io_};
    dataplane::NeighbourWaiter neighbours_{io_};  // the pending apply's wait for new backends
    bool health_apply_queued_ = false;  // one queued health apply reads the latest health for all
    std::unique_ptr<dataplane::NexthopUpkeep> nexthops_;  // next-hop cache upkeep (after program_)
    std::unique_ptr<CaptureSession> capture_;  // `fulcrumctl capture` (after program_: its maps)
    // The flow-hash seed in force (plan::choose_hash_seed): the file's, the pinned one, or
    // generated at the first start; every plan (tables, lookup, settings) is made with it.
    std::uint32_t hash_seed_ = 0;
    std::uint64_t generation_ = 0;
    std::uint64_t loaded_udp_idle_timeout_ns_ = 0;  // what the running program was loaded with
    std::uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
    std::string last_reload_error_;
    // Per-second rates of each service's and backend's counters (by id), sampled every second
    // for `status`, `top` and the status page.
    struct Rate {
        std::uint64_t last = 0;
        bool seen = false;
        double per_second = 0;
        // A counter that went backwards (its map was replaced) restarts its rate at 0.
        void sample(std::uint64_t now)
        {
            per_second = seen && now >= last ? static_cast<double>(now - last) : 0;
            last = now;
            seen = true;
        }
    };
    struct ServiceRates {
        Rate packets, bytes, new_flows;
    };
    struct BackendRates {
        Rate packets, bytes;
    };
    std::map<std::uint32_t, ServiceRates> service_rates_;
    std::map<std::uint32_t, BackendRates> backend_rates_;
    std::array<Rate, FULCRUM_REASON_COUNT> reason_rates_;  // packets by data-plane reason
};

}  // namespace fulcrum::daemon
