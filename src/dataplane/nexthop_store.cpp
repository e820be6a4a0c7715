// The nexthops map as the cache's store, and the reconciler's writer; see nexthop_store.h.
#include "dataplane/nexthop_store.h"

#include "dataplane/balancer_program.h"
#include "dataplane/map_journal.h"
#include "dataplane/nexthop_upkeep.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

// From this many ids get_many reads the whole map at once (a sixteenth of its entries).
constexpr std::size_t kWholeMapFrom = FULCRUM_MAX_BACKENDS / 16;

class ProgramNexthopStore final : public NexthopStore {
public:
    explicit ProgramNexthopStore(BalancerProgram& program) : program_(program) {}

    std::optional<fulcrum_nexthop> get(std::uint32_t id) override
    {
        Result<fulcrum_nexthop> entry = program_.nexthop(id);
        if (entry.ok())
            return *entry;
        // Taken as no entry (the cache then writes a fresh one); said, at most once a minute.
        static log::EveryMinute limit;
        if (limit.due())
            LOG_WARN("nexthops: %s (taken as no entry; logged at most once a minute)", entry.message().c_str());
        return std::nullopt;
    }
    std::vector<std::optional<fulcrum_nexthop>> get_many(const std::vector<std::uint32_t>& ids) override
    {
        // One batch read of the whole map (3 MiB, a few calls) instead of a syscall per id pays off
        // only for many ids: a start publishes each service's new backends (100 ids) on its own,
        // and a whole-map read for each of 1,000 services was 40 s of CPU.
        if (ids.size() < kWholeMapFrom)
            return NexthopStore::get_many(ids);
        Result<std::vector<fulcrum_nexthop>> all = program_.nexthops();
        if (!all.ok())
            return NexthopStore::get_many(ids);  // one by one, as before (get() reports)
        std::vector<std::optional<fulcrum_nexthop>> out;
        out.reserve(ids.size());
        for (std::uint32_t id : ids)
            out.push_back(id < all->size() ? std::optional((*all)[id]) : std::nullopt);
        return out;
    }
    Status put(std::uint32_t id, const fulcrum_nexthop& entry) override { return program_.put_nexthop(id, entry); }
    void wait_for_readers() override { wait_for_xdp_readers(); }

private:
    BalancerProgram& program_;
};

}  // namespace

std::unique_ptr<NexthopStore> make_program_store(BalancerProgram& program)
{
    return std::make_unique<ProgramNexthopStore>(program);
}

void NexthopWriter::begin()
{
    written_.clear();
    touched_ = false;
    program_.begin();
}
void NexthopWriter::commit() { program_.commit(); }
Status NexthopWriter::rollback()
{
    written_.clear();
    touched_ = false;
    return program_.rollback();  // the daemon then re-resolves the applied backends (set_backends)
}
Status NexthopWriter::prepare_table(std::uint32_t service_id, std::span<const std::uint32_t> table)
{
    return program_.prepare_table(service_id, table);
}
Status NexthopWriter::set_settings(const fulcrum_settings& settings) { return program_.set_settings(settings); }
Status NexthopWriter::put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value)
{
    return program_.put_vip(key, value);
}
Status NexthopWriter::delete_vip(const fulcrum_vip_key& key) { return program_.delete_vip(key); }
Status NexthopWriter::put_service(const fulcrum_service_key& key, const fulcrum_service_value& value)
{
    return program_.put_service(key, value);
}
Status NexthopWriter::delete_service(const fulcrum_service_key& key) { return program_.delete_service(key); }
Status NexthopWriter::put_quic_id(const fulcrum_quic_key& key, std::uint32_t backend_id)
{
    return program_.put_quic_id(key, backend_id);
}
Status NexthopWriter::delete_quic_id(const fulcrum_quic_key& key) { return program_.delete_quic_id(key); }
Status NexthopWriter::put_table(std::uint32_t service_id, std::span<const std::uint32_t> table)
{
    return program_.put_table(service_id, table);
}
Status NexthopWriter::put_tables(std::span<const std::uint32_t> service_ids)
{
    return program_.put_tables(service_ids);
}
Status NexthopWriter::delete_table(std::uint32_t service_id) { return program_.delete_table(service_id); }

Status NexthopWriter::put_backend(std::uint32_t id, const fulcrum_backend& backend)
{
    const std::uint64_t before = program_.nexthop_invalidations();
    if (Status s = program_.update_backend(id, backend); !s.ok())
        return s;
    touched_ = touched_ || program_.nexthop_invalidations() != before;
    if (backend.state != FULCRUM_BACKEND_UNUSED)
        written_.push_back({id, backend.addr, backend.family});
    return {};
}

Status NexthopWriter::backends_written()
{
    if (upkeep_ && !written_.empty())
        upkeep_->prepare(std::move(written_), touched_);
    written_.clear();
    touched_ = false;
    return {};  // an entry that cannot be made leaves the fib path, which decides and counts
}

}  // namespace fulcrum::dataplane
