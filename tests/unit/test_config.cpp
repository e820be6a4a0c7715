// Unit tests of the config parser: a full file into typed values, defaults, and the exact text and
// position of every kind of error (the messages are what an operator reads at 3 a.m.).
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config_errors.h"

using namespace std::chrono_literals;
using fulcrum::config::Config;
using fulcrum::config::parse_text;
using fulcrum::test::errors_of;

namespace {

// Parses a file that must be valid; fails the test with its errors otherwise.
Config valid(const std::string& yaml)
{
    auto result = parse_text(yaml, "t.yaml");
    for (const auto& e : result.errors) FAIL_CHECK(e.to_string());
    REQUIRE(result.config.has_value());
    return *result.config;
}

std::string ipv4(const fulcrum::config::Address& a)
{
    char text[INET_ADDRSTRLEN] = {};
    REQUIRE(a.family == AF_INET);
    inet_ntop(AF_INET, a.bytes, text, sizeof text);
    return text;
}

std::string ipv6(const fulcrum::config::Address& a)
{
    char text[INET6_ADDRSTRLEN] = {};
    REQUIRE(a.family == AF_INET6);
    inet_ntop(AF_INET6, a.bytes, text, sizeof text);
    return text;
}

// INTERFACE.md's example, with documentation addresses (RFC 5737, RFC 3849).
const std::string kExample = R"(interfaces:                    # where the balancer attaches
  - name: eth0
    mode: auto
  - name: eth1
    mode: native
tunnel:
  source_v4: 203.0.113.1
  source_v6: 2001:db8:ffff::1
  source_v4_vary_bits: 8
flows:
  capacity: 2000000
  udp_idle_timeout: 45s
  new_per_second: 5000
icmp:
  replies_per_second: 250
bpf:
  pin_path: /sys/fs/bpf/fulcrum-test
  hash_seed: 3735928559
control:
  socket: /run/fulcrum/test.sock
metrics:
  listen: "[::1]:9471"
routes:
  table: 100
  need: 2
on_exit: detach
defaults:
  healthcheck: {type: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3}
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    protocol: tcp
    table_size: 65537
    min_healthy: 1
    healthcheck:
      type: http
      port: 8080
      path: /healthz
      expect_status: 200
    backends:
      - address: 198.51.100.11
        weight: 100
      - address: 198.51.100.12
        weight: 50
        state: drain
  - name: dns_v6
    vip: 2001:db8::53
    port: 53
    protocol: udp
    table_size: 251
    min_healthy: "50%"
    healthcheck: {type: dns, interval: 1m, timeout: 500ms, rise: 1, fall: 5, expect_status: [200, 204]}
    backends:
      - address: 2001:db8:1::11
        weight: 0
)";

// The first lines of most error cases below; their own text starts at line 3.
const std::string kHead =
    "interfaces: [{name: eth0}]\n"
    "tunnel: {source_v4: 203.0.113.1, source_v6: \"2001:db8::1\"}\n";

}  // namespace

TEST_CASE("the example file parses into the values it says", "[config]")
{
    Config c = valid(kExample);

    CHECK(c.file == "t.yaml");
    REQUIRE(c.interfaces.size() == 2);
    CHECK(c.interfaces[0].name == "eth0");
    CHECK(c.interfaces[0].mode == fulcrum::config::AttachMode::automatic);
    CHECK(c.interfaces[1].name == "eth1");
    CHECK(c.interfaces[1].mode == fulcrum::config::AttachMode::native);

    REQUIRE(c.tunnel.source_v4.has_value());
    CHECK(ipv4(*c.tunnel.source_v4) == "203.0.113.1");
    REQUIRE(c.tunnel.source_v6.has_value());
    CHECK(ipv6(*c.tunnel.source_v6) == "2001:db8:ffff::1");
    CHECK(c.tunnel.source_v4_vary_bits == 8);
    CHECK(c.tunnel.source_v6_vary_bits == 0);

    CHECK(c.flows.capacity == 2'000'000);
    CHECK(c.flows.udp_idle_timeout == 45s);
    CHECK(c.flows.new_per_second == 5000);
    CHECK(c.icmp.replies_per_second == 250);
    CHECK(c.pin_path == "/sys/fs/bpf/fulcrum-test");
    CHECK(c.hash_seed == 3735928559u);
    CHECK(c.control_socket == "/run/fulcrum/test.sock");
    CHECK(c.metrics_listen == "[::1]:9471");
    CHECK(c.routes_table == 100);
    CHECK(c.routes_need == 2);
    CHECK(c.on_exit == fulcrum::config::OnExit::detach);
    CHECK(c.default_healthcheck.type == fulcrum::config::CheckType::tcp);

    REQUIRE(c.services.size() == 2);
    const auto& web = c.services[0];
    CHECK(web.name == "web");
    CHECK(ipv4(web.vip) == "192.0.2.10");
    CHECK(web.vip.text == "192.0.2.10");
    CHECK(web.port == 80);
    CHECK(web.protocol == fulcrum::config::Protocol::tcp);
    CHECK(web.table_size == 65537);
    CHECK_FALSE(web.min_healthy.is_fraction);
    CHECK(web.min_healthy.value == 1);
    CHECK(web.healthcheck.type == fulcrum::config::CheckType::http);
    CHECK(web.healthcheck.port == std::optional<std::uint16_t>(8080));
    CHECK(web.healthcheck.path == "/healthz");
    CHECK(web.healthcheck.expect_status == std::vector<fulcrum::config::StatusRange>{{200, 200}});
    CHECK(web.healthcheck.interval == 2s);  // from defaults.healthcheck
    REQUIRE(web.backends.size() == 2);
    CHECK(ipv4(web.backends[0].address) == "198.51.100.11");
    CHECK(web.backends[0].weight == 100);
    CHECK(web.backends[0].state == fulcrum::config::BackendState::active);
    CHECK(web.backends[0].line == 42);
    CHECK(ipv4(web.backends[1].address) == "198.51.100.12");
    CHECK(web.backends[1].weight == 50);
    CHECK(web.backends[1].state == fulcrum::config::BackendState::drain);
    CHECK(web.backends[1].line == 44);

    const auto& dns = c.services[1];
    CHECK(dns.name == "dns_v6");
    CHECK(ipv6(dns.vip) == "2001:db8::53");
    CHECK(dns.protocol == fulcrum::config::Protocol::udp);
    CHECK(dns.table_size == 251);
    CHECK(dns.min_healthy.is_fraction);
    CHECK(dns.min_healthy.value == Approx(0.5));
    CHECK(dns.healthcheck.type == fulcrum::config::CheckType::dns);
    CHECK(dns.healthcheck.interval == 1min);
    CHECK(dns.healthcheck.timeout == 500ms);
    CHECK(dns.healthcheck.rise == 1);
    CHECK(dns.healthcheck.fall == 5);
    CHECK(dns.healthcheck.expect_status == std::vector<fulcrum::config::StatusRange>{{200, 200}, {204, 204}});
    REQUIRE(dns.backends.size() == 1);
    CHECK(ipv6(dns.backends[0].address) == "2001:db8:1::11");
    CHECK(dns.backends[0].weight == 0);
}

