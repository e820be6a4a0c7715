// Health checking of every backend of the config: one schedule per (service, backend), spread
// over the interval with jitter; results feed the rise/fall state; up/down changes are batched
// (one callback per window, however many backends flap) so the daemon rebuilds tables once.
// Runs on the daemon's io_context; scrapes read a snapshot under a mutex.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "health/check.h"
#include "health/state.h"
#include "health/tunnel_paths.h"

namespace fulcrum::health {

using BackendKey = std::pair<std::string, std::string>;  // (service, canonical backend address)

// Bucket upper bounds of fulcrum_healthcheck_duration_seconds.
inline constexpr std::array<double, 13> kDurationBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                           0.25,  0.5,    1,     2.5,  5,    10};
inline constexpr std::size_t kDurationBucketCount = kDurationBuckets.size() + 1;  // the bounds and +Inf

struct BackendReport {
    bool up = false;
    bool checked = false;                         // at least one result since it was added
    Result last;                                  // last result
    std::chrono::system_clock::time_point last_check{}, last_change{};
    std::map<std::string, std::uint64_t> failures;  // by failure name
    // Counts per kDurationBuckets, +Inf last. Inline: one per backend, 10,000s of them.
    std::array<std::uint64_t, kDurationBucketCount> duration_buckets{};
    double duration_sum = 0;
    std::uint64_t duration_count = 0;
};

class Manager {
public:
    using Runner = std::function<void(const config::HealthCheck&, const Target&, Done)>;
    using OnChange = std::function<void()>;

    Manager(boost::asio::io_context& io, Runner runner, OnChange on_change,
            std::chrono::milliseconds batch_window = std::chrono::milliseconds(200));
    ~Manager();

    // Starts checks for backends new in `cfg`, stops those gone, updates changed options
    // (keeping the state). `initially_up`: new backends to start up (e.g. adopted from a running
    // data plane), besides those whose check says start_up.
    void sync(const config::Config& cfg, const std::set<BackendKey>& initially_up = {});
    // The same, and the manager keeps `cfg`: the next sync (or down_after) through this overload
    // leaves alone every service equal to its namesake here (same port, checks and backends), so
    // a reload that changes one service of a thousand looks at one service's backends.
    void sync(std::shared_ptr<const config::Config> cfg, const std::set<BackendKey>& initially_up = {});

    // Where checks through the tunnel get their marks (planned before each sync); kept by the caller.
    void set_tunnel_paths(const TunnelPaths* paths) { tunnel_paths_ = paths; }

    std::set<BackendKey> down() const;  // backends currently down (for the planner)
    // What down() would be after sync(cfg), without changing anything: a reload plans with it
    // and syncs only once its apply has succeeded (a failed reload leaves health untouched).
    std::set<BackendKey> down_after(const config::Config& cfg) const;
    // True once, after start, every backend has either come up or had `rise` results: until
    // then the daemon keeps its first table (all backends, in panic) instead of rebuilding as
    // each backend passes, which would pour every new flow onto the first one up. Becoming
    // settled triggers the change callback.
    bool settled() const { return settled_; }
    std::map<BackendKey, BackendReport> snapshot() const;  // thread-safe copy
    std::uint64_t batches() const { return batches_; }     // on_change calls so far

private:
    struct Entry;
    // A check's callbacks hold the entry weakly, not its key: no map lookup (string compares on
    // a map of every backend) on the path of a check.
    void schedule(const std::shared_ptr<Entry>& e, std::chrono::steady_clock::duration delay);
    void arm_due_timer();
    void run_due();
    void run(const std::shared_ptr<Entry>& e);
    void record(Entry& e, const Result& result);
    void sync_with(const config::Config& cfg, const std::set<BackendKey>& initially_up, const config::Config* previous);
    // The service of the last sync through the shared_ptr overload that `svc` equals, by value.
    bool unchanged(const config::Service& svc) const;

    boost::asio::io_context& io_;
    const TunnelPaths* tunnel_paths_ = nullptr;
    Runner runner_;
    OnChange on_change_;
    std::chrono::milliseconds batch_window_;
    boost::asio::steady_timer batch_timer_;
    bool batch_pending_ = false;
    bool settled_ = false;
    // Entries neither up nor through `rise` results yet (Entry::pending): settled once none is.
    // Counted as entries change, so a result costs O(1), not a walk over every entry (at start
    // with checks that start down, that walk made the first results quadratic in backends).
    std::size_t pending_ = 0;
    void check_settled();
    void trigger_batch();
    std::uint64_t batches_ = 0;
    std::mt19937_64 random_;
    std::map<BackendKey, std::shared_ptr<Entry>> entries_;
    // When each backend's next check is due, and one timer for them all. With a timer per backend
    // the event loop woke once per check (10,000 wakes a second, each a context switch and a
    // timerfd re-arm); a wake now runs every check due within its slack (run_due).
    struct Due {
        std::chrono::steady_clock::time_point at;
        std::weak_ptr<Entry> entry;
        std::uint64_t serial;  // the entry's serial when scheduled: an older one is stale
        bool operator>(const Due& o) const { return at > o.at; }
    };
    std::vector<Due> due_;  // a min-heap on `at`; stale ones (removed or rescheduled) are skipped
    boost::asio::steady_timer due_timer_;
    std::chrono::steady_clock::time_point due_timer_at_{};
    bool due_timer_armed_ = false;
    // The config of the last sync, when it came through the shared_ptr overload (else null), and
    // its services by name.
    std::shared_ptr<const config::Config> synced_;
    std::map<std::string_view, const config::Service*> synced_services_;
    // Guards every entry's report, and entries_'s shape (inserts and erases): snapshot() reads
    // them from the scrape's thread. The event loop, the only writer, reads entries_ unlocked.
    mutable std::mutex mutex_;
};

}  // namespace fulcrum::health
