// What a reload of a file would change, computed before it happens (fulcrumctl diff FILE,
// fulcrumd --check --diff): Reconciler::preview makes the same plan an apply would execute and
// describes it, without writing anything.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fulcrum::plan {

struct BackendDiff {
    std::string address;
    std::string before;  // "" if absent, else its state and weight: "active, weight 100"
    std::string after;   // "" if removed
};

struct ServiceDiff {
    enum class Change { added, removed, changed, unchanged };
    std::string name;
    Change change = Change::unchanged;
    std::string key;  // "VIP port N/tcp"
    std::vector<BackendDiff> backends;  // only those that change
    std::uint32_t table_before = 0, table_after = 0;  // slots
    bool table_rebuilt = false;
    // Hash policies (config words); different when the reload changes which fields pick a
    // backend: new flows then follow the new input, recorded flows keep their backend.
    std::string hash_before, hash_after;
    // QUIC connection-ID routing ("no quic", or where the server id is); differ when it changes.
    std::string quic_before, quic_after;
    // Encapsulations (config words); different when the reload moves the service to another
    // tunnel: every flow keeps its backend, its next packet travels in the new tunnel.
    std::string encap_before, encap_after;
    // Share of flow hashes whose Maglev slot names another backend after the change: where new
    // flows, and flows the balancer has not recorded, go. 0 for an unchanged table.
    double slots_moved = 0;
    // The same once the backends the file adds pass their first checks (they start down unless
    // start_up: a second table change, made by health after the reload). Equal to slots_moved
    // when nothing is added.
    double slots_moved_when_up = 0;
    // Backends (ids in the maps today) whose recorded flows lose their backend: removed, or
    // going down (a drained backend keeps its flows). The caller counts their flows.
    std::vector<std::uint32_t> leaving_backends;
    std::vector<std::uint32_t> backends_now;  // every backend id the service has today
    // Filled by the caller from the flow tables: recorded flows of the service today, and those
    // of them whose backend leaves (they are re-hashed, or dropped if nothing can serve).
    std::uint64_t flows = 0, flows_moving = 0;
};

struct Diff {
    bool settings_changed = false;
    std::size_t writes = 0;  // map writes the apply would make
    std::vector<ServiceDiff> services;  // changed, added, removed; unchanged ones too (counted)
};

// Share of flow hashes whose slot names another backend between two Maglev tables (entries are
// backend ids, 0 = none), comparing backends by `name_of` (address), as the data plane picks a
// slot: hash % size. Exact for equal sizes; else over 2^20 hashes spread over the 32-bit range.
double moved_share(const std::vector<std::uint32_t>& before, const std::function<std::string(std::uint32_t)>& name_before,
                   const std::vector<std::uint32_t>& after, const std::function<std::string(std::uint32_t)>& name_after);

// Share of new flows that go to another backend when the hash input changes (a new hash policy),
// comparing backends by name: the slot before and the slot after are then independent.
double rehashed_share(const std::vector<std::uint32_t>& before,
                      const std::function<std::string(std::uint32_t)>& name_before,
                      const std::vector<std::uint32_t>& after,
                      const std::function<std::string(std::uint32_t)>& name_after);

const char* to_string(ServiceDiff::Change change);  // "added" | "removed" | "changed" | "unchanged"

}  // namespace fulcrum::plan
