// Health logic without sockets: rise/fall counting, the manager's scheduling and batching with a
// fake check runner on a real io_context, and the planner's use of health (down, panic).
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <deque>

#include "health/manager.h"
#include "health/state.h"
#include "plan/desired.h"

using namespace fulcrum;
using namespace std::chrono_literals;

namespace {

config::Address addr(const char* text)
{
    config::Address a;
    a.family = AF_INET;
    inet_pton(AF_INET, text, a.bytes);
    a.text = text;
    return a;
}

config::Config three_backends(unsigned rise = 2, unsigned fall = 3)
{
    config::Config cfg;
    config::Service s;
    s.name = "web";
    s.vip = addr("198.18.100.1");
    s.port = 80;
    s.healthcheck.interval = 20ms;
    s.healthcheck.timeout = 10ms;
    s.healthcheck.jitter = 0;
    s.healthcheck.rise = rise;
    s.healthcheck.fall = fall;
    for (const char* a : {"198.18.0.11", "198.18.0.12", "198.18.0.13"}) {
        config::Backend b;
        b.address = addr(a);
        s.backends.push_back(b);
    }
    cfg.services.push_back(s);
    cfg.tunnel.source_v4 = addr("198.18.0.1");
    return cfg;
}

// A check runner whose answers the test decides: per address, pass or fail.
struct FakeRunner {
    std::map<std::string, bool> passing;
    std::map<std::string, int> runs;
    boost::asio::io_context* io = nullptr;
    void operator()(const config::HealthCheck&, const health::Target& t, health::Done done)
    {
        runs[t.address.text]++;
        health::Result r;
        if (!passing[t.address.text]) {
            r.failure = health::Failure::refused;
            r.detail = "connect: Connection refused";
        }
        r.duration = 1ms;
        boost::asio::post(*io, [done, r] { done(r); });
    }
};

}  // namespace

TEST_CASE("rise and fall count consecutive results", "[health]")
{
    health::HealthState s(2, 3, false);
    CHECK_FALSE(s.up());
    CHECK_FALSE(s.feed(true));
    CHECK_FALSE(s.feed(false));  // a failure resets the passes
    CHECK_FALSE(s.feed(true));
    CHECK(s.feed(true));  // two in a row: up
    CHECK(s.up());
    CHECK_FALSE(s.feed(false));
    CHECK_FALSE(s.feed(false));
    CHECK_FALSE(s.feed(true));  // a pass resets the failures
    CHECK_FALSE(s.feed(false));
    CHECK_FALSE(s.feed(false));
    CHECK(s.feed(false));  // three in a row: down
    CHECK_FALSE(s.up());
    health::HealthState starts_up(2, 1, true);
    CHECK(starts_up.up());
    CHECK(starts_up.feed(false));
}

TEST_CASE("the manager checks every backend, batches changes, and starts new backends down", "[health]")
{
    boost::asio::io_context io;
    FakeRunner runner;
    runner.io = &io;
    runner.passing = {{"198.18.0.11", true}, {"198.18.0.12", true}, {"198.18.0.13", false}};
    int changes = 0;
    health::Manager m(
        io, [&](const config::HealthCheck& c, const health::Target& t, health::Done d) { runner(c, t, d); },
        [&] { changes++; }, 50ms);
    m.sync(three_backends());
    CHECK(m.down().size() == 3);  // nobody has passed `rise` checks yet
    io.run_for(200ms);
    CHECK(runner.runs["198.18.0.11"] >= 5);  // ~every 20 ms, never blocking each other
    CHECK(runner.runs["198.18.0.13"] >= 5);
    CHECK(m.down() == std::set<health::BackendKey>{{"web", "198.18.0.13"}});
    CHECK(changes == 1);  // two backends came up within one batch window: one callback

    // A flapping backend: many state changes, at most one callback per 50 ms window.
    runner.passing["198.18.0.11"] = false;
    io.run_for(100ms);
    CHECK(m.down().contains({"web", "198.18.0.11"}));
    auto reports = m.snapshot();
    CHECK(reports.at({"web", "198.18.0.11"}).failures.at("refused") >= 3);
    CHECK(reports.at({"web", "198.18.0.13"}).last.detail == "connect: Connection refused");
    const auto before = changes;
    for (int i = 0; i < 10; i++) {
        runner.passing["198.18.0.12"] = i % 2 == 0;  // flips every 30 ms
        io.run_for(30ms);
    }
    CHECK(changes - before <= 8);  // 300 ms / 50 ms window (+ slack); not one per check
    CHECK(m.batches() == static_cast<std::uint64_t>(changes));

    // A backend removed from the config stops being checked; a new one starts down.
    config::Config next = three_backends();
    next.services[0].backends.pop_back();
    config::Backend b;
    b.address = addr("198.18.0.14");
    next.services[0].backends.push_back(b);
    runner.passing["198.18.0.14"] = true;
    m.sync(next);
    CHECK(m.down().contains({"web", "198.18.0.14"}));
    const int runs13 = runner.runs["198.18.0.13"];
    io.run_for(120ms);
    CHECK(runner.runs["198.18.0.13"] == runs13);
    CHECK_FALSE(m.down().contains({"web", "198.18.0.14"}));
    CHECK_FALSE(m.snapshot().contains({"web", "198.18.0.13"}));
}

