// The seam through which metrics read the data plane's per-CPU counters (summed over CPUs).
// BalancerProgram implements it; unit tests use a fake.
#pragma once

#include <cstdint>
#include <vector>

#include "abi.h"

namespace fulcrum::dataplane {

struct ServiceCounters { std::uint64_t packets = 0, bytes = 0, new_flows = 0; };
struct PacketCounters { std::uint64_t packets = 0, bytes = 0; };

class CounterReader {
public:
    virtual ~CounterReader() = default;
    virtual ServiceCounters service_counters(std::uint32_t service_id) const = 0;
    virtual PacketCounters backend_counters(std::uint32_t backend_id) const = 0;
    virtual PacketCounters reason_counters(fulcrum_reason reason) const = 0;
    virtual std::uint64_t flow_event_count(fulcrum_flow_event event) const = 0;
    // Packets of QUIC services by the outcome of the connection-ID lookup (abi.h fulcrum_quic_event).
    virtual std::uint64_t quic_event_count(fulcrum_quic_event event) const = 0;

    // The counters of every id in [0, end), indexed by id: what the per-second rate sampler and
    // a scrape need for all services and backends at once. BalancerProgram reads the range in a
    // few batched syscalls instead of one per id; these defaults (for fakes) read id by id.
    virtual std::vector<ServiceCounters> service_counters_below(std::uint32_t end) const
    {
        std::vector<ServiceCounters> all(end);
        for (std::uint32_t id = 0; id < end; id++)
            all[id] = service_counters(id);
        return all;
    }
    virtual std::vector<PacketCounters> backend_counters_below(std::uint32_t end) const
    {
        std::vector<PacketCounters> all(end);
        for (std::uint32_t id = 0; id < end; id++)
            all[id] = backend_counters(id);
        return all;
    }
};

}  // namespace fulcrum::dataplane
