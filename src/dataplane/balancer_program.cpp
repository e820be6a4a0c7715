// Loading the balancer skeleton and writing its maps; every failure names the map and errno.
#include "dataplane/balancer_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "balancer.skel.h"
#include "dataplane/maglev_map.h"
#include "dataplane/pinning.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

Status errno_status(const std::string& what, int err)
{
    return Status::failure("bpf: " + what + ": " + std::strerror(err < 0 ? -err : err));
}

Status raw_update(const bpf_map* map, const void* key, const void* value, const char* what)
{
    if (bpf_map_update_elem(bpf_map__fd(map), key, value, BPF_ANY) != 0)
        return errno_status(std::string("cannot update ") + bpf_map__name(map) + " (" + what + ")", errno);
    return {};
}

Status raw_erase(const bpf_map* map, const void* key, const char* what)
{
    if (bpf_map_delete_elem(bpf_map__fd(map), key) != 0 && errno != ENOENT)
        return errno_status(std::string("cannot delete from ") + bpf_map__name(map) + " (" + what + ")", errno);
    return {};
}

// Calls visit(key) for each key of a hash map until it returns false. The walk ends at ENOENT (no
// more keys); any other failure is returned, so a walk cut short is never taken for the whole map.
template <typename Key, typename Visit>
Status for_each_key(const bpf_map* map, Visit visit)
{
    const int fd = bpf_map__fd(map);
    Key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (!visit(next))
            return {};
        key = next;
        prev = &key;
    }
    if (errno != ENOENT)
        return errno_status(std::string("cannot walk ") + bpf_map__name(map), errno);
    return {};
}

// Every (key, value) of a hash map; an entry deleted between the walk and its lookup is skipped.
template <typename Key, typename Value>
Status read_entries(const bpf_map* map, std::vector<std::pair<Key, Value>>* out)
{
    Status failed;
    Status walked = for_each_key<Key>(map, [&](const Key& key) {
        Value value{};
        if (bpf_map_lookup_elem(bpf_map__fd(map), &key, &value) == 0)
            out->emplace_back(key, value);
        else if (errno != ENOENT)
            failed = errno_status(std::string("cannot read ") + bpf_map__name(map), errno);
        return failed.ok();
    });
    return failed.ok() ? walked : failed;
}

// A counter that cannot be read is reported as 0 to the scrape (a metric has no error value), and
// logged, at most once a minute across all counters (scrapes run on the HTTP server's thread).
void log_unreadable_counter(const bpf_map* map, std::uint32_t key, const char* why)
{
    static log::EveryMinute limit;
    if (limit.due())
        LOG_WARN("metrics: cannot read %s key %u (%s): reported as 0 (logged at most once a minute)",
                 bpf_map__name(map), key, why);
}

// Reads one key of a per-CPU map and hands each CPU's value to fold; a failed read folds nothing
// and is logged.
template <typename Value, typename Fold>
void for_each_cpu(const bpf_map* map, std::uint32_t key, Fold fold)
{
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) {
        log_unreadable_counter(map, key, "cannot count the possible CPUs");
        return;
    }
    std::vector<Value> values(static_cast<std::size_t>(cpus));
    static_assert(sizeof(Value) % 8 == 0, "per-CPU values are laid out 8-byte aligned");
    if (bpf_map_lookup_elem(bpf_map__fd(map), &key, values.data()) != 0) {
        log_unreadable_counter(map, key, std::strerror(errno));
        return;
    }
    for (const Value& v : values)
        fold(v);
}

// Reads keys [0, end) of a per-CPU array in batches (bpf_map_lookup_batch: one syscall per
// kBatch keys, not one per key) and hands each key's CPU values to fold(key, value). Keys past the
// map's size are not read (fold never sees them). False if a batch could not be read (logged); the
// caller then falls back to key-by-key reads.
template <typename Value, typename Fold>
bool for_each_cpu_below(const bpf_map* map, std::uint32_t end, Fold fold)
{
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0)
        return false;
    end = std::min(end, bpf_map__max_entries(map));
    constexpr std::uint32_t kBatch = 1024;
    std::vector<std::uint32_t> keys(kBatch);
    std::vector<Value> values(std::size_t{kBatch} * static_cast<std::size_t>(cpus));
    static_assert(sizeof(Value) % 8 == 0, "per-CPU values are laid out 8-byte aligned");
    std::uint32_t token = 0, read = 0;
    while (read < end) {
        std::uint32_t count = std::min(kBatch, end - read);
        const int rc = bpf_map_lookup_batch(bpf_map__fd(map), read == 0 ? nullptr : &token, &token, keys.data(),
                                            values.data(), &count, nullptr);
        if (rc != 0 && errno != ENOENT) {
            log_unreadable_counter(map, read, std::strerror(errno));
            return false;
        }
        for (std::uint32_t i = 0; i < count; i++)
            for (int cpu = 0; cpu < cpus; cpu++)
                fold(keys[i], values[std::size_t{i} * static_cast<std::size_t>(cpus) + static_cast<std::size_t>(cpu)]);
        read += count;
        if (rc != 0 || count == 0)  // ENOENT: the map's last key was in this batch
            break;
    }
    return true;
}

