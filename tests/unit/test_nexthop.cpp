// The next-hop cache's write protocol and bookkeeping (src/dataplane/nexthop_cache.h), against an
// in-memory map that checks, on every write, that no reader could ever use a torn entry:
//  - while an entry is valid, its fields never change (only valid 1 -> 0);
//  - valid 0 -> 1 changes nothing else;
//  - fields of an entry that was valid change only after a wait for readers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "dataplane/nexthop_cache.h"
#include "dataplane/rtnl.h"
#include "netlink/netlink.h"

namespace {

using fulcrum::Result;
using fulcrum::Status;
using namespace fulcrum::dataplane;

bool same_fields(const fulcrum_nexthop& a, const fulcrum_nexthop& b)
{
    return std::memcmp(a.dmac, b.dmac, 6) == 0 && std::memcmp(a.smac, b.smac, 6) == 0 &&
           a.ifindex == b.ifindex && a.mtu == b.mtu;
}

fulcrum_nexthop entry(std::uint8_t mac_last, std::uint32_t mtu = 1500)
{
    fulcrum_nexthop e{};
    std::uint8_t d[6] = {2, 0, 0, 0, 0, mac_last}, s[6] = {2, 0, 0, 0, 1, 1};
    std::memcpy(e.dmac, d, 6);
    std::memcpy(e.smac, s, 6);
    e.ifindex = 2;
    e.mtu = mtu;
    e.valid = 1;
    return e;
}

fulcrum_addr v4(std::uint8_t last)
{
    fulcrum_addr a{};
    auto* b = reinterpret_cast<std::uint8_t*>(a.w);
    b[0] = 198, b[1] = 18, b[2] = 0, b[3] = last;
    return a;
}

class CheckingStore final : public NexthopStore {
public:
    std::map<std::uint32_t, fulcrum_nexthop> map;
    std::set<std::uint32_t> needs_grace;  // were valid, invalidated, no grace since
    std::vector<std::string> log;
    std::vector<std::string> violations;
    int graces = 0;

    int gets = 0;                       // get() calls, get_many's own included
    std::vector<std::size_t> many_reads;  // the size of each get_many
    std::optional<fulcrum_nexthop> get(std::uint32_t id) override
    {
        gets++;
        auto it = map.find(id);
        return it == map.end() ? fulcrum_nexthop{} : it->second;  // an ARRAY: every slot exists
    }
    std::vector<std::optional<fulcrum_nexthop>> get_many(const std::vector<std::uint32_t>& ids) override
    {
        many_reads.push_back(ids.size());
        const int before = gets;
        std::vector<std::optional<fulcrum_nexthop>> out = NexthopStore::get_many(ids);
        gets = before;  // counted as one read: the real map reads them in one batch
        return out;
    }
    Status put(std::uint32_t id, const fulcrum_nexthop& e) override
    {
        fulcrum_nexthop old = map.count(id) ? map[id] : fulcrum_nexthop{};
        const std::string name = "put " + std::to_string(id) + " valid=" + std::to_string(e.valid) +
                                 " mac=" + std::to_string(e.dmac[5]);
        if (old.valid && e.valid && !same_fields(old, e))
            violations.push_back(name + ": fields changed while valid");
        if (!old.valid && e.valid && !same_fields(old, e))
            violations.push_back(name + ": valid 0->1 together with new fields");
        if (old.valid && !e.valid) {
            if (!same_fields(old, e))
                violations.push_back(name + ": invalidation changed the fields");
            needs_grace.insert(id);
        }
        if (!old.valid && !e.valid && !same_fields(old, e) && needs_grace.count(id))
            violations.push_back(name + ": new fields before readers were waited for");
        map[id] = e;
        log.push_back(name);
        return {};
    }
    void wait_for_readers() override
    {
        graces++;
        needs_grace.clear();
        log.push_back("grace");
    }
};

class TableResolver final : public NexthopResolver {
public:
    std::map<std::uint8_t, Resolution> answers;  // by last address byte
    int calls = 0;
    std::vector<int> asked;  // last address byte of each question, in order
    Resolution resolve(const fulcrum_addr& a, std::uint8_t) override
    {
        calls++;
        asked.push_back(reinterpret_cast<const std::uint8_t*>(a.w)[3]);
        auto it = answers.find(reinterpret_cast<const std::uint8_t*>(a.w)[3]);
        if (it == answers.end())
            return Resolution{std::nullopt, std::nullopt, "no route"};
        return it->second;
    }
};

NeighbourKey nb(std::uint8_t last) { return NeighbourKey{FULCRUM_AF_INET, v4(last), 2}; }

Resolution ok(std::uint8_t nh, std::uint8_t mac, std::uint32_t mtu = 1500)
{
    return Resolution{nb(nh), entry(mac, mtu), ""};
}

}  // namespace

