// Marks of health checks through the tunnel (health/tunnel_paths.h): which backend tunnel each
// check socket's mark names, what the kernel must hold for a config, and that marks stay put
// across reloads while a tunnel is in use. Plain logic on parsed configs, no kernel.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <set>
#include <string>

#include "config/config.h"
#include "health/manager.h"
#include "health/tunnel_paths.h"

using namespace fulcrum;

namespace {

config::Config parse(const std::string& services)
{
    auto result = config::parse_text("interfaces: [{name: eth0}]\n"
                                     "tunnel: {source_v4: 203.0.113.1, source_v6: \"2001:db8::1\", gue_port: 4754}\n"
                                     "services:\n" + services,
                                     "t.yaml");
    for (const auto& e : result.errors)
        FAIL(e.to_string());
    return std::move(*result.config);
}

std::string service(const std::string& name, const std::string& vip, int port, const std::string& extra,
                    const std::string& backends)
{
    return "  - name: " + name + "\n    vip: \"" + vip + "\"\n    port: " + std::to_string(port) +
           "\n    protocol: tcp\n" + extra + "    backends: " + backends + "\n";
}

const config::Backend& backend(const config::Config& c, std::size_t s, std::size_t b)
{
    return c.services.at(s).backends.at(b);
}

std::uint32_t mark(const health::TunnelPaths& p, const config::Config& c, std::size_t s, std::size_t b)
{
    return p.mark(c.services.at(s), backend(c, s, b));
}

// A health manager with tunnel paths whose runner records every check's target and passes it.
struct Checked {
    health::TunnelPaths paths;
    boost::asio::io_context io;
    std::vector<health::Target> seen;
    health::Manager manager{io,
                            [this](const config::HealthCheck&, const health::Target& t, health::Done done) {
                                seen.push_back(t);
                                done(health::Result{});
                            },
                            [] {}};
    Checked() { manager.set_tunnel_paths(&paths); }
};

}  // namespace

TEST_CASE("tunnel marks: one per backend tunnel, shared by services, outer header as the balancer's", "[health][via]")
{
    config::Config c = parse(
        service("web", "198.18.100.1", 80, "    healthcheck: {via: tunnel}\n", "[{address: 10.0.0.1}, {address: 10.0.0.2}]") +
        service("api", "198.18.100.1", 81, "    healthcheck: {via: tunnel}\n", "[{address: 10.0.0.1}]") +
        service("gue", "198.18.100.1", 82, "    encap: gue\n    healthcheck: {via: tunnel}\n", "[{address: 10.0.0.1}]") +
        service("plain", "198.18.100.2", 80, "", "[{address: 10.0.0.3, healthcheck: {via: tunnel}}, {address: 10.0.0.4}]") +
        service("v4over6", "198.18.100.3", 80, "    healthcheck: {via: tunnel}\n", "[{address: \"2001:db8::20\"}]"));
    health::TunnelPaths paths;
    const dataplane::CheckNumbers numbers = dataplane::check_numbers(0x102);  // interface 258: I = 2
    CHECK(numbers.mark_base == 0x46020000u);
    CHECK(numbers.table == 17920u + 258u);
    paths.set_mark_base(numbers.mark_base);
    auto routing = paths.plan(c);
    REQUIRE(routing.ok());

    // web's and api's checks of 10.0.0.1 share a tunnel; gue's of the same address has its own.
    const std::uint32_t web1 = mark(paths, c, 0, 0);
    CHECK((web1 & FULCRUM_CHECK_MARK_MASK) == numbers.mark_base);
    CHECK(web1 != numbers.mark_base);  // index 0 is never used
    CHECK(mark(paths, c, 1, 0) == web1);
    CHECK(mark(paths, c, 2, 0) != web1);
    CHECK(mark(paths, c, 0, 1) != web1);
    // A backend's own via: tunnel; its neighbour checked direct has no mark.
    CHECK(mark(paths, c, 3, 0) != 0);
    CHECK(mark(paths, c, 3, 1) == 0);
    std::set<std::uint32_t> marks{web1, mark(paths, c, 2, 0), mark(paths, c, 0, 1), mark(paths, c, 3, 0),
                                  mark(paths, c, 4, 0)};
    CHECK(marks.size() == 5);
    CHECK(routing->tunnels.size() == 5);
    CHECK(paths.size() == 5);

    const fulcrum_check_tunnel& ipip = routing->tunnels.at(web1);
    CHECK(ipip.family == 4);
    CHECK(ipip.gue == 0);
    CHECK(std::memcmp(ipip.src, c.tunnel.source_v4->bytes, 4) == 0);
    CHECK(std::memcmp(ipip.dst, backend(c, 0, 0).address.bytes, 4) == 0);
    const fulcrum_check_tunnel& gue = routing->tunnels.at(mark(paths, c, 2, 0));
    CHECK(gue.gue == 1);
    CHECK(ntohs(gue.gue_port) == 4754);
    const fulcrum_check_tunnel& v6 = routing->tunnels.at(mark(paths, c, 4, 0));
    CHECK(v6.family == 6);
    CHECK(std::memcmp(v6.src, c.tunnel.source_v6->bytes, 16) == 0);
    CHECK(std::memcmp(v6.dst, backend(c, 4, 0).address.bytes, 16) == 0);
    // Inner sources: only IPv4 VIPs are checked through the tunnel here (one over IPv6 tunnels).
    REQUIRE(routing->source_v4);
    CHECK(*routing->source_v4 == *c.tunnel.source_v4);
    CHECK_FALSE(routing->source_v6);
}

