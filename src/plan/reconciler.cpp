// The reconciler: see reconciler.h for the ordering rules.
#include "plan/reconciler.h"

#include <netinet/in.h>

#include <cstring>

#include "maglev/maglev.h"

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

fulcrum_vip_key vip_key_of(const fulcrum_service_key& key)
{
    fulcrum_vip_key vk{};
    vk.addr = key.vip;
    vk.family = key.family;
    return vk;
}

}  // namespace

std::optional<std::uint32_t> IdPool::allocate()
{
    const std::uint32_t span = last_ - first_ + 1;
    for (std::uint32_t tried = 0; tried < span; tried++) {
        std::uint32_t id = next_;
        next_ = next_ == last_ ? first_ : next_ + 1;
        if (!used_.contains(id)) {
            used_[id] = true;
            return id;
        }
    }
    return std::nullopt;
}

void IdPool::release(std::uint32_t id) { used_.erase(id); }

bool IdPool::mark_used(std::uint32_t id)
{
    if (id < first_ || id > last_ || used_.contains(id))
        return false;
    used_[id] = true;
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
}

Status Reconciler::apply(const Desired& desired)
{
    if (!settings_ || !same_bytes(*settings_, desired.settings)) {
        if (Status s = maps_.set_settings(desired.settings); !s.ok())
            return s;
        settings_ = desired.settings;
    }
    // Services gone from the file, or whose (VIP, port, protocol) changed: removed first, so a
    // changed service is re-created under its new key.
    std::vector<std::string> gone;
    for (const auto& [name, applied] : services_) {
        bool kept = false;
        for (const ServicePlan& plan : desired.services)
            if (plan.name == name && same_bytes(plan.key, applied.key))
                kept = true;
        if (!kept)
            gone.push_back(name);
    }
    for (const std::string& name : gone)
        if (Status s = remove_service(name); !s.ok())
            return s;
    if (Status s = sync_vips(desired, false); !s.ok())
        return s;
    for (const ServicePlan& plan : desired.services)
        if (Status s = upsert_service(plan, desired.settings.hash_seed); !s.ok())
            return s;
    return sync_vips(desired, true);
}

// VIP entries: added/changed before services are written (removals = false), deleted after
// their last service went (removals = true).
Status Reconciler::sync_vips(const Desired& desired, bool removals)
{
    std::map<std::vector<std::uint8_t>, fulcrum_vip_value> want;
    for (const ServicePlan& plan : desired.services) {
        fulcrum_vip_value& v = want[bytes_of(vip_key_of(plan.key))];
        if (plan.key.port == 0)
            v.flags |= plan.key.proto == IPPROTO_TCP ? FULCRUM_VIP_PORT0_TCP : FULCRUM_VIP_PORT0_UDP;
        // Echo requests to the VIP are answered only while one of its services can serve.
        for (const BackendPlan& b : plan.backends)
            if (b.use == BackendUse::active && b.weight > 0)
                v.flags |= FULCRUM_VIP_SERVING;
    }
    if (!removals) {
        for (const auto& [key_bytes, value] : want) {
            auto it = vips_.find(key_bytes);
            if (it != vips_.end() && same_bytes(it->second, value))
                continue;
            fulcrum_vip_key key;
            std::memcpy(&key, key_bytes.data(), sizeof key);
            if (Status s = maps_.put_vip(key, value); !s.ok())
                return s;
            vips_[key_bytes] = value;
        }
        return {};
    }
    for (auto it = vips_.begin(); it != vips_.end();) {
        if (want.contains(it->first)) {
            ++it;
            continue;
        }
        fulcrum_vip_key key;
        std::memcpy(&key, it->first.data(), sizeof key);
        if (Status s = maps_.delete_vip(key); !s.ok())
            return s;
        it = vips_.erase(it);
    }
    return {};
}

Status Reconciler::remove_service(const std::string& name)
{
    AppliedService& svc = services_.at(name);
    if (Status s = maps_.delete_service(svc.key); !s.ok())
        return s;
    if (Status s = maps_.delete_table(svc.id); !s.ok())
        return s;
    for (auto& [address, backend] : svc.backends) {
        fulcrum_backend freed{};  // UNUSED: flows still pointing here re-hash (and find no service)
        if (Status s = maps_.put_backend(backend.id, freed); !s.ok())
            return s;
        backend_ids_.release(backend.id);
    }
    service_ids_.release(svc.id);
    services_.erase(name);
    return {};
}