// operator_drains keys: the service name NUL-padded, the backend address in the key layout.
bool drain_key(const std::string& service, const std::string& address, fulcrum_drain_key* key)
{
    *key = fulcrum_drain_key{};
    if (service.empty() || service.size() > sizeof key->service)
        return false;
    std::memcpy(key->service, service.data(), service.size());
    if (inet_pton(AF_INET, address.c_str(), &key->backend) == 1)
        key->family = FULCRUM_AF_INET;
    else if (inet_pton(AF_INET6, address.c_str(), &key->backend) == 1)
        key->family = FULCRUM_AF_INET6;
    else
        return false;
    return true;
}

std::pair<std::string, std::string> drain_of(const fulcrum_drain_key& key)
{
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(key.family == FULCRUM_AF_INET6 ? AF_INET6 : AF_INET, &key.backend, text, sizeof text);
    return {std::string(key.service, strnlen(key.service, sizeof key.service)), text};
}

}  // namespace

BalancerProgram::BalancerProgram(balancer_bpf* skel) : skel_(skel) {}
BalancerProgram::~BalancerProgram()
{
    drop_staged_tables();
    balancer_bpf::destroy(skel_);
}

// Every write of a map goes through here: inside a transaction, the key's previous bytes are
// kept first (map_journal.h), so rollback() can put them back.
Status BalancerProgram::journal(const bpf_map* map, const void* key)
{
    if (!journal_.active())
        return {};
    MapJournal::Kind kind = map == skel_->maps.maglev_tables ? MapJournal::Kind::map_of_maps
                            : map == skel_->maps.nexthops    ? MapJournal::Kind::nexthop
                                                             : MapJournal::Kind::plain;
    int held = -1;
    if (kind == MapJournal::Kind::map_of_maps)
        held = tables_.fd(*static_cast<const std::uint32_t*>(key));
    if (Status s = journal_.record(bpf_map__fd(map), bpf_map__name(map), key, bpf_map__key_size(map),
                                   bpf_map__value_size(map), kind, held);
        !s.ok())
        return Status::failure("bpf: " + s.message());
    return {};
}

Status BalancerProgram::update(const bpf_map* map, const void* key, const void* value, const char* what)
{
    if (Status s = journal(map, key); !s.ok())
        return s;
    return raw_update(map, key, value, what);
}

Status BalancerProgram::erase(const bpf_map* map, const void* key, const char* what)
{
    if (Status s = journal(map, key); !s.ok())
        return s;
    return raw_erase(map, key, what);
}

void BalancerProgram::begin()
{
    drop_staged_tables();
    journal_.begin();
    tables_.begin();
}

void BalancerProgram::commit()
{
    journal_.commit();
    tables_.commit();
    drop_staged_tables();
}

Status BalancerProgram::rollback()
{
    Status s = journal_.rollback();
    tables_.rollback();
    drop_staged_tables();
    return s;
}

void BalancerProgram::drop_staged_tables()
{
    for (const auto& [id, fd] : staged_tables_)
        close(fd);  // a table swapped in lives on in maglev_tables; the others are freed
    staged_tables_.clear();
    staged_sizes_.clear();
}

