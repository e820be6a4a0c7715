// The Daemon object (internal to src/daemon): lifecycle in daemon.cpp, control-socket commands
// in commands.cpp.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <prometheus/exposer.h>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/server.h"
#include "dataplane/balancer_program.h"
#include "dataplane/nexthop_store.h"
#include "dataplane/nexthop_upkeep.h"
#include "dataplane/xdp_attach.h"
#include "health/manager.h"
#include "routes/vip_routes.h"
#include "metrics/collector.h"
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
    // Plans and writes the maps; `cause` (config, health, operator) labels fulcrum_applies_total.
    Status apply(const config::Config& cfg, const plan::Overrides& overrides, const char* cause);
    Status reload();
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
    void schedule_neighbour_refresh();
    void schedule_rate_sample();
    void schedule_watchdog(std::uint64_t interval_usec);
    void on_health_change();
    void publish_topology();

    // control commands (commands.cpp)
    control::Response handle(const control::Request& request);
    control::Response cmd_status(bool json);
    control::Response cmd_reload(bool json);
    control::Response cmd_drain(bool json, const std::vector<std::string>& args, bool drain);
    control::Response cmd_lookup(bool json, const std::vector<std::string>& args);
    control::Response cmd_stats(bool json);
    control::Response cmd_diff(bool json, const std::vector<std::string>& args);  // diff_command.cpp
    // The applied state of a service, or nullptr: commands never assume a name is there.
    const plan::AppliedService* applied_service(const std::string& name) const;

    // First member, so destroyed last: timers, sockets and the control server below hold it.
    boost::asio::io_context io_;
    std::string path_;
    std::optional<config::Config> config_;
    plan::Overrides overrides_;
    plan::Desired desired_;
    plan::TableCache tables_;  // the last Maglev table of each service (plan/tables.h)
    int lock_fd_ = -1;
    std::unique_ptr<dataplane::BalancerProgram> program_;
    std::unique_ptr<dataplane::NexthopWriter> writer_;  // the reconciler's maps (next hops first)
    std::unique_ptr<plan::Reconciler> reconciler_;
    std::shared_ptr<metrics::Collector> collector_;
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::unique_ptr<control::Server> control_;
    std::unique_ptr<health::Manager> health_;
    std::unique_ptr<routes::VipRoutes> routes_;  // host routes of VIPs for a BGP speaker
    std::set<std::string> panicking_;  // services in panic at the last apply (logged on change)
    // Our program on each interface. Each handle holds its own descriptor of the program, so
    // on_exit: detach works after CAP_SYS_ADMIN is given up; shut_down() detaches or keeps them.
    std::vector<dataplane::XdpAttachment> attachments_;
    boost::asio::signal_set stop_signals_{io_, SIGTERM, SIGINT};
    boost::asio::signal_set reload_signal_{io_, SIGHUP};
    boost::asio::steady_timer neighbour_timer_{io_};
    boost::asio::steady_timer rate_timer_{io_};
    boost::asio::steady_timer watchdog_timer_{io_};
    std::unique_ptr<dataplane::NexthopUpkeep> nexthops_;  // next-hop cache upkeep (after program_)
    // The flow-hash seed in force (plan::choose_hash_seed): the file's, the pinned one, or
    // generated at the first start; every plan (tables, lookup, settings) is made with it.
    std::uint32_t hash_seed_ = 0;
    std::uint64_t generation_ = 0;
    std::uint64_t loaded_udp_idle_timeout_ns_ = 0;  // what the running program was loaded with
    std::uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
    std::string last_reload_error_;
    // packets/s per service and backend id, sampled every second for `status`
    std::map<std::uint32_t, std::uint64_t> last_service_packets_, last_backend_packets_;
    std::map<std::uint32_t, double> service_rate_, backend_rate_;
};

}  // namespace fulcrum::daemon
