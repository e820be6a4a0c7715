// An apply is all or nothing over the REAL maps (plan/reconciler.h, dataplane/map_journal.h):
// the balancer object is loaded (not attached), a large change is applied through a decorator
// that fails its k-th write, for every k, failing before the write and after it; each time
// every map of the program must be byte for byte what it was before the apply, and the next
// apply without a fault must succeed. The change back is failed at every write too (before it).
//
// "Equal" here: every map the program uses, read whole (tests/bpf/map_dump.h): every key and
// value byte, including arrays' untouched slots, per-CPU counters and the flow tables; for
// maglev_tables the inner map ids themselves (the undo puts back the very same inner maps, it
// does not rebuild them) and the contents of each inner map. Next-hop entries included: the test
// makes every backend's entry valid, so the undo of the invalidations a change makes is checked.
#include <arpa/inet.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "faulty_writer.h"
#include "dataplane/balancer_program.h"
#include "map_dump.h"
#include "plan/desired.h"
#include "plan/reconciler.h"
#include "with_tables.h"

using namespace fulcrum;
using namespace fulcrum::plan;
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

ServicePlan service(const std::string& name, const std::string& vip, std::uint16_t port,
                    std::vector<BackendPlan> backends, std::uint32_t table_size = 251)
{
    ServicePlan s;
    s.name = name;
    s.vip = vip;
    inet_pton(AF_INET, vip.c_str(), &s.key.vip.w[0]);
    s.key.family = FULCRUM_AF_INET;
    s.key.port = htons(port);
    s.key.proto = IPPROTO_TCP;
    s.table_size = table_size;
    s.backends = std::move(backends);
    return s;
}

std::string addr(int service, int backend)
{
    return "198.18." + std::to_string(10 + service) + "." + std::to_string(1 + backend);
}

// Before: 8 services on 4 VIPs, 3 backends each. (Each table swapped in or out of maglev_tables
// waits for an RCU grace period in the kernel: hundreds of applies of a much larger change would
// take many minutes.)
Desired before()
{
    Desired d;
    d.settings.hash_seed = 99;
    for (int s = 0; s < 8; s++) {
        std::vector<BackendPlan> bs;
        for (int b = 0; b < 3; b++)
            bs.push_back(backend(addr(s, b)));
        d.services.push_back(service("s" + std::to_string(s), "198.18.100." + std::to_string(1 + s / 2),
                                     static_cast<std::uint16_t>(80 + s % 2), bs, s == 6 ? 509 : 251));
    }
    return d;
}

// After: s0, s1 removed (and VIP .1 with them); s2, s3 lose a backend, gain two and reweight the
// others; s4 drains a backend; s5 has one down; s6 shrinks its table; s7 grows it and changes
// port (re-created); s8, s9 new on a new VIP; the settings change.
Desired after()
{
    Desired d;
    d.settings.hash_seed = 99;
    d.settings.icmp_replies_per_second = 77;
    for (int s = 2; s < 8; s++) {
        std::vector<BackendPlan> bs;
        for (int b = 0; b < 3; b++) {
            if (s < 4 && b == 0)
                continue;
            BackendUse use = s == 4 && b == 1 ? BackendUse::draining : s == 5 && b == 2 ? BackendUse::down
                                                                                         : BackendUse::active;
            bs.push_back(backend(addr(s, b), s < 4 ? 100 + 50 * b : 100, use));
        }
        if (s < 4) {
            bs.push_back(backend(addr(s, 3)));
            bs.push_back(backend(addr(s, 4), 30));
        }
        d.services.push_back(service("s" + std::to_string(s), "198.18.100." + std::to_string(1 + s / 2),
                                     static_cast<std::uint16_t>(s == 7 ? 8080 : 80 + s % 2), bs,
                                     s == 6 ? 251 : s == 7 ? 1021 : 251));
    }
    for (int s = 8; s < 10; s++)
        d.services.push_back(service("s" + std::to_string(s), "198.18.101.1", static_cast<std::uint16_t>(80 + s),
                                     {backend(addr(s, 0)), backend(addr(s, 1))}));
    return d;
}

