// The next-hop cache (xdp/abi.h fulcrum_nexthop): fulcrumd resolves each backend's route,
// neighbour and egress MTU from netlink and writes them where the XDP program reads them instead
// of calling bpf_fib_lookup. This is how the balancer forwards with the host's forwarding
// sysctls at their default (off), where bpf_fib_lookup answers FWD_DISABLED: the host itself
// routes nothing. An entry is valid only when it gives the answer the route would (bpf_fib_lookup
// with forwarding on); anything unusual (multipath, policy rules, route MTU, lightweight tunnels,
// an egress fulcrumd does not run on, no usable neighbour) stays invalid and the program falls
// back to bpf_fib_lookup, which decides and counts as before (forwarding_off while it is off).
//
// Four parts, one file each: the cache's logic (this file; unit-tested alone in
// tests/unit/test_nexthop.cpp through the NexthopResolver and NexthopStore seams), the kernel's
// answers (nexthop_resolver.h, on the netlink layer), the map store and the reconciler's writer
// (nexthop_store.h), and the upkeep on the event loop (nexthop_upkeep.h).
//
// Entries are made before a backend enters a table (NexthopWriter, prepare()), and kept valid:
// neighbour notifications re-resolve the backends behind that neighbour (a changed MAC is
// invalidated at once); any route, rule, link, netconf or nexthop-object notification
// re-resolves every entry shortly after (the old answer stays in use until then); everything is
// re-resolved every 10 s as well.
//
// Writing an entry the program may be reading (the ARRAY update is a plain memcpy, and the
// program reads `valid` and the other fields separately), NexthopCache::publish:
//   1. a valid entry that must change is first rewritten with valid = 0 and its OLD fields, so a
//      reader that already saw valid = 1 still reads the old, consistent bytes;
//   2. wait for an RCU grace period (membarrier MEMBARRIER_CMD_GLOBAL = synchronize_rcu): XDP
//      runs inside an RCU read-side section (softirq), so every reader that saw the old valid = 1
//      has finished;
//   3. write the new fields with valid = 0 (nobody reads them: readers now see valid = 0);
//   4. write the same bytes with valid = 1: only `valid` changes, so a reader sees either 0 (fib
//      path) or 1 with the complete new fields. No torn entry is ever used.
// One grace period covers a whole batch. Other writers (the reconciler's put_backend zeroes the
// entry) are covered by entries_touched_elsewhere().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "abi.h"
#include "util/status.h"

namespace fulcrum::dataplane {

struct NexthopTarget {
    std::uint32_t id = 0;  // backend id (key of backends and nexthops)
    fulcrum_addr addr{};
    std::uint8_t family = 0;
};

// A neighbour entry that a next hop depends on.
struct NeighbourKey {
    std::uint8_t family = 0;
    fulcrum_addr addr{};
    std::uint32_t ifindex = 0;
    bool operator<(const NeighbourKey& o) const;
};

struct Resolution {
    std::optional<NeighbourKey> neighbour;  // set once a route was found: its events matter
    std::optional<fulcrum_nexthop> entry;   // set when the cache may be used (valid ignored)
    std::string why_not;                    // when entry is empty
};

// Seam: the kernel's answers (KernelResolver below) or a test's.
class NexthopResolver {
public:
    virtual ~NexthopResolver() = default;
    // Start of a batch: re-read what is common to all backends (rules, forwarding, interfaces).
    virtual void begin() {}
    // The IPv6 tunnel source (RTA_SRC of IPv6 lookups: source-specific routes are refused).
    virtual void set_source_v6(std::optional<fulcrum_addr>) {}
    virtual Resolution resolve(const fulcrum_addr& addr, std::uint8_t family) = 0;
    // The targets about to be resolved one by one: a resolver may ask the kernel about all of
    // them at once now (the real one: their route questions in batches), for resolve() to use.
    virtual void prefetch(std::span<const NexthopTarget>) {}
};

// Seam: the nexthops map (ProgramNexthopStore below) or a test's.
class NexthopStore {
public:
    virtual ~NexthopStore() = default;
    virtual std::optional<fulcrum_nexthop> get(std::uint32_t id) = 0;
    // get() of each of these ids, in order, unless the store can read them all at once (the
    // real map: a batch read of the whole map instead of one syscall per id; a neighbour event
    // of a router with 100,000 backends behind it read 100,000 entries one by one).
    virtual std::vector<std::optional<fulcrum_nexthop>> get_many(const std::vector<std::uint32_t>& ids)
    {
        std::vector<std::optional<fulcrum_nexthop>> out;
        out.reserve(ids.size());
        for (std::uint32_t id : ids)
            out.push_back(get(id));
        return out;
    }
    // Whether each of these ids has a valid entry (get_many).
    std::vector<bool> valid_entries(const std::vector<std::uint32_t>& ids)
    {
        std::vector<bool> out;
        out.reserve(ids.size());
        for (const std::optional<fulcrum_nexthop>& cur : get_many(ids))
            out.push_back(cur && cur->valid);
        return out;
    }
    virtual Status put(std::uint32_t id, const fulcrum_nexthop& entry) = 0;
    // Returns once every program run that may have read an entry before this call has ended.
    virtual void wait_for_readers() = 0;
};

class NexthopCache {
public:
    struct Result {
        std::size_t cached = 0, fallback = 0;
        std::vector<std::string> fallbacks;  // "address: why", one per backend falling back
        std::vector<std::string> errors;     // map writes that failed
    };

