// Maglev tables of the desired services, with the skip-rebuild cache: see tables.h.
#include "plan/tables.h"

#include "maglev/maglev.h"

namespace fulcrum::plan {
namespace {

// Builds the table of `service`: members are labelled 1..n for Maglev (0 is an empty slot).
Result<std::shared_ptr<const SlotTable>> build_one(const ServicePlan& service, std::uint32_t seed, std::string input)
{
    auto table = std::make_shared<SlotTable>();
    table->input = std::move(input);
    std::vector<maglev::Backend> ring;
    for (const BackendPlan& b : service.backends)
        if (b.use == BackendUse::active) {
            table->members.push_back(b.address);
            ring.push_back({b.address, static_cast<std::uint32_t>(table->members.size()), b.weight});
        }
    maglev::TableResult built = maglev::build_table(ring, service.table_size, seed);
    if (!built.ok())
        return Status::failure("plan: service " + service.name + ": " + built.error + "; nothing was written");
    table->slots = std::move(built.table);
    return std::shared_ptr<const SlotTable>(std::move(table));
}

}  // namespace

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
    std::map<std::string, std::shared_ptr<const SlotTable>> next;
    for (ServicePlan& service : desired.services) {
        std::string input = table_input(service, desired.settings.hash_seed);
        if (auto have = by_service_.find(service.name); have != by_service_.end() && have->second->input == input) {
            service.table = have->second;
        } else {
            auto built = build_one(service, desired.settings.hash_seed, std::move(input));
            if (!built.ok())
                return built.status();
            service.table = std::move(*built);
        }
        next[service.name] = service.table;
    }
    by_service_ = std::move(next);
    return {};
}

}  // namespace fulcrum::plan
