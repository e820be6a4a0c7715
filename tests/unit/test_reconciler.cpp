// Reconciler: desired state -> map writes, against the in-memory fake. What is written, what is
// not, and in which order (the order is what keeps packets from seeing half-made changes).
#include <arpa/inet.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "fake_maps.h"
#include "config/config.h"
#include "plan/desired.h"
#include "maglev/maglev.h"
#include "plan/reconciler.h"
#include "with_tables.h"

using namespace fulcrum;
using namespace fulcrum::plan;
using fulcrum::test::FakeMaps;

namespace {

fulcrum_addr addr4(const char* text)
{
    fulcrum_addr a{};
    inet_pton(AF_INET, text, &a.w[0]);
    return a;
}

BackendPlan backend(const std::string& address, std::uint32_t weight = 100, BackendUse use = BackendUse::active)
{
    BackendPlan b;
    b.address = address;
    b.addr = addr4(address.c_str());
    b.family = FULCRUM_AF_INET;
    b.weight = weight;
    b.use = use;
    return b;
}

ServicePlan service(const std::string& name, const char* vip, std::uint16_t port,
                    std::vector<BackendPlan> backends, std::uint32_t table_size = 251)
{
    ServicePlan s;
    s.name = name;
    s.vip = vip;
    s.key.vip = addr4(vip);
    s.key.family = FULCRUM_AF_INET;
    s.key.port = htons(port);
    s.key.proto = IPPROTO_TCP;
    s.table_size = table_size;
    s.backends = std::move(backends);
    return s;
}

Desired two_services()
{
    Desired d;
    d.settings.hash_seed = 7;
    d.services.push_back(service("web", "198.18.100.1", 80, {backend("198.18.1.1"), backend("198.18.1.2")}));
    d.services.push_back(service("api", "198.18.100.2", 443, {backend("198.18.2.1"), backend("198.18.2.2")}));
    return d;
}

bool logged(const FakeMaps& maps, const std::string& entry)
{
    return std::find(maps.log.begin(), maps.log.end(), entry) != maps.log.end();
}

std::size_t position(const FakeMaps& maps, const std::string& entry)
{
    auto it = std::find(maps.log.begin(), maps.log.end(), entry);
    REQUIRE(it != maps.log.end());
    return static_cast<std::size_t>(it - maps.log.begin());
}

// The address each table slot sends to: comparable across balancers whose ids differ.
std::vector<std::string> slots_by_address(const FakeMaps& maps, const Reconciler& r, const std::string& name)
{
    const AppliedService& svc = r.services().at(name);
    std::map<std::uint32_t, std::string> address_of;
    for (const auto& [address, b] : svc.backends)
        address_of[b.id] = address;
    std::vector<std::string> out;
    for (std::uint32_t id : maps.tables.at(svc.id))
        out.push_back(id ? address_of.at(id) : "-");
    return out;
}

}  // namespace

TEST_CASE("a first apply writes services, VIPs, backends and full tables", "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    CHECK(maps.settings.hash_seed == 7);
    CHECK(maps.services.size() == 2);
    CHECK(maps.vips.size() == 2);
    CHECK(maps.backends.size() == 4);
    const AppliedService& web = r.services().at("web");
    const AppliedService& api = r.services().at("api");
    CHECK(web.id != api.id);
    REQUIRE(maps.tables.at(web.id).size() == 251);
    std::set<std::uint32_t> web_ids(maps.tables.at(web.id).begin(), maps.tables.at(web.id).end());
    CHECK(web_ids == std::set<std::uint32_t>{web.backends.at("198.18.1.1").id, web.backends.at("198.18.1.2").id});
    for (const auto& [address, b] : web.backends) {
        CHECK(maps.backends.at(b.id).state == FULCRUM_BACKEND_ACTIVE);
        CHECK(maps.backends.at(b.id).service_id == web.id);
    }
    // Backends are in place before the table that names them.
    CHECK(position(maps, "put_backend " + std::to_string(web.backends.at("198.18.1.1").id) + " state=1") <
          position(maps, "put_table " + std::to_string(web.id)));
}

TEST_CASE("applying the same state again writes nothing", "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    CHECK(maps.log.empty());
}

TEST_CASE("adding or removing a service leaves every other service untouched", "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    const std::uint32_t web = r.services().at("web").id;
    const auto web_table = maps.tables.at(web);
    const auto web_backends = r.services().at("web").backends;

    Desired more = two_services();
    more.services.push_back(service("dns", "198.18.100.3", 53, {backend("198.18.3.1")}));
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(more)).ok());
    for (const std::string& entry : maps.log) {
        INFO(entry);
        CHECK(entry != "put_table " + std::to_string(web));
        for (const auto& [address, b] : web_backends)
            CHECK(entry.rfind("put_backend " + std::to_string(b.id) + " ", 0) != 0);
    }
    CHECK(maps.tables.at(web) == web_table);

    Desired fewer = more;
    fewer.services.erase(fewer.services.begin() + 1);  // api goes, web and dns stay
    const AppliedService api = r.services().at("api");
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(fewer)).ok());
    CHECK(maps.tables.at(web) == web_table);
    CHECK_FALSE(maps.tables.contains(api.id));
    CHECK(maps.services.size() == 2);  // web and dns
    CHECK(maps.vips.size() == 2);      // api's VIP is gone
    for (const auto& [address, b] : api.backends)
        CHECK(maps.backends.at(b.id).state == FULCRUM_BACKEND_UNUSED);
    CHECK(logged(maps, "delete_service"));
    CHECK(logged(maps, "delete_vip"));
}

