// The typed configuration of fulcrumd (the YAML of ../shared/design/INTERFACE.md), after
// validation: every field here has passed its range and consistency checks.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fulcrum::config {

// An IPv4 or IPv6 address, kept in network byte order plus its text as written.
struct Address {
    int family = 0;             // AF_INET or AF_INET6
    std::uint8_t bytes[16]{};   // IPv4 in bytes[0..3]
    std::string text;
    bool operator==(const Address& o) const;
};

enum class AttachMode { native, generic, automatic };  // "auto" in YAML: native, or fail to start
enum class OnExit { keep, detach };
enum class Protocol { tcp, udp };
// Key `hash` of a service: which fields of a flow pick its backend (README "Hash policies").
// The flow tables keep each connection on its backend whatever the policy.
enum class HashPolicy {
    five_tuple,       // "5-tuple": client address and port, VIP port, protocol (the default)
    src_ip,           // "src-ip": the client address only: its connections share one backend
    src_ip_dst_port,  // "src-ip-dst-port": client address and VIP port (no client port)
    dst_port,         // "dst-port": the VIP port only (a port-0 service: one backend per port)
};
// Key `encap` of a service: how its packets travel to the backends (README "GUE").
enum class Encap {
    ipip,  // "ipip": an outer IPv4/IPv6 header only (the default)
    gue,   // "gue": outer IP + UDP to tunnel.gue_port (GUE variant 1: the inner packet follows)
};
enum class BackendState { active, drain };
enum class CheckType { tcp, http, https, udp, dns, exec };
// Key `via` of a health check (README "Health checks through the tunnel").
enum class CheckVia {
    direct,  // "direct": to the backend's address (or healthcheck.address), as any client would
    tunnel,  // "tunnel": to the VIP and service port, in the backend's tunnel, as clients' packets go
};

struct Interface {
    std::string name;
    AttachMode mode = AttachMode::automatic;
};

struct Tunnel {
    std::optional<Address> source_v4;
    std::optional<Address> source_v6;
    // Optional per-flow variation of the outer source (RSS on backends): the number of low bits
    // of the source that carry flow-hash bits (0 = off). Keys: source_v4_vary_bits (0..16),
    // source_v6_vary_bits (0..32).
    unsigned source_v4_vary_bits = 0;
    unsigned source_v6_vary_bits = 0;
    // UDP destination port of the GUE tunnels (services with encap: gue); the backends' decap
    // listens there (fulcrum-decap --gue-port, or `ip fou add port P gue`).
    std::uint16_t gue_port = 6080;  // FULCRUM_GUE_DEFAULT_PORT (xdp/abi.h; plan/desired.cpp checks)
};

