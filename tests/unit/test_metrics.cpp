// The metrics collector: the contract's names (INTERFACE.md) with their labels, values read from
// the counters at collect time, reasons split into dropped / passed / answered.
#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "metrics/collector.h"

using namespace fulcrum;

namespace {

class FakeCounters final : public dataplane::CounterReader {
public:
    std::map<std::uint32_t, dataplane::ServiceCounters> services;
    std::map<std::uint32_t, dataplane::PacketCounters> backends;
    std::map<int, dataplane::PacketCounters> reasons;
    std::map<int, std::uint64_t> flow_events;
    std::map<int, std::uint64_t> quic_events;
    dataplane::ServiceCounters service_counters(std::uint32_t id) const override
    {
        auto it = services.find(id);
        return it == services.end() ? dataplane::ServiceCounters{} : it->second;
    }
    dataplane::PacketCounters backend_counters(std::uint32_t id) const override
    {
        auto it = backends.find(id);
        return it == backends.end() ? dataplane::PacketCounters{} : it->second;
    }
    dataplane::PacketCounters reason_counters(fulcrum_reason r) const override
    {
        auto it = reasons.find(r);
        return it == reasons.end() ? dataplane::PacketCounters{} : it->second;
    }
    std::uint64_t flow_event_count(fulcrum_flow_event e) const override
    {
        auto it = flow_events.find(e);
        return it == flow_events.end() ? 0 : it->second;
    }
    std::uint64_t quic_event_count(fulcrum_quic_event e) const override
    {
        auto it = quic_events.find(e);
        return it == quic_events.end() ? 0 : it->second;
    }
};

// "name{k=v,k=v}" -> value, from collected families.
std::map<std::string, double> flatten(const std::vector<prometheus::MetricFamily>& families)
{
    std::map<std::string, double> out;
    for (const auto& f : families)
        for (const auto& m : f.metric) {
            std::string key = f.name + "{";
            for (std::size_t i = 0; i < m.label.size(); i++)
                key += (i ? "," : "") + m.label[i].name + "=" + m.label[i].value;
            key += "}";
            out[key] = f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
        }
    return out;
}

}  // namespace

TEST_CASE("metrics carry the contract's names and labels, read at collect time", "[metrics]")
{
    FakeCounters counters;
    metrics::Collector collector(counters, "1.2.3", "balancer");
    collector.set_topology({{7, "web", "192.0.2.10", {{3, "10.1.0.11", 100, true}, {4, "10.1.0.12", 0, false}}}});
    counters.services[7] = {10, 1000, 4};
    counters.backends[3] = {6, 600};
    counters.backends[4] = {4, 400};
    counters.reasons[FULCRUM_DROP_PORT_UNSERVED] = {2, 120};
    counters.reasons[FULCRUM_PASS_NOT_VIP] = {5, 300};
    counters.reasons[FULCRUM_TX_ECHO_REPLY] = {1, 98};
    counters.reasons[FULCRUM_FWD_ICMP_ERROR] = {3, 210};
    counters.flow_events[FULCRUM_FLOW_NOT_RECORDED_BUDGET] = 9;
    counters.flow_events[FULCRUM_FLOW_NOT_RECORDED_MID_STREAM] = 8;
    counters.quic_events[FULCRUM_QUIC_ROUTED_BY_ID] = 7;
    counters.quic_events[FULCRUM_QUIC_TRUNCATED] = 2;
    collector.count_reload(true);
    collector.count_reload(false);
    collector.set_generation(2);

    auto m = flatten(collector.Collect());
    CHECK(m.at("fulcrum_service_packets_total{service=web,vip=192.0.2.10}") == 10);
    CHECK(m.at("fulcrum_service_bytes_total{service=web,vip=192.0.2.10}") == 1000);
    CHECK(m.at("fulcrum_service_new_flows_total{service=web}") == 4);
    CHECK(m.at("fulcrum_backend_packets_total{service=web,backend=10.1.0.11}") == 6);
    CHECK(m.at("fulcrum_backend_bytes_total{service=web,backend=10.1.0.12}") == 400);
    CHECK(m.at("fulcrum_backend_up{service=web,backend=10.1.0.11}") == 1);
    CHECK(m.at("fulcrum_backend_up{service=web,backend=10.1.0.12}") == 0);
    CHECK(m.at("fulcrum_backend_weight{service=web,backend=10.1.0.11}") == 100);
    CHECK(m.at("fulcrum_packets_dropped_total{reason=port_unserved}") == 2);
    CHECK(m.at("fulcrum_packets_dropped_total{reason=no_backend}") == 0);
    CHECK(m.at("fulcrum_packets_passed_total{reason=not_vip}") == 5);
    CHECK(m.at("fulcrum_packets_answered_total{reason=echo_reply}") == 1);
    CHECK(m.at("fulcrum_icmp_errors_forwarded_total{}") == 3);
    CHECK(m.at("fulcrum_flows_not_recorded_total{reason=budget}") == 9);
    CHECK(m.at("fulcrum_flows_not_recorded_total{reason=mid_stream}") == 8);
    CHECK(m.at("fulcrum_quic_packets_total{outcome=routed_by_id}") == 7);
    CHECK(m.at("fulcrum_quic_packets_total{outcome=truncated}") == 2);
    CHECK(m.at("fulcrum_quic_packets_total{outcome=long_header}") == 0);
    CHECK(m.at("fulcrum_quic_packets_total{outcome=unknown_id}") == 0);
    CHECK(m.at("fulcrum_quic_packets_total{outcome=unusable_id}") == 0);
    CHECK(m.at("fulcrum_quic_packets_total{outcome=not_quic}") == 0);
    CHECK(m.at("fulcrum_config_reloads_total{result=success}") == 1);
    CHECK(m.at("fulcrum_config_reloads_total{result=failure}") == 1);
    CHECK(m.at("fulcrum_config_generation{}") == 2);
    CHECK(m.at("fulcrum_build_info{version=1.2.3,bpf_program=balancer}") == 1);
    // A pass or answer reason never shows up as a drop.
    CHECK_FALSE(m.contains("fulcrum_packets_dropped_total{reason=not_vip}"));
    CHECK_FALSE(m.contains("fulcrum_packets_dropped_total{reason=echo_reply}"));

    // Values are read when collected, not cached.
    counters.services[7].packets = 11;
    CHECK(flatten(collector.Collect()).at("fulcrum_service_packets_total{service=web,vip=192.0.2.10}") == 11);
}

TEST_CASE("every drop reason is exported once under its own name", "[metrics]")
{
    FakeCounters counters;
    metrics::Collector collector(counters, "x", "balancer");
    auto m = flatten(collector.Collect());
    int drops = 0;
    for (const auto& [key, value] : m)
        drops += key.rfind("fulcrum_packets_dropped_total{", 0) == 0;
    CHECK(drops == FULCRUM_REASON_COUNT - 5);  // 2 passed, 2 answered, 1 forwarded
}
