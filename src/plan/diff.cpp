// Figures of a planned change: see diff.h.
#include "plan/diff.h"

#include <map>

namespace fulcrum::plan {

double moved_share(const std::vector<std::uint32_t>& before, const std::function<std::string(std::uint32_t)>& name_before,
                   const std::vector<std::uint32_t>& after, const std::function<std::string(std::uint32_t)>& name_after)
{
    if (before.empty() && after.empty())
        return 0;
    if (before.empty() || after.empty())
        return 1;
    auto differs = [&](std::uint32_t h) {
        std::uint32_t a = before[h % before.size()], b = after[h % after.size()];
        return (a ? name_before(a) : "") != (b ? name_after(b) : "");
    };
    std::uint64_t moved = 0, total = 0;
    if (before.size() == after.size()) {
        for (std::uint32_t slot = 0; slot < before.size(); slot++)
            moved += differs(slot);
        total = before.size();
    } else {
        // i * an odd constant (mod 2^32): distinct hashes spread over the whole range, and over
        // every residue of small sizes too (evenly spaced multiples of 2^12 would all be even).
        constexpr std::uint32_t kSamples = 1u << 20;
        for (std::uint32_t i = 0; i < kSamples; i++)
            moved += differs(i * 2654435761u);
        total = kSamples;
    }
    return static_cast<double>(moved) / static_cast<double>(total);
}

double rehashed_share(const std::vector<std::uint32_t>& before,
                      const std::function<std::string(std::uint32_t)>& name_before,
                      const std::vector<std::uint32_t>& after,
                      const std::function<std::string(std::uint32_t)>& name_after)
{
    if (before.empty() || after.empty())
        return before.empty() && after.empty() ? 0 : 1;
    // A new input makes the old and the new slot of a flow independent: it stays on its backend
    // with probability sum over backends of (its share before) x (its share after).
    std::map<std::string, double> share_before;
    for (std::uint32_t id : before)
        if (id)
            share_before[name_before(id)] += 1.0 / static_cast<double>(before.size());
    double stays = 0;
    for (std::uint32_t id : after)
        if (id)
            if (auto it = share_before.find(name_after(id)); it != share_before.end())
                stays += it->second / static_cast<double>(after.size());
    return 1 - stays;
}

const char* to_string(ServiceDiff::Change change)
{
    switch (change) {
    case ServiceDiff::Change::added: return "added";
    case ServiceDiff::Change::removed: return "removed";
    case ServiceDiff::Change::changed: return "changed";
    case ServiceDiff::Change::unchanged: return "unchanged";
    }
    return "?";
}

}  // namespace fulcrum::plan
