// An apply is all or nothing (plan/reconciler.h): for every write of a large change, a failure
// there leaves the maps (the fake's) and the reconciler's applied state exactly as before, names
// the write, and the next apply converges. The same over the real maps: tests/bpf/test_apply_atomic.cpp.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "fake_maps.h"
#include "faulty_writer.h"
#include "plan/desired.h"
#include "plan/reconciler.h"
#include "with_tables.h"

using namespace fulcrum;
using namespace fulcrum::plan;
using fulcrum::test::FakeMaps;
using fulcrum::test::FaultyWriter;

namespace {

BackendPlan backend(const std::string& address, std::uint32_t weight = 100, BackendUse use = BackendUse::active)
{
    BackendPlan b;
    b.address = address;
    inet_pton(AF_INET, address.c_str(), &b.addr.w[0]);
    b.family = FULCRUM_AF_INET;
    b.weight = weight;
    b.use = use;
    return b;
}

ServicePlan service(const std::string& name, const char* vip, std::uint16_t port, std::vector<BackendPlan> backends,
                    std::uint32_t table_size = 251)
{
    ServicePlan s;
    s.name = name;
    s.vip = vip;
    inet_pton(AF_INET, vip, &s.key.vip.w[0]);
    s.key.family = FULCRUM_AF_INET;
    s.key.port = htons(port);
    s.key.proto = IPPROTO_TCP;
    s.table_size = table_size;
    s.backends = std::move(backends);
    return s;
}

// Before: four services on four VIPs.
Desired before()
{
    Desired d;
    d.settings.hash_seed = 7;
    d.services.push_back(service("web", "198.18.100.1", 80,
                                 {backend("198.18.1.1"), backend("198.18.1.2"), backend("198.18.1.3")}, 251));
    d.services.push_back(service("api", "198.18.100.2", 443, {backend("198.18.2.1"), backend("198.18.2.2")}, 509));
    d.services.push_back(service("old", "198.18.100.3", 80, {backend("198.18.3.1"), backend("198.18.3.2")}));
    d.services.push_back(service("moving", "198.18.100.4", 80, {backend("198.18.4.1")}));
    return d;
}

// After: every kind of write. Settings change; web loses a backend, gains one, reweights one
// and grows its table; api drains a backend and shrinks its table; old goes (with its VIP);
// moving changes port (re-created); new services on a new VIP.
Desired after()
{
    Desired d;
    d.settings.hash_seed = 7;
    d.settings.new_flows_per_second = 5000;
    d.services.push_back(service("web", "198.18.100.1", 80,
                                 {backend("198.18.1.1", 300), backend("198.18.1.3"), backend("198.18.1.4")}, 509));
    d.services.push_back(service("api", "198.18.100.2", 443,
                                 {backend("198.18.2.1"), backend("198.18.2.2", 100, BackendUse::draining)}, 251));
    d.services.push_back(service("moving", "198.18.100.4", 8080, {backend("198.18.4.1"), backend("198.18.4.2")}));
    d.services.push_back(service("dns", "198.18.100.5", 53, {backend("198.18.5.1"), backend("198.18.5.2")}));
    d.services.push_back(service("dns2", "198.18.100.5", 54, {backend("198.18.5.1", 100, BackendUse::down)}));
    return d;
}

// The applied state, as comparable text: ids, keys, values, weights, tables.
std::string applied_text(const Reconciler& r)
{
    std::string out;
    for (const auto& [name, s] : r.services()) {
        out += name + " id " + std::to_string(s.id) + " size " + std::to_string(s.table_size) + " vip " + s.vip +
               " port " + std::to_string(ntohs(s.key.port)) + " input " + (s.table ? s.table->input : "-") + " table";
        for (std::uint32_t id : s.table_ids())
            out += " " + std::to_string(id);
        for (const auto& [address, b] : s.backends)
            out += "\n  " + address + " id " + std::to_string(b.id) + " state " + std::to_string(b.value.state) +
                   " service " + std::to_string(b.value.service_id) + " weight " + std::to_string(b.weight);
        out += "\n";
    }
    return out;
}

// Writes of a fault-free before -> after apply (prepare_table included).
int writes_of_change()
{
    FakeMaps maps;
    FaultyWriter faulty(maps);
    Reconciler r(faulty);
    REQUIRE(r.apply(test::with_tables(before())).ok());
    faulty.disarm();
    REQUIRE(r.apply(test::with_tables(after())).ok());
    return faulty.writes();
}

}  // namespace

