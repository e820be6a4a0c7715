// http / https: one request (`METHOD path HTTP/1.1`, Host, Connection: close) and its response:
// the status must be in expect_status, the body (its first 64 KiB) must contain expect_body. The
// body is read only when expect_body is set, and only until the text is found. https: TLS over
// the connection (boost::asio::ssl), SNI = the Host name when it is a name, no certificate check
// unless tls_verify (then the system CAs and the Host name, or the address).
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <limits>

#include "health/check_common.h"

namespace fulcrum::health::detail {

namespace {

namespace http = boost::beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;

constexpr std::size_t kBodyCap = 64 * 1024;   // bytes of body searched for expect_body
constexpr std::size_t kHeaderLimit = 64 * 1024;

// Two client contexts shared by every check: one without verification, and one with the system
// CA store, made (and the store read, once) only when a check asks for tls_verify. The
// verification callback (the name) is set per stream.
ssl::context make_client_context(bool verify)
{
    ssl::context c(ssl::context::tls_client);
    c.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
    if (verify) {
        error_code ignored;  // no system CA store: verifying checks fail with a clear message
        c.set_default_verify_paths(ignored);
        c.set_verify_mode(ssl::verify_peer);
    } else {
        c.set_verify_mode(ssl::verify_none);
    }
    return c;
}

ssl::context& client_context(bool verify)
{
    if (verify) {
        static ssl::context ctx = make_client_context(true);
        return ctx;
    }
    static ssl::context ctx = make_client_context(false);
    return ctx;
}

std::string host_header(const config::HealthCheck& check, const Target& target, bool tls)
{
    if (!check.host.empty()) return check.host;  // as written (a port in it is the operator's)
    std::string host = address_text(target.address);
    if (target.address.family == AF_INET6) host = "[" + host + "]";
    if (target.port != (tls ? 443 : 80)) host += ":" + std::to_string(target.port);
    return host;
}

// The name in check.host without a port; empty when it is an address (no SNI for addresses).
std::string sni_name(const std::string& host)
{
    std::string name = host;
    if (!name.empty() && name.front() == '[') return "";  // [v6]:port
    if (auto colon = name.rfind(':'); colon != std::string::npos) {
        if (name.find(':') != colon) return "";            // bare IPv6
        name.resize(colon);
    }
    error_code ec;
    asio::ip::make_address(name, ec);
    return ec ? name : "";
}

std::string ranges_text(const std::vector<config::StatusRange>& ranges)
{
    std::string out;
    for (const auto& r : ranges) {
        if (!out.empty()) out += ", ";
        out += std::to_string(r.lo);
        if (r.hi != r.lo) out += "-" + std::to_string(r.hi);
    }
    return out;
}

std::string quoted(const std::string& s)
{
    constexpr std::size_t kMax = 60;
    return "\"" + (s.size() > kMax ? s.substr(0, kMax) + "..." : s) + "\"";
}

bool is_closed(const error_code& ec)
{
    return ec == asio::error::eof || ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == ssl::error::stream_truncated || ec == asio::error::connection_reset;
}

// An error while writing the request or reading the response.
Outcome exchange_error(const error_code& ec, const std::string& what, bool tls)
{
    if (is_closed(ec)) return {Failure::protocol, what + ": the server closed the connection (" + ec.message() + ")"};
    if (ec.category() == http::make_error_code(http::error::bad_version).category())
        return {Failure::protocol, what + ": malformed HTTP response: " + ec.message()};
    if (tls && ec.category() == asio::error::get_ssl_category()) return {Failure::tls, what + ": TLS: " + ec.message()};
    return socket_error(ec, what);
}

// The request and the response over a connected (and TLS-established) stream.
template <class Stream>
asio::awaitable<Outcome> exchange(Stream& stream, Deadline& dl, const config::HealthCheck& check,
                                  const Target& target, const std::string& peer, bool tls)
{
    http::request<http::empty_body> req;
    req.method_string(check.method);
    req.target(check.path.empty() ? "/" : check.path);
    req.version(11);
    req.set(http::field::host, host_header(check, target, tls));
    req.set(http::field::user_agent, "fulcrum-healthcheck");
    req.set(http::field::accept, "*/*");
    req.set(http::field::connection, "close");

    error_code ec;
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) co_return timed_out(dl, "sending the request to " + peer);
    if (ec) co_return exchange_error(ec, "send the request to " + peer, tls);

