// Maglev tables of the desired services, with the skip-rebuild cache: see tables.h.
#include "plan/tables.h"

#include <algorithm>
#include <optional>

#include "maglev/maglev.h"
#include "plan/parallel.h"

namespace fulcrum::plan {
namespace {

std::vector<maglev::Backend> ring_of(const SlotTable& table)
{
    std::vector<maglev::Backend> ring;
    for (std::size_t i = 0; i < table.members.size(); i++)
        ring.push_back({table.members[i], static_cast<std::uint32_t>(i + 1), table.weights[i]});
    return ring;
}

// Maglev over the table's members, labelled 1..n (0 is an empty slot).
maglev::TableResult run_maglev(const SlotTable& table) { return maglev::build_table(ring_of(table), table.size, table.seed); }

// with_slots: built now; else only its recipe, checked (Maglev accepts it), built where written.
Result<std::shared_ptr<const SlotTable>> build_one(const ServicePlan& service, std::uint32_t seed, std::string input,
                                                   bool with_slots)
{
    auto table = std::make_shared<SlotTable>();
    table->input = std::move(input);
    table->size = service.table_size;
    table->seed = seed;
    for (const BackendPlan& b : service.backends)
        if (b.use == BackendUse::active) {
            table->members.push_back(b.address);
            table->weights.push_back(b.weight);
        }
    maglev::TableResult built;
    if (with_slots)
        built = run_maglev(*table);
    else
        built.error = maglev::input_error(ring_of(*table), table->size);
    if (!built.ok())
        return Status::failure("plan: service " + service.name + ": " + built.error + "; nothing was written");
    table->slots = std::move(built.table);
    return std::shared_ptr<const SlotTable>(std::move(table));
}

}  // namespace

std::vector<std::uint32_t> slots_of(const SlotTable& table)
{
    if (!table.slots.empty() || table.size == 0)
        return table.slots;
    // It was built from the same recipe once, so Maglev accepts it again.
    return run_maglev(table).table;
}

std::shared_ptr<const SlotTable> without_slots(const std::shared_ptr<const SlotTable>& table)
{
    if (!table || table->slots.empty())
        return table;
    auto kept = std::make_shared<SlotTable>();
    kept->input = table->input;
    kept->members = table->members;
    kept->weights = table->weights;
    kept->size = table->size;
    kept->seed = table->seed;
    return kept;
}

std::string table_input(const ServicePlan& service, std::uint32_t seed)
{
    std::string input = std::to_string(service.table_size) + "/" + std::to_string(seed);
    for (const BackendPlan& b : service.backends)
        if (b.use == BackendUse::active)
            input += " " + b.address + "=" + std::to_string(b.weight);
    return input;
}

Status TableCache::build(Desired& desired)
{
    const std::uint32_t seed = desired.settings.hash_seed;
    struct Job {
        ServicePlan* service;
        std::string input;
        bool with_slots;
        std::optional<Result<std::shared_ptr<const SlotTable>>> built;
    };
    std::vector<Job> jobs;
    for (ServicePlan& service : desired.services) {
        std::string input = table_input(service, seed);
        auto have = by_service_.find(service.name);
        if (have != by_service_.end() && have->second->input == input) {
            service.table = have->second;
            continue;
        }
        // A service new to the cache (every service at start) gets its recipe only: the apply
        // builds its table where it writes it (reconciler, prepare_table), so a cold start never
        // holds 1,000 tables of 256 KiB at once. A changed one is built now: the apply compares
        // its slots with the applied table's to tell which flows move.
        jobs.push_back({&service, std::move(input), have != by_service_.end(), std::nullopt});
    }
    // Tables are independent: a seed change rebuilds them on every core; results land in their
    // job, in file order.
    run_parallel(jobs.size(), [&](std::size_t i) {
        jobs[i].built = build_one(*jobs[i].service, seed, std::move(jobs[i].input), jobs[i].with_slots);
        return true;
    });
    for (Job& job : jobs) {
        if (!job.built->ok())
            return job.built->status();  // the first failing service in file order
        job.service->table = std::move(**job.built);
    }
    std::map<std::string, std::shared_ptr<const SlotTable>> next;
    for (const ServicePlan& service : desired.services)
        next[service.name] = service.table;
    by_service_ = std::move(next);
    return {};
}

void TableCache::drop_slots(Desired& desired)
{
    for (ServicePlan& service : desired.services) {
        service.table = without_slots(service.table);
        if (auto have = by_service_.find(service.name); have != by_service_.end())
            have->second = service.table;
    }
}

}  // namespace fulcrum::plan
