// Builds the metric families at scrape time; see collector.h.
#include "metrics/collector.h"

#include "dataplane/reasons.h"

#include <algorithm>
#include <limits>

namespace fulcrum::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type)
{
    return MetricFamily{name, help, type, {}};
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value)
{
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    f.metric.push_back(std::move(m));
}

}  // namespace

Collector::Collector(const dataplane::CounterReader& counters, std::string version, std::string bpf_program)
    : counters_(counters), version_(std::move(version)), bpf_program_(std::move(bpf_program))
{
}

void Collector::set_topology(std::vector<ServiceLabel> services)
{
    std::lock_guard lock(mutex_);
    services_ = std::move(services);
}

void Collector::count_reload(bool success)
{
    (success ? reloads_ok_ : reloads_failed_)++;
}

std::vector<MetricFamily> Collector::Collect() const
{
    // Read first: fulcrumd publishes a configuration's topology before its generation, so a scrape
    // that reads the generation before the topology never shows a generation newer than the
    // services and weights beside it (a scrape runs on the HTTP server's thread, during a reload).
    const auto generation_now = generation_.load();
    auto svc_packets = family("fulcrum_service_packets_total", "Packets forwarded for the service.", MetricType::Counter);
    auto svc_bytes = family("fulcrum_service_bytes_total", "Bytes forwarded for the service (as received).", MetricType::Counter);
    auto svc_flows = family("fulcrum_service_new_flows_total", "New flows of the service (flow-table misses).", MetricType::Counter);
    auto be_packets = family("fulcrum_backend_packets_total", "Packets forwarded to the backend.", MetricType::Counter);
    auto be_bytes = family("fulcrum_backend_bytes_total", "Bytes forwarded to the backend (as received).", MetricType::Counter);
    auto be_up = family("fulcrum_backend_up", "1 if the backend is usable for new flows or draining, 0 if down.", MetricType::Gauge);
    auto be_weight = family("fulcrum_backend_weight", "Configured weight of the backend.", MetricType::Gauge);
    {
        std::lock_guard lock(mutex_);
        // Every counter in two batched reads, not one syscall per backend.
        std::uint32_t services_end = 0, backends_end = 0;
        for (const ServiceLabel& s : services_) {
            services_end = std::max(services_end, s.id + 1);
            for (const BackendLabel& b : s.backends)
                backends_end = std::max(backends_end, b.id + 1);
        }
        const auto service_counts = counters_.service_counters_below(services_end);
        const auto backend_counts = counters_.backend_counters_below(backends_end);
        for (const ServiceLabel& s : services_) {
            const dataplane::ServiceCounters& c = service_counts[s.id];
            add(svc_packets, {{"service", s.name}, {"vip", s.vip}}, static_cast<double>(c.packets));
            add(svc_bytes, {{"service", s.name}, {"vip", s.vip}}, static_cast<double>(c.bytes));
            add(svc_flows, {{"service", s.name}}, static_cast<double>(c.new_flows));
            for (const BackendLabel& b : s.backends) {
                const dataplane::PacketCounters& bc = backend_counts[b.id];
                std::vector<ClientMetric::Label> labels{{"service", s.name}, {"backend", b.address}};
                add(be_packets, labels, static_cast<double>(bc.packets));
                add(be_bytes, labels, static_cast<double>(bc.bytes));
                add(be_up, labels, b.up ? 1 : 0);
                add(be_weight, labels, b.weight);
            }
        }
    }
    auto panic = family("fulcrum_service_panic",
                        "1 while fewer backends are healthy than min_healthy: all non-drained backends are used.",
                        MetricType::Gauge);
    auto check_seconds = family("fulcrum_healthcheck_duration_seconds", "Duration of health checks.",
                                MetricType::Histogram);
    auto check_failures = family("fulcrum_healthcheck_failures_total", "Failed health checks, by reason.",
                                 MetricType::Counter);
    {
        std::lock_guard lock(mutex_);
        for (const ServiceLabel& s : services_)
            add(panic, {{"service", s.name}}, s.panic ? 1 : 0);
        if (health_) {
            for (const auto& [key, stats] : health_()) {
                ClientMetric m;
                m.label = {{"service", key.first}, {"backend", key.second}};
                m.histogram.sample_count = stats.count;
                m.histogram.sample_sum = stats.sum;
                std::uint64_t cumulative = 0;
                for (std::size_t i = 0; i < stats.bucket_counts.size(); i++) {
                    cumulative += stats.bucket_counts[i];
                    double bound = i < stats.bucket_bounds.size() ? stats.bucket_bounds[i]
                                                                  : std::numeric_limits<double>::infinity();
                    m.histogram.bucket.push_back({cumulative, bound});
                }
                check_seconds.metric.push_back(std::move(m));
                for (const auto& [reason, n] : stats.failures)
                    add(check_failures, {{"service", key.first}, {"backend", key.second}, {"reason", reason}},
                        static_cast<double>(n));
            }
        }
    }
    auto dropped = family("fulcrum_packets_dropped_total", "Packets dropped by the balancer, by reason.", MetricType::Counter);
    auto passed = family("fulcrum_packets_passed_total",
                         "Packets not for a service, passed to the host stack unchanged, by reason.", MetricType::Counter);
    auto answered = family("fulcrum_packets_answered_total",
                           "Packets answered from XDP (echo replies, too-big replies), by reason.", MetricType::Counter);
    auto icmp_fwd = family("fulcrum_icmp_errors_forwarded_total",
                           "ICMP errors quoting a VIP flow, forwarded to that flow's backend.", MetricType::Counter);
    for (int r = 0; r < FULCRUM_REASON_COUNT; r++) {
        auto reason = static_cast<fulcrum_reason>(r);
        double value = static_cast<double>(counters_.reason_counters(reason).packets);
        std::vector<ClientMetric::Label> labels{{"reason", std::string(dataplane::reason_name(reason))}};
        switch (dataplane::reason_kind(reason)) {
        case dataplane::ReasonKind::passed: add(passed, labels, value); break;
        case dataplane::ReasonKind::answered: add(answered, labels, value); break;
        case dataplane::ReasonKind::forwarded: add(icmp_fwd, {}, value); break;
        case dataplane::ReasonKind::dropped: add(dropped, labels, value); break;
        }
    }
    auto not_recorded = family("fulcrum_flows_not_recorded_total",
                               "Packets balanced by Maglev alone, without a flow-table entry, by reason.",
                               MetricType::Counter);
    for (int e = 0; e < FULCRUM_FLOW_EVENT_COUNT; e++) {
        auto event = static_cast<fulcrum_flow_event>(e);
        add(not_recorded, {{"reason", std::string(dataplane::flow_event_name(event))}},
            static_cast<double>(counters_.flow_event_count(event)));
    }
    auto quic = family("fulcrum_quic_packets_total",
                       "UDP packets of services with QUIC connection-ID routing, by the outcome of the "
                       "server-id lookup (routed_by_id; the others take the flow table and Maglev).",
                       MetricType::Counter);
    for (int e = 0; e < FULCRUM_QUIC_EVENT_COUNT; e++) {
        auto event = static_cast<fulcrum_quic_event>(e);
        add(quic, {{"outcome", std::string(dataplane::quic_event_name(event))}},
            static_cast<double>(counters_.quic_event_count(event)));
    }
    auto reloads = family("fulcrum_config_reloads_total", "Configuration loads, by result.", MetricType::Counter);
    add(reloads, {{"result", "success"}}, static_cast<double>(reloads_ok_.load()));
    add(reloads, {{"result", "failure"}}, static_cast<double>(reloads_failed_.load()));
    auto applies = family("fulcrum_applies_total",
                          "Applies of the desired state to the maps (each rebuilds only what changed), by cause.",
                          MetricType::Counter);
    {
        std::lock_guard lock(mutex_);
        for (const char* cause : {"config", "health", "operator"}) {
            auto it = applies_.find(cause);
            add(applies, {{"cause", cause}}, it == applies_.end() ? 0.0 : static_cast<double>(it->second));
        }
    }
    auto generation = family("fulcrum_config_generation", "Configurations loaded since start (start-up load and reloads).", MetricType::Gauge);
    add(generation, {}, static_cast<double>(generation_now));
    auto build = family("fulcrum_build_info", "Version of fulcrumd and of its BPF program.", MetricType::Gauge);
    add(build, {{"version", version_}, {"bpf_program", bpf_program_}}, 1);

    // Moved, not listed in braces: an initializer list copies every family (every backend's
    // labels a second time).
    std::vector<MetricFamily> out;
    for (MetricFamily* f : {&svc_packets, &svc_bytes, &svc_flows, &be_packets, &be_bytes, &be_up, &be_weight, &panic,
                            &check_seconds, &check_failures, &dropped, &passed, &answered, &icmp_fwd, &not_recorded,
                            &quic, &reloads, &applies, &generation, &build})
        out.push_back(std::move(*f));
    return out;
}

}  // namespace fulcrum::metrics