TEST_CASE("absent keys take their defaults", "[config]")
{
    Config c = valid(R"(interfaces:
  - name: eth0
tunnel:
  source_v4: 203.0.113.1
services:
  - name: web
    vip: 192.0.2.10
    port: 0
    protocol: udp
    healthcheck: {port: 53}
    backends:
      - address: 198.51.100.11
)");
    CHECK(c.interfaces[0].mode == fulcrum::config::AttachMode::automatic);
    CHECK_FALSE(c.tunnel.source_v6.has_value());
    CHECK(c.tunnel.source_v4_vary_bits == 0);
    CHECK(c.flows.capacity == 1'000'000);
    CHECK(c.flows.udp_idle_timeout == 30s);
    CHECK(c.flows.new_per_second == 100'000);
    CHECK(c.icmp.replies_per_second == 1000);
    CHECK(c.pin_path == "/sys/fs/bpf/fulcrum");
    CHECK(c.control_socket == "/run/fulcrum/fulcrumd.sock");
    CHECK(c.metrics_listen == "127.0.0.1:9470");
    CHECK(c.routes_table == 0);
    CHECK(c.routes_need == 1);
    CHECK(c.on_exit == fulcrum::config::OnExit::keep);
    CHECK_FALSE(c.hash_seed.has_value());

    const auto& s = c.services.at(0);
    CHECK(s.port == 0);
    CHECK(s.table_size == 65537);
    CHECK(s.hash == fulcrum::config::HashPolicy::five_tuple);
    CHECK(s.encap == fulcrum::config::Encap::ipip);
    CHECK(c.tunnel.gue_port == 6080);
    CHECK_FALSE(s.min_healthy.is_fraction);
    CHECK(s.min_healthy.value == 1);
    CHECK(s.healthcheck.type == fulcrum::config::CheckType::tcp);
    CHECK(s.healthcheck.interval == 2s);
    CHECK(s.healthcheck.timeout == 1s);
    CHECK(s.healthcheck.rise == 2);
    CHECK(s.healthcheck.fall == 3);
    CHECK(s.healthcheck.port == std::optional<std::uint16_t>(53));
    CHECK(s.healthcheck.path == "/");
    CHECK(s.healthcheck.expect_status == std::vector<fulcrum::config::StatusRange>{{200, 299}});
    CHECK(s.healthcheck.jitter == Approx(0.1));
    CHECK_FALSE(s.healthcheck.start_up);
    CHECK_FALSE(s.healthcheck.address.has_value());
    CHECK_FALSE(s.healthcheck.source.has_value());
    CHECK(s.healthcheck.method == "GET");
    CHECK(s.healthcheck.host.empty());
    CHECK(s.healthcheck.expect_body.empty());
    CHECK_FALSE(s.healthcheck.tls_verify);
    CHECK(s.healthcheck.payload.empty());
    CHECK(s.healthcheck.expect.empty());
    CHECK(s.healthcheck.require_reply);
    CHECK(s.healthcheck.query_name == ".");
    CHECK(s.healthcheck.query_type == "A");
    CHECK(s.healthcheck.command.empty());
    CHECK_FALSE(s.backends.at(0).healthcheck);  // no overrides: the service's check
    CHECK(s.backends.at(0).weight == 100);
    CHECK(s.backends.at(0).state == fulcrum::config::BackendState::active);
}

TEST_CASE("a backend holds its own health check out of line: the parsed file stays small", "[config]")
{
    // The daemon keeps the parsed file; 100,000 backends with an inline check (~550 bytes each,
    // used by few) were 60 MiB of it.
    CHECK(sizeof(fulcrum::config::Backend) < 2 * sizeof(fulcrum::config::Address));
}

TEST_CASE("a service healthcheck overrides defaults.healthcheck key by key", "[config]")
{
    Config c = valid(kHead + R"(defaults:
  healthcheck: {interval: 5s, rise: 4, path: /ready}
services:
  - {name: a, vip: 192.0.2.10, port: 80, protocol: tcp, backends: [], healthcheck: {type: https, rise: 1}}
  - {name: b, vip: 192.0.2.10, port: 81, protocol: tcp, backends: []}
)");
    const auto& a = c.services.at(0).healthcheck;
    CHECK(a.type == fulcrum::config::CheckType::https);  // the service's
    CHECK(a.rise == 1);                                  // the service's, over the default 4
    CHECK(a.interval == 5s);                             // from defaults
    CHECK(a.path == "/ready");                           // from defaults
    CHECK(a.fall == 3);                                  // built in
    const auto& b = c.services.at(1).healthcheck;
    CHECK(b.type == fulcrum::config::CheckType::tcp);
    CHECK(b.rise == 4);
    CHECK(b.interval == 5s);
    CHECK(c.default_healthcheck.rise == 4);
}

TEST_CASE("every healthcheck key parses to its value", "[config]")
{
    Config c = valid(kHead + R"(services:
  - name: web
    vip: 192.0.2.10
    port: 443
    protocol: tcp
    healthcheck:
      type: https
      interval: 3s
      timeout: 3000ms
      rise: 5
      fall: 7
      jitter: 0.25
      start_up: true
      port: 8443
      address: 198.51.100.99
      source: 198.51.100.1
      method: HEAD
      path: /healthz?full=1
      host: www.example.org:8443
      expect_status: [200, "300-399", 404]
      expect_body: "ok: ready"
      tls_verify: True
    backends: [{address: 198.51.100.11}]
  - name: dns
    vip: "2001:db8::53"
    port: 53
    protocol: udp
    healthcheck:
      type: dns
      jitter: 10%
      source: "2001:db8:ffff::5"
      query_name: _sip._udp.example.org.
      query_type: aaaa
      payload: "ping\n"
      expect: pong
      require_reply: false
    backends: [{address: "2001:db8::11"}]
  - name: custom
    vip: 192.0.2.10
    port: 0
    protocol: udp
    healthcheck: {type: exec, command: "/usr/local/bin/check --quiet", expect_status: "200-204"}
    backends: [{address: 198.51.100.11}]
)");
    const auto& h = c.services.at(0).healthcheck;
    CHECK(h.type == fulcrum::config::CheckType::https);
    CHECK(h.interval == 3s);
    CHECK(h.timeout == 3s);  // equal to the interval is allowed
    CHECK(h.rise == 5);
    CHECK(h.fall == 7);
    CHECK(h.jitter == Approx(0.25));
    CHECK(h.start_up);
    CHECK(h.port == std::optional<std::uint16_t>(8443));
    REQUIRE(h.address.has_value());
    CHECK(ipv4(*h.address) == "198.51.100.99");
    REQUIRE(h.source.has_value());
    CHECK(ipv4(*h.source) == "198.51.100.1");
    CHECK(h.method == "HEAD");
    CHECK(h.path == "/healthz?full=1");
    CHECK(h.host == "www.example.org:8443");
    CHECK(h.expect_status == std::vector<fulcrum::config::StatusRange>{{200, 200}, {300, 399}, {404, 404}});
    CHECK(h.expect_body == "ok: ready");
    CHECK(h.tls_verify);

    const auto& d = c.services.at(1).healthcheck;
    CHECK(d.type == fulcrum::config::CheckType::dns);
    CHECK(d.jitter == Approx(0.1));
    REQUIRE(d.source.has_value());
    CHECK(ipv6(*d.source) == "2001:db8:ffff::5");
    CHECK(d.query_name == "_sip._udp.example.org.");
    CHECK(d.query_type == "AAAA");  // any case in, upper case out
    CHECK(d.payload == "ping\n");
    CHECK(d.expect == "pong");
    CHECK_FALSE(d.require_reply);
    CHECK_FALSE(d.port.has_value());  // the service port (53) is used; no DNS default is implied

    const auto& e = c.services.at(2).healthcheck;
    CHECK(e.type == fulcrum::config::CheckType::exec);  // needs no port on a port-0 service
    CHECK(e.command == "/usr/local/bin/check --quiet");
    CHECK(e.expect_status == std::vector<fulcrum::config::StatusRange>{{200, 204}});

    // Other accepted forms: jitter 0, a bare IPv6 host, a [v6]:port host, the root name, FALSE.
    Config f = valid(kHead + R"(defaults:
  healthcheck: {jitter: 0, host: "2001:db8::1", query_name: ., tls_verify: FALSE, require_reply: TRUE}
services:
  - {name: a, vip: 192.0.2.10, port: 80, protocol: tcp, backends: [], healthcheck: {host: "[2001:db8::1]:80", jitter: 50%}}
  - {name: b, vip: 192.0.2.10, port: 81, protocol: tcp, backends: [], healthcheck: {host: ""}}
)");
    CHECK(f.default_healthcheck.jitter == 0);
    CHECK(f.default_healthcheck.host == "2001:db8::1");
    CHECK(f.default_healthcheck.query_name == ".");
    CHECK_FALSE(f.default_healthcheck.tls_verify);
    CHECK(f.default_healthcheck.require_reply);
    CHECK(f.services.at(0).healthcheck.host == "[2001:db8::1]:80");
    CHECK(f.services.at(0).healthcheck.jitter == Approx(0.5));
    CHECK(f.services.at(1).healthcheck.host.empty());  // "" undoes the inherited host
}

TEST_CASE("healthcheck.user: the user `fulcrum` or `nobody` by default, a name from the passwd database", "[config]")
{
    const auto nobody = fulcrum::config::lookup_user("nobody");
    REQUIRE(nobody);  // Debian always has it (uid 65534)
    CHECK(nobody->uid == 65534);
    // The default: `fulcrum` when this machine has that system user, else `nobody`.
    const auto fulcrum_user = fulcrum::config::lookup_user("fulcrum");
    const auto expected = fulcrum_user ? *fulcrum_user : *nobody;
    CHECK(fulcrum::config::default_check_user() == expected);
    CHECK_FALSE(fulcrum::config::lookup_user("no-such-user-fulcrum"));

    Config c = valid(kHead + "services:\n"
                             "  - name: web\n    vip: 192.0.2.10\n    port: 80\n    protocol: tcp\n"
                             "    healthcheck: {type: exec, command: /bin/true}\n"
                             "    backends:\n"
                             "      - address: 192.0.2.11\n"
                             "      - address: 192.0.2.12\n"
                             "        healthcheck: {user: daemon}\n");
    CHECK(c.default_healthcheck.user == expected);
    CHECK(c.services[0].healthcheck.user == expected);  // inherited from the defaults
    const auto daemon_user = fulcrum::config::lookup_user("daemon");
    REQUIRE(daemon_user);
    REQUIRE(c.services[0].backends[1].healthcheck);
    CHECK(c.services[0].backends[1].healthcheck->user == *daemon_user);  // the backend's own, by name
    CHECK(c.services[0].backends[1].healthcheck->user.name == "daemon");
    CHECK(c.services[0].backends[1].healthcheck->user.uid != 0);
}

TEST_CASE("healthcheck layers: defaults < service < backend, key by key", "[config]")
{
    Config c = valid(kHead + R"(defaults:
  healthcheck: {type: http, interval: 5s, rise: 4, path: /ready, jitter: 20%, host: lb.example.org}
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    protocol: tcp
    healthcheck: {rise: 1, expect_status: 204, source: 198.51.100.1}
    backends:
      - address: 198.51.100.11
      - address: 198.51.100.12
        healthcheck: {path: /other, fall: 9}
      - address: 198.51.100.13
        healthcheck: {type: exec, command: /bin/true, interval: 10s, timeout: 10s}
)");
    const auto& web = c.services.at(0);
    CHECK(web.healthcheck.type == fulcrum::config::CheckType::http);  // defaults
    CHECK(web.healthcheck.rise == 1);                                 // service
    CHECK(web.healthcheck.path == "/ready");                          // defaults
    REQUIRE(web.backends.size() == 3);
    CHECK_FALSE(web.backends[0].healthcheck != nullptr);

    REQUIRE(web.backends[1].healthcheck != nullptr);
    const auto& b1 = *web.backends[1].healthcheck;
    CHECK(b1.path == "/other");   // backend
    CHECK(b1.fall == 9);          // backend
    CHECK(b1.rise == 1);          // service
    CHECK(b1.expect_status == std::vector<fulcrum::config::StatusRange>{{204, 204}});  // service
    REQUIRE(b1.source.has_value());
    CHECK(ipv4(*b1.source) == "198.51.100.1");                        // service
    CHECK(b1.type == fulcrum::config::CheckType::http);               // defaults
    CHECK(b1.interval == 5s);                                         // defaults
    CHECK(b1.jitter == Approx(0.2));                                  // defaults
    CHECK(b1.host == "lb.example.org");                               // defaults
    CHECK(b1.timeout == 1s);                                          // built in

    REQUIRE(web.backends[2].healthcheck != nullptr);
    const auto& b2 = *web.backends[2].healthcheck;
    CHECK(b2.type == fulcrum::config::CheckType::exec);
    CHECK(b2.command == "/bin/true");
    CHECK(b2.interval == 10s);
    CHECK(b2.timeout == 10s);
    CHECK(b2.rise == 1);  // service

    // The service's check is not changed by its backends' overrides.
    CHECK(web.healthcheck.fall == 3);
    CHECK(web.healthcheck.command.empty());
    CHECK(c.default_healthcheck.rise == 4);
}

TEST_CASE("each kind of healthcheck error has its exact message and position", "[config]")
{
    struct Case {
        const char* what;
        std::string yaml;
        std::vector<std::string> errors;
    };
    // kHead fills lines 1-2; `defaults:` is line 3 and its healthcheck mapping line 4 in most cases.
    const std::string svc = "  - name: web\n    vip: 192.0.2.10\n    port: 80\n    protocol: tcp\n";
    // With "services:" on line 3: name 4, vip 5, port 6, protocol 7; line 8 on are the case's own.
    const Case cases[] = {
        {"jitter above 0.5", kHead + "defaults:\n  healthcheck: {jitter: 0.7}\nservices: []\n",
         {"t.yaml:4:25: defaults.healthcheck.jitter: expected a fraction 0..0.5 or a percentage 0%..50%, got "
          "\"0.7\""}},
        {"jitter as a percentage above 50%", kHead + "defaults:\n  healthcheck:\n    jitter: 60%\nservices: []\n",
         {"t.yaml:5:13: defaults.healthcheck.jitter: expected a fraction 0..0.5 or a percentage 0%..50%, got "
          "\"60%\""}},
        {"a negative jitter", kHead + "defaults:\n  healthcheck: {jitter: -0.1}\nservices: []\n",
         {"t.yaml:4:25: defaults.healthcheck.jitter: expected a fraction 0..0.5 or a percentage 0%..50%, got "
          "\"-0.1\""}},
        {"a timeout longer than the interval",
         kHead + "defaults:\n  healthcheck:\n    interval: 2s\n    timeout: 3s\nservices: []\n",
         {"t.yaml:6:14: defaults.healthcheck.timeout: expected a timeout at most the interval (2s), got \"3s\""}},
        {"an interval shorter than the inherited timeout, reported at the interval",
         kHead + "services:\n" + svc + "    healthcheck: {interval: 500ms}\n    backends: []\n",
         {"t.yaml:8:29: services[0].healthcheck.interval: expected an interval at least the timeout (1s), got "
          "\"500ms\""}},
        {"an HTTP method not in its set (methods are upper case)",
         kHead + "defaults:\n  healthcheck: {method: get}\nservices: []\n",
         {"t.yaml:4:25: defaults.healthcheck.method: expected GET, HEAD, POST or OPTIONS, got \"get\""}},
        {"a status range upside down", kHead + "defaults:\n  healthcheck: {expect_status: 300-200}\nservices: []\n",
         {"t.yaml:4:32: defaults.healthcheck.expect_status: expected a range LO-HI with LO <= HI, got "
          "\"300-200\""}},
        {"a status range beyond 599",
         kHead + "defaults:\n  healthcheck:\n    expect_status: [204, 200-700]\nservices: []\n",
         {"t.yaml:5:26: defaults.healthcheck.expect_status[1]: expected a range of HTTP statuses within "
          "100..599, got \"200-700\""}},
        {"a status pattern that is neither a status nor a range",
         kHead + "defaults:\n  healthcheck: {expect_status: 2xx}\nservices: []\n",
         {"t.yaml:4:32: defaults.healthcheck.expect_status: expected an HTTP status 100..599 or a range like "
          "\"200-299\", got \"2xx\""}},
        {"no status at all", kHead + "defaults:\n  healthcheck: {expect_status: []}\nservices: []\n",
         {"t.yaml:4:32: defaults.healthcheck.expect_status: expected at least one HTTP status or range, got an "
          "empty list"}},
        {"a DNS query type not in its set", kHead + "defaults:\n  healthcheck: {query_type: AXFR}\nservices: []\n",
         {"t.yaml:4:29: defaults.healthcheck.query_type: expected A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT, "
          "got \"AXFR\""}},
        {"a DNS name with a label of 64 characters",
         kHead + "defaults:\n  healthcheck:\n    query_name: " + std::string(64, 'a') + ".example.org\nservices: []\n",
         {"t.yaml:5:17: defaults.healthcheck.query_name: expected a DNS name of at most 253 characters in "
          "labels of 1 to 63 letters, digits, - or _ (\".\" for the root), got \"" +
          std::string(64, 'a') + ".example.org\""}},
        {"a DNS name with an empty label", kHead + "defaults:\n  healthcheck: {query_name: a..b}\nservices: []\n",
         {"t.yaml:4:29: defaults.healthcheck.query_name: expected a DNS name of at most 253 characters in "
          "labels of 1 to 63 letters, digits, - or _ (\".\" for the root), got \"a..b\""}},
        {"an exec check without a command",
         kHead + "services:\n" + svc + "    healthcheck:\n      type: exec\n      rise: 1\n    backends: []\n",
         {"t.yaml:9:7: services[0].healthcheck.command: missing required key \"command\" (needed by type "
          "exec)"}},
        {"an empty command", kHead + "defaults:\n  healthcheck: {type: exec, command: \"\"}\nservices: []\n",
         {"t.yaml:4:38: defaults.healthcheck.command: expected a command line, got \"\""}},
        {"an exec user the passwd database does not know",
         kHead + "defaults:\n  healthcheck:\n    user: no-such-user-fulcrum\nservices: []\n",
         {"t.yaml:5:11: defaults.healthcheck.user: expected the name of an existing user (no such user in the "
          "passwd database), got \"no-such-user-fulcrum\""}},
        {"root as the exec user",
         kHead + "services:\n" + svc + "    healthcheck: {type: exec, command: /bin/true, user: root}\n    backends: []\n",
         {"t.yaml:8:57: services[0].healthcheck.user: expected a user other than root (uid 0): exec checks never "
          "run with root's rights, got \"root\""}},
        {"a source of the other family than the backend it checks",
         kHead + "defaults:\n  healthcheck: {source: 198.51.100.1}\nservices:\n"
                 "  - {name: web6, vip: \"2001:db8::10\", port: 80, protocol: tcp, backends: [{address: "
                 "\"2001:db8::11\"}, {address: \"2001:db8::12\"}]}\n",
         {"t.yaml:4:25: defaults.healthcheck.source: expected an IPv6 address like the checked address "
          "2001:db8::11 (services[0].backends[0].address), got \"198.51.100.1\""}},
        {"a source of the other family than healthcheck.address",
         kHead + "services:\n" + svc +
             "    healthcheck:\n      address: \"2001:db8::99\"\n      source: 198.51.100.1\n    backends: []\n",
         {"t.yaml:10:15: services[0].healthcheck.source: expected an IPv6 address like the checked address "
          "2001:db8::99 (services[0].healthcheck.address), got \"198.51.100.1\""}},
        {"a boolean written yes", kHead + "defaults:\n  healthcheck: {tls_verify: yes}\nservices: []\n",
         {"t.yaml:4:29: defaults.healthcheck.tls_verify: expected true or false, got \"yes\""}},
        {"a boolean written 1", kHead + "defaults:\n  healthcheck:\n    start_up: 1\nservices: []\n",
         {"t.yaml:5:15: defaults.healthcheck.start_up: expected true or false, got \"1\""}},
        {"an unknown healthcheck key with a suggestion",
         kHead + "defaults:\n  healthcheck:\n    expect_stauts: 200\nservices: []\n",
         {"t.yaml:5:5: defaults.healthcheck.expect_stauts: unknown key \"expect_stauts\"; did you mean "
          "\"expect_status\"?"}},
        {"an unknown key in a backend's healthcheck",
         kHead + "services:\n" + svc +
             "    backends:\n      - address: 198.51.100.11\n        healthcheck: {intervall: 5s}\n",
         {"t.yaml:10:23: services[0].backends[0].healthcheck.intervall: unknown key \"intervall\"; did you mean "
          "\"interval\"?"}},
        {"a bad value in a backend's healthcheck",
         kHead + "services:\n" + svc +
             "    backends:\n      - address: 198.51.100.11\n        healthcheck:\n          fall: 0\n",
         {"t.yaml:11:17: services[0].backends[0].healthcheck.fall: expected an integer 1..100, got \"0\""}},
        {"a Host header with a space", kHead + "defaults:\n  healthcheck: {host: \"my host\"}\nservices: []\n",
         {"t.yaml:4:23: defaults.healthcheck.host: expected a host name or an IP address, optionally with "
          ":PORT ([ADDRESS]:PORT for IPv6), got \"my host\""}},
        {"a check address that is not an address",
         kHead + "defaults:\n  healthcheck: {address: backend1.example.org}\nservices: []\n",
         {"t.yaml:4:26: defaults.healthcheck.address: expected an IPv4 or IPv6 address, got "
          "\"backend1.example.org\""}},
        {"a backend's check that needs a port on a port-0 service",
         kHead + "services:\n  - name: all\n    vip: 192.0.2.10\n    port: 0\n    protocol: tcp\n"
                 "    healthcheck: {type: exec, command: /bin/true}\n"
                 "    backends:\n      - address: 198.51.100.11\n        healthcheck: {type: tcp}\n",
         {"t.yaml:11:22: services[0].backends[0].healthcheck.port: missing required key \"port\" (needed when "
          "the service port is 0)"}},
        // A problem is reported where it is written, not again in every layer that inherits it.
        {"a timeout too long in defaults, inherited by a service",
         kHead + "defaults:\n  healthcheck: {timeout: 5s}\nservices:\n" + svc +
             "    healthcheck: {rise: 1}\n    backends: [{address: 198.51.100.11, healthcheck: {fall: 1}}]\n",
         {"t.yaml:4:26: defaults.healthcheck.timeout: expected a timeout at most the interval (2s), got "
          "\"5s\""}},
        {"an exec type without command in defaults, inherited",
         kHead + "defaults:\n  healthcheck: {type: exec}\nservices:\n" + svc + "    healthcheck: {rise: 1}\n"
                 "    backends: []\n",
         {"t.yaml:4:16: defaults.healthcheck.command: missing required key \"command\" (needed by type exec)"}},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        CHECK(errors_of(c.yaml) == c.errors);
    }
}

TEST_CASE("accepted forms: empty services, IPv6 backends of an IPv4 vip, durations, listen", "[config]")
{
    CHECK(valid(kHead + "services: []\n").services.empty());

    // IPv4-in-IPv6 is supported: only tunnel.source_v6 is needed.
    Config mixed = valid(R"(interfaces: [{name: eth0}]
tunnel: {source_v6: "2001:db8::1"}
services:
  - {name: web, vip: 192.0.2.10, port: 80, protocol: tcp, backends: [{address: "2001:db8::11"}]}
)");
    CHECK(mixed.services.at(0).backends.at(0).address.family == AF_INET6);

    Config d = valid(kHead + "flows: {udp_idle_timeout: 1h}\nservices: []\n");
    CHECK(d.flows.udp_idle_timeout == 1h);

    CHECK(valid(kHead + "metrics: {listen: \"0.0.0.0:9100\"}\nservices: []\n").metrics_listen ==
          "0.0.0.0:9100");
    CHECK(valid(kHead + "routes: {table: 4294967295}\nservices: []\n").routes_table == 4294967295u);
    CHECK(valid(kHead + "bpf: {hash_seed: 0}\nservices: []\n").hash_seed == 0);
}

TEST_CASE("bpf.hash_seed: unset, a value, or 0 with a warning at its position", "[config][seed]")
{
    auto parsed = parse_text(kHead + "services: []\n", "t.yaml");
    REQUIRE(parsed.config);
    CHECK_FALSE(parsed.config->hash_seed.has_value());
    CHECK(parsed.warnings.empty());
    parsed = parse_text(kHead + "bpf: {hash_seed: 4242}\nservices: []\n", "t.yaml");
    REQUIRE(parsed.config);
    CHECK(parsed.config->hash_seed == 4242u);
    CHECK(parsed.warnings.empty());
    parsed = parse_text(kHead + "bpf:\n  hash_seed: 0\nservices: []\n", "t.yaml");
    REQUIRE(parsed.config);
    CHECK(parsed.config->hash_seed == 0u);
    REQUIRE(parsed.warnings.size() == 1);
    CHECK(parsed.warnings[0].to_string().rfind("t.yaml:4:14: bpf.hash_seed: warning: 0 is the well-known seed: "
                                               "anyone can craft flows that all land on one backend",
                                               0) == 0);
    CHECK(errors_of(kHead + "bpf: {hash_seed: 4294967296}\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:3:18: bpf.hash_seed: expected an integer 0..4294967295, got "
                                   "\"4294967296\""});
}

TEST_CASE("rate limits: flows.new_per_second and icmp.replies_per_second, 0 = no limit", "[config]")
{
    Config zero = valid(kHead + "flows: {new_per_second: 0}\nicmp: {replies_per_second: 0}\nservices: []\n");
    CHECK(zero.flows.new_per_second == 0);
    CHECK(zero.icmp.replies_per_second == 0);
    Config top = valid(kHead + "flows: {new_per_second: 100000000}\nicmp: {replies_per_second: 100000000}\n"
                               "services: []\n");
    CHECK(top.flows.new_per_second == 100'000'000);
    CHECK(top.icmp.replies_per_second == 100'000'000);
    // Only the key written changes: the other flows keys keep their defaults.
    Config some = valid(kHead + "flows: {new_per_second: 7}\nservices: []\n");
    CHECK(some.flows.capacity == 1'000'000);
    CHECK(some.icmp.replies_per_second == 1000);

    CHECK(errors_of(kHead + "flows:\n  new_per_second: 100000001\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:4:19: flows.new_per_second: expected an integer 0..100000000, got "
                                   "\"100000001\""});
    CHECK(errors_of(kHead + "flows: {new_per_second: fast}\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:3:25: flows.new_per_second: expected an integer 0..100000000, got "
                                   "\"fast\""});
    CHECK(errors_of(kHead + "icmp:\n  replies_per_second: -1\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:4:23: icmp.replies_per_second: expected an integer 0..100000000, got "
                                   "\"-1\""});
    CHECK(errors_of(kHead + "icmp:\n  replies_per_secnd: 10\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:4:3: icmp.replies_per_secnd: unknown key \"replies_per_secnd\"; did "
                                   "you mean \"replies_per_second\"?"});
    CHECK(errors_of(kHead + "icmp: 1000\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:3:7: icmp: expected a mapping, got \"1000\""});
}

TEST_CASE("hash: every policy by its word; anything else an error at the value", "[config][hash]")
{
    using fulcrum::config::HashPolicy;
    const std::string web = "services:\n  - name: web\n    vip: 192.0.2.10\n    port: 0\n    protocol: udp\n"
                            "    healthcheck: {port: 53}\n";
    for (auto [word, policy] : {std::pair{"5-tuple", HashPolicy::five_tuple}, std::pair{"src-ip", HashPolicy::src_ip},
                                std::pair{"src-ip-dst-port", HashPolicy::src_ip_dst_port},
                                std::pair{"dst-port", HashPolicy::dst_port}}) {
        CAPTURE(word);
        Config c = valid(kHead + web + "    hash: " + word + "\n    backends: []\n");
        CHECK(c.services.at(0).hash == policy);
        CHECK(std::string(fulcrum::config::to_string(policy)) == word);
    }
    // web: services at 3 ... healthcheck at 8; hash at line 9, its value at column 11.
    CHECK(errors_of(kHead + web + "    hash: source-ip\n    backends: []\n") ==
          std::vector<std::string>{"t.yaml:9:11: services[0].hash: expected 5-tuple, src-ip, src-ip-dst-port or "
                                   "dst-port, got \"source-ip\""});
    CHECK(errors_of(kHead + web + "    hash: [src-ip]\n    backends: []\n") ==
          std::vector<std::string>{"t.yaml:9:11: services[0].hash: expected 5-tuple, src-ip, src-ip-dst-port or "
                                   "dst-port, got a list"});
    CHECK(errors_of(kHead + web + "    hsh: src-ip\n    backends: []\n") ==
          std::vector<std::string>{"t.yaml:9:5: services[0].hsh: unknown key \"hsh\"; did you mean \"hash\"?"});
}

TEST_CASE("quic: server id position per UDP service, server_id per backend, every mistake at its value",
          "[config][quic]")
{
    // Lines: services 3, name 4, vip 5, port 6, protocol 7, healthcheck 8, quic 9, backends 10,
    // then one backend per line from 11.
    auto file = [](const std::string& protocol, const std::string& quic, const std::vector<std::string>& backends) {
        std::string text = kHead + "services:\n  - name: q\n    vip: 192.0.2.10\n    port: 443\n    protocol: " +
                           protocol + "\n    healthcheck: {port: 443}\n" + quic + "    backends:\n";
        for (const std::string& b : backends)
            text += "      - " + b + "\n";
        return text;
    };
    const std::string quic = "    quic: {server_id_offset: 2, server_id_bits: 12}\n";
    Config c = valid(file("udp", quic,
                          {"{address: 198.18.0.11, server_id: 1}", "{address: 198.18.0.12, server_id: 4095}",
                           "{address: 198.18.0.13}"}));
    const auto& s = c.services.at(0);
    REQUIRE(s.quic.has_value());
    CHECK(s.quic->server_id_offset == 2);
    CHECK(s.quic->server_id_bits == 12);
    CHECK(s.backends.at(0).server_id == 1);
    CHECK(s.backends.at(1).server_id == 4095);
    CHECK(s.backends.at(2).server_id == 0);  // none: reached by the hash only
    CHECK_FALSE(valid(file("udp", "", {"{address: 198.18.0.11}"})).services.at(0).quic.has_value());
    // 32 bits: the whole range; offset 16 + 4 bytes ends at the 20th byte.
    CHECK(valid(file("udp", "    quic: {server_id_offset: 16, server_id_bits: 32}\n",
                     {"{address: 198.18.0.11, server_id: 4294967295}"}))
              .services.at(0).backends.at(0).server_id == 4294967295u);

    using V = std::vector<std::string>;
    CHECK(errors_of(file("tcp", quic, {"{address: 198.18.0.11}"})) ==
          V{"t.yaml:9:11: services[0].quic: quic needs protocol udp (QUIC runs over UDP), the service is tcp"});
    CHECK(errors_of(file("udp", quic, {"{address: 198.18.0.11, server_id: 4096}"})) ==
          V{"t.yaml:11:43: services[0].backends[0].server_id: expected an integer 1..4095, got \"4096\""});
    CHECK(errors_of(file("udp", quic, {"{address: 198.18.0.11, server_id: 0}"})) ==
          V{"t.yaml:11:43: services[0].backends[0].server_id: expected an integer 1..4095, got \"0\""});
    CHECK(errors_of(file("udp", quic, {"{address: 198.18.0.11, server_id: 7}", "{address: 198.18.0.12, server_id: 7}"})) ==
          V{"t.yaml:12:43: services[0].backends[1].server_id: duplicate server_id 7 (first at line 11)"});
    CHECK(errors_of(file("udp", "", {"{address: 198.18.0.11, server_id: 7}"})) ==
          V{"t.yaml:10:43: services[0].backends[0].server_id: server_id needs the service's quic settings "
            "(server ids route QUIC packets of a UDP service)"});
    CHECK(errors_of(file("udp", "    quic: {server_id_offset: 20, server_id_bits: 8}\n", {"{address: 198.18.0.11}"})) ==
          V{"t.yaml:9:30: services[0].quic.server_id_offset: expected an integer 0..19, got \"20\""});
    CHECK(errors_of(file("udp", "    quic: {server_id_offset: 0, server_id_bits: 33}\n", {"{address: 198.18.0.11}"})) ==
          V{"t.yaml:9:49: services[0].quic.server_id_bits: expected an integer 1..32, got \"33\""});
    CHECK(errors_of(file("udp", "    quic: {server_id_offset: 17, server_id_bits: 32}\n", {"{address: 198.18.0.11}"})) ==
          V{"t.yaml:9:50: services[0].quic.server_id_bits: expected a server id that ends within the 20-byte "
            "connection ID (server_id_offset 17 + 4 bytes), got \"32\""});
    CHECK(errors_of(file("udp", "    quic: {server_id_bits: 8}\n", {"{address: 198.18.0.11}"})) ==
          V{"t.yaml:9:11: services[0].quic.server_id_offset: missing required key \"server_id_offset\""});
    CHECK(errors_of(file("udp", "    quic: on\n", {"{address: 198.18.0.11}"})) ==
          V{"t.yaml:9:11: services[0].quic: expected a mapping, got \"on\""});
    // A bad quic mapping does not add noise about the backends' server ids.
    CHECK(errors_of(file("udp", "    quic: {server_id_offset: 0, server_id_bits: 40}\n",
                         {"{address: 198.18.0.11, server_id: 9999}"})) ==
          V{"t.yaml:9:49: services[0].quic.server_id_bits: expected an integer 1..32, got \"40\""});
}

TEST_CASE("encap: ipip or gue per service; tunnel.gue_port 1..65535", "[config][gue]")
{
    using fulcrum::config::Encap;
    const std::string web = "services:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    protocol: tcp\n";
    for (auto [word, encap] : {std::pair{"ipip", Encap::ipip}, std::pair{"gue", Encap::gue}}) {
        CAPTURE(word);
        Config c = valid(kHead + web + "    encap: " + word + "\n    backends: []\n");
        CHECK(c.services.at(0).encap == encap);
        CHECK(std::string(fulcrum::config::to_string(encap)) == word);
    }
    // web: services at 3 ... protocol at 7; encap at line 8, its value at column 12.
    CHECK(errors_of(kHead + web + "    encap: fou\n    backends: []\n") ==
          std::vector<std::string>{"t.yaml:8:12: services[0].encap: expected ipip or gue, got \"fou\""});
    CHECK(errors_of(kHead + web + "    encap: {type: gue}\n    backends: []\n") ==
          std::vector<std::string>{"t.yaml:8:12: services[0].encap: expected ipip or gue, got a mapping"});
    CHECK(errors_of(kHead + web + "    encp: gue\n    backends: []\n") ==
          std::vector<std::string>{"t.yaml:8:5: services[0].encp: unknown key \"encp\"; did you mean \"encap\"?"});

    const std::string head = "interfaces: [{name: eth0}]\n";
    Config c = valid(head + "tunnel: {source_v4: 203.0.113.1, gue_port: 4754}\nservices: []\n");
    CHECK(c.tunnel.gue_port == 4754);
    CHECK(errors_of(head + "tunnel: {source_v4: 203.0.113.1, gue_port: 0}\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:2:44: tunnel.gue_port: expected an integer 1..65535, got \"0\""});
    CHECK(errors_of(head + "tunnel: {source_v4: 203.0.113.1, gue_port: 65536}\nservices: []\n") ==
          std::vector<std::string>{"t.yaml:2:44: tunnel.gue_port: expected an integer 1..65535, got \"65536\""});
}

TEST_CASE("healthcheck.via: direct or tunnel; tunnel excludes exec, address and source; needs the VIP's tunnel source",
          "[config][via]")
{
    using fulcrum::config::CheckVia;
    const std::string web = "services:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    protocol: tcp\n";
    const std::string backend = "    backends: [{address: 10.0.0.1}]\n";
    Config c = valid(kHead + web + "    healthcheck: {via: tunnel}\n" + backend);
    CHECK(c.services.at(0).healthcheck.via == CheckVia::tunnel);
    CHECK(valid(kHead + web + backend).services.at(0).healthcheck.via == CheckVia::direct);
    // From defaults, and overridden per backend.
    c = valid(kHead + "defaults: {healthcheck: {via: tunnel}}\n" + web +
              "    backends: [{address: 10.0.0.1, healthcheck: {via: direct}}, {address: 10.0.0.2}]\n");
    CHECK(c.services.at(0).healthcheck.via == CheckVia::tunnel);
    CHECK(c.services.at(0).backends.at(0).healthcheck->via == CheckVia::direct);
    CHECK_FALSE(c.services.at(0).backends.at(1).healthcheck);

    // healthcheck at line 8, its mapping from column 18; each error at the value that makes it.
    CHECK(errors_of(kHead + web + "    healthcheck: {via: tunel}\n" + backend) ==
          std::vector<std::string>{"t.yaml:8:24: services[0].healthcheck.via: expected direct or tunnel, got \"tunel\""});
    CHECK(errors_of(kHead + web + "    healthcheck: {type: exec, command: \"true\", via: tunnel}\n" + backend) ==
          std::vector<std::string>{"t.yaml:8:25: services[0].healthcheck.type: via: tunnel needs a check that sends "
                                   "packets (tcp, http, https, udp or dns), not exec"});
    CHECK(errors_of(kHead + web + "    healthcheck: {via: tunnel, address: 10.0.0.9}\n" + backend) ==
          std::vector<std::string>{"t.yaml:8:41: services[0].healthcheck.address: via: tunnel checks the VIP through "
                                   "the tunnel; it excludes healthcheck.address"});
    CHECK(errors_of(kHead + web + "    healthcheck: {via: tunnel, source: 203.0.113.1}\n" + backend) ==
          std::vector<std::string>{"t.yaml:8:40: services[0].healthcheck.source: via: tunnel checks come from "
                                   "tunnel.source_v4/v6; it excludes healthcheck.source"});
    // The conflict is reported once, where it starts: a backend's `via: tunnel` on the service's address.
    CHECK(errors_of(kHead + web + "    healthcheck: {address: 10.0.0.9}\n"
                                  "    backends: [{address: 10.0.0.1, healthcheck: {via: tunnel}}]\n") ==
          std::vector<std::string>{"t.yaml:9:55: services[0].backends[0].healthcheck.via: via: tunnel checks the VIP "
                                   "through the tunnel; it excludes healthcheck.address"});
    // An IPv4 VIP over IPv6 backends: the tunnels leave from tunnel.source_v6, the checks in them
    // from tunnel.source_v4.
    const std::string v6_only = "interfaces: [{name: eth0}]\ntunnel: {source_v6: \"2001:db8::1\"}\n";
    const std::string v6_backend = "    backends: [{address: \"2001:db8::20\"}]\n";
    CHECK(valid(v6_only + web + v6_backend).services.size() == 1);
    CHECK(errors_of(v6_only + web + "    healthcheck: {via: tunnel}\n" + v6_backend) ==
          std::vector<std::string>{"t.yaml:5:10: services[0].vip: health checks through the tunnel (via: tunnel) to "
                                   "this IPv4 VIP need tunnel.source_v4 (their source address), which is not set"});
}

TEST_CASE("each kind of error has its exact message and position", "[config]")
{
    struct Case {
        const char* what;
        std::string yaml;
        std::string error;
    };
    // kHead fills lines 1-2; the text of each case starts at line 3.
    const std::string web =
        "services:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    protocol: tcp\n";
    // web: services at 3, name 4, vip 5, port 6, protocol 7; backends start at line 8.
    const Case cases[] = {
        {"unknown key with a suggestion",
         kHead + web + "    backends:\n      - address: 198.51.100.11\n        wieght: 100\n",
         "t.yaml:10:9: services[0].backends[0].wieght: unknown key \"wieght\"; did you mean \"weight\"?"},
        {"unknown key with nothing close", kHead + "colour: blue\nservices: []\n",
         "t.yaml:3:1: colour: unknown key \"colour\"; expected one of: interfaces, tunnel, flows, icmp, bpf, "
         "control, metrics, routes, on_exit, defaults, services"},
        {"a key given twice", kHead + web + "    port: 81\n    backends: []\n",
         "t.yaml:8:5: services[0].port: duplicate key \"port\" (first at line 6)"},
        {"a missing required key points at the mapping that lacks it",
         kHead + "services:\n  - name: web\n    port: 80\n    protocol: tcp\n    backends: []\n",
         "t.yaml:4:5: services[0].vip: missing required key \"vip\""},
        {"an integer out of range",
         kHead + web + "    backends:\n      - address: 198.51.100.11\n        weight: 70000\n",
         "t.yaml:10:17: services[0].backends[0].weight: expected an integer 0..65535, got \"70000\""},
        {"an integer that is not a number",
         kHead + web + "    backends:\n      - {address: 198.51.100.11, weight: heavy}\n",
         "t.yaml:9:42: services[0].backends[0].weight: expected an integer 0..65535, got \"heavy\""},
        {"a bad address", kHead + web + "    backends:\n      - address: 10.0.0.300\n",
         "t.yaml:9:18: services[0].backends[0].address: expected an IPv4 or IPv6 address, got "
         "\"10.0.0.300\""},
        {"a duration without a unit", kHead + "flows:\n  udp_idle_timeout: 30\nservices: []\n",
         "t.yaml:4:21: flows.udp_idle_timeout: expected a duration with a unit (ms, s, m or h), got \"30\""},
        {"a zero duration", kHead + "defaults:\n  healthcheck: {interval: 0ms}\nservices: []\n",
         "t.yaml:4:27: defaults.healthcheck.interval: expected a duration greater than 0 and at most 24h, "
         "got \"0ms\""},
        {"a duration with an unknown unit",
         kHead + "defaults:\n  healthcheck:\n    timeout: 2 sec\nservices: []\n",
         "t.yaml:5:14: defaults.healthcheck.timeout: expected a duration like 500ms, 2s, 1m or 1h, got \"2 "
         "sec\""},
        {"a word not in its set", "interfaces:\n  - name: eth0\n    mode: fast\nservices: []\n",
         "t.yaml:3:11: interfaces[0].mode: expected native, generic or auto, got \"fast\""},
        {"a protocol not in its set",
         kHead + "services:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    protocol: sctp\n"
                 "    backends: []\n",
         "t.yaml:7:15: services[0].protocol: expected tcp or udp, got \"sctp\""},
        {"on_exit not in its set", kHead + "on_exit: stop\nservices: []\n",
         "t.yaml:3:10: on_exit: expected keep or detach, got \"stop\""},
        {"a healthcheck type not in its set", kHead + "defaults: {healthcheck: {type: icmp}}\nservices: []\n",
         "t.yaml:3:32: defaults.healthcheck.type: expected tcp, http, https, udp, dns or exec, got \"icmp\""},
        {"a table size that is not a prime", kHead + web + "    table_size: 65536\n    backends: []\n",
         "t.yaml:8:17: services[0].table_size: expected a prime number 3..1048573 (e.g. 65537), got "
         "\"65536\""},
        {"a prime table size above the data plane's limit",
         kHead + web + "    table_size: 1048583\n    backends: []\n",
         "t.yaml:8:17: services[0].table_size: expected a prime number 3..1048573 (e.g. 65537), got "
         "\"1048583\""},
        {"a service name with capitals",
         kHead + "services:\n  - {name: Web, vip: 192.0.2.10, port: 80, protocol: tcp, backends: []}\n",
         "t.yaml:4:12: services[0].name: expected a name of 1 to 64 characters a-z, 0-9, _ or -, got "
         "\"Web\""},
        {"a service name of 65 characters",
         kHead + "services:\n  - {name: " + std::string(65, 'a') +
             ", vip: 192.0.2.10, port: 80, protocol: tcp, backends: []}\n",
         "t.yaml:4:12: services[0].name: expected a name of 1 to 64 characters a-z, 0-9, _ or -, got \"" +
             std::string(65, 'a') + "\""},
        {"an interface name longer than IFNAMSIZ", "interfaces: [{name: enp1s0f0np0v1234}]\nservices: []\n",
         "t.yaml:1:21: interfaces[0].name: expected an interface name of 1 to 15 characters without '/', ':' "
         "or "
         "spaces, got \"enp1s0f0np0v1234\""},
        {"no interface", "interfaces: []\nservices: []\n",
         "t.yaml:1:13: interfaces: expected at least one interface, got an empty list"},
        {"a section of the wrong type", kHead + "services:\n  web: {}\n",
         "t.yaml:4:3: services: expected a list of services, got a mapping"},
        {"a key with no value",
         kHead + web + "    backends:\n      - address: 198.51.100.11\n        weight:\n",
         "t.yaml:10:9: services[0].backends[0].weight: expected an integer 0..65535, got nothing"},
        {"a duplicate interface", "interfaces:\n  - name: eth0\n  - name: eth0\nservices: []\n",
         "t.yaml:3:11: interfaces[1].name: duplicate interface \"eth0\" (first at line 2)"},
        {"a duplicate service name",
         kHead + "services:\n  - {name: web, vip: 192.0.2.10, port: 80, protocol: tcp, backends: []}\n"
                 "  - {name: web, vip: 192.0.2.10, port: 443, protocol: tcp, backends: []}\n",
         "t.yaml:5:12: services[1].name: duplicate service name \"web\" (first at line 4)"},
        {"two services on one vip, port and protocol",
         kHead + "services:\n  - {name: web, vip: 192.0.2.10, port: 80, protocol: tcp, backends: []}\n"
                 "  - {name: web2, vip: 192.0.2.10, port: 80, protocol: tcp, backends: []}\n",
         "t.yaml:5:23: services[1].vip: vip 192.0.2.10 port 80 tcp is already used by service \"web\" "
         "(first at line 4)"},
        {"one backend twice, written differently",
         kHead + web + "    backends:\n      - address: 2001:db8::a\n      - address: 2001:db8:0::a\n",
         "t.yaml:10:18: services[0].backends[1].address: duplicate backend 2001:db8:0::a (first at line 9)"},
        {"an IPv4 backend behind an IPv6 vip",
         kHead + "services:\n  - name: web6\n    vip: 2001:db8::10\n    port: 80\n    protocol: tcp\n"
                 "    backends:\n      - address: 198.51.100.11\n",
         "t.yaml:9:18: services[0].backends[0].address: expected an IPv6 backend for the IPv6 vip "
         "2001:db8::10 "
         "(IPv6 in IPv4 is not supported), got \"198.51.100.11\""},
        {"an IPv4 backend without tunnel.source_v4",
         "interfaces: [{name: eth0}]\nservices:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n"
         "    protocol: tcp\n    backends:\n      - address: 198.51.100.11\n      - address: 198.51.100.12\n",
         "t.yaml:8:18: services[0].backends[0].address: an IPv4 backend needs tunnel.source_v4 (the outer "
         "source address), which is not set"},
        {"an IPv6 backend without tunnel.source_v6",
         "interfaces: [{name: eth0}]\ntunnel: {source_v4: 203.0.113.1}\nservices:\n"
         "  - {name: web, vip: 192.0.2.10, port: 80, protocol: tcp, backends: [{address: 198.51.100.1}]}\n"
         "  - {name: web6, vip: \"2001:db8::10\", port: 80, protocol: tcp, backends: [{address: "
         "\"2001:db8::11\"}]}\n",
         "t.yaml:5:85: services[1].backends[0].address: an IPv6 backend needs tunnel.source_v6 (the outer "
         "source address), which is not set"},
        {"a tunnel source of the wrong family",
         "interfaces: [{name: eth0}]\ntunnel:\n  source_v4: 2001:db8::1\nservices: []\n",
         "t.yaml:3:14: tunnel.source_v4: expected an IPv4 address, got \"2001:db8::1\""},
        {"an unknown key close to a known one", kHead + "tunnel2: 1\nservices: []\n",
         "t.yaml:3:1: tunnel2: unknown key \"tunnel2\"; did you mean \"tunnel\"?"},
        {"min_healthy above 100%", kHead + web + "    min_healthy: 150%\n    backends: []\n",
         "t.yaml:8:18: services[0].min_healthy: expected a count 0..65535 or a percentage 1%..100%, got "
         "\"150%\""},
        {"min_healthy 0%", kHead + web + "    min_healthy: 0%\n    backends: []\n",
         "t.yaml:8:18: services[0].min_healthy: expected a count 0..65535 or a percentage 1%..100%, got "
         "\"0%\""},
        {"metrics.listen with a bare IPv6 host", kHead + "metrics: {listen: \"::1:9470\"}\nservices: []\n",
         "t.yaml:3:19: metrics.listen: expected HOST:PORT with an IP address as HOST ([ADDRESS]:PORT for "
         "IPv6) "
         "and PORT 1..65535, got \"::1:9470\""},
        {"metrics.listen without a port", kHead + "metrics:\n  listen: 127.0.0.1\nservices: []\n",
         "t.yaml:4:11: metrics.listen: expected HOST:PORT with an IP address as HOST ([ADDRESS]:PORT for "
         "IPv6) "
         "and PORT 1..65535, got \"127.0.0.1\""},
        {"a relative pin path", kHead + "bpf:\n  pin_path: sys/fs/bpf/fulcrum\nservices: []\n",
         "t.yaml:4:13: bpf.pin_path: expected an absolute path, got \"sys/fs/bpf/fulcrum\""},
        {"a relative control socket", kHead + "control: {socket: fulcrumd.sock}\nservices: []\n",
         "t.yaml:3:19: control.socket: expected an absolute path, got \"fulcrumd.sock\""},
        {"a routing table above 2^32-1", kHead + "routes: {table: 4294967296}\nservices: []\n",
         "t.yaml:3:17: routes.table: expected an integer 0..4294967295, got \"4294967296\""},
        {"rise 0", kHead + "defaults: {healthcheck: {rise: 0}}\nservices: []\n",
         "t.yaml:3:32: defaults.healthcheck.rise: expected an integer 1..100, got \"0\""},
        {"a flow table of 0 entries", kHead + "flows: {capacity: 0}\nservices: []\n",
         "t.yaml:3:19: flows.capacity: expected an integer 1..100000000, got \"0\""},
        {"a negative flow table", kHead + "flows: {capacity: -5}\nservices: []\n",
         "t.yaml:3:19: flows.capacity: expected an integer 1..100000000, got \"-5\""},
        {"an HTTP status out of range in a list",
         kHead + "defaults:\n  healthcheck:\n    expect_status: [200, 700]\n" + "services: []\n",
         "t.yaml:5:26: defaults.healthcheck.expect_status[1]: expected an integer 100..599, got \"700\""},
        {"a healthcheck path that is not a path",
         kHead + "defaults: {healthcheck: {path: healthz}}\nservices: []\n",
         "t.yaml:3:32: defaults.healthcheck.path: expected a path starting with /, got \"healthz\""},
        {"vary bits above 16",
         "interfaces: [{name: eth0}]\ntunnel: {source_v4: 203.0.113.1, source_v4_vary_bits: 17}\nservices: "
         "[]\n",
         "t.yaml:2:55: tunnel.source_v4_vary_bits: expected an integer 0..16, got \"17\""},
        {"a port-0 service without a health check port",
         kHead + "services:\n  - {name: all, vip: 192.0.2.10, port: 0, protocol: tcp, backends: []}\n",
         "t.yaml:4:40: services[0].port: port 0 (every port) needs healthcheck.port for the health check"},
        {"a file that is not a mapping", "- interfaces\n", "t.yaml:1:1: expected a mapping, got a list"},
        {"two YAML documents", kHead + "services: []\n---\nservices: []\n",
         "t.yaml:5:1: expected one YAML document, found 2"},
        {"an empty file", "# nothing here\n",
         "t.yaml: expected a mapping with interfaces and services, got an empty file"},
        {"a YAML syntax error", kHead + "services: [{name: web\n",
         "t.yaml:4:1: invalid YAML: end of map flow not found"},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        CHECK(errors_of(c.yaml) == std::vector<std::string>{c.error});
    }
}

TEST_CASE("every error of a file is reported, in file order", "[config]")
{
    // The duplicate backend (line 12) is found by a check that runs after the walk, yet comes out
    // between the errors of lines 10 and 13.
    auto errors = errors_of(R"(interfaces:
  - name: eth0
    mode: fast
tunnel:
  source_v4: 203.0.113.1
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    protocoll: tcp
    backends:
      - address: 198.51.100.11
      - address: 198.51.100.11
        weight: -1
flows:
  capacity: lots
)");
    CHECK(errors ==
          std::vector<std::string>{
              "t.yaml:3:11: interfaces[0].mode: expected native, generic or auto, got \"fast\"",
              "t.yaml:7:5: services[0].protocol: missing required key \"protocol\"",
              "t.yaml:10:5: services[0].protocoll: unknown key \"protocoll\"; did you mean \"protocol\"?",
              "t.yaml:13:18: services[0].backends[1].address: duplicate backend 198.51.100.11 (first at line "
              "12)",
              "t.yaml:14:17: services[0].backends[1].weight: expected an integer 0..65535, got \"-1\"",
              "t.yaml:16:13: flows.capacity: expected an integer 1..100000000, got \"lots\"",
          });
}

TEST_CASE("an invalid value does not also trigger the checks built on it", "[config]")
{
    // A bad vip is reported once: no "IPv6 in IPv4" or duplicate-service error follows from it.
    // Missing names are not "duplicate names", though the services' vip, port and protocol clash.
    auto errors = errors_of(kHead + R"(services:
  - {name: a, vip: 192.0.2.300, port: 80, protocol: tcp, backends: [{address: 198.51.100.1}]}
  - {name: b, vip: 192.0.2.300, port: 80, protocol: tcp, backends: []}
  - {vip: 192.0.2.20, port: 80, protocol: tcp, backends: []}
  - {vip: 192.0.2.20, port: 80, protocol: tcp, backends: []}
)");
    CHECK(errors ==
          std::vector<std::string>{
              "t.yaml:4:20: services[0].vip: expected an IPv4 or IPv6 address, got \"192.0.2.300\"",
              "t.yaml:5:20: services[1].vip: expected an IPv4 or IPv6 address, got \"192.0.2.300\"",
              "t.yaml:6:5: services[2].name: missing required key \"name\"",
              "t.yaml:7:5: services[3].name: missing required key \"name\"",
              "t.yaml:7:11: services[3].vip: vip 192.0.2.20 port 80 tcp is already used by services[2] "
              "(first at line 6)",
          });
}

TEST_CASE("files: a missing file is one clear error; a real file is named in messages", "[config]")
{
    auto missing = fulcrum::config::load_file("/nonexistent/fulcrum.yaml");
    CHECK_FALSE(missing.config.has_value());
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].to_string() ==
          "/nonexistent/fulcrum.yaml: cannot read the file: No such file or directory");

    char path[] = "/tmp/fulcrum-test-config-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(path) << kExample;
    auto good = fulcrum::config::load_file(path);
    REQUIRE(good.errors.empty());
    CHECK(good.config->file == path);
    CHECK(good.config->services.size() == 2);

    std::ofstream(path) << kHead << "services: [}\n";
    auto bad = fulcrum::config::load_file(path);
    REQUIRE(bad.errors.size() == 1);
    CHECK(bad.errors[0].file == path);
    CHECK(bad.errors[0].line == 3);
    CHECK(bad.errors[0].column == 12);
    std::remove(path);
}

TEST_CASE("addresses compare by value, not by text", "[config]")
{
    Config c = valid(kHead + R"(services:
  - {name: a, vip: "2001:db8::1", port: 1, protocol: tcp, backends: []}
  - {name: b, vip: "2001:db8:0:0::1", port: 2, protocol: udp, backends: []}
  - {name: c, vip: 192.0.2.1, port: 3, protocol: tcp, backends: []}
)");
    CHECK(c.services[0].vip == c.services[1].vip);
    CHECK_FALSE(c.services[0].vip == c.services[2].vip);
    CHECK(to_string(c.services[0].protocol) == "tcp");
    CHECK(to_string(c.services[1].protocol) == "udp");
}