TEST_CASE("nexthop cache: a new entry is written with valid = 0, then valid = 1")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(11, 0xaa);
    NexthopCache cache(store, resolver);
    auto r = cache.set_targets({{1, v4(11), FULCRUM_AF_INET}});
    CHECK(r.cached == 1);
    CHECK(r.fallback == 0);
    CHECK(store.log == std::vector<std::string>{"grace", "put 1 valid=0 mac=170", "put 1 valid=1 mac=170"});
    CHECK(store.violations.empty());

    SECTION("an unchanged refresh writes nothing")
    {
        store.log.clear();
        cache.refresh_all();
        CHECK(store.log.empty());
    }
    SECTION("a changed MAC: old fields invalidated, readers waited for, new fields, then valid")
    {
        store.log.clear();
        resolver.answers[11] = ok(11, 0xbb);
        cache.refresh_all();
        CHECK(store.log == std::vector<std::string>{"put 1 valid=0 mac=170", "grace", "put 1 valid=0 mac=187",
                                                    "put 1 valid=1 mac=187"});
        CHECK(store.violations.empty());
    }
    SECTION("no route any more: invalidated, fields kept")
    {
        store.log.clear();
        resolver.answers.erase(11);
        auto r2 = cache.refresh_all();
        CHECK(r2.fallback == 1);
        REQUIRE(r2.fallbacks.size() == 1);
        CHECK(r2.fallbacks[0] == "198.18.0.11 (id 1): no route");
        CHECK(store.log == std::vector<std::string>{"put 1 valid=0 mac=170"});
        CHECK(store.violations.empty());
    }
    SECTION("someone else zeroed the entry (put_backend): rewritten after a wait for readers")
    {
        store.map[1] = fulcrum_nexthop{};
        store.log.clear();
        cache.entries_touched_elsewhere();
        cache.refresh_all();
        CHECK(store.log == std::vector<std::string>{"grace", "put 1 valid=0 mac=170", "put 1 valid=1 mac=170"});
    }
}

TEST_CASE("nexthop cache: neighbour events")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(1, 0xaa);  // both backends behind gateway .1
    resolver.answers[12] = ok(1, 0xaa);
    resolver.answers[13] = ok(13, 0xcc);
    NexthopCache cache(store, resolver);
    cache.set_targets({{1, v4(11), FULCRUM_AF_INET}, {2, v4(12), FULCRUM_AF_INET}, {3, v4(13), FULCRUM_AF_INET}});
    store.log.clear();

    const std::uint8_t same[6] = {2, 0, 0, 0, 0, 0xaa}, other[6] = {2, 0, 0, 0, 0, 0xbb};
    SECTION("same MAC (REACHABLE <-> STALE): nothing to do")
    {
        cache.neighbour_changed(nb(1), true, same);
        CHECK_FALSE(cache.has_pending());
        CHECK(store.log.empty());
    }
    SECTION("new MAC: its users invalidated at once, re-resolved in the batch; others untouched")
    {
        cache.neighbour_changed(nb(1), true, other);
        CHECK(store.log == std::vector<std::string>{"put 1 valid=0 mac=170", "put 2 valid=0 mac=170"});
        CHECK(cache.has_pending());
        resolver.answers[11] = ok(1, 0xbb);
        resolver.answers[12] = ok(1, 0xbb);
        store.log.clear();
        auto r = cache.resolve_pending();
        CHECK(r.cached == 2);
        CHECK(store.log == std::vector<std::string>{"grace", "put 1 valid=0 mac=187", "put 1 valid=1 mac=187",
                                                    "put 2 valid=0 mac=187", "put 2 valid=1 mac=187"});
        CHECK(store.violations.empty());
    }
    SECTION("neighbour gone: invalidated")
    {
        cache.neighbour_changed(nb(13), false, nullptr);
        CHECK(store.log == std::vector<std::string>{"put 3 valid=0 mac=204"});
        CHECK(store.violations.empty());
    }
    SECTION("an unrelated neighbour: nothing")
    {
        cache.neighbour_changed(nb(99), false, nullptr);
        CHECK_FALSE(cache.has_pending());
        CHECK(store.log.empty());
    }
    SECTION("a next hop without entry becomes usable: re-resolved")
    {
        resolver.answers[14] = Resolution{nb(14), std::nullopt, "no ARP/ND entry"};
        cache.set_targets({{1, v4(11), FULCRUM_AF_INET}, {4, v4(14), FULCRUM_AF_INET}});
        store.log.clear();
        const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 0xdd};
        cache.neighbour_changed(nb(14), true, mac);
        CHECK(cache.has_pending());
        resolver.answers[14] = ok(14, 0xdd);
        CHECK(cache.resolve_pending().cached == 1);
        CHECK(store.map[4].valid == 1);
        CHECK(store.violations.empty());
    }
}