TEST_CASE("an apply that changes one service leaves the others' applied values as they are, uncopied", "[plan]")
{
    // At 1,000 services a reload that changes one plans one: the others are compared, not copied.
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    const AppliedService* api = &r.services().at("api");
    const auto api_table = api->table;
    const auto api_backends = api->backends;
    const AppliedService* web = &r.services().at("web");

    Desired heavier = two_services();
    heavier.services[0].backends[0].weight = 300;  // web changes
    heavier = test::with_tables(heavier);
    Diff diff;
    REQUIRE(r.preview(heavier, &diff).ok());
    REQUIRE(diff.services.size() == 2);
    CHECK(diff.services[0].change == ServiceDiff::Change::changed);
    CHECK(diff.services[1].change == ServiceDiff::Change::unchanged);
    maps.log.clear();
    REQUIRE(r.apply(heavier).ok());
    CHECK(&r.services().at("api") == api);  // the same object: neither planned nor copied
    CHECK(r.services().at("api").table == api_table);
    CHECK(r.services().at("web").table->input == heavier.services[0].table->input);
    CHECK(&r.services().at("web") == web);  // replaced in place (its map node stays)
    CHECK(logged(maps, "put_table " + std::to_string(r.services().at("web").id)));
    for (const std::string& entry : maps.log) {
        INFO(entry);
        CHECK(entry != "put_table " + std::to_string(api->id));
        for (const auto& [address, b] : api_backends)
            CHECK(entry.rfind("put_backend " + std::to_string(b.id) + " ", 0) != 0);
    }

    // Anything of api that the maps hold, changed, is planned again: a backend's state (not in
    // the table's input), then its table size.
    Desired down = heavier;
    down.services[1].backends[1].use = BackendUse::down;
    down = test::with_tables(down);
    maps.log.clear();
    REQUIRE(r.apply(down).ok());
    CHECK(maps.backends.at(r.services().at("api").backends.at("198.18.2.2").id).state == FULCRUM_BACKEND_DOWN);
    Desired bigger = down;
    bigger.services[1].table_size = 257;
    bigger = test::with_tables(bigger);
    REQUIRE(r.apply(bigger).ok());
    CHECK(maps.tables.at(r.services().at("api").id).size() == 257);
    CHECK(r.services().at("api").table_size == 257);
}

TEST_CASE("a VIP stays while another service still uses it; port 0 sets its flags", "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d;
    d.services.push_back(service("web", "198.18.100.1", 80, {backend("198.18.1.1")}));
    d.services.push_back(service("all", "198.18.100.1", 0, {backend("198.18.1.2")}));
    REQUIRE(r.apply(test::with_tables(d)).ok());
    REQUIRE(maps.vips.size() == 1);
    CHECK(maps.vips.begin()->second.flags == (FULCRUM_VIP_PORT0_TCP | FULCRUM_VIP_SERVING));
    d.services.pop_back();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    REQUIRE(maps.vips.size() == 1);
    CHECK(maps.vips.begin()->second.flags == FULCRUM_VIP_SERVING);
}

TEST_CASE("a VIP is marked serving (echo answered) only while a service has a backend in its table",
          "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d;
    d.services.push_back(service("web", "198.18.100.1", 80,
                                 {backend("198.18.1.1", 100, BackendUse::down),
                                  backend("198.18.1.2", 0), backend("198.18.1.3", 100, BackendUse::draining)}));
    REQUIRE(r.apply(test::with_tables(d)).ok());
    REQUIRE(maps.vips.size() == 1);
    CHECK(maps.vips.begin()->second.flags == 0);
    d.services[0].backends[0].use = BackendUse::active;
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.vips.begin()->second.flags == FULCRUM_VIP_SERVING);
    d.services[0].backends[0].use = BackendUse::down;
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.vips.begin()->second.flags == 0);
}

TEST_CASE("drain and weight 0 take a backend out of the table after the swap, flows kept", "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    const AppliedService web = r.services().at("web");
    const std::uint32_t drained = web.backends.at("198.18.1.2").id;

    Desired d = two_services();
    d.services[0].backends[1].use = BackendUse::draining;
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.backends.at(drained).state == FULCRUM_BACKEND_DRAINING);
    for (std::uint32_t id : maps.tables.at(web.id))
        CHECK(id != drained);
    CHECK(position(maps, "put_table " + std::to_string(web.id)) <
          position(maps, "put_backend " + std::to_string(drained) + " state=2"));

    // Undrain: active again, written before the table that names it.
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    CHECK(position(maps, "put_backend " + std::to_string(drained) + " state=1") <
          position(maps, "put_table " + std::to_string(web.id)));
}

TEST_CASE("a draining backend that goes down is written down (its flows re-hashed), then draining again",
          "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d = two_services();
    d.services[0].backends[1].use = BackendUse::draining;
    REQUIRE(r.apply(test::with_tables(d)).ok());
    const AppliedService web = r.services().at("web");
    const std::uint32_t id = web.backends.at("198.18.1.2").id;
    CHECK(maps.backends.at(id).state == FULCRUM_BACKEND_DRAINING);

    d.services[0].backends[1].use = BackendUse::down;
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.backends.at(id).state == FULCRUM_BACKEND_DOWN);
    CHECK(logged(maps, "put_backend " + std::to_string(id) + " state=3"));
    CHECK_FALSE(logged(maps, "put_table " + std::to_string(web.id)));  // the table did not change

    d.services[0].backends[1].use = BackendUse::draining;
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.backends.at(id).state == FULCRUM_BACKEND_DRAINING);
}

TEST_CASE("a removed backend is freed after the table swap; a changed weight moves only its share", "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d;
    std::vector<BackendPlan> ten;
    for (int i = 1; i <= 10; i++)
        ten.push_back(backend("198.18.1." + std::to_string(i)));
    d.services.push_back(service("web", "198.18.100.1", 80, ten, 65537));
    REQUIRE(r.apply(test::with_tables(d)).ok());
    const auto before = slots_by_address(maps, r, "web");

    Desired heavier = d;
    heavier.services[0].backends[0].weight = 200;  // one backend doubles
    REQUIRE(r.apply(test::with_tables(heavier)).ok());
    const auto after = slots_by_address(maps, r, "web");
    std::size_t moved = 0, to_heavy = 0;
    for (std::size_t i = 0; i < before.size(); i++) {
        if (before[i] != after[i]) {
            moved++;
            to_heavy += after[i] == "198.18.1.1";
        }
    }
    // Ideal: 1/10 -> 2/11 of the slots, i.e. ~8.2 % move, all of them to the heavier backend.
    CHECK(moved < before.size() * 10 / 100);
    CHECK(to_heavy > moved * 90 / 100);

    const std::uint32_t removed = r.services().at("web").backends.at("198.18.1.10").id;
    Desired fewer = heavier;
    fewer.services[0].backends.pop_back();
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(fewer)).ok());
    CHECK(maps.backends.at(removed).state == FULCRUM_BACKEND_UNUSED);
    CHECK(position(maps, "put_table " + std::to_string(r.services().at("web").id)) <
          position(maps, "put_backend " + std::to_string(removed) + " state=0"));
}

