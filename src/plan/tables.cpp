// Maglev tables of the desired services, with the skip-rebuild cache: see tables.h.
#include "plan/tables.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

#include "maglev/maglev.h"

namespace fulcrum::plan {
namespace {

// Maglev over the table's members, labelled 1..n (0 is an empty slot).
maglev::TableResult run_maglev(const SlotTable& table)
{
    std::vector<maglev::Backend> ring;
    for (std::size_t i = 0; i < table.members.size(); i++)
        ring.push_back({table.members[i], static_cast<std::uint32_t>(i + 1), table.weights[i]});
    return maglev::build_table(ring, table.size, table.seed);
}

Result<std::shared_ptr<const SlotTable>> build_one(const ServicePlan& service, std::uint32_t seed, std::string input)
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
    maglev::TableResult built = run_maglev(*table);
    if (!built.ok())
        return Status::failure("plan: service " + service.name + ": " + built.error + "; nothing was written");
    table->slots = std::move(built.table);
    return std::shared_ptr<const SlotTable>(std::move(table));
}

// CPUs this process may run on (its affinity mask, e.g. systemd's CPUAffinity=), at least 1.
std::size_t usable_cpus()
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    return static_cast<std::size_t>(std::max(1, CPU_COUNT(&set)));
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
        std::optional<Result<std::shared_ptr<const SlotTable>>> built;
    };
    std::vector<Job> jobs;
    for (ServicePlan& service : desired.services) {
        std::string input = table_input(service, seed);
        if (auto have = by_service_.find(service.name); have != by_service_.end() && have->second->input == input)
            service.table = have->second;
        else
            jobs.push_back({&service, std::move(input), std::nullopt});
    }
    // Tables are independent: a cold start (or a seed change) builds them on every core. Each
    // worker takes the next job until none is left; results land in their job, in file order.
    std::atomic<std::size_t> next_job{0};
    auto work = [&] {
        for (std::size_t i = next_job++; i < jobs.size(); i = next_job++)
            jobs[i].built = build_one(*jobs[i].service, seed, std::move(jobs[i].input));
    };
    const std::size_t helpers = std::min(jobs.size(), usable_cpus()) - 1;
    {
        std::vector<std::jthread> threads;
        for (std::size_t t = 0; t < helpers && jobs.size() > 1; t++)
            threads.emplace_back(work);
        work();
    }  // joined
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