TEST_CASE("nexthop cache: invalidate_all keeps fields, then everything is re-resolved")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(11, 0xaa);
    resolver.answers[12] = ok(12, 0xab);
    NexthopCache cache(store, resolver);
    cache.set_targets({{1, v4(11), FULCRUM_AF_INET}, {2, v4(12), FULCRUM_AF_INET}, {5, v4(11), FULCRUM_AF_INET}});
    CHECK(resolver.calls == 2);  // one resolution per address, shared by ids 1 and 5
    store.log.clear();
    cache.invalidate_all();
    CHECK(store.map[1].valid == 0);
    CHECK(store.map[2].valid == 0);
    CHECK(store.map[5].valid == 0);
    CHECK(store.violations.empty());
    CHECK(cache.has_pending());
    resolver.answers[12] = ok(12, 0xac, 9000);
    auto r = cache.resolve_pending();
    CHECK(r.cached == 3);
    CHECK(store.map[2].valid == 1);
    CHECK(store.map[2].mtu == 9000);
    CHECK(store.graces == 2);  // the first write, and once for the batch after invalidate_all
    CHECK(store.violations.empty());
}

TEST_CASE("nexthop cache: a route event keeps entries in use until they are re-resolved")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(11, 0xaa);
    resolver.answers[12] = ok(12, 0xab);
    NexthopCache cache(store, resolver);
    cache.set_targets({{1, v4(11), FULCRUM_AF_INET}, {2, v4(12), FULCRUM_AF_INET}});
    store.log.clear();
    cache.mark_all_pending();
    // Nothing written yet: with forwarding off, an invalid entry would mean dropped packets.
    CHECK(store.log.empty());
    CHECK((store.map[1].valid == 1 && store.map[2].valid == 1));
    CHECK(cache.has_pending());
    // The route of 12 moved to another next hop; 11 cannot be cached any more.
    resolver.answers.erase(11);
    resolver.answers[12] = ok(13, 0xac);
    auto r = cache.resolve_pending();
    CHECK((r.cached == 1 && r.fallback == 1));
    CHECK(store.map[1].valid == 0);
    CHECK((store.map[2].valid == 1 && store.map[2].dmac[5] == 0xac));
    CHECK(store.violations.empty());
}

TEST_CASE("nexthop cache: add_targets makes entries for new backends only, at once")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(11, 0xaa);
    resolver.answers[12] = ok(12, 0xab);
    NexthopCache cache(store, resolver);
    cache.set_targets({{1, v4(11), FULCRUM_AF_INET}});
    resolver.calls = 0;
    auto r = cache.add_targets({{7, v4(12), FULCRUM_AF_INET}});
    CHECK(r.cached == 1);
    CHECK(resolver.calls == 1);  // only the new backend was resolved
    CHECK((store.map[7].valid == 1 && store.map[7].dmac[5] == 0xab));
    CHECK(store.map[1].valid == 1);
    CHECK(cache.targets() == 2);
    CHECK(store.violations.empty());
}

