// run_check: one coroutine per check, on its own strand (so a check is safe even when several
// threads run the io_context), dispatching on the check type; measures the duration and calls
// `done` exactly once.
#include "health/check.h"

#include <exception>

#include "health/check_common.h"

namespace fulcrum::health {

std::string_view failure_name(Failure f)
{
    switch (f) {
    case Failure::none: return "none";
    case Failure::timeout: return "timeout";
    case Failure::refused: return "refused";
    case Failure::unreachable: return "unreachable";
    case Failure::bad_status: return "bad_status";
    case Failure::bad_body: return "bad_body";
    case Failure::bad_reply: return "bad_reply";
    case Failure::no_reply: return "no_reply";
    case Failure::dns_error: return "dns_error";
    case Failure::tls: return "tls";
    case Failure::exec_failed: return "exec_failed";
    case Failure::protocol: return "protocol";
    case Failure::other: return "other";
    }
    return "other";
}

namespace {

using detail::Outcome;
namespace asio = boost::asio;

asio::awaitable<Outcome> dispatch(const config::HealthCheck& check, const Target& target)
{
    using config::CheckType;
    if (check.type != CheckType::exec && target.address.family != AF_INET &&
        target.address.family != AF_INET6)
        co_return Outcome{Failure::other, "no target address"};
    switch (check.type) {
    case CheckType::tcp: co_return co_await detail::check_tcp(check, target);
    case CheckType::http: co_return co_await detail::check_http(check, target, false);
    case CheckType::https: co_return co_await detail::check_http(check, target, true);
    case CheckType::udp: co_return co_await detail::check_udp(check, target);
    case CheckType::dns: co_return co_await detail::check_dns(check, target);
    case CheckType::exec: co_return co_await detail::check_exec(check, target);
    }
    co_return Outcome{Failure::other, "unknown check type"};
}

asio::awaitable<void> run_one(config::HealthCheck check, Target target, Done done)
{
    const auto start = std::chrono::steady_clock::now();
    Outcome outcome;
    try {
        outcome = co_await dispatch(check, target);
    } catch (const std::exception& e) {
        outcome = {Failure::other, std::string("internal error: ") + e.what()};
    }
    Result result;
    result.failure = outcome.failure;
    result.detail = std::move(outcome.detail);
    result.duration = std::chrono::steady_clock::now() - start;
    done(std::move(result));
}

}  // namespace

void run_check(asio::io_context& io, const config::HealthCheck& check, const Target& target, Done done)
{
    // The awaitable starts lazily, on the strand; `done` never runs inside run_check.
    asio::co_spawn(asio::make_strand(io), run_one(check, target, std::move(done)), asio::detached);
}

}  // namespace fulcrum::health