struct Flows {
    std::uint32_t capacity = 1'000'000;
    std::chrono::milliseconds udp_idle_timeout{30'000};
    // Per CPU: new flow-table entries allowed per second; beyond it new flows are balanced by
    // Maglev alone, not recorded (xdp/abi.h fulcrum_settings). 0 = no limit. Applied on reload.
    std::uint32_t new_per_second = 100'000;
};

// Key `icmp`: answers the balancer generates itself.
struct Icmp {
    // Per CPU: echo and too-big replies per second; beyond it they are dropped and counted
    // (reason icmp_rate_limited). 0 = no limit. Applied on reload.
    std::uint32_t replies_per_second = 1000;
};

// The user an exec check's command runs as (key `user`), resolved when the file is read.
struct RunAs {
    std::string name = "nobody";
    std::uint32_t uid = 65534, gid = 65534;  // the kernel's overflow ids, if `nobody` is missing too
    bool operator==(const RunAs&) const = default;
};

// A range of HTTP status codes, both ends included (a single code is lo == hi).
struct StatusRange {
    unsigned lo = 200, hi = 200;
    bool operator==(const StatusRange&) const = default;
};

// Health check options (README: "Health checks", with keepalived equivalents). Fields a type does
// not use keep their defaults. defaults.healthcheck < service healthcheck < backend healthcheck,
// key by key. Validated: timeout <= interval; type exec has a command; source has the family of
// the checked address (address, else each backend's); a check other than exec has a port (the
// service port, or `port` when the service port is 0).
struct HealthCheck {
    CheckType type = CheckType::tcp;
    std::chrono::milliseconds interval{2000};
    std::chrono::milliseconds timeout{1000};
    unsigned rise = 2;                    // consecutive passes to go up
    unsigned fall = 3;                    // consecutive failures to go down
    double jitter = 0.1;                  // 0..0.5: each interval is randomized by +- this fraction
    bool start_up = false;                // a new backend starts up (true) or down until `rise` passes
    std::optional<std::uint16_t> port;    // default: the service port
    std::optional<Address> address;       // default: the backend address
    std::optional<Address> source;        // source address of the checks (default: the kernel's)
    CheckVia via = CheckVia::direct;      // tunnel: excludes address, source and exec
    // http / https
    std::string method = "GET";
    std::string path = "/";
    std::string host;                     // Host header (may carry :PORT); "" = the checked address
    std::vector<StatusRange> expect_status{{200, 299}};
    std::string expect_body;              // substring the body must contain ("" = any)
    bool tls_verify = false;              // https: verify the certificate chain and host name
    // udp
    std::string payload;                  // datagram sent ("" = empty datagram)
    std::string expect;                   // substring the reply must contain ("" = any reply)
    bool require_reply = true;            // false: no reply within timeout passes; only an ICMP error fails
    // dns
    std::string query_name = ".";         // name asked (e.g. "example.org")
    std::string query_type = "A";         // A | AAAA | NS | SOA | TXT | ... (mnemonic)
    // exec
    std::string command;                  // run with /bin/sh -c; exit 0 = up; env FULCRUM_* describe the target
    // Never root: the system user `fulcrum` if it exists, else `nobody` (config::default_check_user).
    RunAs user;
    // Field by field (addresses by value, Address::operator==; their texts are not compared).
    bool operator==(const HealthCheck&) const = default;
};

struct Backend {
    Address address;
    std::uint32_t weight = 100;   // 0..65535; 0 = drain
    BackendState state = BackendState::active;
    // QUIC server id (key server_id; the service needs `quic`): 1..2^server_id_bits - 1, unique
    // within the service; 0 = none (packets naming no known id are hashed as any UDP packet).
    std::uint32_t server_id = 0;
    // Set when the backend has a healthcheck mapping: the service's check with the backend's keys
    // on top (the whole effective check). Unset: the service's check applies as is. Out of line
    // and shared (the health manager keeps the same object): a HealthCheck is ~550 bytes, and a
    // file of 100,000 backends would otherwise carry one per backend.
    std::shared_ptr<const HealthCheck> healthcheck;
    int line = 0;                 // where it was written (1-based), for messages
};

// Key `quic` of a UDP service (README "QUIC"): where a QUIC short header's destination connection
// ID carries the backend's server id. Validated: offset 0..19, bits 1..32, and the id's bytes end
// within the 20-byte connection ID.
struct Quic {
    unsigned server_id_offset = 0;  // bytes from the start of the destination connection ID
    unsigned server_id_bits = 16;   // width, most significant bit first from that byte
    bool operator==(const Quic&) const = default;
};

struct MinHealthy {
    bool is_fraction = false;
    double value = 1;             // a count, or a fraction in (0, 1] when is_fraction
};

struct Service {
    std::string name;             // [a-z0-9_-]+, unique
    Address vip;
    std::uint16_t port = 0;       // 0 = every port of the VIP for this protocol
    Protocol protocol = Protocol::tcp;
    std::uint32_t table_size = 65537;  // prime
    HashPolicy hash = HashPolicy::five_tuple;
    std::optional<Quic> quic;     // UDP only: route QUIC short headers by the server id
    Encap encap = Encap::ipip;
    MinHealthy min_healthy;
    HealthCheck healthcheck;
    std::vector<Backend> backends;
};

struct Config {
    std::string file;             // path it was read from
    std::vector<Interface> interfaces;
    Tunnel tunnel;
    Flows flows;
    Icmp icmp;
    std::string pin_path = "/sys/fs/bpf/fulcrum";
    std::string control_socket = "/run/fulcrum/fulcrumd.sock";
    std::string metrics_listen = "127.0.0.1:9470";
    std::uint32_t routes_table = 0;
    std::uint32_t routes_need = 1;
    OnExit on_exit = OnExit::keep;
    // Key bpf.hash_seed; the same value on every balancer behind ECMP. Unset: fulcrumd keeps the
    // seed pinned with the maps, or generates one (plan::choose_hash_seed).
    std::optional<std::uint32_t> hash_seed;
    HealthCheck default_healthcheck;
    std::vector<Service> services;
};

// One problem in a file: where, which key, what was expected.
struct Error {
    std::string file;
    int line = 0;                 // 1-based; 0 when the whole file is concerned
    int column = 0;               // 1-based
    std::string key_path;         // e.g. services[1].backends[0].weight
    std::string message;          // e.g. "expected an integer 0..65535, got \"heavy\""
    // "file:line:column: key_path: message"; without ":line:column" when line is 0 and without
    // "key_path: " when it is empty (a YAML syntax error, an unreadable file).
    std::string to_string() const;
};

struct ParseResult {
    std::optional<Config> config;  // set only when errors is empty
    std::vector<Error> errors;     // every error of the file, in file order
    // Valid but unwise values (bpf.hash_seed: 0); the message starts with "warning: ".
    std::vector<Error> warnings;
};

// Reads and validates a whole file; never throws. An unreadable file is one error with the
// errno text ("cannot read the file: No such file or directory").
ParseResult load_file(const std::string& path);
// The same from text (tests, and messages name `name` as the file).
ParseResult parse_text(const std::string& text, const std::string& name);

std::string to_string(Protocol p);  // "tcp" | "udp"
const char* to_string(HashPolicy h);  // "5-tuple" | "src-ip" | "src-ip-dst-port" | "dst-port"
const char* to_string(Encap e);       // "ipip" | "gue"
const char* to_string(CheckVia v);    // "direct" | "tunnel"

// A user of the passwd database by name (getpwnam_r), or nothing.
std::optional<RunAs> lookup_user(const std::string& name);
// The default of healthcheck.user: the user `fulcrum` if the passwd database has it, else `nobody`
// (else the overflow ids 65534).
RunAs default_check_user();

}  // namespace fulcrum::config