TEST_CASE("nexthop cache: set_targets resolves only what an apply changed; kept entries count as cached")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(11, 0xaa);
    resolver.answers[12] = ok(12, 0xab);
    resolver.answers[13] = ok(13, 0xac);
    resolver.answers[14] = ok(14, 0xad);
    NexthopCache cache(store, resolver);
    auto first = cache.set_targets({{1, v4(11), FULCRUM_AF_INET}, {2, v4(12), FULCRUM_AF_INET}});
    CHECK(first.cached == 2);
    CHECK(resolver.calls == 2);

    // The same state again (a reload that changed a weight): no lookup, both still cached.
    resolver.calls = 0;
    auto same = cache.set_targets({{1, v4(11), FULCRUM_AF_INET}, {2, v4(12), FULCRUM_AF_INET}});
    CHECK(resolver.calls == 0);
    CHECK(same.cached == 2);
    CHECK(same.fallback == 0);

    // A new id, an id now at another address, and an entry zeroed by the reconciler's
    // put_backend (a re-created backend): exactly these three are resolved.
    store.map[1] = fulcrum_nexthop{};
    resolver.calls = 0;
    auto changed = cache.set_targets(
        {{1, v4(11), FULCRUM_AF_INET}, {2, v4(13), FULCRUM_AF_INET}, {3, v4(14), FULCRUM_AF_INET}});
    CHECK(resolver.calls == 3);
    CHECK(changed.cached == 3);
    CHECK((store.map[1].valid == 1 && store.map[1].dmac[5] == 0xaa));
    CHECK((store.map[2].valid == 1 && store.map[2].dmac[5] == 0xac));
    CHECK((store.map[3].valid == 1 && store.map[3].dmac[5] == 0xad));

    // A pending target (a neighbour event marked it) is resolved even though unchanged.
    cache.mark_all_pending();
    resolver.calls = 0;
    cache.set_targets({{1, v4(11), FULCRUM_AF_INET}});
    CHECK(resolver.calls == 1);
    CHECK(cache.targets() == 1);
    CHECK_FALSE(cache.has_pending());
    CHECK(store.violations.empty());
}

TEST_CASE("nexthop cache: refresh_some resolves the next slice of targets in turn, wrapping around")
{
    CheckingStore store;
    TableResolver resolver;
    NexthopCache cache(store, resolver);
    std::vector<NexthopTarget> targets;
    for (std::uint8_t i = 1; i <= 5; i++) {
        resolver.answers[static_cast<std::uint8_t>(10 + i)] = ok(1, 0xaa);
        targets.push_back({i, v4(static_cast<std::uint8_t>(10 + i)), FULCRUM_AF_INET});
    }
    cache.set_targets(targets);
    resolver.asked.clear();
    cache.refresh_some(2);
    CHECK(resolver.asked == std::vector<int>{11, 12});
    resolver.asked.clear();
    cache.refresh_some(2);
    CHECK(resolver.asked == std::vector<int>{13, 14});
    resolver.asked.clear();
    cache.refresh_some(2);  // wraps: 5, then 1 (resolved in id order)
    CHECK(resolver.asked == std::vector<int>{11, 15});
    resolver.asked.clear();
    cache.refresh_some(9);  // never more than every target once
    CHECK(resolver.asked.size() == 5);

    SECTION("a changed answer is published by the slice that resolves it, with the write protocol")
    {
        resolver.answers[13] = ok(1, 0xbb);
        store.log.clear();
        cache.refresh_some(5);
        CHECK(store.map[3].dmac[5] == 0xbb);
        CHECK(store.map[2].dmac[5] == 0xaa);
        CHECK(store.violations.empty());
    }
}

