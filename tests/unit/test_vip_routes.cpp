// VipRoutes against an in-memory route table: which VIPs are announced for which health, that
// sync is idempotent, that routes left by an earlier daemon go, and that errors name the VIP,
// the table and the errno.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "routes/vip_routes.h"

using namespace fulcrum;
using namespace fulcrum::routes;

namespace {

struct FakeKernel {
    std::map<std::uint32_t, std::set<HostRoute>> tables;
    std::set<HostRoute> foreign;       // routes of another protocol: add() of these gives EEXIST
    int fail_add = 0, fail_remove = 0, fail_list = 0;
    int adds = 0, removes = 0;
};

class FakeTable final : public RouteTable {
public:
    explicit FakeTable(FakeKernel* k) : k_(k) {}
    int list(std::uint32_t table, std::vector<HostRoute>* out) override
    {
        if (k_->fail_list)
            return k_->fail_list;
        out->assign(k_->tables[table].begin(), k_->tables[table].end());
        return 0;
    }
    int add(std::uint32_t table, const HostRoute& r) override
    {
        if (k_->fail_add)
            return k_->fail_add;
        if (k_->foreign.contains(r) || k_->tables[table].contains(r))
            return EEXIST;
        k_->adds++;
        k_->tables[table].insert(r);
        return 0;
    }
    int remove(std::uint32_t table, const HostRoute& r) override
    {
        if (k_->fail_remove)
            return k_->fail_remove;
        k_->removes++;
        k_->tables[table].erase(r);
        return 0;
    }

private:
    FakeKernel* k_;
};

config::Address address(const char* text)
{
    config::Address a;
    a.text = text;
    a.family = std::strchr(text, ':') ? AF_INET6 : AF_INET;
    inet_pton(a.family, text, a.bytes);
    return a;
}

HostRoute route(const char* text)
{
    config::Address a = address(text);
    HostRoute r;
    r.family = a.family;
    std::memcpy(r.addr.data(), a.bytes, 16);
    return r;
}

ServiceRoute svc(const char* vip, std::uint32_t healthy)
{
    return {address(vip), healthy};
}

}  // namespace

TEST_CASE("vip routes: a VIP is announced while a service on it has `need` healthy backends")
{
    FakeKernel k;
    VipRoutes routes(100, 2, std::make_unique<FakeTable>(&k));
    REQUIRE(routes.sync({svc("198.18.100.10", 2), svc("2001:db8:100::10", 3), svc("198.18.100.11", 1)}).ok());
    CHECK(k.tables[100] == std::set<HostRoute>{route("198.18.100.10"), route("2001:db8:100::10")});
    CHECK(routes.announced() == k.tables[100]);
    CHECK(route("198.18.100.10").text() == "198.18.100.10");
    CHECK(route("2001:db8:100::10").text() == "2001:db8:100::10");

    // Below need: withdrawn; the others stay untouched.
    int adds = k.adds;
    REQUIRE(routes.sync({svc("198.18.100.10", 1), svc("2001:db8:100::10", 3), svc("198.18.100.11", 1)}).ok());
    CHECK(k.tables[100] == std::set<HostRoute>{route("2001:db8:100::10")});
    CHECK(k.adds == adds);
}

TEST_CASE("vip routes: any service on the VIP is enough")
{
    FakeKernel k;
    VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
    REQUIRE(routes.sync({svc("198.18.100.10", 0), svc("198.18.100.10", 1), svc("198.18.100.10", 0)}).ok());
    CHECK(k.tables[100] == std::set<HostRoute>{route("198.18.100.10")});
    REQUIRE(routes.sync({svc("198.18.100.10", 0), svc("198.18.100.10", 0)}).ok());
    CHECK(k.tables[100].empty());
}

TEST_CASE("vip routes: sync is idempotent")
{
    FakeKernel k;
    VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
    std::vector<ServiceRoute> s{svc("198.18.100.10", 2)};
    REQUIRE(routes.sync(s).ok());
    REQUIRE(routes.sync(s).ok());
    REQUIRE(routes.sync(s).ok());
    CHECK(k.adds == 1);
    CHECK(k.removes == 0);
}