TEST_CASE("table size changes keep every index inside the table a packet finds", "[plan]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d;
    d.services.push_back(service("web", "198.18.100.1", 80, {backend("198.18.1.1")}, 251));
    REQUIRE(r.apply(test::with_tables(d)).ok());
    const std::string id = std::to_string(r.services().at("web").id);

    d.services[0].table_size = 509;  // grow: table first, then the modulus
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(position(maps, "put_table " + id) < position(maps, "put_service " + id + " size=509"));

    d.services[0].table_size = 127;  // shrink: modulus first, then the table
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(position(maps, "put_service " + id + " size=127") < position(maps, "put_table " + id));
}

TEST_CASE("a hash policy change rewrites the service entry only, and is adopted after a restart", "[plan][hash]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d = two_services();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    const std::string id = std::to_string(r.services().at("web").id);

    d.services[0].hash_omit = FULCRUM_HASH_NO_SRC_PORT | FULCRUM_HASH_NO_DST_PORT;  // src-ip
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    // The same table (a policy is no table input), one write: the entry with the new policy.
    CHECK(maps.log == std::vector<std::string>{"put_service " + id + " size=251 hash_omit=6"});
    CHECK(r.services().at("web").hash_omit == 6u);
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.log.empty());

    // A restarted daemon reads the policy back from the entry: the same file writes nothing for it.
    Reconciler second(maps);
    second.adopt(maps.snapshot(), d);
    CHECK(second.services().at("web").hash_omit == 6u);
    CHECK(second.services().at("api").hash_omit == 0u);
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    for (const std::string& entry : maps.log)
        CHECK(entry.rfind("put_service", 0) != 0);  // adopted tables are rewritten, entries are not

    // Back to the 5-tuple: the entry again.
    d.services[0].hash_omit = 0;
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    CHECK(logged(maps, "put_service " + id + " size=251"));
}

TEST_CASE("preview: a hash policy change names both policies and the share of new flows that move",
          "[plan][diff][hash]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    Desired next = two_services();
    next.services[0].hash_omit = FULCRUM_HASH_NO_SRC_PORT;  // src-ip-dst-port
    Diff diff;
    REQUIRE(r.preview(test::with_tables(next), &diff).ok());
    CHECK(diff.writes == 1);
    for (const ServiceDiff& s : diff.services) {
        CAPTURE(s.name);
        if (s.name == "api") {
            CHECK(s.change == ServiceDiff::Change::unchanged);
            CHECK(s.hash_before == "5-tuple");
            CHECK(s.hash_after == "5-tuple");
            continue;
        }
        CHECK(s.change == ServiceDiff::Change::changed);
        CHECK(s.hash_before == "5-tuple");
        CHECK(s.hash_after == "src-ip-dst-port");
        CHECK_FALSE(s.table_rebuilt);
        CHECK(s.leaving_backends.empty());  // recorded flows keep their backend
        // Two backends of about half the slots each: a new flow keeps its backend half the time.
        CHECK(s.slots_moved > 0.45);
        CHECK(s.slots_moved < 0.55);
    }
    CHECK(hash_policy_name(FULCRUM_HASH_NO_SRC_ADDR | FULCRUM_HASH_NO_SRC_PORT) == "dst-port");
    CHECK(hash_policy_name(FULCRUM_HASH_NO_SRC_ADDR) == "omit 1");
}

// A UDP service with QUIC routing (server id 16 bits at DCID byte 0) and server ids 1, 2, 3.
Desired quic_services()
{
    Desired d = two_services();
    ServicePlan q = service("quic", "198.18.100.3", 443,
                            {backend("198.18.3.1"), backend("198.18.3.2"), backend("198.18.3.3")});
    q.key.proto = IPPROTO_UDP;
    q.quic_id_offset = 1;
    q.quic_id_bits = 16;
    for (std::uint32_t i = 0; i < 3; i++)
        q.backends[i].server_id = i + 1;
    d.services.push_back(q);
    return d;
}

