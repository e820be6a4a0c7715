// What `fulcrumctl status`, `fulcrumctl top` and the status page show, computed once
// (Daemon::status_view, status_view.cpp) from the applied plan, health and the rate sampler;
// each of them only renders it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fulcrum::daemon {

struct BackendView {
    std::string address;  // canonical text
    std::uint32_t weight = 0;
    std::uint32_t server_id = 0;  // QUIC server id (services[].quic), 0 = none
    const char* state = "down";  // active, draining, down (plan::BackendUse)
    const char* drained_by = "";  // "", "operator" (fulcrumctl drain), "config"
    std::optional<bool> up;       // health; none while the manager has no entry for it
    std::string last_check = "-";  // passed, or the failure and its detail; "-" before the first
    double seconds_since_change = 0;
    double packets_per_second = 0, bits_per_second = 0;
};

struct ServiceView {
    std::string name;
    std::string vip;       // canonical text
    std::string endpoint;  // "192.0.2.1:80/tcp", "[2001:db8::1]:443/tcp" (command_text.h service_endpoint)
    bool v6 = false;
    unsigned port = 0;  // 0: every port
    const char* protocol = "tcp";
    std::uint32_t table_size = 0;
    std::string hash;  // the hash policy's config word (plan::hash_policy_name)
    std::string encap;  // the encapsulation's config word (plan::encap_name)
    std::uint32_t healthy = 0, min_healthy = 0;
    bool panic = false;
    double packets_per_second = 0, bits_per_second = 0, new_flows_per_second = 0;
    std::vector<BackendView> backends;
};

// A data-plane reason the balancer dropped packets for (metrics: fulcrum_packets_dropped_total).
struct DropView {
    std::string reason;
    std::uint64_t packets = 0;  // since the maps were created
    double packets_per_second = 0;
};

struct StatusView {
    std::uint64_t generation = 0;
    std::vector<ServiceView> services;
};

}  // namespace fulcrum::daemon
