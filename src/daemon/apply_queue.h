// Applies one at a time, in the order they were asked for. An apply may wait (up to 1 s) for the
// neighbour entries of new backends (dataplane::NeighbourWaiter) while the event loop serves
// everything else, so a reload, a health change or a fulcrumctl drain can arrive while another
// apply is pending: each is a job here, started only once every job queued before it has
// finished. A job reads the daemon's state when it starts, not when it was queued, so it applies
// on top of the previous one with the latest inputs (config, health, drains).
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <cstddef>
#include <deque>
#include <functional>
#include <string>

namespace fulcrum::daemon {

class ApplyQueue {
public:
    using Done = std::function<void()>;
    // Calls Done exactly once when finished, then or later (on the loop).
    using Job = std::function<void(Done)>;

    explicit ApplyQueue(boost::asio::io_context& io) : io_(io) {}
    ApplyQueue(const ApplyQueue&) = delete;
    ApplyQueue& operator=(const ApplyQueue&) = delete;

    // Queues `job` (named `what` for fulcrumctl status); it starts from the event loop, never
    // inside push(). Jobs still queued when the daemon stops are dropped unstarted.
    void push(std::string what, Job job);

    const std::string& running() const { return running_; }  // "" when idle
    std::size_t queued() const { return jobs_.size(); }       // not started yet

private:
    void start_next();

    boost::asio::io_context& io_;
    std::deque<std::pair<std::string, Job>> jobs_;
    std::string running_;
    bool busy_ = false;  // a job started and has not called Done, or start_next is posted
};

}  // namespace fulcrum::daemon