TEST_CASE("nexthop cache: nudge addresses are each next hop once, and the targets without one")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(1, 0xaa);  // 11 and 12 behind gateway .1
    resolver.answers[12] = ok(1, 0xaa);
    resolver.answers[13] = ok(13, 0xcc);  // on-link: its own next hop
    // 14: no route (no neighbour known): nudged itself
    NexthopCache cache(store, resolver);
    cache.set_targets({{1, v4(11), FULCRUM_AF_INET},
                       {2, v4(12), FULCRUM_AF_INET},
                       {3, v4(13), FULCRUM_AF_INET},
                       {4, v4(14), FULCRUM_AF_INET}});
    std::vector<int> lasts;
    for (const NeighbourKey& k : cache.nudge_addresses()) {
        CHECK(k.family == FULCRUM_AF_INET);
        lasts.push_back(reinterpret_cast<const std::uint8_t*>(k.addr.w)[3]);
    }
    std::sort(lasts.begin(), lasts.end());
    CHECK(lasts == std::vector<int>{1, 13, 14});
}

namespace {

// Records what the cache tells it ahead (prefetch) and whether each question was told first.
class PrefetchRecorder final : public NexthopResolver {
public:
    std::vector<std::size_t> prefetch_sizes;
    std::set<std::pair<std::uint8_t, std::uint8_t>> told;  // the last prefetch's addresses
    std::size_t prefetched = 0, resolved = 0, not_told = 0;
    void prefetch(std::span<const NexthopTarget> targets) override
    {
        prefetch_sizes.push_back(targets.size());
        prefetched += targets.size();
        told.clear();
        for (const NexthopTarget& t : targets)
            told.insert(key(t.addr));
    }
    Resolution resolve(const fulcrum_addr& a, std::uint8_t) override
    {
        resolved++;
        not_told += !told.contains(key(a));
        return Resolution{std::nullopt, std::nullopt, "no route"};
    }

private:
    static std::pair<std::uint8_t, std::uint8_t> key(const fulcrum_addr& a)
    {
        const auto* b = reinterpret_cast<const std::uint8_t*>(a.w);
        return {b[2], b[3]};
    }
};

}  // namespace

TEST_CASE("nexthop cache: the resolver is told each address ahead (prefetch), once, a chunk at a time")
{
    CheckingStore store;
    PrefetchRecorder resolver;
    NexthopCache cache(store, resolver);
    // 3,000 backends on 2,000 addresses: ids 2001..3000 share those of ids 1..1000.
    std::vector<NexthopTarget> targets;
    for (std::uint32_t id = 1; id <= 3000; id++) {
        fulcrum_addr a = v4(0);
        auto* b = reinterpret_cast<std::uint8_t*>(a.w);
        b[2] = static_cast<std::uint8_t>(id % 2000 / 256);
        b[3] = static_cast<std::uint8_t>(id % 2000 % 256);
        targets.push_back({id, a, FULCRUM_AF_INET});
    }
    auto r = cache.set_targets(targets);
    CHECK(r.fallback == 3000);
    CHECK(resolver.resolved == 2000);   // one question per address
    CHECK(resolver.prefetched == 2000);  // each address told once
    CHECK(resolver.not_told == 0);       // and before its question
    CHECK(resolver.prefetch_sizes.size() >= 2);
    for (std::size_t n : resolver.prefetch_sizes)
        CHECK(n <= 1024);
}

TEST_CASE("rtnl: routes() gives each question the answer route() gives, in order, over several batches")
{
    // The kernel's own routes (whichever this namespace has): loopback addresses of both
    // families, each as fib entry and as resolved route, more questions than one batch.
    Result<rtnl::Client> client = rtnl::Client::open();
    REQUIRE(client.ok());
    std::vector<rtnl::Client::RouteQuestion> questions;
    for (std::uint8_t i = 1; i <= 50; i++) {
        fulcrum_addr a{};
        auto* b = reinterpret_cast<std::uint8_t*>(a.w);
        b[0] = 127, b[3] = i;
        questions.push_back({FULCRUM_AF_INET, a, nullptr, i % 2 == 0});
        fulcrum_addr six{};
        reinterpret_cast<std::uint8_t*>(six.w)[15] = 1;  // ::1
        questions.push_back({FULCRUM_AF_INET6, six, nullptr, i % 3 == 0});
        fulcrum_addr unspecified{};  // 0.0.0.0: whatever the kernel says, both ways the same
        questions.push_back({FULCRUM_AF_INET, unspecified, nullptr, i % 2 == 1});
    }
    REQUIRE(questions.size() > 2 * fulcrum::netlink::Socket::kBatch);
    std::vector<Result<rtnl::Route>> batched = client->routes(questions);
    REQUIRE(batched.size() == questions.size());
    for (std::size_t i = 0; i < questions.size(); i++) {
        const rtnl::Client::RouteQuestion& q = questions[i];
        Result<rtnl::Route> alone = client->route(q.family, q.dst, q.src, q.fib_match);
        INFO("question " << i << ": " << alone.message() << " / " << batched[i].message());
        REQUIRE(alone.ok() == batched[i].ok());
        if (!alone.ok()) {
            CHECK(alone.message() == batched[i].message());
            continue;
        }
        CHECK(alone->type == batched[i]->type);
        CHECK(alone->oif == batched[i]->oif);
        CHECK(alone->src_len == batched[i]->src_len);
        CHECK(alone->gateway.has_value() == batched[i]->gateway.has_value());
        CHECK(alone->multipath == batched[i]->multipath);
        CHECK(alone->mtu_metric == batched[i]->mtu_metric);
    }
}

