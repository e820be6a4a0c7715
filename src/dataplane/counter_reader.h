// The seam through which metrics read the data plane's per-CPU counters (summed over CPUs).
// BalancerProgram implements it; unit tests use a fake.
#pragma once

#include <cstdint>

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
};

}  // namespace fulcrum::dataplane
