// udp: a connected UDP socket sends `payload` and waits for the first reply within the timeout.
// require_reply: the reply must come and contain `expect` (when set); nothing = no_reply.
// !require_reply: silence until the timeout passes; a reply that comes is still held to `expect`.
// Either way an ICMP port unreachable (ECONNREFUSED on the connected socket) = refused.
#include "health/check_common.h"

namespace fulcrum::health::detail {

asio::awaitable<Outcome> check_udp(config::HealthCheck check, Target target)
{
    using asio::ip::udp;
    auto ex = co_await asio::this_coro::executor;
    const udp::endpoint ep(to_asio(target.address), target.port);
    const std::string peer = endpoint_text(ep.address(), target.port);

    udp::socket sock(ex);
    if (auto failed = open_and_bind(sock, ep.protocol(), check, target)) co_return *failed;
    error_code ec;
    sock.connect(ep, ec);  // no packet: sets the peer, so ICMP errors come back to this socket
    if (ec) co_return socket_error(ec, "connect to " + peer);
    Deadline dl(ex, check.timeout);
    dl.on_expire([&sock] {
        error_code ignored;
        sock.close(ignored);
    });

    co_await sock.async_send(asio::buffer(check.payload), asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) co_return timed_out(dl, "sending to " + peer);
    if (ec) co_return socket_error(ec, "send to " + peer);

    std::vector<char> reply(65536);
    const std::size_t n =
        co_await sock.async_receive(asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) {
        if (check.require_reply) co_return Outcome{Failure::no_reply, "no reply from " + peer + " within " + ms_text(check.timeout)};
        co_return Outcome{Failure::none, "no reply from " + peer + " within " + ms_text(check.timeout) + " (none required)"};
    }
    if (ec == asio::error::connection_refused)
        co_return Outcome{Failure::refused, "port unreachable: " + peer + " refused the datagram (ICMP)"};
    if (ec) co_return socket_error(ec, "receive from " + peer);

    const std::string_view got(reply.data(), n);
    if (!check.expect.empty() && got.find(check.expect) == std::string_view::npos) {
        std::string shown(got.substr(0, 60));
        for (char& c : shown)
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '.';
        co_return Outcome{Failure::bad_reply, "reply of " + std::to_string(n) + " bytes from " + peer + " lacks \"" +
                                                  check.expect + "\" (got \"" + shown + (n > 60 ? "...\")" : "\")")};
    }
    co_return Outcome{Failure::none, "reply of " + std::to_string(n) + " bytes from " + peer};
}

}  // namespace fulcrum::health::detail