    boost::beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (req.method() == http::verb::head) parser.skip(true);
    co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) co_return timed_out(dl, "waiting for the response from " + peer);
    if (ec) co_return exchange_error(ec, "read the response from " + peer, tls);

    const unsigned status = parser.get().result_int();
    std::string status_text = "HTTP " + std::to_string(status);
    if (auto reason = parser.get().reason(); !reason.empty()) status_text += " " + std::string(reason);
    static const std::vector<config::StatusRange> kDefaultStatus{{200, 299}};
    const auto& ranges = check.expect_status.empty() ? kDefaultStatus : check.expect_status;
    bool status_ok = false;
    for (const auto& r : ranges) status_ok = status_ok || (status >= r.lo && status <= r.hi);
    if (!status_ok) co_return Outcome{Failure::bad_status, status_text + " (expected " + ranges_text(ranges) + ")"};
    if (check.expect_body.empty()) co_return Outcome{Failure::none, status_text};

    std::string body;
    std::array<char, 8192> chunk;
    while (!parser.is_done() && body.size() < kBodyCap) {
        const std::size_t room = std::min(chunk.size(), kBodyCap - body.size());
        parser.get().body().data = chunk.data();
        parser.get().body().size = room;
        co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (dl.expired()) co_return timed_out(dl, "reading the body from " + peer);
        if (ec == http::error::need_buffer) ec = {};
        body.append(chunk.data(), room - parser.get().body().size);
        if (body.find(check.expect_body) != std::string::npos) co_return Outcome{Failure::none, status_text};
        if (ec) co_return exchange_error(ec, "read the body from " + peer, tls);
    }
    const std::string searched = body.size() >= kBodyCap
                                     ? "its first " + std::to_string(kBodyCap) + " bytes lack "
                                     : "the body (" + std::to_string(body.size()) + " bytes) lacks ";
    co_return Outcome{Failure::bad_body, status_text + ", but " + searched + quoted(check.expect_body)};
}

}  // namespace

asio::awaitable<Outcome> check_http(config::HealthCheck check, Target target, bool tls)
{
    auto ex = co_await asio::this_coro::executor;
    const tcp::endpoint ep(to_asio(target.address), target.port);
    const std::string peer = endpoint_text(ep.address(), target.port);
    error_code ec;

    if (!tls) {
        tcp::socket sock(ex);
        if (auto failed = open_and_bind(sock, ep.protocol(), check, target)) co_return *failed;
        Deadline dl(ex, check.timeout);
        dl.on_expire([&sock] {
            error_code ignored;
            sock.close(ignored);
        });
        co_await sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
        if (dl.expired()) co_return timed_out(dl, "connecting to " + peer);
        if (ec) co_return socket_error(ec, "connect to " + peer);
        co_return co_await exchange(sock, dl, check, target, peer, false);
    }

    ssl::stream<tcp::socket> stream(ex, client_context(check.tls_verify));
    if (auto failed = open_and_bind(stream.next_layer(), ep.protocol(), check, target)) co_return *failed;
    Deadline dl(ex, check.timeout);
    dl.on_expire([&stream] {
        error_code ignored;
        stream.next_layer().close(ignored);
    });

    const std::string sni = sni_name(check.host);
    if (!sni.empty()) SSL_set_tlsext_host_name(stream.native_handle(), sni.c_str());
    if (check.tls_verify) {
        // The name the certificate must carry: the Host name, else the address (an IP SAN).
        const std::string verify_name = !sni.empty() ? sni : to_asio(target.address).to_string();
        stream.set_verify_callback(ssl::host_name_verification(verify_name));
    }

    co_await stream.next_layer().async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) co_return timed_out(dl, "connecting to " + peer);
    if (ec) co_return socket_error(ec, "connect to " + peer);

    co_await stream.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) co_return timed_out(dl, "in the TLS handshake with " + peer);
    if (ec) {
        std::string why = ec.message();
        if (const long v = SSL_get_verify_result(stream.native_handle()); check.tls_verify && v != X509_V_OK)
            why += " (" + std::string(X509_verify_cert_error_string(v)) + ")";
        co_return Outcome{Failure::tls, "TLS handshake with " + peer + ": " + why};
    }
    co_return co_await exchange(stream, dl, check, target, peer, true);
}

}  // namespace fulcrum::health::detail