TEST_CASE("QUIC server ids: written with the service, changed, moved, removed, kept over drains and restarts",
          "[plan][quic]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d = quic_services();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    const AppliedService& q = r.services().at("quic");
    const std::uint32_t sid = q.id;
    auto id_of = [&](const std::string& address) { return r.services().at("quic").backends.at(address).id; };
    using Key = std::pair<std::uint32_t, std::uint32_t>;
    CHECK(maps.quic_ids == std::map<Key, std::uint32_t>{{{sid, 1}, id_of("198.18.3.1")},
                                                         {{sid, 2}, id_of("198.18.3.2")},
                                                         {{sid, 3}, id_of("198.18.3.3")}});
    bool found = false;
    for (const auto& [key, value] : maps.services)
        if (value.id == sid) {
            found = true;
            CHECK(value.quic_id_offset == 1);
            CHECK(value.quic_id_bits == 16);
        }
    CHECK(found);
    // The ids go in after the backend they name (an id is followed only while its backend is active).
    CHECK(position(maps, "put_backend " + std::to_string(id_of("198.18.3.2")) + " state=1") <
          position(maps, "put_quic_id " + std::to_string(sid) + "/2 -> " + std::to_string(id_of("198.18.3.2"))));

    // The same file again: nothing written.
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.log.empty());

    // A drain changes the backend's state only: its id stays (the data plane ignores it while it
    // is not active), so an undrain needs no id write either.
    d.services[2].backends[1].use = BackendUse::draining;
    d.services[2].backends[1].drained = true;
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    for (const std::string& w : maps.log)
        CHECK(w.find("quic_id") == std::string::npos);
    CHECK(maps.quic_ids.size() == 3);
    CHECK(maps.backends.at(id_of("198.18.3.2")).state == FULCRUM_BACKEND_DRAINING);

    // A changed id: the old key goes, the new one comes; swapped ids: both rewritten, no delete.
    d.services[2].backends[0].server_id = 9;
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(logged(maps, "delete_quic_id " + std::to_string(sid) + "/1"));
    CHECK(logged(maps, "put_quic_id " + std::to_string(sid) + "/9 -> " + std::to_string(id_of("198.18.3.1"))));
    CHECK(maps.quic_ids.size() == 3);
    std::swap(d.services[2].backends[1].server_id, d.services[2].backends[2].server_id);
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.log == std::vector<std::string>{
                          "put_quic_id " + std::to_string(sid) + "/2 -> " + std::to_string(id_of("198.18.3.3")),
                          "put_quic_id " + std::to_string(sid) + "/3 -> " + std::to_string(id_of("198.18.3.2"))});

    // A restarted daemon adopts the ids with the backends: the same file writes no id.
    Reconciler second(maps);
    second.adopt(maps.snapshot(), d);
    CHECK(second.services().at("quic").backends.at("198.18.3.1").server_id == 9);
    CHECK(second.services().at("quic").quic_id_offset == 1);
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    for (const std::string& w : maps.log)
        CHECK(w.find("quic_id") == std::string::npos);

    // A removed backend loses its id; quic off for the service keeps the other ids' entries out
    // of use (the entry says offset 0), and a removed service loses them all.
    const std::uint32_t gone = second.services().at("quic").backends.at("198.18.3.3").id;
    d.services[2].backends.pop_back();
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    CHECK(logged(maps, "delete_quic_id " + std::to_string(sid) + "/2"));
    CHECK(logged(maps, "put_backend " + std::to_string(gone) + " state=0"));
    CHECK(maps.quic_ids.size() == 2);
    d.services[2].quic_id_offset = 0;
    d.services[2].quic_id_bits = 0;
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    CHECK(logged(maps, "put_service " + std::to_string(sid) + " size=251"));
    d.services.pop_back();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    CHECK(maps.quic_ids.empty());
}

TEST_CASE("QUIC server ids: a failed apply puts the previous ids back", "[plan][quic]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d = quic_services();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    const auto before = maps.state();
    d.services[2].backends[0].server_id = 7;
    d.services[2].backends.pop_back();
    maps.fail_after = 2;  // fails in the middle of the change
    CHECK_FALSE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.state() == before);
    maps.fail_after = -1;
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.quic_ids.size() == 2);
    CHECK(maps.quic_ids.contains({r.services().at("quic").id, 7}));
}

TEST_CASE("preview: QUIC settings and server ids are named", "[plan][diff][quic]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(quic_services())).ok());
    Desired next = quic_services();
    next.services[2].quic_id_offset = 3;
    next.services[2].backends[0].server_id = 5;
    Diff diff;
    REQUIRE(r.preview(test::with_tables(next), &diff).ok());
    for (const ServiceDiff& s : diff.services) {
        if (s.name != "quic")
            continue;
        CHECK(s.change == ServiceDiff::Change::changed);
        CHECK(s.quic_before == "quic id at byte 0, 16 bits");
        CHECK(s.quic_after == "quic id at byte 2, 16 bits");
        REQUIRE(s.backends.size() == 1);
        CHECK(s.backends[0].before == "active, weight 100, server_id 1");
        CHECK(s.backends[0].after == "active, weight 100, server_id 5");
    }
}

TEST_CASE("an encap change rewrites the service entry only (flows stay), and is adopted after a restart",
          "[plan][gue]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Desired d = two_services();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    const std::string id = std::to_string(r.services().at("web").id);

    d.services[0].encap = FULCRUM_ENCAP_GUE;
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    // No table, no backend, no flow write: the entry with the new tunnel, nothing else.
    CHECK(maps.log == std::vector<std::string>{"put_service " + id + " size=251 encap=1"});
    CHECK(r.services().at("web").encap == static_cast<std::uint32_t>(FULCRUM_ENCAP_GUE));
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(d)).ok());
    CHECK(maps.log.empty());

    // A restarted daemon reads the encapsulation back from the entry.
    Reconciler second(maps);
    second.adopt(maps.snapshot(), d);
    CHECK(second.services().at("web").encap == static_cast<std::uint32_t>(FULCRUM_ENCAP_GUE));
    CHECK(second.services().at("api").encap == static_cast<std::uint32_t>(FULCRUM_ENCAP_IPIP));
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    for (const std::string& entry : maps.log)
        CHECK(entry.rfind("put_service", 0) != 0);

    d.services[0].encap = FULCRUM_ENCAP_IPIP;
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(d)).ok());
    CHECK(maps.log == std::vector<std::string>{"put_service " + id + " size=251"});
}

TEST_CASE("preview: an encap change names both tunnels and moves no flow", "[plan][diff][gue]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    Desired next = two_services();
    next.services[1].encap = FULCRUM_ENCAP_GUE;
    Diff diff;
    REQUIRE(r.preview(test::with_tables(next), &diff).ok());
    CHECK(diff.writes == 1);
    for (const ServiceDiff& s : diff.services) {
        CAPTURE(s.name);
        CHECK(s.encap_before == "ipip");
        if (s.name == "web") {
            CHECK(s.change == ServiceDiff::Change::unchanged);
            CHECK(s.encap_after == "ipip");
            continue;
        }
        CHECK(s.change == ServiceDiff::Change::changed);
        CHECK(s.encap_after == "gue");
        CHECK(s.slots_moved == 0);
        CHECK(s.leaving_backends.empty());
    }
    CHECK(encap_name(FULCRUM_ENCAP_GUE) == "gue");
    CHECK(encap_name(7) == "encap 7");
}