// Every applied backend gets a valid next-hop entry, so invalidations are seen (and must be undone).
void validate_nexthops(dataplane::BalancerProgram& program, const Reconciler& r)
{
    for (const auto& [name, svc] : r.services())
        for (const auto& [address, b] : svc.backends) {
            fulcrum_nexthop e{{0x02, 0xbe, 0, 0, 0, static_cast<std::uint8_t>(b.id)}, {0x02, 0, 0, 0, 0, 1}, 1, 1500, 1};
            REQUIRE(program.put_nexthop(b.id, e).ok());
        }
}

}  // namespace

TEST_CASE("a write failing anywhere in a large change leaves every real map exactly as before", "[apply][atomic]")
{
    dataplane::LoadOptions options;
    options.flow_capacity = 4096;
    auto loaded = dataplane::BalancerProgram::load(options);
    INFO(loaded.message());
    REQUIRE(loaded.ok());
    auto program = std::move(loaded).value();
    FaultyWriter faulty(*program);
    Reconciler r(faulty);

    // How many writes the change takes, each way: before -> after, and back.
    REQUIRE(r.apply(test::with_tables(before())).ok());
    faulty.disarm();
    REQUIRE(r.apply(test::with_tables(after())).ok());
    const int forward = faulty.writes();
    faulty.disarm();
    REQUIRE(r.apply(test::with_tables(before())).ok());
    const int backward = faulty.writes();
    REQUIRE(forward > 50);
    REQUIRE(backward > 50);
    std::printf("changes of %d and %d writes (tables prepared aside included), failed at each\n", forward, backward);

    // From `from` (applied), apply `to` failing at write k: every map as before; then `to` applies.
    auto fail_then_apply = [&](const Desired& to, int k, int total, FaultyWriter::Mode mode, const char* way) {
        INFO(way << ": failing write " << k << " of " << total
                 << (mode == FaultyWriter::Mode::before ? " (before it)" : " (after it)"));
        validate_nexthops(*program, r);
        const auto was = test::dump_program_maps(program->program_fd());
        faulty.arm(k, mode);
        Status s = r.apply(test::with_tables(to));
        REQUIRE(faulty.fired());
        REQUIRE_FALSE(s.ok());
        CHECK(s.message().find("undone: the maps hold the previous state") != std::string::npos);
        const std::string diff = test::first_difference(was, test::dump_program_maps(program->program_fd()));
        CHECK(diff == "");
        faulty.disarm();
        REQUIRE(r.apply(test::with_tables(to)).ok());
    };
    for (auto mode : {FaultyWriter::Mode::before, FaultyWriter::Mode::after})
        for (int k = 1; k <= std::max(forward, backward); k++) {
            // Applied: before. Forward change failed at k, then applied; then the way back.
            if (k <= forward)
                fail_then_apply(after(), k, forward, mode, "before -> after");
            else
                REQUIRE(r.apply(test::with_tables(after())).ok());
            // The way back fails before the write only: each table swap waits for an RCU grace
            // period in the kernel, and the test must stay well within its time limit.
            if (k <= backward && mode == FaultyWriter::Mode::before)
                fail_then_apply(before(), k, backward, mode, "after -> before");
            else
                REQUIRE(r.apply(test::with_tables(before())).ok());
        }
}

TEST_CASE("a change that cannot be planned writes nothing", "[apply][atomic]")
{
    dataplane::LoadOptions options;
    options.flow_capacity = 4096;
    auto loaded = dataplane::BalancerProgram::load(options);
    INFO(loaded.message());
    REQUIRE(loaded.ok());
    auto program = std::move(loaded).value();
    Reconciler r(*program);
    REQUIRE(r.apply(test::with_tables(before())).ok());
    const auto was = test::dump_program_maps(program->program_fd());
    Desired bad = after();
    bad.services.back().table_size = 1000;  // not a prime: Maglev cannot build it (the config refuses it too)
    TableCache tables;
    Status built = tables.build(bad);
    REQUIRE_FALSE(built.ok());
    CHECK(built.message().find("nothing was written") != std::string::npos);
    // The other services got their tables, the last none: the reconciler plans the first ones,
    // then refuses the whole change before its first write.
    Status s = r.apply(bad);
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("nothing was written") != std::string::npos);
    CHECK(test::first_difference(was, test::dump_program_maps(program->program_fd())) == "");
    REQUIRE(r.apply(test::with_tables(after())).ok());
}