TEST_CASE("a write that fails anywhere in a large change leaves maps and applied state as before", "[plan][atomic]")
{
    // The reference: the same two applies without a fault.
    FakeMaps clean;
    Reconciler rc(clean);
    REQUIRE(rc.apply(test::with_tables(before())).ok());
    REQUIRE(rc.apply(test::with_tables(after())).ok());
    const FakeMaps::State clean_after = clean.state();

    const int total = writes_of_change();
    REQUIRE(total > 30);  // every kind of write is in there
    for (auto mode : {FaultyWriter::Mode::before, FaultyWriter::Mode::after}) {
        for (int k = 1; k <= total; k++) {
            INFO("failing write " << k << " of " << total << (mode == FaultyWriter::Mode::before ? " (before)" : " (after)"));
            FakeMaps maps;
            FaultyWriter faulty(maps);
            Reconciler r(faulty);
            REQUIRE(r.apply(test::with_tables(before())).ok());
            const FakeMaps::State was = maps.state();
            const std::string applied_was = applied_text(r);

            faulty.arm(k, mode);
            Status s = r.apply(test::with_tables(after()));
            REQUIRE(faulty.fired());
            REQUIRE_FALSE(s.ok());
            CHECK(s.message().find("injected failure") != std::string::npos);
            CHECK(s.message().find("undone: the maps hold the previous state") != std::string::npos);
            CHECK(maps.state() == was);
            CHECK(applied_text(r) == applied_was);

            faulty.disarm();
            REQUIRE(r.apply(test::with_tables(after())).ok());
            CHECK(maps.state() == clean_after);
        }
    }
}

TEST_CASE("a failed write names the map entry it was writing", "[plan][atomic]")
{
    FakeMaps maps;
    FaultyWriter faulty(maps);
    Reconciler r(faulty);
    REQUIRE(r.apply(test::with_tables(before())).ok());
    // The first writes of the change prepare its new tables aside; then the settings.
    for (int k = 1;; k++) {
        INFO("failing write " << k);
        faulty.arm(k);
        Status s = r.apply(test::with_tables(after()));
        REQUIRE_FALSE(s.ok());
        if (s.message().rfind("apply: cannot prepare the maglev_tables entry ", 0) == 0) {
            CHECK(s.message().find("(before any live write)") != std::string::npos);
            continue;
        }
        CHECK(k > 1);
        CHECK(s.message().rfind("apply: cannot write the settings: injected failure of set_settings", 0) == 0);
        break;
    }
}

TEST_CASE("an undo that fails is said loudly, and the next apply rewrites every entry", "[plan][atomic]")
{
    FakeMaps clean;
    Reconciler rc(clean);
    REQUIRE(rc.apply(test::with_tables(before())).ok());
    REQUIRE(rc.apply(test::with_tables(after())).ok());

    FakeMaps maps;
    FaultyWriter faulty(maps);
    Reconciler r(faulty);
    REQUIRE(r.apply(test::with_tables(before())).ok());
    maps.fail_rollback = true;
    faulty.arm(20);
    Status s = r.apply(test::with_tables(after()));
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("UNDO FAILED, the maps may hold part of this change") != std::string::npos);
    CHECK(s.message().find("fake: injected undo failure") != std::string::npos);
    maps.fail_rollback = false;
    faulty.disarm();
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(after())).ok());
    // Every entry of the wanted state was written again, not only the difference.
    int puts = 0;
    for (const std::string& e : maps.log)
        puts += e.rfind("put_", 0) == 0 || e == "set_settings";
    CHECK(puts >= 1 + 2 + 4 + 4 + 7);  // settings, 2 VIPs, 4 services, 4 tables, 7 backends (at least)
    CHECK(maps.state() == clean.state());
    // The one after that is a diff again.
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(after())).ok());
    CHECK(maps.log.empty());
}