TEST_CASE("settings carry tunnel.gue_port in network order", "[plan][gue]")
{
    fulcrum::config::Config c;
    CHECK(make_desired(c, 1).settings.gue_port == htons(6080));
    c.tunnel.gue_port = 4754;
    CHECK(make_desired(c, 1).settings.gue_port == htons(4754));
}

TEST_CASE("two balancers with the same config send every slot to the same address", "[plan]")
{
    FakeMaps a, b;
    Reconciler ra(a), rb(b);
    Desired d = two_services();
    // b allocated ids differently: it had another service first.
    Desired other;
    other.services.push_back(service("old", "198.18.100.9", 80, {backend("198.18.9.1"), backend("198.18.9.2")}));
    REQUIRE(rb.apply(test::with_tables(other)).ok());
    REQUIRE(ra.apply(test::with_tables(d)).ok());
    REQUIRE(rb.apply(test::with_tables(d)).ok());
    CHECK(ra.services().at("web").backends.at("198.18.1.1").id != rb.services().at("web").backends.at("198.18.1.1").id);
    CHECK(slots_by_address(a, ra, "web") == slots_by_address(b, rb, "web"));
    CHECK(slots_by_address(a, ra, "api") == slots_by_address(b, rb, "api"));
}

TEST_CASE("id pool cycles before reusing a freed id", "[plan]")
{
    IdPool pool(1, 3);
    CHECK(pool.allocate() == 1u);
    CHECK(pool.allocate() == 2u);
    pool.release(1);
    CHECK(pool.allocate() == 3u);
    CHECK(pool.allocate() == 1u);
    CHECK_FALSE(pool.allocate().has_value());
}

TEST_CASE("a restarted daemon adopts pinned state: kept backends keep their ids", "[plan]")
{
    FakeMaps maps;
    std::map<std::string, std::uint32_t> ids_before;
    {
        Reconciler first(maps);
        Desired d = two_services();
        d.services.push_back(service("dns", "198.18.100.3", 53, {backend("198.18.3.1")}));
        REQUIRE(first.apply(test::with_tables(d)).ok());
        for (const auto& [name, svc] : first.services())
            for (const auto& [address, b] : svc.backends)
                ids_before[name + "/" + address] = b.id;
    }
    // The new config drops service dns and backend 198.18.1.2 of web, adds 198.18.1.3.
    Desired next = two_services();
    next.services[0].backends[1] = backend("198.18.1.3");
    const auto removed_id = ids_before.at("web/198.18.1.2");
    const auto dns_backend = ids_before.at("dns/198.18.3.1");

    Reconciler second(maps);
    second.adopt(maps.snapshot(), next);
    maps.log.clear();
    REQUIRE(second.apply(test::with_tables(next)).ok());
    CHECK(second.services().at("web").backends.at("198.18.1.1").id == ids_before.at("web/198.18.1.1"));
    CHECK(second.services().at("api").backends.at("198.18.2.1").id == ids_before.at("api/198.18.2.1"));
    CHECK(second.services().at("api").backends.at("198.18.2.2").id == ids_before.at("api/198.18.2.2"));
    CHECK(maps.backends.at(removed_id).state == FULCRUM_BACKEND_UNUSED);
    CHECK(maps.backends.at(dns_backend).state == FULCRUM_BACKEND_UNUSED);
    CHECK_FALSE(second.services().contains("dns"));
    CHECK(second.services().size() == 2);
    CHECK(maps.services.size() == 2);
    CHECK(maps.vips.size() == 2);
    // The new backend got an id no adopted backend had.
    const auto new_id = second.services().at("web").backends.at("198.18.1.3").id;
    for (const auto& [name, id] : ids_before)
        if (name != "web/198.18.1.2" && name != "dns/198.18.3.1")
            CHECK(new_id != id);
    // Unchanged kept backends are not rewritten (their flows never see a state flap).
    CHECK_FALSE(logged(maps, "put_backend " + std::to_string(ids_before.at("api/198.18.2.1")) + " state=1"));
}

TEST_CASE("the rate limits go from the file into settings; changing them rewrites settings only", "[plan]")
{
    const std::string head = "interfaces: [{name: eth0}]\ntunnel: {source_v4: 198.18.0.1}\n";
    const std::string services =
        "services:\n  - {name: web, vip: 198.18.100.1, port: 80, protocol: tcp, backends: [{address: 198.18.1.1}]}\n";
    auto desired = [&](const std::string& extra) {
        config::ParseResult p = config::parse_text(head + extra + services, "t.yaml");
        for (const auto& e : p.errors)
            FAIL_CHECK(e.to_string());
        REQUIRE(p.config);
        return make_desired(*p.config, 0);
    };
    Desired defaults = desired("");
    CHECK(defaults.settings.new_flows_per_second == 100'000);
    CHECK(defaults.settings.icmp_replies_per_second == 1000);
    Desired off = desired("flows: {new_per_second: 0}\nicmp: {replies_per_second: 0}\n");
    CHECK(off.settings.new_flows_per_second == 0);
    CHECK(off.settings.icmp_replies_per_second == 0);

    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(defaults)).ok());
    CHECK(maps.settings.new_flows_per_second == 100'000);
    CHECK(maps.settings.icmp_replies_per_second == 1000);
    // A reload that changes only the rates: one settings write, no table, backend or service.
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(desired("flows: {new_per_second: 500}\nicmp: {replies_per_second: 20}\n"))).ok());
    CHECK(maps.log == std::vector<std::string>{"set_settings"});
    CHECK(maps.settings.new_flows_per_second == 500);
    CHECK(maps.settings.icmp_replies_per_second == 20);
    maps.log.clear();
    REQUIRE(r.apply(test::with_tables(desired("flows: {new_per_second: 500}\nicmp: {replies_per_second: 20}\n"))).ok());
    CHECK(maps.log.empty());
}

