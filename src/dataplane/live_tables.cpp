// The inner maps maglev_tables references, held open: see live_tables.h.
#include "dataplane/live_tables.h"

#include <unistd.h>

#include <set>

namespace fulcrum::dataplane {

LiveTables::~LiveTables()
{
    if (active_)
        rollback();
    for (const auto& [id, fd] : live_)
        close(fd);
}

int LiveTables::fd(std::uint32_t service_id) const
{
    auto it = live_.find(service_id);
    return it == live_.end() ? -1 : it->second;
}

void LiveTables::release(int fd)
{
    if (!active_)
        close(fd);  // in a transaction, commit() or rollback() decides
}

void LiveTables::installed(std::uint32_t service_id, int fd)
{
    if (active_)
        installed_.push_back(fd);
    auto [it, inserted] = live_.try_emplace(service_id, fd);
    if (!inserted) {
        release(it->second);
        it->second = fd;
    }
}

void LiveTables::removed(std::uint32_t service_id)
{
    if (auto it = live_.find(service_id); it != live_.end()) {
        release(it->second);
        live_.erase(it);
    }
}

void LiveTables::begin()
{
    if (active_)
        commit();
    before_ = live_;
    installed_.clear();
    active_ = true;
}

void LiveTables::end(const std::map<std::uint32_t, int>& kept)
{
    std::set<int> keep;
    for (const auto& [id, fd] : kept)
        keep.insert(fd);
    std::set<int> seen(installed_.begin(), installed_.end());
    for (const auto& [id, fd] : before_)
        seen.insert(fd);
    for (int fd : seen)
        if (!keep.count(fd))
            close(fd);
    before_.clear();
    installed_.clear();
    active_ = false;
}

void LiveTables::commit()
{
    if (active_)
        end(live_);
}

void LiveTables::rollback()
{
    if (!active_)
        return;
    std::map<std::uint32_t, int> previous = before_;
    end(previous);
    live_ = std::move(previous);
}

}  // namespace fulcrum::dataplane
