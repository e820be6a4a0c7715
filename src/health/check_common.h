// What the check types (check_*.cpp) share: the deadline that bounds a whole exchange, the target
// as an Asio endpoint, binding the configured source, and turning socket errors into Failures.
// Every check is a coroutine on its own strand (check.cpp); it returns an Outcome and check.cpp
// measures the duration and calls `done`.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base's
// class-specific operator new/delete, once inlined); it is emitted at the end of each coroutine,
// so it stays off for the rest of the files that include this header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <boost/asio.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "health/check.h"

namespace fulcrum::health::detail {

namespace asio = boost::asio;
using boost::system::error_code;

struct Outcome {
    Failure failure = Failure::none;
    std::string detail;
};

// The deadline of one check: when it passes, expired() turns true and every registered closer
// runs (they close the check's sockets, which aborts the pending operation). A check tests
// expired() after each co_await. Declare the Deadline after what its closers touch, or make sure
// no closer can run after those are gone: ~Deadline() drops the closers and cancels the timer.
class Deadline {
public:
    Deadline(const asio::any_io_executor& ex, std::chrono::milliseconds timeout);
    ~Deadline();
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    void on_expire(std::function<void()> closer);
    bool expired() const { return state_->expired; }
    std::chrono::milliseconds timeout() const { return timeout_; }

private:
    struct State {
        explicit State(const asio::any_io_executor& ex) : timer(ex) {}
        asio::steady_timer timer;
        std::vector<std::function<void()>> closers;
        bool expired = false;
        bool finished = false;
    };
    std::shared_ptr<State> state_;
    std::chrono::milliseconds timeout_;
};

// "timed out after 300 ms while connecting to 127.0.0.1:80"
Outcome timed_out(const Deadline& dl, const std::string& while_doing);

asio::ip::address to_asio(const config::Address& a);
std::string address_text(const config::Address& a);       // as written, else canonical
std::string endpoint_text(const asio::ip::address& a, std::uint16_t port);  // "[::1]:80"
std::string ms_text(std::chrono::milliseconds ms);         // "300 ms"

// refused / unreachable / timeout (ETIMEDOUT) / other, from a socket error.
Failure classify(const error_code& ec);
// {classify(ec), what + ": " + message}
Outcome socket_error(const error_code& ec, const std::string& what);

// Opens `sock` for the family of `target`, marks it with target.mark (a check through the tunnel:
// the mark routes its packets into the backend's tunnel, dataplane/check_tunnels.h) and binds
// check.source (port 0) when set. Returns the failure (family mismatch, bind error) or nullopt.
template <class Socket>
std::optional<Outcome> open_and_bind(Socket& sock, const typename Socket::protocol_type& proto,
                                     const config::HealthCheck& check, const Target& target)
{
    error_code ec;
    sock.open(proto, ec);
    if (ec) return socket_error(ec, "socket");
    if (target.mark != 0) {
        const int mark = static_cast<int>(target.mark);
        if (setsockopt(sock.native_handle(), SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0)
            return Outcome{Failure::other, std::string("SO_MARK (needs CAP_NET_ADMIN): ") + std::strerror(errno)};
    }
    if (check.source) {
        const auto src = to_asio(*check.source);
        const bool v6 = proto.family() == AF_INET6;
        if (src.is_v6() != v6)
            return Outcome{Failure::other, "source " + address_text(*check.source) + " is " +
                                               (src.is_v6() ? "IPv6" : "IPv4") + " but the target is " +
                                               (v6 ? "IPv6" : "IPv4")};
        sock.bind(typename Socket::endpoint_type(src, 0), ec);
        if (ec) return Outcome{Failure::other, "bind to source " + address_text(*check.source) + ": " + ec.message()};
    }
    return std::nullopt;
}

// The checks (each in its file); run_check (check.cpp) dispatches on check.type.
asio::awaitable<Outcome> check_tcp(config::HealthCheck check, Target target);
asio::awaitable<Outcome> check_http(config::HealthCheck check, Target target, bool tls);
asio::awaitable<Outcome> check_udp(config::HealthCheck check, Target target);
asio::awaitable<Outcome> check_dns(config::HealthCheck check, Target target);
asio::awaitable<Outcome> check_exec(config::HealthCheck check, Target target);

// Exposed for the tests: the DNS query of a check, and the RCODE mnemonic.
std::optional<std::uint16_t> dns_qtype(const std::string& mnemonic);
std::string dns_rcode_name(unsigned rcode);

}  // namespace fulcrum::health::detail