TEST_CASE("hash seed: the file's, else the pinned one, else a new random one, never 0", "[plan][seed]")
{
    int calls = 0;
    auto random = [&calls](std::vector<std::uint32_t> values) {
        return [&calls, values]() { return values.at(static_cast<std::size_t>(calls++) % values.size()); };
    };
    SeedChoice c = choose_hash_seed(5u, 9u, random({1234}));
    CHECK((c.seed == 5 && c.source == SeedSource::config));
    c = choose_hash_seed(0u, 9u, random({1234}));  // an explicit 0 is honoured (--check warns)
    CHECK((c.seed == 0 && c.source == SeedSource::config));
    c = choose_hash_seed(std::nullopt, 9u, random({1234}));
    CHECK((c.seed == 9 && c.source == SeedSource::pinned));
    CHECK(calls == 0);  // no randomness drawn when it is not needed
    c = choose_hash_seed(std::nullopt, 0u, random({1234}));
    CHECK((c.seed == 1234 && c.source == SeedSource::generated));
    calls = 0;
    c = choose_hash_seed(std::nullopt, 0u, random({0, 0, 77}));  // 0 is skipped
    CHECK((c.seed == 77 && c.source == SeedSource::generated));
    c = choose_hash_seed(std::nullopt, 0u, random({0}));  // a broken source still gives no 0
    CHECK((c.seed != 0 && c.source == SeedSource::generated));
    CHECK(std::string(to_string(SeedSource::pinned)) == "pinned");

    // random_seed: 32 bits that differ between calls (two equal draws: 1 in 2^32).
    std::set<std::uint32_t> draws;
    for (int i = 0; i < 4; i++)
        draws.insert(random_seed());
    CHECK(draws.size() >= 3);
}

TEST_CASE("hash seed: the seed in force goes into settings and tables, not the file's", "[plan][seed]")
{
    const std::string text =
        "interfaces: [{name: eth0}]\ntunnel: {source_v4: 198.18.0.1}\nbpf: {hash_seed: 11}\nservices:\n"
        "  - {name: web, vip: 198.18.100.1, port: 80, protocol: tcp, table_size: 251,\n"
        "     backends: [{address: 198.18.1.1}, {address: 198.18.1.2}, {address: 198.18.1.3}]}\n";
    config::ParseResult p = config::parse_text(text, "t.yaml");
    REQUIRE(p.config);
    Desired d = make_desired(*p.config, 4242);
    CHECK(d.settings.hash_seed == 4242);

    FakeMaps a, b;
    Reconciler ra(a), rb(b);
    REQUIRE(ra.apply(test::with_tables(d)).ok());
    REQUIRE(rb.apply(test::with_tables(make_desired(*p.config, 4243))).ok());
    CHECK(b.settings.hash_seed == 4243);
    CHECK(slots_by_address(a, ra, "web") != slots_by_address(b, rb, "web"));
    // The same seed again: nothing to write. Another seed: settings and the table, nothing else.
    a.log.clear();
    REQUIRE(ra.apply(test::with_tables(make_desired(*p.config, 4242))).ok());
    CHECK(a.log.empty());
    REQUIRE(ra.apply(test::with_tables(make_desired(*p.config, 4243))).ok());
    CHECK(a.log == std::vector<std::string>{"set_settings", "put_table " + std::to_string(ra.services().at("web").id)});
    CHECK(slots_by_address(a, ra, "web") == slots_by_address(b, rb, "web"));
}

TEST_CASE("moved share: equal sizes compare slot by slot; other sizes as the data plane indexes (hash % size)",
          "[plan][diff]")
{
    auto name = [](std::uint32_t id) { return std::string(1, static_cast<char>('A' + id - 1)); };
    // 1 = A, 2 = B, 3 = C; 0 = no backend
    CHECK(moved_share({1, 2, 1, 2}, name, {1, 2, 1, 2}, name) == 0);
    CHECK(moved_share({1, 2, 1, 2}, name, {1, 3, 1, 2}, name) == 0.25);
    CHECK(moved_share({1, 2, 0, 2}, name, {1, 2, 1, 2}, name) == 0.25);
    // The same backend under another id is no move: names are compared, not ids.
    auto renamed = [](std::uint32_t id) { return std::string(1, static_cast<char>('A' + (id == 9 ? 2 : id) - 1)); };
    CHECK(moved_share({1, 2}, name, {1, 9}, renamed) == 0);
    // [A, B] -> [A, B, A, B]: h % 2 and h % 4 agree on every hash; [A, B] -> [A, A, B, B]: half differ.
    CHECK(moved_share({1, 2}, name, {1, 2, 1, 2}, name) == 0);
    CHECK(moved_share({1, 2}, name, {1, 1, 2, 2}, name) == 0.5);
    CHECK(moved_share({}, name, {1}, name) == 1);
}

TEST_CASE("preview: says what apply then does, and writes nothing", "[plan][diff]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    const std::vector<std::string> web_before = slots_by_address(maps, r, "web");
    const std::size_t logged_before = maps.log.size();

    Desired next = two_services();
    next.services[0].backends = {backend("198.18.1.1"), backend("198.18.1.3"), backend("198.18.1.2", 300)};
    next.services.pop_back();  // api goes
    next.services.push_back(service("db", "198.18.100.3", 5432, {backend("198.18.3.1")}));
    Diff diff;
    REQUIRE(r.preview(test::with_tables(next), &diff).ok());
    CHECK(maps.log.size() == logged_before);  // nothing written
    CHECK(r.services().contains("api"));      // applied state untouched
    CHECK_FALSE(r.services().contains("db"));

    std::map<std::string, const ServiceDiff*> by_name;
    for (const ServiceDiff& s : diff.services)
        by_name[s.name] = &s;
    REQUIRE(by_name.size() == 3);
    CHECK(by_name["api"]->change == ServiceDiff::Change::removed);
    CHECK(by_name["api"]->leaving_backends.size() == 2);
    CHECK(by_name["db"]->change == ServiceDiff::Change::added);
    const ServiceDiff& web = *by_name["web"];
    CHECK(web.change == ServiceDiff::Change::changed);
    REQUIRE(web.backends.size() == 2);
    for (const BackendDiff& b : web.backends) {
        if (b.address == "198.18.1.3") {
            CHECK(b.before.empty());
            CHECK(b.after == "active, weight 100");
        } else {
            CHECK(b.address == "198.18.1.2");
            CHECK(b.before == "active, weight 100");
            CHECK(b.after == "active, weight 300");
        }
    }
    CHECK(web.leaving_backends.empty());  // a weight change and an addition take no recorded flow
    CHECK(web.backends_now.size() == 2);
    CHECK(web.table_rebuilt);

    // The share it gave is the share of slots the apply then changed (equal sizes: exact).
    std::size_t writes = diff.writes;
    REQUIRE(r.apply(test::with_tables(next)).ok());
    CHECK(maps.log.size() - logged_before == writes);
    const std::vector<std::string> web_after = slots_by_address(maps, r, "web");
    REQUIRE(web_after.size() == web_before.size());
    std::size_t moved = 0;
    for (std::size_t i = 0; i < web_after.size(); i++)
        moved += web_after[i] != web_before[i];
    CHECK(web.slots_moved == static_cast<double>(moved) / static_cast<double>(web_after.size()));
    CHECK(moved > 0);

    Diff none;
    REQUIRE(r.preview(test::with_tables(next), &none).ok());
    CHECK(none.writes == 0);
    for (const ServiceDiff& s : none.services)
        CHECK(s.change == ServiceDiff::Change::unchanged);
}