TEST_CASE("many backends' checks run from one timer, several per wake, none early beyond the slack, "
          "a removed backend's due check never runs",
          "[health]")
{
    boost::asio::io_context io;
    std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> starts;
    std::size_t runs = 0;
    health::Manager m(
        io,
        [&](const config::HealthCheck&, const health::Target& t, health::Done done) {
            starts[t.address.text].push_back(std::chrono::steady_clock::now());
            runs++;
            health::Result r;
            r.duration = 1ms;
            boost::asio::post(io, [done, r] { done(r); });
        },
        [] {});
    config::Config cfg = three_backends(1, 1);
    auto& svc = cfg.services[0];
    svc.healthcheck.interval = 100ms;
    svc.healthcheck.timeout = 50ms;
    svc.backends.clear();
    for (int i = 0; i < 500; i++) {
        std::string text = "198.18." + std::to_string(1 + i / 250) + "." + std::to_string(1 + i % 250);
        config::Backend b;
        b.address = addr(text.c_str());
        svc.backends.push_back(b);
    }
    m.sync(cfg);

    // io.run_one runs one handler: with a timer per backend, every check was a handler of its own.
    std::size_t handlers_with_checks = 0;
    const auto end = std::chrono::steady_clock::now() + 1s;
    while (std::chrono::steady_clock::now() < end) {
        const std::size_t before = runs;
        io.run_one_for(10ms);
        handlers_with_checks += runs > before;
    }
    REQUIRE(handlers_with_checks > 0);
    CHECK(starts.size() == 500);  // every backend checked
    CHECK(runs / handlers_with_checks >= 5);  // 5 due per ms: a 10 ms slack serves dozens per wake
    std::size_t early = 0, gaps = 0;
    for (const auto& [address, times] : starts) {
        CHECK(times.size() >= 4);  // ~10 in the second; none lost
        for (std::size_t i = 1; i < times.size(); i++, gaps++)
            early += times[i] - times[i - 1] < 90ms;  // 100 ms interval, no jitter, up to 10 ms early
    }
    REQUIRE(gaps > 1000);
    CHECK(early == 0);

    // Removing every backend but one: their due checks stay in the heap, stale, and never run.
    config::Config one = cfg;
    one.services[0].backends.resize(1);
    m.sync(one);
    const std::size_t runs_before = runs;
    const std::string kept = one.services[0].backends[0].address.text;
    const std::size_t kept_before = starts[kept].size();
    io.run_for(300ms);
    CHECK(runs - runs_before == starts[kept].size() - kept_before);  // only the kept backend ran
    CHECK(starts[kept].size() - kept_before >= 1);
}

TEST_CASE("backends adopted from a running data plane start up", "[health]")
{
    boost::asio::io_context io;
    health::Manager m(io, [](const config::HealthCheck&, const health::Target&, health::Done) {}, [] {});
    m.sync(three_backends(), {{"web", "198.18.0.12"}});
    CHECK(m.down() == std::set<health::BackendKey>{{"web", "198.18.0.11"}, {"web", "198.18.0.13"}});
}

TEST_CASE("backends checked with their service's check share one check object; a backend's own is its own",
          "[health]")
{
    // 100,000 backends each holding a copy of a ~550-byte check was 55 MiB of the daemon.
    boost::asio::io_context io;
    std::map<std::string, const config::HealthCheck*> seen;
    health::Manager m(
        io,
        [&](const config::HealthCheck& c, const health::Target& t, health::Done d) {
            seen[t.address.text] = &c;
            boost::asio::post(io, [d] { d(health::Result{}); });
        },
        [] {});
    config::Config cfg = three_backends();
    config::HealthCheck own = cfg.services[0].healthcheck;
    own.interval = 10ms;
    cfg.services[0].backends[2].healthcheck = std::make_shared<const config::HealthCheck>(own);
    m.sync(cfg);
    for (int i = 0; i < 100 && seen.size() < 3; i++)  // until each backend was checked once
        io.run_for(10ms);
    REQUIRE(seen.size() == 3);
    CHECK(seen["198.18.0.11"] == seen["198.18.0.12"]);
    CHECK(seen["198.18.0.13"] != seen["198.18.0.11"]);
    CHECK(seen["198.18.0.13"]->interval == 10ms);
}

