// The balancer BPF program and its maps, loaded through the libbpf skeleton (RAII), and the
// writes fulcrumd makes to those maps. Where a map is written: here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "abi.h"
#include "capture_abi.h"
#include "dataplane/counter_reader.h"
#include "dataplane/live_tables.h"
#include "dataplane/map_journal.h"
#include "dataplane/map_writer.h"
#include "util/status.h"

struct balancer_bpf;  // generated skeleton (build/xdp/balancer.skel.h)
struct bpf_map;

namespace fulcrum::dataplane {

// The new-flow table holds first packets until their flow's next packet (about one round trip
// for TCP): a quarter of the flow table, at least 4096 entries.
constexpr std::uint32_t new_flows_capacity(std::uint32_t flow_capacity)
{
    return flow_capacity / 4 > 4096 ? flow_capacity / 4 : 4096;
}

struct LoadOptions {
    std::uint64_t udp_idle_timeout_ns = 30'000'000'000ULL;
    std::uint32_t flow_capacity = FULCRUM_DEFAULT_FLOWS;
    std::string pin_path;  // empty: no pins; else maps pinned (and adopted) and program pinned here
};

class BalancerProgram final : public MapWriter, public CounterReader {
public:
    // Opens, configures and loads the program (not attached). A failure names the phase and errno.
    static Result<std::unique_ptr<BalancerProgram>> load(const LoadOptions& options);
    ~BalancerProgram();
    BalancerProgram(const BalancerProgram&) = delete;
    BalancerProgram& operator=(const BalancerProgram&) = delete;

    int program_fd() const;
    // Packet capture (xdp/capture.h): the program's control block (its .bss, mapped by the
    // skeleton; nullptr if libbpf could not map it) and its ring buffer's fd.
    fulcrum_capture_control* capture_control() const;
    int capture_ring_fd() const;
    // Maps adopted from pins at load (0 on a fresh start).
    int adopted_pins() const { return adopted_pins_; }
    // The id of the program pinned under pin_path before this load replaced the pin: an earlier
    // fulcrumd's on this pin path, the only balancer this one may replace on an interface. 0: none.
    unsigned previous_program_id() const { return previous_program_id_; }
    // What the maps hold (vips, services, backends in use); a map that cannot be read fails it
    // (a partial snapshot would have the reconciler rewrite or reuse what is there).
    Result<MapSnapshot> snapshot() const;
    // Removes the pins (on_exit: detach).
    void unpin();

    // The settings entry as the maps hold it: what an earlier fulcrumd wrote to adopted pins,
    // all zero in a fresh map.
    Result<fulcrum_settings> read_settings() const;

    // Operator drains kept with the pinned state (map operator_drains), as (service, canonical
    // backend address): written by `fulcrumctl drain`/`undrain`, read back at start, so a restart
    // keeps them. Replaced with the rest of the state when that is not adopted.
    Result<std::vector<std::pair<std::string, std::string>>> operator_drains() const;
    Status keep_operator_drain(const std::string& service, const std::string& address, bool drained);