TEST_CASE("preview: a backend going down loses its recorded flows; a drained one keeps them", "[plan][diff]")
{
    FakeMaps maps;
    Reconciler r(maps);
    REQUIRE(r.apply(test::with_tables(two_services())).ok());
    Desired next = two_services();
    next.services[0].backends[0].use = BackendUse::down;
    next.services[1].backends[0].use = BackendUse::draining;
    Diff diff;
    REQUIRE(r.preview(test::with_tables(next), &diff).ok());
    for (const ServiceDiff& s : diff.services) {
        const std::uint32_t first = r.services().at(s.name).backends.at(s.name == "web" ? "198.18.1.1" : "198.18.2.1").id;
        if (s.name == "web")
            CHECK(s.leaving_backends == std::vector<std::uint32_t>{first});
        else
            CHECK(s.leaving_backends.empty());
        CHECK(s.change == ServiceDiff::Change::changed);
    }
}

// --- Tables built by the planner (plan/tables.h) -------------------------------------------------

TEST_CASE("tables: the written table is Maglev's over the backend ids, exactly", "[plan][tables]")
{
    // The planner builds a table over members 1..n and the reconciler relabels them with ids:
    // the result must be the table Maglev builds over the ids themselves, slot for slot (an
    // upgrade must move no flow).
    FakeMaps maps;
    Reconciler r(maps);
    Desired d = two_services();
    d.services[0].backends.push_back(backend("198.18.1.3", 300));
    d.services[0].backends.push_back(backend("198.18.1.4", 0));
    d.services[0].backends.push_back(backend("198.18.1.5", 100, BackendUse::draining));
    REQUIRE(r.apply(test::with_tables(d)).ok());
    for (const ServicePlan& s : d.services) {
        const AppliedService& svc = r.services().at(s.name);
        std::vector<maglev::Backend> ring;
        for (const BackendPlan& b : s.backends)
            if (b.use == BackendUse::active)
                ring.push_back({b.address, svc.backends.at(b.address).id, b.weight});
        maglev::TableResult direct = maglev::build_table(ring, s.table_size, d.settings.hash_seed);
        REQUIRE(direct.ok());
        CHECK(maps.tables.at(svc.id) == direct.table);
        CHECK(svc.table_ids() == direct.table);
    }
}

TEST_CASE("tables: the cache rebuilds only the services whose input changed", "[plan][tables]")
{
    TableCache cache;
    Desired d = two_services();
    REQUIRE(cache.build(d).ok());
    const auto web = d.services[0].table, api = d.services[1].table;
    REQUIRE(web);
    REQUIRE(api);
    CHECK(web->input == table_input(d.services[0], 7));
    CHECK(web->members == std::vector<std::string>{"198.18.1.1", "198.18.1.2"});
    // New to the cache: the recipe only (the apply builds the slots where it writes them).
    CHECK(web->slots.empty());
    CHECK(api->slots.empty());

    Desired next = two_services();
    next.services[1].backends[0].weight = 200;
    REQUIRE(cache.build(next).ok());
    CHECK(next.services[0].table == web);  // the same object: not rebuilt, not copied
    CHECK(next.services[1].table != api);
    CHECK(next.services[1].table->input != api->input);
    // A changed service's table is built now (the apply compares it with the applied one).
    CHECK(next.services[1].table->slots.size() == next.services[1].table_size);

    // A service gone from the state leaves the cache (its table is freed with the last user).
    Desired fewer = two_services();
    fewer.services.pop_back();
    REQUIRE(cache.build(fewer).ok());
    std::weak_ptr<const SlotTable> gone = next.services[1].table;
    next = Desired{};
    CHECK(gone.expired());
    CHECK(fewer.services[0].table == web);

    // The seed is part of the input.
    Desired reseeded = two_services();
    reseeded.settings.hash_seed = 8;
    REQUIRE(cache.build(reseeded).ok());
    CHECK(reseeded.services[0].table != web);
}

