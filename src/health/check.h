// One health check of one backend: the interface between the scheduler (manager.h) and the
// check types (check_*.cpp). A check never blocks the event loop: it runs on the io_context and
// calls `done` exactly once, within the check's timeout (plus scheduling slack).
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace fulcrum::health {

// Why a check failed; the `reason` label of fulcrum_healthcheck_failures_total.
enum class Failure {
    none,
    timeout,       // no answer within the timeout
    refused,       // connection refused / ICMP port unreachable
    unreachable,   // no route, host unreachable, network down
    bad_status,    // http(s): status not in expect_status
    bad_body,      // http(s): body lacks expect_body
    bad_reply,     // udp: reply lacks `expect`
    no_reply,      // udp: require_reply and nothing came back (distinct from refused)
    dns_error,     // dns: RCODE not NOERROR, or a malformed answer
    tls,           // https: handshake or certificate failure
    exec_failed,   // exec: non-zero exit, killed, or could not start
    protocol,      // malformed answer (http parse error, ...)
    other,
};
std::string_view failure_name(Failure f);

struct Target {
    std::string service;
    config::Address address;   // where the check goes (backend address or healthcheck.address)
    std::uint16_t port = 0;    // healthcheck.port, else the service port (0 for exec-only)
    // Non-zero for a check through the tunnel (healthcheck.via: tunnel): the socket mark that
    // routes it into the backend's tunnel (health/tunnel_paths.h); `address` is then the VIP.
    std::uint32_t mark = 0;
};

struct Result {
    Failure failure = Failure::none;
    std::string detail;                      // e.g. "HTTP 503", "connect: Connection refused"
    std::chrono::nanoseconds duration{0};
    bool ok() const { return failure == Failure::none; }
};

using Done = std::function<void(Result)>;

// Starts one check of `target` as `check` says; `done` runs on io.
void run_check(boost::asio::io_context& io, const config::HealthCheck& check, const Target& target, Done done);

}  // namespace fulcrum::health
