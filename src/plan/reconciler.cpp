// The reconciler: see reconciler.h for the ordering rules and the transaction.
#include "plan/reconciler.h"

#include <netinet/in.h>

#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>

#include "plan/parallel.h"

namespace fulcrum::plan {
namespace {

template <typename T>
bool same_bytes(const T& a, const T& b)
{
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <typename T>
std::vector<std::uint8_t> bytes_of(const T& v)
{
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    return std::vector<std::uint8_t>(p, p + sizeof(T));
}

std::uint8_t data_plane_state(BackendUse use)
{
    switch (use) {
    case BackendUse::active: return FULCRUM_BACKEND_ACTIVE;
    case BackendUse::draining: return FULCRUM_BACKEND_DRAINING;
    case BackendUse::down: return FULCRUM_BACKEND_DOWN;
    }
    return FULCRUM_BACKEND_DOWN;
}

const char* state_name(std::uint8_t state)
{
    switch (state) {
    case FULCRUM_BACKEND_UNUSED: return "freed";
    case FULCRUM_BACKEND_ACTIVE: return "active";
    case FULCRUM_BACKEND_DRAINING: return "draining";
    case FULCRUM_BACKEND_DOWN: return "down";
    }
    return "?";
}

fulcrum_vip_key vip_key_of(const fulcrum_service_key& key)
{
    fulcrum_vip_key vk{};
    vk.addr = key.vip;
    vk.family = key.family;
    return vk;
}

std::string service_key_text(const fulcrum_service_key& key)
{
    return address_text(key.vip, key.family) + " port " + std::to_string(ntohs(key.port)) +
           (key.proto == IPPROTO_TCP ? "/tcp" : "/udp");
}

std::string backend_text(const AppliedBackend& b)
{
    return std::string(state_name(b.value.state)) + ", weight " + std::to_string(b.weight) +
           (b.server_id ? ", server_id " + std::to_string(b.server_id) : "");
}

std::string quic_text(std::uint8_t offset, std::uint8_t bits)
{
    return offset ? "quic id at byte " + std::to_string(offset - 1) + ", " + std::to_string(bits) + " bits" : "no quic";
}

// Backend id -> address, for comparing two tables by who their slots name.
std::function<std::string(std::uint32_t)> names_of(const AppliedService& svc)
{
    auto names = std::make_shared<std::map<std::uint32_t, std::string>>();
    for (const auto& [address, b] : svc.backends)
        (*names)[b.id] = address;
    return [names](std::uint32_t id) {
        auto it = names->find(id);
        return it == names->end() ? std::string("#") + std::to_string(id) : it->second;
    };
}

// Whether two services' tables send every slot to the same backend id (no table: all slots 0).
bool same_slots(const AppliedService& a, const AppliedService& b)
{
    if (!a.table || !b.table)  // without building the other (an adopted service has no table)
        return !a.table && !b.table;
    return a.table_ids() == b.table_ids();
}

// A service that goes: every recorded flow of it loses its backend.
ServiceDiff removal_diff(const std::string& name, const AppliedService& svc)
{
    ServiceDiff d;
    d.name = name;
    d.change = ServiceDiff::Change::removed;
    d.key = service_key_text(svc.key);
    d.table_before = svc.table_size;
    d.slots_moved = 1;
    for (const auto& [address, b] : svc.backends) {
        d.backends.push_back({address, backend_text(b), ""});
        d.leaving_backends.push_back(b.id);
        d.backends_now.push_back(b.id);
    }
    return d;
}

}  // namespace

std::vector<std::uint32_t> AppliedService::table_ids() const
{
    if (!table)
        return {};
    std::vector<std::uint32_t> ids = slots_of(*table);
    for (std::uint32_t& slot : ids)
        slot = slot == 0 ? 0 : member_ids[slot - 1];
    return ids;
}

std::uint32_t AppliedService::backend_in_slot(std::uint32_t slot) const
{
    if (!table || slot >= table->size)
        return 0;
    if (table->slots.empty())
        return table_ids()[slot];  // dropped: rebuilt (plan/tables.h)
    return table->slots[slot] == 0 ? 0 : member_ids[table->slots[slot] - 1];
}

// One write of a planned apply; `name` is the service it belongs to (messages only).
struct Reconciler::Write {
    enum class Kind { settings, put_vip, delete_vip, put_service, delete_service, put_backend,
                      backends_written, put_table, delete_table, put_quic_id, delete_quic_id };
    explicit Write(Kind k) : kind(k) {}
    Kind kind;
    const std::string* name = nullptr;
    std::uint32_t id = 0;  // backend id (put_backend), service id (tables)
    fulcrum_settings settings{};
    fulcrum_vip_key vip{};
    fulcrum_vip_value vip_value{};
    fulcrum_service_key service{};
    fulcrum_service_value service_value{};
    fulcrum_backend backend{};
    fulcrum_quic_key quic{};  // put_quic_id (-> backend id `id`), delete_quic_id
    const AppliedService* table = nullptr;  // put_table: the service's next value, in Plan::services

