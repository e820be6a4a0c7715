// The seam between the control logic and the BPF maps: the writes the reconciler makes.
// BalancerProgram implements it on the real maps; tests use an in-memory fake
// (tests/unit/fake_maps.h), so planning and reconciliation are tested without root.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "abi.h"
#include "util/status.h"

namespace fulcrum::dataplane {

// Entries read back from the maps (adoption of pinned state after a restart).
struct MapSnapshot {
    std::vector<std::pair<fulcrum_vip_key, fulcrum_vip_value>> vips;
    std::vector<std::pair<fulcrum_service_key, fulcrum_service_value>> services;
    std::vector<std::pair<std::uint32_t, fulcrum_backend>> backends;  // only slots in use
};

class MapWriter {
public:
    virtual ~MapWriter() = default;
    virtual Status set_settings(const fulcrum_settings& settings) = 0;
    virtual Status put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value) = 0;
    virtual Status delete_vip(const fulcrum_vip_key& key) = 0;
    virtual Status put_service(const fulcrum_service_key& key, const fulcrum_service_value& value) = 0;
    virtual Status delete_service(const fulcrum_service_key& key) = 0;
    virtual Status put_backend(std::uint32_t id, const fulcrum_backend& backend) = 0;
    // Replaces the service's whole Maglev table in one step (built aside, then swapped).
    virtual Status put_table(std::uint32_t service_id, std::span<const std::uint32_t> table) = 0;
    virtual Status delete_table(std::uint32_t service_id) = 0;
    // Called after the backends that become usable have been written and before any table that
    // names them is swapped in: a writer may prepare per-backend state there (the real maps:
    // next-hop cache entries, so a backend's first packet needs no fib lookup).
    virtual Status backends_written() { return {}; }
};

}  // namespace fulcrum::dataplane