    // MapWriter. A transaction journals every map write, the side ones included (vip_filter bits,
    // next-hop invalidations, next-hop entries made during the apply), and rollback() puts them
    // all back (map_journal.h).
    void begin() override;
    void commit() override;
    Status rollback() override;
    Status prepare_table(std::uint32_t service_id, std::span<const std::uint32_t> table) override;
    Status set_settings(const fulcrum_settings& settings) override;
    Status put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value) override;
    Status delete_vip(const fulcrum_vip_key& key) override;
    Status put_service(const fulcrum_service_key& key, const fulcrum_service_value& value) override;
    Status delete_service(const fulcrum_service_key& key) override;
    // Writes a backend and invalidates its next-hop entry (which may belong to an old address).
    Status put_backend(std::uint32_t id, const fulcrum_backend& backend) override;
    Status put_quic_id(const fulcrum_quic_key& key, std::uint32_t backend_id) override;
    Status delete_quic_id(const fulcrum_quic_key& key) override;
    // put_backend, except that a backend whose address is unchanged (a change of state: drain,
    // down, up) keeps its next-hop entry: with forwarding off, an invalid entry drops its packets.
    Status update_backend(std::uint32_t id, const fulcrum_backend& backend);
    // Swaps the prepared inner array (else one built aside here) into maglev_tables in one
    // update: packets see the old table or the new one, never a mix.
    Status put_table(std::uint32_t service_id, std::span<const std::uint32_t> table) override;
    // One bpf_map_update_batch of maglev_tables for all of them (one RCU grace period).
    Status put_tables(std::span<const std::uint32_t> service_ids) override;
    Status delete_table(std::uint32_t service_id) override;
    // The service's table as maglev_tables holds it (table_size slots, read from the kernel
    // through the descriptor held for it); an error if none is held or its layout differs.
    Result<std::vector<std::uint32_t>> read_table(std::uint32_t service_id, std::uint32_t table_size) const;
    Status put_tx_port(std::uint32_t ifindex);
    // Next-hop cache of a backend (xdp/abi.h fulcrum_nexthop): the resolved route + neighbour,
    // used instead of bpf_fib_lookup while valid. put_backend invalidates the backend's entry.
    Status put_nexthop(std::uint32_t backend_id, const fulcrum_nexthop& nexthop);
    Status invalidate_nexthop(std::uint32_t backend_id);
    // The entry as the program reads it.
    Result<fulcrum_nexthop> nexthop(std::uint32_t backend_id) const;
    // Every entry, indexed by backend id (FULCRUM_MAX_BACKENDS, 3 MiB), read in a few batch
    // calls: after an apply the cache checks every target's entry, one syscall each was 100,000.
    Result<std::vector<fulcrum_nexthop>> nexthops() const;
    // How many valid next-hop entries put_backend has invalidated so far (address changes).
    std::uint64_t nexthop_invalidations() const { return nexthop_invalidations_; }

    // CounterReader
    ServiceCounters service_counters(std::uint32_t service_id) const override;
    PacketCounters backend_counters(std::uint32_t backend_id) const override;
    std::vector<ServiceCounters> service_counters_below(std::uint32_t end) const override;
    std::vector<PacketCounters> backend_counters_below(std::uint32_t end) const override;
    PacketCounters reason_counters(fulcrum_reason reason) const override;
    // The entries for a key in the flow table, then in the new-flow table (backend id != 0).
    std::vector<fulcrum_flow_value> flow_entries(const fulcrum_flow_key& key) const;
    // The key's entry in one of the two tables: `flows` (confirmed) or `new_flows` (first packets).
    enum class FlowTable { confirmed, first_packets };
    std::optional<fulcrum_flow_value> flow_entry(const fulcrum_flow_key& key, FlowTable table) const;
    // Recorded flows per backend id, over both tables (a flow in both counted once): what
    // `fulcrumctl diff` reports as the flows a change would move. One batched pass per table.
    Result<std::map<std::uint32_t, std::uint64_t>> flows_per_backend() const;
    // fulcrum_flows_not_recorded_total{reason}, summed over CPUs.
    std::uint64_t flow_event_count(fulcrum_flow_event event) const override;
    // fulcrum_quic_packets_total{outcome}, summed over CPUs.
    std::uint64_t quic_event_count(fulcrum_quic_event event) const override;

private:
    explicit BalancerProgram(balancer_bpf* skel);
    // vip_filter upkeep: a VIP's bit is set before it is inserted and cleared once no VIP has it.
    Status set_vip_filter_bit(const fulcrum_vip_key& key);
    Status clear_vip_filter_bit_if_unused(const fulcrum_vip_key& key);
    Status rebuild_vip_filter();
    Status journal(const bpf_map* map, const void* key);
    Status update(const bpf_map* map, const void* key, const void* value, const char* what);
    Status erase(const bpf_map* map, const void* key, const char* what);
    Result<int> make_table(std::uint32_t service_id, std::span<const std::uint32_t> table);
    // Opens the inner maps of adopted pins by id (start-up still holds CAP_SYS_ADMIN).
    Status hold_adopted_tables();
    void drop_staged_tables();
    balancer_bpf* skel_;
    MapJournal journal_;
    LiveTables tables_;  // what maglev_tables references, held open for rollbacks
    std::map<std::uint32_t, int> staged_tables_;  // prepared tables by service id (fds we own)
    std::map<std::uint32_t, std::size_t> staged_sizes_;
    std::string pin_path_;
    int adopted_pins_ = 0;
    unsigned previous_program_id_ = 0;
    std::uint64_t nexthop_invalidations_ = 0;
};

}  // namespace fulcrum::dataplane
