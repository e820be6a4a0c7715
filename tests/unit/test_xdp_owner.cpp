// Which program on an interface is ours (dataplane/xdp_attach.h): the one decision fulcrumd's
// start and fulcrum-decap's attach, detach and status share. The interfaces here are values as
// read_xdp returns them, including libxdp's dispatcher, which this lab's kernel cannot run
// (LAB.md): its main program is the dispatcher, never ours, and ours is among its components.
#include <catch2/catch.hpp>

#include "dataplane/xdp_attach.h"

using fulcrum::dataplane::find_namesake;
using fulcrum::dataplane::find_ours;
using fulcrum::dataplane::occupied_by_other;
using fulcrum::dataplane::XdpInterface;
using fulcrum::dataplane::XdpOwner;

namespace {

XdpInterface alone(unsigned id, const char* name)
{
    return {.interface = "eth0", .ifindex = 2, .any = true, .dispatcher = false, .mode = 1, .main_id = id,
            .programs = {{id, name}}};
}

// libxdp's dispatcher (id 100) running the given components.
XdpInterface dispatcher(std::vector<fulcrum::dataplane::XdpProgramRef> components)
{
    return {.interface = "eth0", .ifindex = 2, .any = true, .dispatcher = true, .mode = 1, .main_id = 100,
            .programs = std::move(components)};
}

const XdpOwner kBalancer{"balancer", 7, false};  // fulcrumd whose pins hold program 7
const XdpOwner kDecap{"decap", 9, true};        // fulcrum-decap whose pins hold program 9

}  // namespace

TEST_CASE("xdp owner: nothing attached is nobody's, and free to attach")
{
    XdpInterface none;
    CHECK(find_ours(none, kBalancer) == nullptr);
    CHECK(find_namesake(none, kBalancer) == nullptr);
    CHECK_FALSE(occupied_by_other(none, kBalancer));
}

TEST_CASE("xdp owner: a program alone is ours only by the pinned id (fulcrumd)")
{
    XdpInterface ours = alone(7, "balancer");
    REQUIRE(find_ours(ours, kBalancer) != nullptr);
    CHECK(find_ours(ours, kBalancer)->id == 7);
    CHECK_FALSE(occupied_by_other(ours, kBalancer));

    // Another fulcrumd's balancer (another pin path): same name, not ours, and not to be replaced.
    XdpInterface sibling = alone(8, "balancer");
    CHECK(find_ours(sibling, kBalancer) == nullptr);
    REQUIRE(find_namesake(sibling, kBalancer) != nullptr);
    CHECK(find_namesake(sibling, kBalancer)->id == 8);
    CHECK(occupied_by_other(sibling, kBalancer));

    XdpInterface foreign = alone(5, "xdp_firewall");
    CHECK(find_ours(foreign, kBalancer) == nullptr);
    CHECK(find_namesake(foreign, kBalancer) == nullptr);
    CHECK(occupied_by_other(foreign, kBalancer));

    // A first start (no pins): even a program named "balancer" is not ours.
    CHECK(find_ours(ours, XdpOwner{"balancer", 0, false}) == nullptr);
}

TEST_CASE("xdp owner: under the dispatcher, ours is found among the components, never the dispatcher")
{
    XdpInterface shared = dispatcher({{5, "xdp_firewall"}, {7, "balancer"}});
    const auto* ours = find_ours(shared, kBalancer);
    REQUIRE(ours != nullptr);
    CHECK(ours->id == 7);
    CHECK(find_namesake(shared, kBalancer) == nullptr);
    CHECK_FALSE(occupied_by_other(shared, kBalancer));

    // Only others' components: ours is absent, and the dispatcher runs ours beside them.
    XdpInterface others = dispatcher({{5, "xdp_firewall"}});
    CHECK(find_ours(others, kBalancer) == nullptr);
    CHECK_FALSE(occupied_by_other(others, kBalancer));

    // The dispatcher's own id is never taken for ours, even if the pins name it.
    CHECK(find_ours(others, XdpOwner{"balancer", 100, false}) == nullptr);

    // Two balancers in one dispatcher: ours by id, the other is a namesake.
    XdpInterface two = dispatcher({{8, "balancer"}, {7, "balancer"}});
    REQUIRE(find_ours(two, kBalancer) != nullptr);
    CHECK(find_ours(two, kBalancer)->id == 7);
    REQUIRE(find_namesake(two, kBalancer) != nullptr);
    CHECK(find_namesake(two, kBalancer)->id == 8);
}

TEST_CASE("xdp owner: fulcrum-decap adopts a program named decap when its pinned id is gone")
{
    CHECK(find_ours(alone(9, "decap"), kDecap)->id == 9);
    // Pins of an older program (9), a decap program 12 attached: ours (the pins were lost).
    CHECK(find_ours(alone(12, "decap"), kDecap)->id == 12);
    CHECK(occupied_by_other(alone(12, "xdp_pass"), kDecap));
    // Pinned id preferred over the name.
    XdpInterface shared = dispatcher({{12, "decap"}, {9, "decap"}, {5, "xdp_pass"}});
    CHECK(find_ours(shared, kDecap)->id == 9);
    CHECK(find_ours(dispatcher({{5, "xdp_pass"}}), kDecap) == nullptr);
}
