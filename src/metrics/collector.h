// Prometheus metrics of fulcrumd (names: ../shared/design/INTERFACE.md). Data-plane counters are
// read from the maps at scrape time, never copied on a timer; the daemon only updates the
// topology (which ids mean which service/backend) after each apply, and its own counters.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/counter_reader.h"

namespace fulcrum::metrics {

struct BackendLabel {
    std::uint32_t id = 0;
    std::string address;
    std::uint32_t weight = 0;
    bool up = true;
};

struct ServiceLabel {
    std::uint32_t id = 0;
    std::string name;
    std::string vip;
    std::vector<BackendLabel> backends;
    bool panic = false;
};

// Health-check statistics per (service, backend address), read at scrape time.
struct HealthStats {
    std::map<std::string, std::uint64_t> failures;  // by reason
    std::vector<double> bucket_bounds;              // upper bounds, seconds
    std::vector<std::uint64_t> bucket_counts;       // per bound, +Inf last (not cumulative)
    double sum = 0;
    std::uint64_t count = 0;
};
using HealthSource = std::function<std::map<std::pair<std::string, std::string>, HealthStats>()>;

class Collector final : public prometheus::Collectable {
public:
    Collector(const dataplane::CounterReader& counters, std::string version, std::string bpf_program);

    void set_topology(std::vector<ServiceLabel> services);
    void count_reload(bool success);
    // One apply of the desired state to the maps, by cause: config, health, operator.
    void count_apply(const std::string& cause)
    {
        std::lock_guard lock(mutex_);
        applies_[cause]++;
    }
    void set_generation(std::uint64_t generation) { generation_ = generation; }
    void set_health_source(HealthSource source)
    {
        std::lock_guard lock(mutex_);
        health_ = std::move(source);
    }

    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    const dataplane::CounterReader& counters_;
    const std::string version_, bpf_program_;
    mutable std::mutex mutex_;  // guards services_ (written by the event loop, read by scrapes)
    std::vector<ServiceLabel> services_;
    HealthSource health_;
    std::map<std::string, std::uint64_t> applies_;
    std::atomic<std::uint64_t> reloads_ok_{0}, reloads_failed_{0}, generation_{0};
};

}  // namespace fulcrum::metrics
