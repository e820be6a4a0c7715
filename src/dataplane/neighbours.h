// Keeping the kernel's ARP/ND entries for backends resolved. XDP's bpf_fib_lookup only reads the
// neighbour table; a backend whose next hop has no entry would lose packets (counted as
// no_neighbour) until something else made the kernel resolve it. So before a backend enters a
// table, and periodically after, the daemon nudges the kernel to resolve it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "abi.h"

namespace fulcrum::dataplane {

struct NeighbourTarget {
    fulcrum_addr addr{};
    std::uint8_t family = 0;
};

// Sends one empty UDP datagram (port 9, discard) to each address, which makes the kernel resolve
// the next hop, then waits up to `wait` for an entry of each address to be valid. Returns the
// addresses still without a valid entry (routed backends whose next hop is a gateway show up
// here too: their gateway was resolved, not them).
std::vector<std::string> resolve_neighbours(const std::vector<NeighbourTarget>& targets,
                                            std::chrono::milliseconds wait);

}  // namespace fulcrum::dataplane