TEST_CASE("tables: once applied, a table is kept as its recipe, and slots rebuilt from it are exact", "[plan][tables]")
{
    // What the daemon does after every apply: the kernel holds the slots, the daemon does not.
    FakeMaps maps;
    Reconciler r(maps);
    TableCache cache;
    Desired d = two_services();
    d.services[0].backends.push_back(backend("198.18.1.3", 250));
    REQUIRE(cache.build(d).ok());
    const std::vector<std::uint32_t> built = slots_of(*d.services[0].table);
    REQUIRE(built.size() == d.services[0].table_size);
    REQUIRE(r.apply(d).ok());
    cache.drop_slots(d);
    const AppliedService& web = r.services().at("web");
    CHECK(web.table->slots.empty());
    CHECK(d.services[0].table->slots.empty());
    CHECK(web.table->input == d.services[0].table->input);
    CHECK(slots_of(*web.table) == built);
    CHECK(web.table_ids() == maps.tables.at(web.id));
    for (std::uint32_t slot : {0u, 1u, 100u, web.table_size - 1})
        CHECK(web.backend_in_slot(slot) == maps.tables.at(web.id)[slot]);
    CHECK(web.backend_in_slot(web.table_size) == 0);
    const std::vector<std::uint32_t> ids_before = maps.tables.at(web.id);

    // The cache hands the recipe back for an unchanged service: nothing is rebuilt or written.
    maps.log.clear();
    Desired same = d;
    REQUIRE(cache.build(same).ok());
    CHECK(same.services[0].table == d.services[0].table);
    REQUIRE(r.apply(same).ok());
    CHECK(maps.log.empty());

    // A weight change: the new table is written (compared against the old one, rebuilt), and
    // it is the one Maglev builds over the ids.
    Desired heavier = d;
    heavier.services[0].backends[2].weight = 500;
    REQUIRE(cache.build(heavier).ok());
    REQUIRE(r.apply(heavier).ok());
    std::vector<maglev::Backend> ring;
    for (const BackendPlan& b : heavier.services[0].backends)
        ring.push_back({b.address, r.services().at("web").backends.at(b.address).id, b.weight});
    const AppliedService& web_now = r.services().at("web");  // the apply replaced the applied state
    CHECK(maps.tables.at(web_now.id) == maglev::build_table(ring, heavier.services[0].table_size, 7).table);
    CHECK(maps.tables.at(web_now.id) != ids_before);
    CHECK(web_now.table_ids() == maps.tables.at(web_now.id));
}

TEST_CASE("tables: the applied state keeps the planner's recipe and writes no unchanged table", "[plan][tables]")
{
    FakeMaps maps;
    Reconciler r(maps);
    TableCache cache;
    Desired d = two_services();
    REQUIRE(cache.build(d).ok());
    REQUIRE(r.apply(d).ok());
    CHECK(r.services().at("web").table->input == d.services[0].table->input);
    CHECK(r.services().at("web").table->slots.empty());  // the maps hold them

    // A backend re-added under the same address gets a new id: same input, other ids, so the
    // table is rewritten with the new id.
    const std::uint32_t first_id = r.services().at("web").backends.at("198.18.1.2").id;
    const std::string first_input = r.services().at("web").table->input;
    Desired without = two_services();
    without.services[0].backends.pop_back();
    REQUIRE(cache.build(without).ok());
    REQUIRE(r.apply(without).ok());
    maps.log.clear();
    REQUIRE(cache.build(d).ok());
    CHECK(d.services[0].table->input == first_input);  // the input of the first apply
    REQUIRE(r.apply(d).ok());
    CHECK(r.services().at("web").backends.at("198.18.1.2").id != first_id);
    CHECK(std::count_if(maps.log.begin(), maps.log.end(),
                        [](const std::string& e) { return e.starts_with("put_table"); }) == 1);
    CHECK(maps.tables.at(r.services().at("web").id) == r.services().at("web").table_ids());
    maps.log.clear();
    REQUIRE(cache.build(d).ok());
    REQUIRE(r.apply(d).ok());
    CHECK(maps.log.empty());
}

TEST_CASE("tables: a state without its tables, or with stale ones, is refused before any write", "[plan][tables]")
{
    FakeMaps maps;
    Reconciler r(maps);
    Status missing = r.apply(two_services());
    CHECK_FALSE(missing.ok());
    CHECK(missing.message() == "plan: service web: its Maglev table is missing or was built for other backends "
                               "(TableCache::build was not run on this state); nothing was written");
    CHECK(maps.log.empty());

    Desired d = test::with_tables(two_services());
    d.services[1].backends[1].weight = 5;  // edited after its table was built
    Status stale = r.apply(d);
    CHECK_FALSE(stale.ok());
    CHECK(stale.message().starts_with("plan: service api: its Maglev table is missing or was built for other"));
    CHECK(maps.log.empty());
    CHECK(r.services().empty());
}

TEST_CASE("tables: a cold cache plans many tables, each the one Maglev builds alone", "[plan][tables]")
{
    Desired d;
    d.settings.hash_seed = 11;
    for (int s = 0; s < 24; s++) {
        std::vector<BackendPlan> backends;
        for (int b = 1; b <= 2 + s % 5; b++)
            backends.push_back(backend("198.18." + std::to_string(s) + "." + std::to_string(b), 50u * b));
        d.services.push_back(service("svc" + std::to_string(s), "198.18.100.1", static_cast<std::uint16_t>(1000 + s),
                                     std::move(backends), s % 2 ? 251 : 509));
    }
    TableCache cache;
    REQUIRE(cache.build(d).ok());
    for (const ServicePlan& s : d.services) {
        REQUIRE(s.table);
        CHECK(s.table->input == table_input(s, 11));
        std::vector<maglev::Backend> ring;
        for (std::size_t i = 0; i < s.backends.size(); i++)
            ring.push_back({s.backends[i].address, static_cast<std::uint32_t>(i + 1), s.backends[i].weight});
        CHECK(s.table->slots.empty());  // a cold cache: recipes only, the apply builds them
        CHECK(slots_of(*s.table) == maglev::build_table(ring, s.table_size, 11).table);
    }

    // A failure names the first failing service in file order, whatever thread built it.
    Desired bad = d;
    for (ServicePlan& s : bad.services)
        s.table.reset();
    bad.services[5].table_size = 1000;
    bad.services[17].table_size = 1001;
    bad.settings.hash_seed = 12;  // nothing cached: every table is built
    Status s = cache.build(bad);
    CHECK(s.message() == "plan: service svc5: table_size 1000 is not a prime; nothing was written");
    // The same from a cold cache, which only checks each recipe (Maglev's own check, unbuilt).
    TableCache cold;
    CHECK(cold.build(bad).message() == s.message());
}