Status Reconciler::upsert_service(const ServicePlan& plan, std::uint32_t seed)
{
    bool fresh = !services_.contains(plan.name);
    if (fresh) {
        auto id = service_ids_.allocate();
        if (!id)
            return Status::failure("plan: no free service id for " + plan.name);
        AppliedService created;
        created.id = *id;
        created.vip = plan.vip;
        created.key = plan.key;
        services_[plan.name] = created;
    }
    AppliedService& svc = services_.at(plan.name);

    // Desired map values of every backend, allocating ids for new ones.
    std::map<std::string, AppliedBackend> want;
    std::vector<maglev::Backend> ring;
    for (const BackendPlan& b : plan.backends) {
        AppliedBackend ab;
        auto have = svc.backends.find(b.address);
        if (have != svc.backends.end()) {
            ab.id = have->second.id;
        } else {
            auto id = backend_ids_.allocate();
            if (!id)
                return Status::failure("plan: no free backend id for " + b.address + " in " + plan.name);
            ab.id = *id;
        }
        ab.value.addr = b.addr;
        ab.value.family = b.family;
        ab.value.state = data_plane_state(b.use);
        ab.value.service_id = static_cast<std::uint16_t>(svc.id);
        ab.weight = b.weight;
        want[b.address] = ab;
        if (b.use == BackendUse::active)
            ring.push_back({b.address, ab.id, b.weight});
    }
    std::string table_input = std::to_string(plan.table_size) + "/" + std::to_string(seed);
    for (const maglev::Backend& b : ring)
        table_input += " " + b.key + "=" + std::to_string(b.id) + "x" + std::to_string(b.weight);
    maglev::TableResult table;
    if (fresh || table_input != svc.table_input) {
        table = maglev::build_table(ring, plan.table_size, seed);
        if (!table.ok())
            return Status::failure("plan: service " + plan.name + ": " + table.error);
    } else {
        table.table = svc.table;  // same input, same table
    }

    auto write_backend = [&](const std::string& address, const AppliedBackend& ab) -> Status {
        auto have = svc.backends.find(address);
        if (have != svc.backends.end() && same_bytes(have->second.value, ab.value)) {
            have->second.weight = ab.weight;
            return {};
        }
        if (Status s = maps_.put_backend(ab.id, ab.value); !s.ok())
            return s;
        svc.backends[address] = ab;
        return {};
    };
    // 1. Backends that become usable go in before any table names them.
    for (const auto& [address, ab] : want)
        if (ab.value.state == FULCRUM_BACKEND_ACTIVE)
            if (Status s = write_backend(address, ab); !s.ok())
                return s;
    if (Status s = maps_.backends_written(); !s.ok())
        return s;
    // 2. The table and the service entry. The modulus (table_size) and the table change in two
    //    writes: shrink the modulus before swapping in a smaller table, grow it after swapping in
    //    a bigger one, so every index a packet computes exists in the table it finds.
    fulcrum_service_value value{svc.id, plan.table_size};
    bool table_changed = fresh || table.table != svc.table;
    bool shrinking = !fresh && plan.table_size < svc.table_size;
    if (shrinking)
        if (Status s = maps_.put_service(plan.key, value); !s.ok())
            return s;
    if (table_changed) {
        if (Status s = maps_.put_table(svc.id, table.table); !s.ok())
            return s;
        svc.table = std::move(table.table);
    }
    svc.table_input = std::move(table_input);
    if (!shrinking && (fresh || plan.table_size != svc.table_size))
        if (Status s = maps_.put_service(plan.key, value); !s.ok())
            return s;
    svc.table_size = plan.table_size;
    // 3. Backends leaving the table (draining/down) once no table names them; removed ones freed.
    for (const auto& [address, ab] : want)
        if (ab.value.state != FULCRUM_BACKEND_ACTIVE)
            if (Status s = write_backend(address, ab); !s.ok())
                return s;
    for (auto it = svc.backends.begin(); it != svc.backends.end();) {
        if (want.contains(it->first)) {
            ++it;
            continue;
        }
        fulcrum_backend freed{};
        if (Status s = maps_.put_backend(it->second.id, freed); !s.ok())
            return s;
        backend_ids_.release(it->second.id);
        it = svc.backends.erase(it);
    }
    return {};
}

}  // namespace fulcrum::plan
