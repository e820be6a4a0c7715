// Shared pieces of the check types: deadline, addresses, error classification.
#include "health/check_common.h"

#include <cerrno>
#include <cstring>

namespace fulcrum::health::detail {

Deadline::Deadline(const asio::any_io_executor& ex, std::chrono::milliseconds timeout)
    : state_(std::make_shared<State>(ex)), timeout_(timeout)
{
    state_->timer.expires_after(timeout);
    // The handler holds the state, not the Deadline: it may run after the check is over (the
    // timer fired while the check's last completion was queued); `finished` then makes it a no-op.
    state_->timer.async_wait([state = state_](const error_code& ec) {
        if (ec || state->finished) return;
        state->expired = true;
        auto closers = std::move(state->closers);
        state->closers.clear();
        for (auto& close : closers) close();
    });
}

Deadline::~Deadline()
{
    state_->finished = true;
    state_->closers.clear();
    state_->timer.cancel();
}

void Deadline::on_expire(std::function<void()> closer)
{
    if (state_->expired) {
        closer();
        return;
    }
    state_->closers.push_back(std::move(closer));
}

Outcome timed_out(const Deadline& dl, const std::string& while_doing)
{
    return {Failure::timeout, "timed out after " + ms_text(dl.timeout()) + " while " + while_doing};
}

asio::ip::address to_asio(const config::Address& a)
{
    if (a.family == AF_INET6) {
        asio::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), a.bytes, 16);
        return asio::ip::address_v6(b);
    }
    asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), a.bytes, 4);
    return asio::ip::address_v4(b);
}

std::string address_text(const config::Address& a)
{
    return a.text.empty() ? to_asio(a).to_string() : a.text;
}

std::string endpoint_text(const asio::ip::address& a, std::uint16_t port)
{
    const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
    return host + ":" + std::to_string(port);
}

std::string ms_text(std::chrono::milliseconds ms)
{
    return std::to_string(ms.count()) + " ms";
}

Failure classify(const error_code& ec)
{
    namespace err = asio::error;
    if (ec == err::connection_refused) return Failure::refused;
    if (ec == err::host_unreachable || ec == err::network_unreachable || ec == err::network_down ||
        ec == boost::system::error_code(EHOSTDOWN, boost::system::system_category()))
        return Failure::unreachable;
    if (ec == err::timed_out) return Failure::timeout;
    return Failure::other;
}

Outcome socket_error(const error_code& ec, const std::string& what)
{
    return {classify(ec), what + ": " + ec.message()};
}

}  // namespace fulcrum::health::detail