Result<std::unique_ptr<BalancerProgram>> BalancerProgram::load(const LoadOptions& options)
{
    balancer_bpf* skel = balancer_bpf::open();
    if (!skel)
        return errno_status("cannot open the balancer object", errno);
    std::unique_ptr<BalancerProgram> program(new BalancerProgram(skel));
    skel->rodata->udp_idle_timeout_ns = options.udp_idle_timeout_ns;
    if (int err = bpf_map__set_max_entries(skel->maps.flows, options.flow_capacity))
        return errno_status("cannot size the flow table", err);
    if (int err = bpf_map__set_max_entries(skel->maps.new_flows, new_flows_capacity(options.flow_capacity)))
        return errno_status("cannot size the new-flow table", err);
    // Each CPU's LRU list holds its share of the entries (BPF_F_NO_COMMON_LRU), counted over the
    // possible CPUs: on a machine that reports more possible than online CPUs, a share is smaller
    // than capacity / online CPUs. Say so once, with the numbers.
    if (int cpus = libbpf_num_possible_cpus(); cpus > 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        LOG_INFO("flows: %u entries, %u per CPU's LRU list (%d possible CPUs, %ld online); first packets: %u",
                 options.flow_capacity, options.flow_capacity / static_cast<unsigned>(cpus), cpus, online,
                 new_flows_capacity(options.flow_capacity));
        if (online > 0 && cpus > online)
            LOG_WARN("flows: this machine reports %d possible CPUs but %ld online; each CPU's flow "
                     "table share is capacity / %d: raise flows.capacity accordingly",
                     cpus, online, cpus);
    }
    if (!options.pin_path.empty()) {
        program->pin_path_ = options.pin_path;
        program->previous_program_id_ = pinned_program_id(options.pin_path, "balancer");
        if (Status s = prepare_map_pins(skel->obj, options.pin_path, &program->adopted_pins_); !s.ok())
            return s;
    }
    if (int err = balancer_bpf::load(skel))
        return errno_status("cannot load the balancer program", err);
    // The version these maps are laid out for (pinning.h): what the next start compares.
    const std::uint32_t zero = 0, abi_version = FULCRUM_ABI_VERSION;
    if (Status s = raw_update(skel->maps.abi, &zero, &abi_version, "ABI version"); !s.ok())
        return s;
    // VIPs adopted from pins need their filter bits (a filter map new to this version is empty).
    if (Status s = program->rebuild_vip_filter(); !s.ok())
        return s;
    if (Status s = program->hold_adopted_tables(); !s.ok())
        return s;
    if (!options.pin_path.empty())
        if (Status s = pin_program(skel->progs.balancer, options.pin_path, "balancer"); !s.ok())
            return s;
    return program;
}

void BalancerProgram::unpin()
{
    if (!pin_path_.empty())
        unpin_all(skel_->obj, pin_path_, "balancer");
}

Result<MapSnapshot> BalancerProgram::snapshot() const
{
    MapSnapshot snap;
    if (Status s = read_entries(skel_->maps.vips, &snap.vips); !s.ok())
        return s;
    if (Status s = read_entries(skel_->maps.services, &snap.services); !s.ok())
        return s;
    if (Status s = read_entries(skel_->maps.quic_ids, &snap.quic_ids); !s.ok())
        return s;
    // An array: every slot exists; keep those in use. (One syscall per slot: ~0.1 s at the
    // default size, once per daemon start.)
    int fd = bpf_map__fd(skel_->maps.backends);
    const std::uint32_t total = bpf_map__max_entries(skel_->maps.backends);
    for (std::uint32_t id = 0; id < total; id++) {
        fulcrum_backend b{};
        if (bpf_map_lookup_elem(fd, &id, &b) != 0)
            return errno_status("cannot read backends (id " + std::to_string(id) + ")", errno);
        if (b.state != FULCRUM_BACKEND_UNUSED)
            snap.backends.emplace_back(id, b);
    }
    return snap;
}

int BalancerProgram::program_fd() const { return bpf_program__fd(skel_->progs.balancer); }

fulcrum_capture_control* BalancerProgram::capture_control() const
{
    return skel_->bss ? &skel_->bss->capture_control : nullptr;
}

int BalancerProgram::capture_ring_fd() const { return bpf_map__fd(skel_->maps.capture_ring); }

Result<fulcrum_settings> BalancerProgram::read_settings() const
{
    std::uint32_t zero = 0;
    fulcrum_settings settings{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.settings), &zero, &settings) != 0)
        return errno_status("cannot read settings", errno);
    return settings;
}

Result<std::vector<std::pair<std::string, std::string>>> BalancerProgram::operator_drains() const
{
    std::vector<std::pair<std::string, std::string>> out;
    Status s = for_each_key<fulcrum_drain_key>(skel_->maps.operator_drains, [&](const fulcrum_drain_key& key) {
        out.push_back(drain_of(key));
        return true;
    });
    if (!s.ok())
        return s;
    return out;
}