TEST_CASE("down_after foresees a sync without making it: a reload plans with it, syncs only once applied",
          "[health]")
{
    boost::asio::io_context io;
    health::Manager m(io, [](const config::HealthCheck&, const health::Target&, health::Done) {}, [] {});
    m.sync(three_backends(), {{"web", "198.18.0.11"}, {"web", "198.18.0.12"}});  // .13 down
    const auto reports = m.snapshot();
    config::Config next = three_backends();
    next.services[0].backends.erase(next.services[0].backends.begin());  // .11 goes
    config::Backend fresh, starts_up;
    fresh.address = addr("198.18.0.14");
    starts_up.address = addr("198.18.0.15");
    config::HealthCheck up_at_once = next.services[0].healthcheck;
    up_at_once.start_up = true;
    starts_up.healthcheck = std::make_shared<const config::HealthCheck>(up_at_once);
    next.services[0].backends.push_back(fresh);
    next.services[0].backends.push_back(starts_up);
    const auto foreseen = m.down_after(next);
    CHECK(foreseen == std::set<health::BackendKey>{{"web", "198.18.0.13"}, {"web", "198.18.0.14"}});
    // Nothing changed: .11 is still checked and up, its report (and its age) the same.
    CHECK(m.down() == std::set<health::BackendKey>{{"web", "198.18.0.13"}});
    CHECK(m.snapshot().size() == reports.size());
    CHECK(m.snapshot().at({"web", "198.18.0.11"}).last_change == reports.at({"web", "198.18.0.11"}).last_change);
    m.sync(next);
    CHECK(m.down() == foreseen);
}

TEST_CASE("a sync through the kept config leaves equal services alone and follows every change of the others",
          "[health]")
{
    // A reload of 1,000 services that changes one: the others' 99,900 backends are not looked at.
    boost::asio::io_context io;
    std::map<std::string, const config::HealthCheck*> check_of;
    std::map<std::string, std::uint16_t> port_of;
    health::Manager m(
        io,
        [&](const config::HealthCheck& c, const health::Target& t, health::Done d) {
            check_of[t.address.text] = &c;
            port_of[t.address.text] = t.port;
            boost::asio::post(io, [d] { d(health::Result{}); });
        },
        [] {});
    auto two_services = [] {
        config::Config cfg = three_backends();
        config::Service api = cfg.services[0];
        api.name = "api";
        for (std::size_t i = 0; i < api.backends.size(); i++)
            api.backends[i].address = addr(i == 0 ? "198.18.0.21" : i == 1 ? "198.18.0.22" : "198.18.0.23");
        cfg.services.push_back(api);
        return cfg;
    };
    auto run_until_checked = [&](std::size_t n) {
        for (int i = 0; i < 100 && check_of.size() < n; i++)
            io.run_for(10ms);
    };
    m.sync(std::make_shared<const config::Config>(two_services()), {{"web", "198.18.0.11"}});
    run_until_checked(6);
    REQUIRE(check_of.size() == 6);
    const config::HealthCheck* web_check = check_of["198.18.0.12"];
    const auto web_reports = m.snapshot();

    // The next file: web equal (other objects, same values); api's .22 gets its own check on
    // port 8080 and .23 goes.
    config::Config next = two_services();
    config::HealthCheck own = next.services[1].healthcheck;
    own.port = 8080;
    next.services[1].backends[1].healthcheck = std::make_shared<const config::HealthCheck>(own);
    next.services[1].backends.pop_back();
    const auto foreseen = m.down_after(next);
    for (const auto& key : m.down())
        if (key.first == "web" || key.second != "198.18.0.23")
            CHECK(foreseen.contains(key));
    m.sync(std::make_shared<const config::Config>(next));
    CHECK(m.down() == foreseen);
    CHECK_FALSE(m.snapshot().contains({"api", "198.18.0.23"}));
    CHECK(m.snapshot().size() == 5);
    check_of.clear();
    run_until_checked(5);
    REQUIRE(check_of.size() == 5);
    CHECK(port_of["198.18.0.22"] == 8080);  // the changed service follows its change
    CHECK(port_of["198.18.0.21"] == 80);
    CHECK(check_of["198.18.0.12"] == web_check);  // the equal one keeps its entries as they were
    CHECK(m.snapshot().at({"web", "198.18.0.11"}).last_change == web_reports.at({"web", "198.18.0.11"}).last_change);

    // A change of web's service check (its port) is seen as a change too.
    config::Config third = next;
    third.services[0].port = 81;
    third.services[0].healthcheck.rise = 1;
    m.sync(std::make_shared<const config::Config>(third));
    check_of.clear();
    run_until_checked(5);
    CHECK(port_of["198.18.0.12"] == 81);
    CHECK(check_of["198.18.0.12"] != web_check);
}