    NexthopCache(NexthopStore& store, NexthopResolver& resolver) : store_(store), resolver_(resolver) {}

    // The backends to keep entries for; resolves now those that are new, moved, pending or
    // without a valid entry (the others are kept up to date by events). Ids no longer listed
    // are forgotten (the reconciler invalidates an id when it frees or reuses it). The result
    // counts every target: kept valid entries as cached.
    Result set_targets(std::vector<NexthopTarget> targets);
    // Adds (or updates) these targets and resolves them now; the others are untouched.
    Result add_targets(std::vector<NexthopTarget> targets);
    // Every target is to be resolved again (resolve_pending); entries stay in use until then.
    void mark_all_pending();
    // Every valid entry to valid = 0 at once (fields kept); all targets become pending.
    void invalidate_all();
    // A neighbour changed (or was deleted: usable = false). Entries that now differ are
    // invalidated at once and become pending, as do uncached ones that may now resolve.
    void neighbour_changed(const NeighbourKey& key, bool usable, const std::uint8_t* mac);
    bool has_pending() const { return !pending_.empty(); }
    Result resolve_pending();
    Result refresh_all();
    // The next `count` targets in id order after the last one this resolved, wrapping around: the
    // periodic refresh in slices (a tenth of the targets every second re-resolves each one every
    // 10 s, as refresh_all every 10 s did, without stalling the event loop for all of them at once).
    Result refresh_some(std::size_t count);
    // The addresses whose neighbour entries the targets need, each once: the next hop (gateway,
    // or the backend itself when on-link) of every target whose route was found, and the target
    // itself where it was not (or the route cannot be cached: multipath, ...). 100,000 backends
    // behind one router are one address to nudge (dataplane/neighbours.h), not 100,000.
    std::vector<NeighbourKey> nudge_addresses() const;
    // Something else wrote entries (put_backend zeroes one): the next write waits for readers.
    void entries_touched_elsewhere() { need_grace_ = true; }
    std::size_t targets() const { return targets_.size(); }

private:
    Result resolve(const std::vector<std::uint32_t>& ids);
    // Writes the wanted entries (nullopt: leave invalid) with the protocol described above.
    void publish(const std::vector<std::pair<std::uint32_t, std::optional<fulcrum_nexthop>>>& wanted,
                 Result* result);
    void invalidate(std::uint32_t id, const fulcrum_nexthop& current, Result* result);
    void watch(std::uint32_t id, const std::optional<NeighbourKey>& key);

    NexthopStore& store_;
    NexthopResolver& resolver_;
    std::map<std::uint32_t, NexthopTarget> targets_;
    std::map<std::uint32_t, NeighbourKey> watched_;  // id -> neighbour its next hop needs
    std::map<NeighbourKey, std::set<std::uint32_t>> by_neighbour_;
    std::set<std::uint32_t> pending_;
    std::uint32_t refreshed_up_to_ = 0;  // refresh_some: the last id it resolved
    bool refreshed_any_ = false;         // refreshed_up_to_ is set
    bool need_grace_ = true;  // entries may have been valid before we started
};

}  // namespace fulcrum::dataplane
