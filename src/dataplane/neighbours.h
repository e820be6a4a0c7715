// Keeping the kernel's ARP/ND entries for backends resolved. XDP's bpf_fib_lookup only reads the
// neighbour table; a backend whose next hop has no entry would lose packets (counted as
// no_neighbour) until something else made the kernel resolve it. So before a backend enters a
// table, and periodically after, the daemon nudges the kernel to resolve it.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "abi.h"

namespace fulcrum::dataplane {

struct NeighbourTarget {
    fulcrum_addr addr{};
    std::uint8_t family = 0;
};

// Sends one empty UDP datagram (port 9, discard) to each address, which makes the kernel resolve
// the next hop. Returns at once.
void nudge_neighbours(const std::vector<NeighbourTarget>& targets);

// Waits for neighbour entries on an event loop without blocking it: a target without a valid
// entry of its own waits for its next hop's (its route's gateway, or itself when on-link: one
// route question each), each distinct next hop is nudged once, then one RTM_GETNEIGH dump is read
// at once and again every 20 ms (an Asio timer in between, so the loop serves everything else
// meanwhile), until each next hop has a valid entry or `wait` has passed, and then done(missing)
// is called on the loop: the targets whose next hop still has no valid entry. done runs inside
// start() when nothing is missing at the first dump. One wait at a time; destroying the waiter
// drops a pending wait without calling done.
class NeighbourWaiter {
public:
    using Done = std::function<void(std::vector<std::string> missing)>;
    explicit NeighbourWaiter(boost::asio::io_context& io) : timer_(io) {}
    NeighbourWaiter(const NeighbourWaiter&) = delete;
    NeighbourWaiter& operator=(const NeighbourWaiter&) = delete;

    void start(std::vector<NeighbourTarget> targets, std::chrono::milliseconds wait, Done done);
    bool waiting() const { return static_cast<bool>(done_); }

private:
    void poll();

    struct Waiting {
        NeighbourTarget target;
        NeighbourTarget next_hop;  // whose entry it waits for
    };
    boost::asio::steady_timer timer_;
    std::vector<Waiting> missing_;
    std::chrono::steady_clock::time_point deadline_{};
    Done done_;
};

// The same wait, blocking the calling thread (on a private io_context): for the first apply at
// start-up, before the event loop runs. Returns the addresses still missing.
std::vector<std::string> resolve_neighbours(const std::vector<NeighbourTarget>& targets,
                                            std::chrono::milliseconds wait);

}  // namespace fulcrum::dataplane