Status BalancerProgram::keep_operator_drain(const std::string& service, const std::string& address, bool drained)
{
    fulcrum_drain_key key;
    if (!drain_key(service, address, &key))
        return Status::failure("bpf: cannot keep the operator drain of " + address + " in " + service +
                               ": not a service name and backend address");
    const std::uint32_t one = 1;
    return drained ? update(skel_->maps.operator_drains, &key, &one, "operator drain")
                   : erase(skel_->maps.operator_drains, &key, "operator drain");
}

Status BalancerProgram::set_settings(const fulcrum_settings& settings)
{
    std::uint32_t zero = 0;
    return update(skel_->maps.settings, &zero, &settings, "settings");
}

Status BalancerProgram::set_vip_filter_bit(const fulcrum_vip_key& key)
{
    std::uint32_t bit = fulcrum_vip_filter_fold(&key.addr), word = bit >> 6;
    std::uint64_t value = 0;
    const int fd = bpf_map__fd(skel_->maps.vip_filter);
    if (bpf_map_lookup_elem(fd, &word, &value) != 0)
        return errno_status("cannot read vip_filter", errno);
    if (value & (1ULL << (bit & 63)))
        return {};
    value |= 1ULL << (bit & 63);
    return update(skel_->maps.vip_filter, &word, &value, "vip filter bit");
}

Status BalancerProgram::clear_vip_filter_bit_if_unused(const fulcrum_vip_key& key)
{
    const std::uint32_t bit = fulcrum_vip_filter_fold(&key.addr), word = bit >> 6;
    bool needed = false;  // by another VIP
    Status walked = for_each_key<fulcrum_vip_key>(skel_->maps.vips, [&](const fulcrum_vip_key& vip) {
        needed = fulcrum_vip_filter_fold(&vip.addr) == bit;
        return !needed;
    });
    if (!walked.ok())
        return walked;  // the bit stays: a bit set too many costs a lookup, one missing drops a VIP
    if (needed)
        return {};
    std::uint64_t value = 0;
    int filter = bpf_map__fd(skel_->maps.vip_filter);
    if (bpf_map_lookup_elem(filter, &word, &value) != 0)
        return errno_status("cannot read vip_filter", errno);
    value &= ~(1ULL << (bit & 63));
    return update(skel_->maps.vip_filter, &word, &value, "vip filter bit");
}

Status BalancerProgram::rebuild_vip_filter()
{
    // Only sets bits: with adopted maps an older program may still be running on them.
    Status failed;
    Status walked = for_each_key<fulcrum_vip_key>(skel_->maps.vips, [&](const fulcrum_vip_key& vip) {
        failed = set_vip_filter_bit(vip);
        return failed.ok();
    });
    return failed.ok() ? walked : failed;
}

Status BalancerProgram::put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value)
{
    // The bit first: a packet must never find the VIP filtered out once the VIP exists.
    if (Status s = set_vip_filter_bit(key); !s.ok())
        return s;
    return update(skel_->maps.vips, &key, &value, "vip");
}

Status BalancerProgram::delete_vip(const fulcrum_vip_key& key)
{
    if (Status s = erase(skel_->maps.vips, &key, "vip"); !s.ok())
        return s;
    return clear_vip_filter_bit_if_unused(key);
}

Status BalancerProgram::put_service(const fulcrum_service_key& key, const fulcrum_service_value& value)
{
    return update(skel_->maps.services, &key, &value, "service");
}

Status BalancerProgram::delete_service(const fulcrum_service_key& key)
{
    return erase(skel_->maps.services, &key, "service");
}

Status BalancerProgram::put_quic_id(const fulcrum_quic_key& key, std::uint32_t backend_id)
{
    return update(skel_->maps.quic_ids, &key, &backend_id, "QUIC server id");
}

Status BalancerProgram::delete_quic_id(const fulcrum_quic_key& key)
{
    return erase(skel_->maps.quic_ids, &key, "QUIC server id");
}

Status BalancerProgram::put_backend(std::uint32_t id, const fulcrum_backend& backend)
{
    // A cached next hop belongs to the backend's old address: drop it first (the data path then
    // uses bpf_fib_lookup until the daemon resolves the new one).
    fulcrum_nexthop entry{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nexthops), &id, &entry) == 0 && entry.valid)
        nexthop_invalidations_++;
    if (Status s = invalidate_nexthop(id); !s.ok())
        return s;
    return update(skel_->maps.backends, &id, &backend, "backend");
}

