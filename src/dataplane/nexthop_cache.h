// The next-hop cache (xdp/abi.h fulcrum_nexthop): fulcrumd resolves each backend's route,
// neighbour and egress MTU from netlink and writes them where the XDP program reads them instead
// of calling bpf_fib_lookup. This is how the balancer forwards with the host's forwarding
// sysctls at their default (off), where bpf_fib_lookup answers FWD_DISABLED: the host itself
// routes nothing. An entry is valid only when it gives the answer the route would (bpf_fib_lookup
// with forwarding on); anything unusual (multipath, policy rules, route MTU, lightweight tunnels,
// an egress fulcrumd does not run on, no usable neighbour) stays invalid and the program falls
// back to bpf_fib_lookup, which decides and counts as before (forwarding_off while it is off).
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

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "abi.h"
#include "dataplane/map_writer.h"
#include "netlink/netlink.h"
#include "util/status.h"

namespace fulcrum::dataplane {

class BalancerProgram;
class NexthopUpkeep;

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
};

// Seam: the nexthops map (ProgramNexthopStore below) or a test's.
class NexthopStore {
public:
    virtual ~NexthopStore() = default;
    virtual std::optional<fulcrum_nexthop> get(std::uint32_t id) = 0;
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

    // The backends to keep entries for; resolves them all now. Ids no longer listed are
    // forgotten (the reconciler invalidates an id when it frees or reuses it).
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
    bool need_grace_ = true;  // entries may have been valid before we started
};

// The kernel side: rtnetlink questions (src/dataplane/rtnl.h) for the given interfaces.
std::unique_ptr<NexthopResolver> make_kernel_resolver(std::vector<std::string> interfaces,
                                                      std::optional<fulcrum_addr> source_v6, std::string* error);
// The balancer's nexthops map: writes through BalancerProgram::put_nexthop, reads through an fd
// of the map found from the program's map ids; readers waited for with membarrier.
std::unique_ptr<NexthopStore> make_program_store(BalancerProgram& program, std::string* error);

// The reconciler's MapWriter for the real maps: forwards every write to the program, and when
// backends that become usable have been written (MapWriter::backends_written, before any table
// names them) gives them their next-hop entries, so no packet of a new backend meets the fib path
// (which drops with forwarding off).
class NexthopWriter final : public MapWriter {
public:
    explicit NexthopWriter(BalancerProgram& program) : program_(program) {}
    void set_upkeep(NexthopUpkeep* upkeep) { upkeep_ = upkeep; }

    Status set_settings(const fulcrum_settings& settings) override;
    Status put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value) override;
    Status delete_vip(const fulcrum_vip_key& key) override;
    Status put_service(const fulcrum_service_key& key, const fulcrum_service_value& value) override;
    Status delete_service(const fulcrum_service_key& key) override;
    Status put_backend(std::uint32_t id, const fulcrum_backend& backend) override;
    Status put_table(std::uint32_t service_id, std::span<const std::uint32_t> table) override;
    Status delete_table(std::uint32_t service_id) override;
    Status backends_written() override;

private:
    BalancerProgram& program_;
    NexthopUpkeep* upkeep_ = nullptr;
    std::vector<NexthopTarget> written_;  // since the last backends_written
    bool touched_ = false;
};

// Runs the cache on the daemon's io_context: notifications, batching, the periodic refresh.
// Without netlink (or the map) it keeps every entry of its targets invalid: always correct.
class NexthopUpkeep {
public:
    NexthopUpkeep(boost::asio::io_context& io, BalancerProgram& program, std::vector<std::string> interfaces);
    ~NexthopUpkeep();
    // After each apply: the backends of the applied state, and the IPv6 tunnel source.
    void set_backends(std::vector<NexthopTarget> targets, std::optional<fulcrum_addr> source_v6);
    // During an apply, before a table may name them: entries for these backends now.
    // entries_touched: something else invalidated valid entries since the last write (readers
    // must be waited for before rewriting them).
    void prepare(std::vector<NexthopTarget> targets, bool entries_touched);

private:
    void wait_for_events();
    void on_events();
    void arm(std::chrono::milliseconds delay);
    void schedule_refresh();
    void report(const char* what, const NexthopCache::Result& r, bool info);

    BalancerProgram& program_;
    std::vector<std::string> interfaces_;
    std::unique_ptr<NexthopStore> store_;
    std::unique_ptr<NexthopResolver> resolver_;
    std::unique_ptr<NexthopCache> cache_;
    netlink::Socket events_socket_;                  // route, neighbour, link, rule notifications
    boost::asio::posix::stream_descriptor events_;  // readiness of events_socket_ for the loop
    boost::asio::steady_timer batch_timer_, refresh_timer_;
    bool batch_armed_ = false;
};

}  // namespace fulcrum::dataplane
