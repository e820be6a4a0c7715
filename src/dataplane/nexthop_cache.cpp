// The next-hop cache's logic: which backends to resolve, and the write protocol; see
// nexthop_cache.h.
#include "dataplane/nexthop_cache.h"

#include <algorithm>
#include <cstring>

#include "util/address.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

std::size_t addr_len(std::uint8_t family) { return family == FULCRUM_AF_INET ? 4 : 16; }

using AddrKey = std::pair<std::uint8_t, std::string>;  // family, raw address bytes

AddrKey addr_key(const NexthopTarget& t)
{
    return {t.family, std::string(reinterpret_cast<const char*>(t.addr.w), addr_len(t.family))};
}

bool same_fields(const fulcrum_nexthop& a, const fulcrum_nexthop& b)
{
    return std::memcmp(a.dmac, b.dmac, 6) == 0 && std::memcmp(a.smac, b.smac, 6) == 0 &&
           a.ifindex == b.ifindex && a.mtu == b.mtu;
}

}  // namespace

bool NeighbourKey::operator<(const NeighbourKey& o) const
{
    if (family != o.family)
        return family < o.family;
    if (ifindex != o.ifindex)
        return ifindex < o.ifindex;
    return std::memcmp(addr.w, o.addr.w, sizeof addr.w) < 0;
}

NexthopCache::Result NexthopCache::set_targets(std::vector<NexthopTarget> targets)
{
    std::map<std::uint32_t, NexthopTarget> next;
    for (const NexthopTarget& t : targets)
        next[t.id] = t;
    // Resolved again: new ids, ids at another address, pending ones and any whose entry is not
    // valid (put_backend zeroes a re-created backend's; a fallback stays invalid). A valid
    // entry of an unchanged target stays as it is: neighbour and route events (and the periodic
    // refresh) keep it true, and resolving all of them after every apply cost 100,000 netlink
    // round trips per reload at 1,000 services of 100 backends.
    std::vector<std::uint32_t> ids, same;
    for (const auto& [id, t] : next) {
        auto old = targets_.find(id);
        if (old != targets_.end() && old->second.family == t.family &&
            std::memcmp(&old->second.addr, &t.addr, sizeof t.addr) == 0 && !pending_.contains(id))
            same.push_back(id);
        else
            ids.push_back(id);
    }
    // The entries of unchanged targets, read in one go (the store may batch it).
    const std::vector<bool> valid = store_.valid_entries(same);
    std::size_t kept = 0;
    for (std::size_t i = 0; i < same.size(); i++) {
        if (valid[i])
            kept++;
        else
            ids.push_back(same[i]);
    }
    std::sort(ids.begin(), ids.end());  // resolved in id order, as before
    targets_ = std::move(next);
    std::vector<std::uint32_t> gone;
    for (const auto& [id, key] : watched_)
        if (!targets_.contains(id))
            gone.push_back(id);
    for (std::uint32_t id : gone)
        watch(id, std::nullopt);
    std::erase_if(pending_, [&](std::uint32_t id) { return !targets_.contains(id); });
    for (std::uint32_t id : ids)
        pending_.erase(id);
    Result result = resolve(ids);
    result.cached += kept;
    return result;
}

NexthopCache::Result NexthopCache::refresh_all()
{
    std::vector<std::uint32_t> ids;
    for (const auto& [id, t] : targets_)
        ids.push_back(id);
    pending_.clear();
    return resolve(ids);
}

NexthopCache::Result NexthopCache::refresh_some(std::size_t count)
{
    std::vector<std::uint32_t> ids;
    count = std::min(count, targets_.size());
    auto it = refreshed_any_ ? targets_.upper_bound(refreshed_up_to_) : targets_.begin();
    while (ids.size() < count) {
        if (it == targets_.end())
            it = targets_.begin();
        ids.push_back(it->first);
        ++it;
    }
    if (!ids.empty()) {
        refreshed_up_to_ = ids.back();
        refreshed_any_ = true;
    }
    for (std::uint32_t id : ids)
        pending_.erase(id);
    std::sort(ids.begin(), ids.end());  // a wrapped slice: still resolved in id order
    return resolve(ids);
}

std::vector<NeighbourKey> NexthopCache::nudge_addresses() const
{
    std::set<NeighbourKey> out;
    for (const auto& [key, ids] : by_neighbour_)
        out.insert(NeighbourKey{key.family, key.addr, 0});  // a nudge picks no interface
    for (const auto& [id, t] : targets_)
        if (!watched_.contains(id))
            out.insert(NeighbourKey{t.family, t.addr, 0});
    return {out.begin(), out.end()};
}

NexthopCache::Result NexthopCache::resolve_pending()
{
    std::vector<std::uint32_t> ids(pending_.begin(), pending_.end());
    pending_.clear();
    return resolve(ids);
}

NexthopCache::Result NexthopCache::add_targets(std::vector<NexthopTarget> targets)
{
    std::vector<std::uint32_t> ids;
    for (const NexthopTarget& t : targets) {
        targets_[t.id] = t;
        pending_.erase(t.id);
        ids.push_back(t.id);
    }
    return resolve(ids);
}

void NexthopCache::mark_all_pending()
{
    for (const auto& [id, t] : targets_)
        pending_.insert(id);
}

void NexthopCache::invalidate_all()
{
    Result ignored;
    std::vector<std::uint32_t> ids;
    for (const auto& [id, t] : targets_)
        ids.push_back(id);
    const std::vector<std::optional<fulcrum_nexthop>> entries = store_.get_many(ids);
    for (std::size_t i = 0; i < ids.size(); i++) {
        if (const std::optional<fulcrum_nexthop>& cur = entries[i]; cur && cur->valid)
            invalidate(ids[i], *cur, &ignored);
        pending_.insert(ids[i]);
    }
    for (const std::string& e : ignored.errors)
        LOG_WARN("nexthops: %s", e.c_str());
}