Status BalancerProgram::update_backend(std::uint32_t id, const fulcrum_backend& backend)
{
    fulcrum_backend old{};
    const bool same_address = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.backends), &id, &old) == 0 &&
                              old.state != FULCRUM_BACKEND_UNUSED && backend.state != FULCRUM_BACKEND_UNUSED &&
                              old.family == backend.family && std::memcmp(&old.addr, &backend.addr, sizeof old.addr) == 0;
    if (!same_address)
        return put_backend(id, backend);
    return update(skel_->maps.backends, &id, &backend, "backend");
}

Status BalancerProgram::put_nexthop(std::uint32_t backend_id, const fulcrum_nexthop& nexthop)
{
    return update(skel_->maps.nexthops, &backend_id, &nexthop, "next hop");
}

Result<fulcrum_nexthop> BalancerProgram::nexthop(std::uint32_t backend_id) const
{
    fulcrum_nexthop entry{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nexthops), &backend_id, &entry) != 0)
        return errno_status("cannot read nexthops (backend id " + std::to_string(backend_id) + ")", errno);
    return entry;
}

Result<std::vector<fulcrum_nexthop>> BalancerProgram::nexthops() const
{
    const int fd = bpf_map__fd(skel_->maps.nexthops);
    std::vector<fulcrum_nexthop> entries(FULCRUM_MAX_BACKENDS);
    std::vector<std::uint32_t> keys(FULCRUM_MAX_BACKENDS);
    // An array's batch token is the next index; a call may return fewer entries than asked.
    std::uint32_t at = 0, token = 0;
    bool first = true;
    while (at < FULCRUM_MAX_BACKENDS) {
        std::uint32_t count = FULCRUM_MAX_BACKENDS - at;
        int rc = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data() + at, entries.data() + at,
                                      &count, nullptr);
        if (rc != 0 && errno != ENOENT)
            return errno_status("cannot read nexthops", errno);
        first = false;
        at += count;
        if (rc != 0 || count == 0)
            break;  // ENOENT: the last batch
    }
    // An array's keys come back in index order from 0; anything else is an error.
    bool in_order = at == FULCRUM_MAX_BACKENDS;
    for (std::uint32_t i = 0; in_order && i < at; i++)
        in_order = keys[i] == i;
    if (!in_order)
        return Status::failure("cannot read nexthops: a batch read returned " + std::to_string(at) + " of " +
                               std::to_string(FULCRUM_MAX_BACKENDS) + " entries, or out of order");
    return entries;
}

Status BalancerProgram::invalidate_nexthop(std::uint32_t backend_id)
{
    // Only `valid` changes: a packet that read valid=1 just before keeps reading the old, whole
    // entry (an all-zero write could hand it MTU 0 or ifindex 0 mid-read).
    fulcrum_nexthop entry{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nexthops), &backend_id, &entry) != 0)
        return errno_status("cannot read nexthops", errno);
    if (!entry.valid)
        return {};
    entry.valid = 0;
    return update(skel_->maps.nexthops, &backend_id, &entry, "next hop");
}

// A new inner array for the service, filled, referenced by nothing yet: the caller owns its fd.
// (maglev_map.h: the chunked layout, filled through mmap.)
Result<int> BalancerProgram::make_table(std::uint32_t service_id, std::span<const std::uint32_t> table)
{
    return create_maglev_table("maglev_" + std::to_string(service_id), table,
                               "the maglev table of service " + std::to_string(service_id));
}

Result<std::vector<std::uint32_t>> BalancerProgram::read_table(std::uint32_t service_id, std::uint32_t table_size) const
{
    const int fd = tables_.fd(service_id);
    const std::string what = "the maglev table of service " + std::to_string(service_id);
    if (fd < 0)
        return Status::failure("bpf: " + what + " is not held (none swapped in or adopted)");
    return read_maglev_table(fd, table_size, what);
}

Status BalancerProgram::prepare_table(std::uint32_t service_id, std::span<const std::uint32_t> table)
{
    Result<int> fd = make_table(service_id, table);
    if (!fd.ok())
        return fd.status();
    if (auto old = staged_tables_.find(service_id); old != staged_tables_.end())
        close(old->second);
    staged_tables_[service_id] = *fd;
    staged_sizes_[service_id] = table.size();
    return {};
}