TEST_CASE("vip routes: routes of an earlier daemon that are not wanted go; wanted ones stay")
{
    FakeKernel k;
    k.tables[100] = {route("198.18.100.99"), route("198.18.100.10")};
    k.tables[200] = {route("198.18.100.50")};  // another table: not ours to touch
    VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
    REQUIRE(routes.sync({svc("198.18.100.10", 1)}).ok());
    CHECK(k.tables[100] == std::set<HostRoute>{route("198.18.100.10")});
    CHECK(k.tables[200] == std::set<HostRoute>{route("198.18.100.50")});
    CHECK(k.adds == 0);  // the surviving route was adopted, not re-added
}

TEST_CASE("vip routes: a route deleted by hand comes back at the next sync")
{
    FakeKernel k;
    VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
    REQUIRE(routes.sync({svc("198.18.100.10", 1)}).ok());
    k.tables[100].clear();
    REQUIRE(routes.sync({svc("198.18.100.10", 1)}).ok());
    CHECK(k.tables[100] == std::set<HostRoute>{route("198.18.100.10")});
}

TEST_CASE("vip routes: table 0 is off")
{
    FakeKernel k;
    k.tables[0] = {route("198.18.100.99")};
    VipRoutes routes(0, 1, std::make_unique<FakeTable>(&k));
    REQUIRE(routes.sync({svc("198.18.100.10", 5)}).ok());
    REQUIRE(routes.withdraw_all().ok());
    CHECK(k.adds == 0);
    CHECK(k.removes == 0);
}

TEST_CASE("vip routes: withdraw_all and reconfigure")
{
    FakeKernel k;
    VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
    REQUIRE(routes.sync({svc("198.18.100.10", 1), svc("2001:db8:100::10", 1)}).ok());
    REQUIRE(k.tables[100].size() == 2);

    SECTION("withdraw_all empties our table")
    {
        REQUIRE(routes.withdraw_all().ok());
        CHECK(k.tables[100].empty());
        CHECK(routes.announced().empty());
    }
    SECTION("a new table: the old one is emptied, the next sync fills the new one")
    {
        REQUIRE(routes.reconfigure(101, 1).ok());
        CHECK(k.tables[100].empty());
        REQUIRE(routes.sync({svc("198.18.100.10", 1)}).ok());
        CHECK(k.tables[101] == std::set<HostRoute>{route("198.18.100.10")});
    }
    SECTION("a higher need withdraws at the next sync")
    {
        REQUIRE(routes.reconfigure(100, 2).ok());
        CHECK(k.tables[100].size() == 2);
        REQUIRE(routes.sync({svc("198.18.100.10", 1), svc("2001:db8:100::10", 2)}).ok());
        CHECK(k.tables[100] == std::set<HostRoute>{route("2001:db8:100::10")});
    }
}

TEST_CASE("vip routes: errors name the VIP, the table and the errno; the rest is still done")
{
    FakeKernel k;
    SECTION("add refused")
    {
        k.foreign = {route("198.18.100.10")};
        VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
        Status s = routes.sync({svc("198.18.100.10", 1), svc("198.18.100.11", 1)});
        REQUIRE_FALSE(s.ok());
        CHECK(s.message().find("routes: cannot announce VIP 198.18.100.10 in table 100: File exists") != std::string::npos);
        CHECK(s.message().find("not Fulcrum's") != std::string::npos);
        CHECK(k.tables[100] == std::set<HostRoute>{route("198.18.100.11")});
    }
    SECTION("no permission")
    {
        k.fail_add = EPERM;
        VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
        Status s = routes.sync({svc("2001:db8:100::10", 1)});
        REQUIRE_FALSE(s.ok());
        CHECK(s.message() == "routes: cannot announce VIP 2001:db8:100::10 in table 100: Operation not permitted");
    }
    SECTION("withdraw refused")
    {
        k.tables[100] = {route("198.18.100.10")};
        k.fail_remove = EPERM;
        VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
        Status s = routes.withdraw_all();
        REQUIRE_FALSE(s.ok());
        CHECK(s.message() == "routes: cannot withdraw VIP 198.18.100.10 from table 100: Operation not permitted");
    }
    SECTION("listing refused")
    {
        k.fail_list = EACCES;
        VipRoutes routes(100, 1, std::make_unique<FakeTable>(&k));
        Status s = routes.sync({svc("198.18.100.10", 1)});
        REQUIRE_FALSE(s.ok());
        CHECK(s.message() == "routes: cannot list Fulcrum's routes (protocol 201) in table 100: Permission denied");
    }
}