    // What this write is, for the operator: the map, the key, the value that matters.
    std::string describe() const
    {
        const std::string of = name ? " of service " + *name : "";
        switch (kind) {
        case Kind::settings: return "settings";
        case Kind::put_vip: return "vips entry " + address_text(vip.addr, vip.family);
        case Kind::delete_vip: return "vips entry " + address_text(vip.addr, vip.family) + " (delete)";
        case Kind::put_service:
            return "services entry " + service_key_text(service) + of + " (id " + std::to_string(service_value.id) +
                   ", table " + std::to_string(service_value.table_size) + ", hash " +
                   hash_policy_name(service_value.hash_omit) + ", " +
                   quic_text(service_value.quic_id_offset, service_value.quic_id_bits) + ", encap " +
                   encap_name(service_value.encap) + ")";
        case Kind::delete_service: return "services entry " + service_key_text(service) + of + " (delete)";
        case Kind::put_backend:
            return "backends entry " + std::to_string(id) +
                   (backend.state == FULCRUM_BACKEND_UNUSED ? "" : " " + address_text(backend.addr, backend.family)) +
                   of + " (" + state_name(backend.state) + ")";
        case Kind::backends_written: return "next hops of the new backends" + of;
        case Kind::put_table:
            return "maglev_tables entry " + std::to_string(id) + of + " (" + std::to_string(table->table->size) +
                   " slots)";
        case Kind::delete_table: return "maglev_tables entry " + std::to_string(id) + of + " (delete)";
        case Kind::put_quic_id:
            return "quic_ids entry server_id " + std::to_string(quic.server_id) + of + " (backend " +
                   std::to_string(id) + ")";
        case Kind::delete_quic_id:
            return "quic_ids entry server_id " + std::to_string(quic.server_id) + of + " (delete)";
        }
        return "?";
    }
};

// Everything an apply will write, and the applied state once it has: made without touching
// the maps or this object, so a plan that cannot be made changes nothing.
struct Reconciler::Plan {
    std::vector<Write> writes;
    // While services are planned, their table swaps and what must follow them wait here, so all
    // swaps go in as one run (the real maps: one batch, one RCU grace period instead of one per
    // table) between every service's incoming backends and every service's outgoing ones.
    std::vector<Write> swaps, after_swaps;
    std::vector<std::uint32_t> freed_after_swaps;  // backend ids: reusable only once planned
    std::optional<fulcrum_settings> settings;
    std::map<std::vector<std::uint8_t>, fulcrum_vip_value> vips;
    std::set<std::string> removed;  // applied services that go (or are re-created under a new key)
    // The next value of every desired service that changes (its table shared with the planner's
    // cache); an unchanged one (Reconciler::unchanged) is not here and keeps its applied value.
    std::map<std::string, AppliedService> services;
    std::set<std::string> rebuilt;  // services whose table is written
    IdPool service_ids{1, 1}, backend_ids{1, 1};
};

std::optional<std::uint32_t> IdPool::allocate()
{
    const std::uint32_t span = last_ - first_ + 1;
    for (std::uint32_t tried = 0; tried < span; tried++) {
        std::uint32_t id = next_;
        next_ = next_ == last_ ? first_ : next_ + 1;
        if (!used(id)) {
            used_[id - first_] = true;
            return id;
        }
    }
    return std::nullopt;
}

void IdPool::release(std::uint32_t id)
{
    if (id >= first_ && id <= last_)
        used_[id - first_] = false;
}

bool IdPool::mark_used(std::uint32_t id)
{
    if (id < first_ || id > last_ || used(id))
        return false;
    used_[id - first_] = true;
    if (id >= next_)  // keep cycling forward from the highest adopted id
        next_ = id == last_ ? first_ : id + 1;
    return true;
}

void Reconciler::adopt(const dataplane::MapSnapshot& snapshot, const Desired& desired)
{
    for (const auto& [key, value] : snapshot.vips)
        vips_[bytes_of(key)] = value;
    for (const auto& [key, value] : snapshot.services) {
        if (!service_ids_.mark_used(value.id))
            continue;  // corrupt or duplicate id: leave the entry for the apply to overwrite
        std::string name = "(adopted service " + std::to_string(value.id) + ")";
        for (const ServicePlan& plan : desired.services)
            if (same_bytes(plan.key, key))
                name = plan.name;
        AppliedService svc;
        svc.id = value.id;
        svc.key = key;
        svc.vip = address_text(key.vip, key.family);
        svc.table_size = value.table_size;
        svc.hash_omit = value.hash_omit;
        svc.quic_id_offset = value.quic_id_offset;
        svc.quic_id_bits = value.quic_id_bits;
        svc.encap = value.encap;
        services_[name] = svc;
    }
    for (const auto& [id, backend] : snapshot.backends) {
        for (auto& [name, svc] : services_) {
            if (svc.id != backend.service_id || !backend_ids_.mark_used(id))
                continue;
            AppliedBackend ab;
            ab.id = id;
            ab.value = backend;
            svc.backends[address_text(backend.addr, backend.family)] = ab;
        }
    }
    // Server ids: each entry onto the backend it names (an entry naming no adopted backend of its
    // service is not taken over; it names a freed or foreign id, which the data plane ignores).
    for (const auto& [key, backend_id] : snapshot.quic_ids)
        for (auto& [name, svc] : services_) {
            if (svc.id != key.service_id)
                continue;
            for (auto& [address, ab] : svc.backends)
                if (ab.id == backend_id)
                    ab.server_id = key.server_id;
        }
}

Status Reconciler::apply(const Desired& desired)
{
    Plan plan;
    if (Status s = make_plan(desired, plan); !s.ok())
        return s;  // nothing written
    if (!plan.writes.empty()) {
        maps_.begin();
        Status failed;
        std::size_t at = 0;
        // Tables first, aside: the likeliest failure (memory) happens before anything is live.
        failed = prepare_tables(plan);
        while (failed.ok() && at < plan.writes.size()) {
            // A run of table swaps (make_plan puts them together) is one put_tables.
            std::size_t end = at + 1;
            if (plan.writes[at].kind == Write::Kind::put_table)
                while (end < plan.writes.size() && plan.writes[end].kind == Write::Kind::put_table)
                    end++;
            Status s = end - at > 1 ? swap_tables(std::span(plan.writes).subspan(at, end - at))
                                    : execute(plan.writes[at]);
            if (!s.ok()) {
                std::string what = end - at > 1 ? "maglev_tables entries of " + std::to_string(end - at) + " services"
                                                : plan.writes[at].describe();
                std::string which = end - at > 1 ? "writes " + std::to_string(at + 1) + "-" + std::to_string(end)
                                                 : "write " + std::to_string(at + 1);
                failed = Status::failure("apply: cannot write the " + what + ": " + s.message() + " (" + which +
                                         " of " + std::to_string(plan.writes.size()) + ")");
            }
            at = end;
        }
        if (!failed.ok()) {
            if (Status undo = maps_.rollback(); !undo.ok()) {
                rewrite_all_ = true;
                return Status::failure(failed.message() + "; UNDO FAILED, the maps may hold part of this change "
                                       "(the next apply rewrites every entry): " + undo.message());
            }
            return Status::failure(failed.message() + "; every earlier write was undone: the maps hold the "
                                   "previous state");
        }
        maps_.commit();
    }
    commit(plan);
    return {};
}

Status Reconciler::preview(const Desired& desired, Diff* diff) const
{
    Plan plan;
    if (Status s = make_plan(desired, plan); !s.ok())
        return s;
    for (const Write& w : plan.writes) {
        diff->writes += w.kind != Write::Kind::backends_written;  // a marker for the next-hop cache, not a map write
        diff->settings_changed = diff->settings_changed || w.kind == Write::Kind::settings;
    }
    for (const std::string& name : plan.removed)
        diff->services.push_back(removal_diff(name, services_.at(name)));
    for (const ServicePlan& wanted : desired.services) {
        auto planned = plan.services.find(wanted.name);
        const AppliedService& next = planned != plan.services.end() ? planned->second : services_.at(wanted.name);
        const AppliedService* old = nullptr;
        if (auto it = services_.find(wanted.name); it != services_.end() && !plan.removed.contains(wanted.name))
            old = &it->second;
        ServiceDiff d;
        d.name = wanted.name;
        d.key = service_key_text(wanted.key);
        d.table_after = wanted.table_size;
        d.table_rebuilt = plan.rebuilt.contains(wanted.name);
        d.hash_after = hash_policy_name(wanted.hash_omit);
        d.encap_after = encap_name(wanted.encap);
        if (!old) {
            d.change = ServiceDiff::Change::added;
            d.slots_moved = 1;
            for (const auto& [address, b] : next.backends)
                d.backends.push_back({address, "", backend_text(b)});
            diff->services.push_back(std::move(d));
            continue;
        }
        d.table_before = old->table_size;
        d.hash_before = hash_policy_name(old->hash_omit);
        d.encap_before = encap_name(old->encap);
        for (const auto& [address, b] : old->backends) {
            d.backends_now.push_back(b.id);
            auto n = next.backends.find(address);
            if (n == next.backends.end()) {
                d.backends.push_back({address, backend_text(b), ""});
                d.leaving_backends.push_back(b.id);
                continue;
            }
            if (backend_text(b) != backend_text(n->second))
                d.backends.push_back({address, backend_text(b), backend_text(n->second)});
            if (n->second.value.state == FULCRUM_BACKEND_DOWN && b.value.state != FULCRUM_BACKEND_DOWN)
                d.leaving_backends.push_back(b.id);
        }
        for (const auto& [address, b] : next.backends)
            if (!old->backends.contains(address))
                d.backends.push_back({address, "", backend_text(b)});
        if (d.hash_before != d.hash_after)
            d.slots_moved = rehashed_share(old->table_ids(), names_of(*old), next.table_ids(), names_of(next));
        else if (d.table_rebuilt)
            d.slots_moved = moved_share(old->table_ids(), names_of(*old), next.table_ids(), names_of(next));
        d.quic_before = quic_text(old->quic_id_offset, old->quic_id_bits);
        d.quic_after = quic_text(wanted.quic_id_offset, wanted.quic_id_bits);
        d.change = d.backends.empty() && d.table_before == d.table_after && d.hash_before == d.hash_after &&
                           d.quic_before == d.quic_after && d.encap_before == d.encap_after && d.slots_moved == 0
                       ? ServiceDiff::Change::unchanged
                       : ServiceDiff::Change::changed;
        diff->services.push_back(std::move(d));
    }
    return {};
}

Status Reconciler::execute(const Write& w)
{
    switch (w.kind) {
    case Write::Kind::settings: return maps_.set_settings(w.settings);
    case Write::Kind::put_vip: return maps_.put_vip(w.vip, w.vip_value);
    case Write::Kind::delete_vip: return maps_.delete_vip(w.vip);
    case Write::Kind::put_service: return maps_.put_service(w.service, w.service_value);
    case Write::Kind::delete_service: return maps_.delete_service(w.service);
    case Write::Kind::put_backend: return maps_.put_backend(w.id, w.backend);
    case Write::Kind::backends_written: return maps_.backends_written();
    case Write::Kind::put_table: return maps_.put_tables(std::span(&w.id, 1));
    case Write::Kind::delete_table: return maps_.delete_table(w.id);
    case Write::Kind::put_quic_id: return maps_.put_quic_id(w.quic, w.id);
    case Write::Kind::delete_quic_id: return maps_.delete_quic_id(w.quic);
    }
    return Status::failure("apply: unknown write");
}

// Every new table built (where the planner left its recipe only: plan/tables.h) and written aside,
// on every usable CPU: each worker builds its next table and then writes it, one writer at a time
// (a MapWriter is not thread-safe), so building overlaps writing and no more tables than workers
// are held at once: at start, 1,000 tables of 256 KiB were all held before the first was written.
// After a failure no further table is started; the prepared ones are freed with the transaction.
Status Reconciler::prepare_tables(const Plan& plan)
{
    std::vector<const Write*> tables;
    for (const Write& w : plan.writes)
        if (w.kind == Write::Kind::put_table)
            tables.push_back(&w);
    std::mutex writing;
    Status failed;
    run_parallel(tables.size(), [&](std::size_t i) {
        const Write& w = *tables[i];
        std::vector<std::uint32_t> ids = w.table->table_ids();
        std::lock_guard lock(writing);
        if (!failed.ok())
            return false;
        if (Status s = maps_.prepare_table(w.id, ids); !s.ok()) {
            failed = Status::failure("apply: cannot prepare the " + w.describe() + ": " + s.message() +
                                     " (before any live write)");
            return false;
        }
        return true;
    });
    return failed;
}

Status Reconciler::swap_tables(std::span<const Write> swaps)
{
    std::vector<std::uint32_t> ids;
    for (const Write& w : swaps)
        ids.push_back(w.id);
    return maps_.put_tables(ids);
}

void Reconciler::commit(Plan& plan)
{
    settings_ = plan.settings;
    vips_ = std::move(plan.vips);
    // Services that went, then the planned ones (new, changed, re-created under a new key);
    // unchanged ones were left out of the plan and stay as they are.
    for (const std::string& name : plan.removed)
        services_.erase(name);
    for (auto& [name, svc] : plan.services) {
        svc.table = without_slots(svc.table);  // the kernel holds the slots now (plan/tables.h)
        services_.insert_or_assign(name, std::move(svc));
    }
    service_ids_ = std::move(plan.service_ids);
    backend_ids_ = std::move(plan.backend_ids);
    rewrite_all_ = false;
}

Status Reconciler::make_plan(const Desired& desired, Plan& plan) const
{
    plan.settings = settings_;
    plan.vips = vips_;
    plan.service_ids = service_ids_;
    plan.backend_ids = backend_ids_;
    if (rewrite_all_ || !settings_ || !same_bytes(*settings_, desired.settings)) {
        Write w{Write::Kind::settings};
        w.settings = desired.settings;
        plan.writes.push_back(w);
        plan.settings = desired.settings;
    }
    // Services gone from the file, or whose (VIP, port, protocol) changed: removed first, so a
    // changed service is re-created under its new key.
    std::map<std::string, const ServicePlan*> by_name;
    for (const ServicePlan& s : desired.services)
        by_name[s.name] = &s;
    for (const auto& [name, applied] : services_) {
        auto it = by_name.find(name);
        if (it == by_name.end() || !same_bytes(it->second->key, applied.key))
            plan_removal(name, applied, plan);
    }
    plan_vips(desired, false, plan);
    for (const ServicePlan& s : desired.services) {
        if (unchanged(s, desired.settings.hash_seed, plan))
            continue;  // its applied value stays as it is: nothing to write, nothing to copy
        if (Status st = plan_service(s, desired.settings.hash_seed, plan); !st.ok())
            return st;
    }
    // The three phases of every service, each phase for all services: incoming backends (and
    // shrinking moduli), then the table swaps, then growing moduli and outgoing backends. The
    // order within a service is the one plan_service explains; across services nothing depends
    // on anything, except an id freed by one and taken by a later one, which is why a freed id
    // returns to the pool only now (its "free" write comes after every taker's write).
    std::move(plan.swaps.begin(), plan.swaps.end(), std::back_inserter(plan.writes));
    std::move(plan.after_swaps.begin(), plan.after_swaps.end(), std::back_inserter(plan.writes));
    for (std::uint32_t id : plan.freed_after_swaps)
        plan.backend_ids.release(id);
    plan_vips(desired, true, plan);
    return {};
}

// VIP entries: added/changed before services are written (removals = false), deleted after
// their last service went (removals = true).
void Reconciler::plan_vips(const Desired& desired, bool removals, Plan& plan) const
{
    std::map<std::vector<std::uint8_t>, fulcrum_vip_value> want;
    for (const ServicePlan& s : desired.services) {
        fulcrum_vip_value& v = want[bytes_of(vip_key_of(s.key))];
        if (s.key.port == 0)
            v.flags |= s.key.proto == IPPROTO_TCP ? FULCRUM_VIP_PORT0_TCP : FULCRUM_VIP_PORT0_UDP;
        // Echo requests to the VIP are answered only while one of its services can serve.
        for (const BackendPlan& b : s.backends)
            if (b.use == BackendUse::active && b.weight > 0)
                v.flags |= FULCRUM_VIP_SERVING;
    }
    if (!removals) {
        for (const auto& [key_bytes, value] : want) {
            auto it = plan.vips.find(key_bytes);
            if (!rewrite_all_ && it != plan.vips.end() && same_bytes(it->second, value))
                continue;
            Write w{Write::Kind::put_vip};
            std::memcpy(&w.vip, key_bytes.data(), sizeof w.vip);
            w.vip_value = value;
            plan.writes.push_back(w);
            plan.vips[key_bytes] = value;
        }
        return;
    }
    for (auto it = plan.vips.begin(); it != plan.vips.end();) {
        if (want.contains(it->first)) {
            ++it;
            continue;
        }
        Write w{Write::Kind::delete_vip};
        std::memcpy(&w.vip, it->first.data(), sizeof w.vip);
        plan.writes.push_back(w);
        it = plan.vips.erase(it);
    }
}

void Reconciler::plan_removal(const std::string& name, const AppliedService& svc, Plan& plan) const
{
    Write del{Write::Kind::delete_service};
    del.name = &name;
    del.service = svc.key;
    plan.writes.push_back(del);
    Write table{Write::Kind::delete_table};
    table.name = &name;
    table.id = svc.id;
    plan.writes.push_back(table);
    plan_quic_ids(&name, svc.id, svc.backends, {}, plan.writes);
    for (const auto& [address, backend] : svc.backends) {
        Write free{Write::Kind::put_backend};  // UNUSED: flows still pointing here re-hash (and find no service)
        free.name = &name;
        free.id = backend.id;
        plan.writes.push_back(free);
        plan.backend_ids.release(backend.id);
    }
    plan.service_ids.release(svc.id);
    plan.removed.insert(name);
}

bool Reconciler::unchanged(const ServicePlan& wanted, std::uint32_t seed, const Plan& plan) const
{
    if (rewrite_all_ || plan.removed.contains(wanted.name))
        return false;
    auto it = services_.find(wanted.name);
    if (it == services_.end())
        return false;
    const AppliedService& old = it->second;
    // The same table (its input names the active members, their weights, size and seed), and a
    // table that is this state's (else plan_service fails the plan, as it must).
    if (!old.table || !wanted.table || old.table->input != wanted.table->input ||
        wanted.table->input != table_input(wanted, seed))
        return false;
    if (!same_bytes(old.key, wanted.key) || old.table_size != wanted.table_size ||
        old.hash_omit != wanted.hash_omit || old.quic_id_offset != wanted.quic_id_offset ||
        old.quic_id_bits != wanted.quic_id_bits || old.encap != wanted.encap ||
        old.backends.size() != wanted.backends.size())
        return false;
    // Every backend as applied: same address, state and weight (the map value is made of these and
    // the service id, which stays). Then plan_service would write nothing and change nothing.
    for (const BackendPlan& b : wanted.backends) {
        auto have = old.backends.find(b.address);
        if (have == old.backends.end())
            return false;
        const AppliedBackend& ab = have->second;
        if (ab.weight != b.weight || ab.server_id != b.server_id || ab.value.state != data_plane_state(b.use) ||
            ab.value.family != b.family ||
            !same_bytes(ab.value.addr, b.addr) || ab.value.service_id != old.id)
            return false;
    }
    return true;
}

Status Reconciler::plan_service(const ServicePlan& wanted, std::uint32_t seed, Plan& plan) const
{
    const AppliedService* old = nullptr;
    if (auto it = services_.find(wanted.name); it != services_.end() && !plan.removed.contains(wanted.name))
        old = &it->second;
    const bool fresh = old == nullptr;
    AppliedService& svc = plan.services[wanted.name];
    const std::string* name = &wanted.name;
    if (fresh) {
        auto id = plan.service_ids.allocate();
        if (!id)
            return Status::failure("plan: no free service id for " + wanted.name + " (the maps hold " +
                                   std::to_string(FULCRUM_MAX_SERVICES - 1) + " services); nothing was written");
        svc.id = *id;
        svc.vip = wanted.vip;
        svc.key = wanted.key;
    } else {
        svc.id = old->id;
        svc.vip = old->vip;
        svc.key = old->key;
        svc.table_size = old->table_size;
        svc.hash_omit = old->hash_omit;
        svc.quic_id_offset = old->quic_id_offset;
        svc.quic_id_bits = old->quic_id_bits;
        svc.encap = old->encap;
        svc.backends = old->backends;
    }
    const std::map<std::string, AppliedBackend> backends_before = svc.backends;  // their server ids
    if (!wanted.table || wanted.table->input != table_input(wanted, seed))
        return Status::failure("plan: service " + wanted.name + ": its Maglev table is missing or was built for "
                               "other backends (TableCache::build was not run on this state); nothing was written");

    // Desired map values of every backend, allocating ids for new ones.
    std::map<std::string, AppliedBackend> want;
    for (const BackendPlan& b : wanted.backends) {
        AppliedBackend ab;
        auto have = svc.backends.find(b.address);
        if (have != svc.backends.end()) {
            ab.id = have->second.id;
        } else {
            auto id = plan.backend_ids.allocate();
            if (!id)
                return Status::failure("plan: no free backend id for " + b.address + " in " + wanted.name +
                                       " (the maps hold " + std::to_string(FULCRUM_MAX_BACKENDS - 1) +
                                       " backends, counting those this change frees only once it has); nothing "
                                       "was written");
            ab.id = *id;
        }
        ab.value.addr = b.addr;
        ab.value.family = b.family;
        ab.value.state = data_plane_state(b.use);
        ab.value.service_id = static_cast<std::uint16_t>(svc.id);
        ab.weight = b.weight;
        ab.server_id = b.server_id;
        want[b.address] = ab;
    }
    // The table: labelled with this apply's ids; written unless maglev_tables holds it already.
    std::vector<std::uint32_t> member_ids;
    for (const std::string& address : wanted.table->members)
        member_ids.push_back(want.at(address).id);
    const bool same_table = !fresh && !rewrite_all_ && old->table && old->table->input == wanted.table->input &&
                            old->member_ids == member_ids;
    svc.table = wanted.table;
    svc.member_ids = std::move(member_ids);
    const bool table_changed = !same_table && (fresh || rewrite_all_ || !same_slots(svc, *old));
    if (table_changed)
        plan.rebuilt.insert(wanted.name);

    auto write_backend = [&](std::vector<Write>& to, const std::string& address, const AppliedBackend& ab) {
        auto have = svc.backends.find(address);
        if (!rewrite_all_ && have != svc.backends.end() && same_bytes(have->second.value, ab.value)) {
            have->second.weight = ab.weight;
            have->second.server_id = ab.server_id;
            return false;
        }
        Write w{Write::Kind::put_backend};
        w.name = name;
        w.id = ab.id;
        w.backend = ab.value;
        to.push_back(w);
        svc.backends[address] = ab;
        return true;
    };
    // 1. Backends that become usable go in before any table names them.
    bool usable_written = false;
    for (const auto& [address, ab] : want)
        if (ab.value.state == FULCRUM_BACKEND_ACTIVE)
            usable_written = write_backend(plan.writes, address, ab) || usable_written;
    if (usable_written) {
        Write w{Write::Kind::backends_written};
        w.name = name;
        plan.writes.push_back(w);
    }
    // 2. The table and the service entry. The modulus (table_size) and the table change in two
    //    writes: shrink the modulus before swapping in a smaller table, grow it after swapping in
    //    a bigger one, so every index a packet computes exists in the table it finds.
    Write entry{Write::Kind::put_service};
    entry.name = name;
    entry.service = wanted.key;
    entry.service_value = fulcrum_service_value{};
    entry.service_value.id = svc.id;
    entry.service_value.table_size = wanted.table_size;
    entry.service_value.hash_omit = wanted.hash_omit;
    entry.service_value.quic_id_offset = wanted.quic_id_offset;
    entry.service_value.quic_id_bits = wanted.quic_id_bits;
    entry.service_value.encap = static_cast<std::uint8_t>(wanted.encap);
    //    (make_plan runs the swaps of all services together: phases, see there.)
    const bool shrinking = !fresh && wanted.table_size < svc.table_size;
    if (shrinking)
        plan.writes.push_back(entry);
    if (table_changed) {
        Write w{Write::Kind::put_table};
        w.name = name;
        w.id = svc.id;
        w.table = &svc;  // a std::map node of plan.services: the address is stable
        plan.swaps.push_back(w);
    }
    // A new hash policy needs no order: it changes which slot a new flow reads, in whichever
    // table it finds (a policy change is a table change for new flows; recorded flows stay).
    // The QUIC fields likewise: a packet reads its server id by them, or is hashed. A new
    // encapsulation neither: the next packet of every flow, recorded or not, goes to the same
    // backend in the new tunnel (the backend must decapsulate both while the reload runs).
    if (!shrinking && (fresh || rewrite_all_ || wanted.table_size != svc.table_size || wanted.hash_omit != svc.hash_omit ||
                       wanted.quic_id_offset != svc.quic_id_offset || wanted.quic_id_bits != svc.quic_id_bits ||
                       wanted.encap != svc.encap))
        plan.after_swaps.push_back(entry);
    svc.table_size = wanted.table_size;
    svc.hash_omit = wanted.hash_omit;
    svc.quic_id_offset = wanted.quic_id_offset;
    svc.quic_id_bits = wanted.quic_id_bits;
    svc.encap = wanted.encap;
    // 3. Backends leaving the table (draining/down) once no table names them; removed ones freed.
    for (const auto& [address, ab] : want)
        if (ab.value.state != FULCRUM_BACKEND_ACTIVE)
            write_backend(plan.after_swaps, address, ab);
    for (auto it = svc.backends.begin(); it != svc.backends.end();) {
        if (want.contains(it->first)) {
            ++it;
            continue;
        }
        Write w{Write::Kind::put_backend};  // freed: all zero
        w.name = name;
        w.id = it->second.id;
        plan.after_swaps.push_back(w);
        plan.freed_after_swaps.push_back(it->second.id);
        it = svc.backends.erase(it);
    }
    // 4. Server ids, last: an entry is used only while its backend is ACTIVE in this service
    //    (balancer.bpf.c quic_backend), so neither order against the backends' writes lets a
    //    packet reach a backend it should not; a drained or down backend keeps its entry, unused.
    plan_quic_ids(name, svc.id, backends_before, want, plan.after_swaps);
    return {};
}

void Reconciler::plan_quic_ids(const std::string* name, std::uint32_t service_id,
                               const std::map<std::string, AppliedBackend>& have,
                               const std::map<std::string, AppliedBackend>& want, std::vector<Write>& to) const
{
    std::map<std::uint32_t, std::uint32_t> before, after;  // server id -> backend id
    for (const auto& [address, ab] : have)
        if (ab.server_id)
            before[ab.server_id] = ab.id;
    for (const auto& [address, ab] : want)
        if (ab.server_id)
            after[ab.server_id] = ab.id;
    for (const auto& [server_id, backend_id] : before)
        if (!after.contains(server_id)) {
            Write w{Write::Kind::delete_quic_id};
            w.name = name;
            w.quic = fulcrum_quic_key{service_id, server_id};
            to.push_back(w);
        }
    for (const auto& [server_id, backend_id] : after) {
        auto was = before.find(server_id);
        if (!rewrite_all_ && was != before.end() && was->second == backend_id)
            continue;
        Write w{Write::Kind::put_quic_id};
        w.name = name;
        w.id = backend_id;
        w.quic = fulcrum_quic_key{service_id, server_id};
        to.push_back(w);
    }
}

}  // namespace fulcrum::plan