Status BalancerProgram::put_table(std::uint32_t service_id, std::span<const std::uint32_t> table)
{
    int inner = -1;
    auto staged = staged_tables_.find(service_id);
    if (staged != staged_tables_.end() && staged_sizes_[service_id] == table.size()) {
        inner = staged->second;  // prepared by prepare_table with this content
        staged_tables_.erase(staged);
    } else if (Result<int> made = make_table(service_id, table); made.ok()) {
        inner = *made;
    } else {
        return made.status();
    }
    Status status = update(skel_->maps.maglev_tables, &service_id, &inner,
                           ("swap in the maglev table of service " + std::to_string(service_id)).c_str());
    if (status.ok())
        tables_.installed(service_id, inner);
    else
        close(inner);
    return status;
}

Status BalancerProgram::put_tables(std::span<const std::uint32_t> service_ids)
{
    std::vector<std::uint32_t> keys;
    std::vector<int> inners;
    for (std::uint32_t id : service_ids) {
        auto staged = staged_tables_.find(id);
        if (staged == staged_tables_.end())
            return Status::failure("bpf: no prepared maglev table for service " + std::to_string(id));
        keys.push_back(id);
        inners.push_back(staged->second);
    }
    // Every entry is journaled before the batch: if it stops part way, rollback puts back the old
    // table of each (the same one, for those the batch did not reach).
    for (std::uint32_t& id : keys)
        if (Status s = journal(skel_->maps.maglev_tables, &id); !s.ok())
            return s;
    std::uint32_t count = static_cast<std::uint32_t>(keys.size());
    const int rc = bpf_map_update_batch(bpf_map__fd(skel_->maps.maglev_tables), keys.data(), inners.data(), &count,
                                        nullptr);
    const int err = errno;
    // The first `count` went in: maglev_tables holds them now, and live_tables keeps their fds.
    for (std::uint32_t i = 0; i < count && i < keys.size(); i++) {
        staged_tables_.erase(keys[i]);
        tables_.installed(keys[i], inners[i]);
    }
    if (rc != 0)
        return errno_status("cannot swap in the maglev table of service " +
                                std::to_string(count < keys.size() ? keys[count] : keys.back()) + " (" +
                                std::to_string(count) + " of " + std::to_string(keys.size()) + " swapped in by the batch)",
                            err);
    return {};
}

Status BalancerProgram::delete_table(std::uint32_t service_id)
{
    Status status = erase(skel_->maps.maglev_tables, &service_id, "maglev table");
    if (status.ok())
        tables_.removed(service_id);
    return status;
}

Status BalancerProgram::hold_adopted_tables()
{
    // A map of maps: a lookup from user space gives the inner map's id.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> inner;  // service id, map id
    if (Status s = read_entries(skel_->maps.maglev_tables, &inner); !s.ok())
        return s;
    for (const auto& [service_id, map_id] : inner) {
        int fd = bpf_map_get_fd_by_id(map_id);
        if (fd < 0)
            return errno_status("cannot open the adopted maglev table of service " + std::to_string(service_id) +
                                " (map id " + std::to_string(map_id) + ")", errno);
        tables_.installed(service_id, fd);
    }
    return {};
}

Status BalancerProgram::put_tx_port(std::uint32_t ifindex)
{
    return update(skel_->maps.tx_ports, &ifindex, &ifindex, "tx port");
}

ServiceCounters BalancerProgram::service_counters(std::uint32_t service_id) const
{
    ServiceCounters sum;
    for_each_cpu<fulcrum_service_stats>(skel_->maps.service_stats, service_id, [&](const auto& v) {
        sum.packets += v.packets;
        sum.bytes += v.bytes;
        sum.new_flows += v.new_flows;
    });
    return sum;
}

PacketCounters BalancerProgram::backend_counters(std::uint32_t backend_id) const
{
    PacketCounters sum;
    for_each_cpu<fulcrum_backend_stats>(skel_->maps.backend_stats, backend_id, [&](const auto& v) {
        sum.packets += v.packets;
        sum.bytes += v.bytes;
    });
    return sum;
}

std::vector<ServiceCounters> BalancerProgram::service_counters_below(std::uint32_t end) const
{
    std::vector<ServiceCounters> all(end);
    const bool read = for_each_cpu_below<fulcrum_service_stats>(
        skel_->maps.service_stats, end, [&](std::uint32_t id, const fulcrum_service_stats& v) {
            if (id < end) {
                all[id].packets += v.packets;
                all[id].bytes += v.bytes;
                all[id].new_flows += v.new_flows;
            }
        });
    return read ? all : CounterReader::service_counters_below(end);
}