TEST_CASE("planner: down backends leave the table; below min_healthy every non-drained one is used", "[health]")
{
    config::Config cfg = three_backends();
    plan::Overrides o;
    o.down = {{"web", "198.18.0.11"}};
    plan::Desired d = plan::make_desired(cfg, 0, o);
    CHECK(d.services[0].backends[0].use == plan::BackendUse::down);
    CHECK(d.services[0].backends[1].use == plan::BackendUse::active);
    CHECK_FALSE(d.services[0].panic);
    CHECK(d.services[0].healthy == 2);

    o.down = {{"web", "198.18.0.11"}, {"web", "198.18.0.12"}, {"web", "198.18.0.13"}};
    d = plan::make_desired(cfg, 0, o);
    CHECK(d.services[0].panic);  // default min_healthy 1, none healthy
    for (const auto& b : d.services[0].backends)
        CHECK(b.use == plan::BackendUse::active);

    // A drained backend is not used in panic, and does not count (it is down too: down wins).
    o.drained = {{"web", "198.18.0.13"}};
    d = plan::make_desired(cfg, 0, o);
    CHECK(d.services[0].panic);
    CHECK(d.services[0].backends[2].use == plan::BackendUse::down);
    CHECK(d.services[0].backends[0].use == plan::BackendUse::active);

    // min_healthy as a fraction: 50 % of 3 non-drained = 2 needed.
    cfg.services[0].min_healthy = {true, 0.5};
    o = {};
    o.down = {{"web", "198.18.0.11"}, {"web", "198.18.0.12"}};
    d = plan::make_desired(cfg, 0, o);
    CHECK(d.services[0].needed == 2);
    CHECK(d.services[0].panic);
    o.down = {{"web", "198.18.0.11"}};
    d = plan::make_desired(cfg, 0, o);
    CHECK_FALSE(d.services[0].panic);
    CHECK(d.services[0].backends[0].use == plan::BackendUse::down);
}

// Issue 13 point 4: a drained backend that fails its checks would keep its flows (TCP entries
// never expire) and black-hole its clients; down wins over drain, whoever drained it.
TEST_CASE("planner: a drained backend that is down is down (flows re-hashed), up it is draining", "[health]")
{
    enum class Drain { config_state, config_weight0, operator_ };
    for (Drain how : {Drain::config_state, Drain::config_weight0, Drain::operator_}) {
        CAPTURE(static_cast<int>(how));
        config::Config cfg = three_backends();
        plan::Overrides o;
        if (how == Drain::config_state)
            cfg.services[0].backends[0].state = config::BackendState::drain;
        else if (how == Drain::config_weight0)
            cfg.services[0].backends[0].weight = 0;
        else
            o.drained = {{"web", "198.18.0.11"}};

        // Drained and up: draining (out of the table, flows stay); the others are not touched.
        plan::Desired d = plan::make_desired(cfg, 0, o);
        const plan::ServicePlan* s = &d.services[0];
        CHECK(s->backends[0].use == plan::BackendUse::draining);
        CHECK(s->backends[0].drained);
        CHECK(s->backends[1].use == plan::BackendUse::active);
        CHECK_FALSE(s->backends[1].drained);
        CHECK(s->healthy == 2);
        CHECK_FALSE(s->panic);

        // Drained and down: down (out of the table, flows re-hashed at once).
        o.down = {{"web", "198.18.0.11"}};
        d = plan::make_desired(cfg, 0, o);
        s = &d.services[0];
        CHECK(s->backends[0].use == plan::BackendUse::down);
        CHECK(s->backends[0].drained);
        CHECK(s->backends[1].use == plan::BackendUse::active);
        CHECK(s->backends[2].use == plan::BackendUse::active);
        // The panic threshold still counts only the non-drained backends: 2 of 2 healthy.
        CHECK(s->healthy == 2);
        CHECK_FALSE(s->panic);

        // Panic rules unchanged: every non-drained backend is used (down or not); the drained
        // one is not, and being down its flows are re-hashed rather than kept.
        o.down = {{"web", "198.18.0.11"}, {"web", "198.18.0.12"}, {"web", "198.18.0.13"}};
        d = plan::make_desired(cfg, 0, o);
        s = &d.services[0];
        CHECK(s->panic);
        CHECK(s->healthy == 0);
        CHECK(s->backends[0].use == plan::BackendUse::down);
        CHECK(s->backends[1].use == plan::BackendUse::active);
        CHECK(s->backends[2].use == plan::BackendUse::active);

        // Up again: back to draining (its flows were re-hashed; it still takes no new ones).
        o.down = {};
        d = plan::make_desired(cfg, 0, o);
        CHECK(d.services[0].backends[0].use == plan::BackendUse::draining);
    }
}
