// tcp: a connection to address:port (from `source` when set) is established within the timeout.
#include "health/check_common.h"

namespace fulcrum::health::detail {

asio::awaitable<Outcome> check_tcp(config::HealthCheck check, Target target)
{
    using asio::ip::tcp;
    auto ex = co_await asio::this_coro::executor;
    const tcp::endpoint ep(to_asio(target.address), target.port);
    const std::string peer = endpoint_text(ep.address(), target.port);

    tcp::socket sock(ex);
    if (auto failed = open_and_bind(sock, ep.protocol(), check, target)) co_return *failed;
    Deadline dl(ex, check.timeout);
    dl.on_expire([&sock] {
        error_code ignored;
        sock.close(ignored);
    });

    error_code ec;
    co_await sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) co_return timed_out(dl, "connecting to " + peer);
    if (ec) co_return socket_error(ec, "connect to " + peer);
    co_return Outcome{Failure::none, "connected to " + peer};
}

}  // namespace fulcrum::health::detail
