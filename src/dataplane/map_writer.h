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
    std::vector<std::pair<fulcrum_quic_key, std::uint32_t>> quic_ids;  // server id -> backend id
};

// Every apply is one transaction (plan/reconciler.h): begin(), the writes, then commit() - or,
// after a failed write, rollback(), which puts back every entry the writes since begin() changed
// (the previous bytes, or the key's absence) in reverse order, so the maps hold exactly what they
// held before. A writer that forwards to another forwards these three as well.
class MapWriter {
public:
    virtual ~MapWriter() = default;
    virtual void begin() = 0;
    virtual void commit() = 0;
    // Returns what could not be put back (an undo that itself failed), or ok.
    virtual Status rollback() = 0;
    // Creates and fills the service's next Maglev table aside, where no packet sees it: creating
    // it is the write most likely to fail (memory), so an apply prepares every new table before
    // it writes anything live. put_table with the same service id then swaps this one in. A
    // prepared table not swapped in by the end of the transaction is freed.
    virtual Status prepare_table(std::uint32_t service_id, std::span<const std::uint32_t> table) = 0;

    virtual Status set_settings(const fulcrum_settings& settings) = 0;
    virtual Status put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value) = 0;
    virtual Status delete_vip(const fulcrum_vip_key& key) = 0;
    virtual Status put_service(const fulcrum_service_key& key, const fulcrum_service_value& value) = 0;
    virtual Status delete_service(const fulcrum_service_key& key) = 0;
    virtual Status put_backend(std::uint32_t id, const fulcrum_backend& backend) = 0;
    // QUIC connection-ID routing (abi.h fulcrum_quic_key): (service id, server id) -> backend id.
    virtual Status put_quic_id(const fulcrum_quic_key& key, std::uint32_t backend_id) = 0;
    virtual Status delete_quic_id(const fulcrum_quic_key& key) = 0;
    // Replaces the service's whole Maglev table in one step (the prepared one, else built aside
    // here, then swapped).
    virtual Status put_table(std::uint32_t service_id, std::span<const std::uint32_t> table) = 0;
    // Swaps in the tables prepare_table made for these services, in this order, as one write
    // where the maps allow it: the kernel waits out an RCU grace period after every update of a
    // map of maps (~16 ms here: 16 s for a thousand tables one by one), and once for a batch.
    // A service with no prepared table is an error. On failure, rollback() undoes the swaps that
    // went in, as for any write.
    virtual Status put_tables(std::span<const std::uint32_t> service_ids) = 0;
    virtual Status delete_table(std::uint32_t service_id) = 0;
    // Called after the backends that become usable have been written and before any table that
    // names them is swapped in: a writer may prepare per-backend state there (the real maps:
    // next-hop cache entries, so a backend's first packet needs no fib lookup).
    virtual Status backends_written() { return {}; }
};

}  // namespace fulcrum::dataplane
