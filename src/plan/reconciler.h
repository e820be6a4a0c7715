// Applies a desired state to the maps: diffs it against what was applied before and writes only
// the difference, in an order that never lets a packet see a half-made change (new backends
// before the table that names them, the table swapped in one step, removed backends freed after).
// Owns the allocation of service and backend ids.
//
// The desired state comes with its Maglev tables (TableCache::build, plan/tables.h); the
// reconciler only labels their members with backend ids, diffs and writes.
//
// An apply is all or nothing. It is planned first, with no write: ids allocated, tables
// labelled, every write listed (a plan that cannot be made - no free id - fails here). Then the new
// tables are created aside (MapWriter::prepare_table), then the live writes run in one MapWriter
// transaction. If any write fails, the transaction is rolled back (every changed entry gets its
// previous bytes back, in reverse order) and the applied state stays the previous one: the maps
// and this object both hold exactly what they held before, and the error names the write.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/map_writer.h"
#include "plan/desired.h"
#include "plan/diff.h"
#include "plan/tables.h"
#include "util/status.h"

namespace fulcrum::plan {

// Hands out ids in [first, last], cycling forward so a freed id is reused as late as possible.
class IdPool {
public:
    IdPool(std::uint32_t first, std::uint32_t last) : first_(first), last_(last), next_(first) {}
    std::optional<std::uint32_t> allocate();
    void release(std::uint32_t id);
    bool mark_used(std::uint32_t id);  // adoption; false if out of range or already used

private:
    bool used(std::uint32_t id) const { return used_[id - first_]; }
    std::uint32_t first_, last_, next_;
    std::vector<bool> used_ = std::vector<bool>(last_ - first_ + 1);  // a plan copies the pools: keep them small
};

struct AppliedBackend {
    std::uint32_t id = 0;
    fulcrum_backend value{};
    std::uint32_t weight = 0;
    std::uint32_t server_id = 0;  // its quic_ids entry (service id, server_id) -> id; 0 = none
};

struct AppliedService {
    std::uint32_t id = 0;
    std::string vip;
    fulcrum_service_key key{};
    std::uint32_t table_size = 0;
    std::uint32_t hash_omit = 0;  // the hash policy in the services entry (abi.h FULCRUM_HASH_NO_*)
    std::uint8_t quic_id_offset = 0, quic_id_bits = 0;  // QUIC routing in the services entry (0: off)
    std::uint32_t encap = FULCRUM_ENCAP_IPIP;  // the encapsulation in the services entry (enum fulcrum_encap)
    // The table in maglev_tables, by member (plan/tables.h), and the backend id of each member.
    // Null for an adopted service until its first apply rewrites the table. An apply whose table
    // has the same input and member ids writes no table.
    std::shared_ptr<const SlotTable> table;
    std::vector<std::uint32_t> member_ids;
    std::map<std::string, AppliedBackend> backends;  // by address text

    // The table as maglev_tables holds it: a backend id per slot (0 = none); empty if no table.
    std::vector<std::uint32_t> table_ids() const;
    // The backend id in one slot (0 = none, or no table).
    std::uint32_t backend_in_slot(std::uint32_t slot) const;
};

class Reconciler {
public:
    explicit Reconciler(dataplane::MapWriter& maps) : maps_(maps) {}

    // Takes over state found in the maps (pinned by an earlier daemon) as the applied state:
    // services matched to desired ones by (VIP, port, protocol), backends by address within
    // their service; unmatched services get placeholder names so the next apply removes them.
    // Tables are not read back: the next apply rewrites each one (the same table, for an
    // unchanged service). Call once, before the first apply.
    void adopt(const dataplane::MapSnapshot& snapshot, const Desired& desired);

    // Writes what differs between `desired` and the applied state, all or nothing (above).
    // `desired` must carry its tables (TableCache::build): a missing or stale one fails the plan. On
    // failure the maps and the applied state are the previous ones, unless the undo itself
    // failed: the message then says so, and the next apply rewrites every entry it wants.
    Status apply(const Desired& desired);

    // What apply(desired) would change (diff.h), from the very plan it would execute; nothing is
    // written and the applied state stays as it is. Fails where apply would fail to plan.
    Status preview(const Desired& desired, Diff* diff) const;

    const std::map<std::string, AppliedService>& services() const { return services_; }

private:
    struct Write;
    struct Plan;
    Status make_plan(const Desired& desired, Plan& plan) const;
    void plan_removal(const std::string& name, const AppliedService& svc, Plan& plan) const;
    // True when `wanted` is exactly what is applied for its service (by value): the plan then
    // leaves the service out (no write, no copy; a reload that changes one service of a thousand
    // plans one).
    bool unchanged(const ServicePlan& wanted, std::uint32_t seed, const Plan& plan) const;
    Status plan_service(const ServicePlan& wanted, std::uint32_t seed, Plan& plan) const;
    void plan_vips(const Desired& desired, bool removals, Plan& plan) const;
    // The quic_ids writes that take a service from the server ids it has to those of `want`.
    void plan_quic_ids(const std::string* name, std::uint32_t service_id,
                       const std::map<std::string, AppliedBackend>& have,
                       const std::map<std::string, AppliedBackend>& want, std::vector<Write>& to) const;
    Status execute(const Write& write);
    Status swap_tables(std::span<const Write> swaps);  // a run of put_table writes, as one
    Status prepare_tables(const Plan& plan);  // every put_table's table, built and written aside
    void commit(Plan& plan);

    dataplane::MapWriter& maps_;
    // Set when an undo failed: the maps may differ from the applied state, so the next apply
    // writes every entry it wants instead of only the difference.
    bool rewrite_all_ = false;
    std::optional<fulcrum_settings> settings_;
    std::map<std::string, AppliedService> services_;
    std::map<std::vector<std::uint8_t>, fulcrum_vip_value> vips_;  // by the key's bytes
    IdPool service_ids_{1, FULCRUM_MAX_SERVICES - 1};
    IdPool backend_ids_{1, FULCRUM_MAX_BACKENDS - 1};
};

}  // namespace fulcrum::plan