std::vector<PacketCounters> BalancerProgram::backend_counters_below(std::uint32_t end) const
{
    std::vector<PacketCounters> all(end);
    const bool read = for_each_cpu_below<fulcrum_backend_stats>(
        skel_->maps.backend_stats, end, [&](std::uint32_t id, const fulcrum_backend_stats& v) {
            if (id < end) {
                all[id].packets += v.packets;
                all[id].bytes += v.bytes;
            }
        });
    return read ? all : CounterReader::backend_counters_below(end);
}

PacketCounters BalancerProgram::reason_counters(fulcrum_reason reason) const
{
    PacketCounters sum;
    for_each_cpu<fulcrum_reason_stats>(skel_->maps.reason_stats, reason, [&](const auto& v) {
        sum.packets += v.packets;
        sum.bytes += v.bytes;
    });
    return sum;
}

std::optional<fulcrum_flow_value> BalancerProgram::flow_entry(const fulcrum_flow_key& key, FlowTable table) const
{
    const bpf_map* map = table == FlowTable::confirmed ? skel_->maps.flows : skel_->maps.new_flows;
    fulcrum_flow_value value{};
    if (bpf_map_lookup_elem(bpf_map__fd(map), &key, &value) != 0) {
        // No entry is the usual answer; any other failure is one too, but said (once a minute).
        static log::EveryMinute limit;
        if (errno != ENOENT && limit.due())
            LOG_WARN("bpf: cannot look up a flow in %s: %s (taken as no entry; logged at most once a minute)",
                     bpf_map__name(map), std::strerror(errno));
        return std::nullopt;
    }
    if (value.backend_id == 0)
        return std::nullopt;
    return value;
}

std::vector<fulcrum_flow_value> BalancerProgram::flow_entries(const fulcrum_flow_key& key) const
{
    std::vector<fulcrum_flow_value> found;
    for (FlowTable table : {FlowTable::confirmed, FlowTable::first_packets})
        if (auto value = flow_entry(key, table))
            found.push_back(*value);
    return found;
}

Result<std::map<std::uint32_t, std::uint64_t>> BalancerProgram::flows_per_backend() const
{
    std::map<std::uint32_t, std::uint64_t> counts;
    const int confirmed = bpf_map__fd(skel_->maps.flows);
    for (FlowTable table : {FlowTable::confirmed, FlowTable::first_packets}) {
        const int fd = bpf_map__fd(table == FlowTable::confirmed ? skel_->maps.flows : skel_->maps.new_flows);
        constexpr std::uint32_t kBatch = 4096;
        std::vector<fulcrum_flow_key> keys(kBatch);
        std::vector<fulcrum_flow_value> values(kBatch);
        fulcrum_flow_key token{};  // the kernel's position between batches (at most a key's size)
        bool first = true, done = false;
        while (!done) {
            std::uint32_t count = kBatch;
            int rc = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(), values.data(), &count,
                                          nullptr);
            if (rc != 0 && errno != ENOENT)
                return Status::failure(std::string("cannot read the flow tables: ") + std::strerror(errno));
            done = rc != 0;  // ENOENT: this was the last batch (count may still be > 0)
            first = false;
            for (std::uint32_t i = 0; i < count; i++) {
                fulcrum_flow_value other{};
                if (values[i].backend_id == 0 ||
                    (table == FlowTable::first_packets && bpf_map_lookup_elem(confirmed, &keys[i], &other) == 0))
                    continue;
                counts[values[i].backend_id]++;
            }
        }
    }
    return counts;
}

std::uint64_t BalancerProgram::flow_event_count(fulcrum_flow_event event) const
{
    std::uint64_t sum = 0;
    for_each_cpu<std::uint64_t>(skel_->maps.flow_events, event, [&](std::uint64_t v) { sum += v; });
    return sum;
}

std::uint64_t BalancerProgram::quic_event_count(fulcrum_quic_event event) const
{
    std::uint64_t sum = 0;
    for_each_cpu<std::uint64_t>(skel_->maps.quic_events, event, [&](std::uint64_t v) { sum += v; });
    return sum;
}

}  // namespace fulcrum::dataplane