TEST_CASE("tunnel marks stay across reloads while used; freed ones are reused; direct needs nothing",
          "[health][via]")
{
    const std::string two = "[{address: 10.0.0.1}, {address: 10.0.0.2}]";
    config::Config first = parse(service("web", "198.18.100.1", 80, "    healthcheck: {via: tunnel}\n", two));
    health::TunnelPaths paths;
    REQUIRE(paths.plan(first).ok());
    paths.keep_only(first);
    const std::uint32_t one = mark(paths, first, 0, 0), two_ = mark(paths, first, 0, 1);

    // A reload that drops 10.0.0.1 and adds 10.0.0.3 before 10.0.0.2: 10.0.0.2 keeps its mark
    // (a check in flight leaves by the right tunnel), and until the new file is in force the
    // old mark still exists.
    config::Config next = parse(service("web", "198.18.100.1", 80, "    healthcheck: {via: tunnel}\n",
                                        "[{address: 10.0.0.3}, {address: 10.0.0.2}]"));
    auto routing = paths.plan(next);
    REQUIRE(routing.ok());
    CHECK(mark(paths, next, 0, 1) == two_);
    const std::uint32_t three = mark(paths, next, 0, 0);
    CHECK(three != one);
    CHECK(three != two_);
    CHECK(mark(paths, first, 0, 0) == one);
    CHECK(routing->tunnels.size() == 2);
    paths.keep_only(next);
    CHECK(paths.size() == 2);
    CHECK(mark(paths, first, 0, 0) == 0);

    // The freed index is the next one given.
    config::Config third = parse(service("web", "198.18.100.1", 80, "    healthcheck: {via: tunnel}\n",
                                         "[{address: 10.0.0.3}, {address: 10.0.0.2}, {address: 10.0.0.9}]"));
    REQUIRE(paths.plan(third).ok());
    CHECK(mark(paths, third, 0, 2) == one);

    // A file that checks nothing through the tunnel wants nothing of the kernel.
    config::Config direct = parse(service("web", "198.18.100.1", 80, "", two));
    auto none = paths.plan(direct);
    REQUIRE(none.ok());
    CHECK(none->empty());
    CHECK_FALSE(none->source_v4);
    CHECK_FALSE(none->source_v6);
    paths.keep_only(direct);
    CHECK(paths.size() == 0);
}

TEST_CASE("the manager checks a via: tunnel backend at the VIP and service port, marked for its tunnel",
          "[health][via]")
{
    config::Config c = parse(service("web", "198.18.100.1", 80, "    healthcheck: {via: tunnel, interval: 10ms, timeout: 5ms}\n",
                                     "[{address: 10.0.0.1}, {address: 10.0.0.2, healthcheck: {via: direct}}]"));
    Checked checked;
    REQUIRE(checked.paths.plan(c).ok());
    checked.manager.sync(c);
    checked.io.run_for(std::chrono::milliseconds(50));
    const health::TunnelPaths& paths = checked.paths;
    bool tunnelled = false, direct = false;
    for (const health::Target& t : checked.seen) {
        if (t.mark != 0) {
            tunnelled = true;
            CHECK(t.address.text == "198.18.100.1");
            CHECK(t.port == 80);
            CHECK(t.mark == mark(paths, c, 0, 0));
        } else {
            direct = true;
            CHECK(t.address.text == "10.0.0.2");
        }
    }
    CHECK(tunnelled);
    CHECK(direct);
}

TEST_CASE("a reload that changes only a service's encap or VIP moves its checks to the new tunnel and VIP",
          "[health][via]")
{
    const std::string backends = "[{address: 10.0.0.1}]";
    const std::string check = "    healthcheck: {via: tunnel, interval: 10ms, timeout: 5ms}\n";
    auto first = std::make_shared<const config::Config>(parse(service("web", "198.18.100.1", 80, check, backends)));
    auto gue = std::make_shared<const config::Config>(
        parse(service("web", "198.18.100.1", 80, "    encap: gue\n" + check, backends)));
    auto moved = std::make_shared<const config::Config>(
        parse(service("web", "198.18.100.7", 80, "    encap: gue\n" + check, backends)));
    Checked checked;
    auto& [paths, io, seen, manager] = checked;
    // As the daemon does: plan, sync (the shared_ptr overload skips unchanged services), keep_only.
    auto step = [&](const std::shared_ptr<const config::Config>& c) {
        REQUIRE(paths.plan(*c).ok());
        manager.sync(c);
        paths.keep_only(*c);
        seen.clear();
        io.restart();
        io.run_for(std::chrono::milliseconds(40));
        REQUIRE_FALSE(seen.empty());
        return seen.back();
    };
    const health::Target a = step(first);
    const health::Target b = step(gue);
    CHECK(b.mark != a.mark);  // the GUE tunnel's mark, not the freed IP-in-IP one
    CHECK(b.mark == mark(paths, *gue, 0, 0));
    const health::Target c = step(moved);
    CHECK(c.address.text == "198.18.100.7");
    CHECK(c.mark == b.mark);
}