void NexthopCache::neighbour_changed(const NeighbourKey& key, bool usable, const std::uint8_t* mac)
{
    auto it = by_neighbour_.find(key);
    if (it == by_neighbour_.end())
        return;
    Result ignored;
    const std::vector<std::uint32_t> ids(it->second.begin(), it->second.end());
    const std::vector<std::optional<fulcrum_nexthop>> entries = store_.get_many(ids);
    for (std::size_t i = 0; i < ids.size(); i++) {
        const std::uint32_t id = ids[i];
        const std::optional<fulcrum_nexthop>& cur = entries[i];
        const bool cached = cur && cur->valid;
        if (cached && usable && mac && std::memcmp(cur->dmac, mac, 6) == 0)
            continue;  // REACHABLE <-> STALE churn: nothing the program uses changed
        if (cached)
            invalidate(id, *cur, &ignored);  // at once: never send to the old MAC after this
        else if (!usable)
            continue;  // was not cached, and still cannot be
        pending_.insert(id);
    }
    for (const std::string& e : ignored.errors)
        LOG_WARN("nexthops: %s", e.c_str());
}

void NexthopCache::watch(std::uint32_t id, const std::optional<NeighbourKey>& key)
{
    if (auto it = watched_.find(id); it != watched_.end()) {
        auto users = by_neighbour_.find(it->second);
        if (users != by_neighbour_.end()) {
            users->second.erase(id);
            if (users->second.empty())
                by_neighbour_.erase(users);
        }
        watched_.erase(it);
    }
    if (key) {
        watched_[id] = *key;
        by_neighbour_[*key].insert(id);
    }
}

NexthopCache::Result NexthopCache::resolve(const std::vector<std::uint32_t>& ids)
{
    Result result;
    if (ids.empty())
        return result;
    resolver_.begin();
    // One set of questions per address, however many services share the backend.
    std::map<AddrKey, Resolution> answers;
    std::vector<std::pair<std::uint32_t, std::optional<fulcrum_nexthop>>> wanted;
    // In chunks: the resolver asks about a chunk's new addresses at once (prefetch), then each
    // is resolved from those answers; chunked so the answers held at a time stay few.
    constexpr std::size_t kChunk = 1024;
    std::vector<NexthopTarget> ahead;
    for (std::size_t at = 0; at < ids.size(); at++) {
        if (at % kChunk == 0) {
            ahead.clear();
            std::set<AddrKey> seen;
            for (std::size_t i = at; i < std::min(ids.size(), at + kChunk); i++)
                if (auto t = targets_.find(ids[i]); t != targets_.end())
                    if (AddrKey key = addr_key(t->second); !answers.contains(key) && seen.insert(key).second)
                        ahead.push_back(t->second);
            resolver_.prefetch(ahead);
        }
        const std::uint32_t id = ids[at];
        auto t = targets_.find(id);
        if (t == targets_.end())
            continue;
        const NexthopTarget& target = t->second;
        const AddrKey key = addr_key(target);
        auto a = answers.find(key);
        if (a == answers.end())
            a = answers.emplace(key, resolver_.resolve(target.addr, target.family)).first;
        const Resolution& r = a->second;
        watch(id, r.neighbour);
        wanted.emplace_back(id, r.entry);
        if (r.entry) {
            result.cached++;
        } else {
            result.fallback++;
            result.fallbacks.push_back(address_text(target.addr, target.family) + " (id " + std::to_string(id) +
                                       "): " + r.why_not);
        }
    }
    publish(wanted, &result);
    return result;
}

void NexthopCache::invalidate(std::uint32_t id, const fulcrum_nexthop& current, Result* result)
{
    fulcrum_nexthop off = current;  // old fields kept: a reader that saw valid = 1 reads them
    off.valid = 0;
    if (Status s = store_.put(id, off); !s.ok())
        result->errors.push_back(s.message());
    need_grace_ = true;
}

void NexthopCache::publish(const std::vector<std::pair<std::uint32_t, std::optional<fulcrum_nexthop>>>& wanted,
                           Result* result)
{
    std::vector<std::pair<std::uint32_t, fulcrum_nexthop>> writes;
    std::vector<std::uint32_t> ids;
    ids.reserve(wanted.size());
    for (const auto& [id, want] : wanted)
        ids.push_back(id);
    const std::vector<std::optional<fulcrum_nexthop>> entries = store_.get_many(ids);
    for (std::size_t i = 0; i < wanted.size(); i++) {
        const auto& [id, want] = wanted[i];
        const std::optional<fulcrum_nexthop>& cur = entries[i];
        const bool cached = cur && cur->valid;
        if (want && cached && same_fields(*cur, *want))
            continue;  // unchanged: no write at all
        if (cached)
            invalidate(id, *cur, result);  // step 1
        if (want)
            writes.emplace_back(id, *want);
    }
    if (writes.empty())
        return;
    if (need_grace_) {  // step 2: no reader still holds an old valid = 1
        store_.wait_for_readers();
        need_grace_ = false;
    }
    for (auto& [id, entry] : writes) {
        entry.valid = 0;  // step 3: new fields, unused while valid = 0
        Status s = store_.put(id, entry);
        if (s.ok()) {
            entry.valid = 1;  // step 4: only `valid` changes
            s = store_.put(id, entry);
        }
        if (!s.ok()) {
            result->errors.push_back(s.message());
            entry.valid = 0;
            (void)store_.put(id, entry);
            need_grace_ = true;
        }
    }
}

}  // namespace fulcrum::dataplane
