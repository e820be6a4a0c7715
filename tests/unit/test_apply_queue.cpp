// The daemon's apply queue (src/daemon/apply_queue.h) on a real io_context, with jobs that stand
// for applies: a job may stay pending (as an apply waiting for neighbours does) while others are
// asked for; those run after it, in order, each on top of the state the previous one left.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "daemon/apply_queue.h"

using fulcrum::daemon::ApplyQueue;

namespace {

// Runs what is ready on the loop (an io_context that ran out of work must be restarted first).
void run_ready(boost::asio::io_context& io)
{
    io.restart();
    io.poll();
}

}  // namespace

TEST_CASE("applies asked for during a pending one run after it, in order, and the last state wins", "[apply_queue]")
{
    boost::asio::io_context io;
    ApplyQueue queue(io);
    std::vector<std::string> started;
    std::string state = "start";          // what the maps hold
    std::string latest_drains = "none";   // an input read when a job starts, like health or drains
    ApplyQueue::Done finish_reload;

    // A reload that stays pending until its "neighbour wait" ends.
    queue.push("reload", [&](ApplyQueue::Done done) {
        started.push_back("reload");
        finish_reload = std::move(done);
    });
    run_ready(io);
    REQUIRE(started == std::vector<std::string>{"reload"});
    CHECK(queue.running() == "reload");

    // Two applies asked for while it is pending: neither starts yet.
    auto on_top = [&](std::string name) {
        return [&, name](ApplyQueue::Done done) {
            started.push_back(name);
            state = state + " -> " + name + "(" + latest_drains + ")";
            done();
        };
    };
    queue.push("drain", on_top("drain"));
    latest_drains = "a";
    queue.push("undrain", on_top("undrain"));
    latest_drains = "b";  // changes after both were asked for: they must see it
    run_ready(io);
    CHECK(started.size() == 1);
    CHECK(queue.queued() == 2);
    CHECK(state == "start");

    state = "reloaded";  // the pending reload writes its state, then reports its end
    finish_reload();
    run_ready(io);
    CHECK(started == std::vector<std::string>{"reload", "drain", "undrain"});
    CHECK(state == "reloaded -> drain(b) -> undrain(b)");
    CHECK(queue.running().empty());
    CHECK(queue.queued() == 0);
}

TEST_CASE("a job starts from the loop, never inside push or inside the previous job's end", "[apply_queue]")
{
    boost::asio::io_context io;
    ApplyQueue queue(io);
    int depth = 0, max_depth = 0, runs = 0;
    std::function<void(ApplyQueue::Done)> job = [&](ApplyQueue::Done done) {
        max_depth = std::max(max_depth, ++depth);
        runs++;
        if (runs < 3)
            queue.push("again", job);
        done();  // finishes at once: the next must still wait for the loop
        depth--;
    };
    queue.push("first", job);
    CHECK(runs == 0);
    run_ready(io);
    CHECK(runs == 3);
    CHECK(max_depth == 1);
}

TEST_CASE("jobs still queued when the queue goes are dropped unstarted", "[apply_queue]")
{
    boost::asio::io_context io;
    bool second_ran = false;
    {
        ApplyQueue queue(io);
        queue.push("pending", [](ApplyQueue::Done) {});  // never ends (the daemon stops meanwhile)
        queue.push("later", [&](ApplyQueue::Done done) {
            second_ran = true;
            done();
        });
        run_ready(io);
        CHECK(queue.queued() == 1);
    }
    CHECK_FALSE(second_ran);
}
