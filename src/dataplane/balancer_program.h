// The balancer BPF program and its maps, loaded through the libbpf skeleton (RAII), and the
// writes fulcrumd makes to those maps. Where a map is written: here.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "abi.h"
#include "dataplane/map_writer.h"
#include "util/status.h"

struct balancer_bpf;  // generated skeleton (build/xdp/balancer.skel.h)

namespace fulcrum::dataplane {

struct LoadOptions {
    std::uint64_t udp_idle_timeout_ns = 30'000'000'000ULL;
    std::uint32_t flow_capacity = FULCRUM_DEFAULT_FLOWS;
};

// Per-CPU counters summed over all CPUs.
struct ServiceCounters { std::uint64_t packets = 0, bytes = 0, new_flows = 0; };
struct PacketCounters { std::uint64_t packets = 0, bytes = 0; };

class BalancerProgram final : public MapWriter {
public:
    // Opens, configures and loads the program (not attached). On failure returns nullptr and
    // sets *error to a message naming the phase and errno.
    static std::unique_ptr<BalancerProgram> load(const LoadOptions& options, Status* error);
    ~BalancerProgram();
    BalancerProgram(const BalancerProgram&) = delete;
    BalancerProgram& operator=(const BalancerProgram&) = delete;

    int program_fd() const;

    // MapWriter
    Status set_settings(const fulcrum_settings& settings) override;
    Status put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value) override;
    Status delete_vip(const fulcrum_vip_key& key) override;
    Status put_service(const fulcrum_service_key& key, const fulcrum_service_value& value) override;
    Status delete_service(const fulcrum_service_key& key) override;
    Status put_backend(std::uint32_t id, const fulcrum_backend& backend) override;
    // Builds a new inner array for the service aside, fills it, then swaps it into
    // maglev_tables in one update: packets see the old table or the new one, never a mix.
    Status put_table(std::uint32_t service_id, std::span<const std::uint32_t> table) override;
    Status delete_table(std::uint32_t service_id) override;
    Status put_tx_port(std::uint32_t ifindex);
    Status clear_flows();

    ServiceCounters service_counters(std::uint32_t service_id) const;
    PacketCounters backend_counters(std::uint32_t backend_id) const;
    PacketCounters reason_counters(fulcrum_reason reason) const;
    // The flow-table entries for a key on every CPU that has one (backend id != 0).
    std::vector<fulcrum_flow_value> flow_entries(const fulcrum_flow_key& key) const;

private:
    explicit BalancerProgram(balancer_bpf* skel);
    balancer_bpf* skel_;
};

}  // namespace fulcrum::dataplane