TEST_CASE("nexthop cache: a neighbour event and a publish read their backends' entries in one go")
{
    CheckingStore store;
    TableResolver resolver;
    resolver.answers[11] = ok(11, 0xaa);  // every backend behind router .11
    NexthopCache cache(store, resolver);
    std::vector<NexthopTarget> targets;
    for (std::uint32_t id = 1; id <= 100; id++)
        targets.push_back({id, v4(11), FULCRUM_AF_INET});
    store.many_reads.clear();
    store.gets = 0;
    cache.set_targets(targets);
    CHECK(store.gets == 0);  // publish: no entry read one by one
    REQUIRE_FALSE(store.many_reads.empty());

    // The router's entry churns (REACHABLE <-> STALE, same MAC): nothing to do, one read.
    store.many_reads.clear();
    std::uint8_t mac[6] = {2, 0, 0, 0, 0, 0xaa};
    cache.neighbour_changed(nb(11), true, mac);
    CHECK(store.many_reads == std::vector<std::size_t>{100});
    CHECK(store.gets == 0);
    CHECK_FALSE(cache.has_pending());
    // A new MAC: every entry behind it invalidated at once, from the same one read.
    store.many_reads.clear();
    mac[5] = 0xbb;
    cache.neighbour_changed(nb(11), true, mac);
    CHECK(store.many_reads == std::vector<std::size_t>{100});
    CHECK(store.gets == 0);
    CHECK(store.map[1].valid == 0);
    CHECK(store.map[100].valid == 0);
    CHECK(cache.has_pending());
    CHECK(store.violations.empty());
}

TEST_CASE("rtnl: a link notification counts as a change only when something a next hop uses changed")
{
    rtnl::LinkState up;
    up.flags = 0x11043;  // UP, BROADCAST, RUNNING, MULTICAST, LOWER_UP
    up.operstate = 6;    // IF_OPER_UP
    up.mtu = 1500;
    up.mac = std::array<std::uint8_t, 6>{2, 0, 0, 0, 0, 1};
    rtnl::LinkTracker links;
    links.seed({{2, up}});
    rtnl::Event e;
    e.kind = rtnl::Event::Kind::link;
    e.ifindex = 2;
    e.link = up;
    CHECK_FALSE(links.changes_something(e));  // an XDP attach: the same link
    e.link.mtu = 1400;
    CHECK(links.changes_something(e));
    CHECK_FALSE(links.changes_something(e));  // recorded: the same again is nothing new
    e.link.mac = std::array<std::uint8_t, 6>{2, 0, 0, 0, 0, 2};
    CHECK(links.changes_something(e));
    e.link.flags &= ~0x10000u;  // carrier lost (LOWER_UP)
    CHECK(links.changes_something(e));
    e.link.master = 7;  // enslaved to a VRF
    CHECK(links.changes_something(e));
    rtnl::Event other = e;
    other.ifindex = 3;  // never seen
    CHECK(links.changes_something(other));
    e.deleted = true;
    CHECK(links.changes_something(e));
    e.deleted = false;
    CHECK(links.changes_something(e));  // back under the same index: new again
}
