// The health check types against real servers on loopback (127.0.0.1 and ::1), written here with
// Asio: a TCP acceptor, a tiny HTTP server, an HTTPS server with a certificate made at test time,
// a UDP responder, a DNS responder with a chosen RCODE, and shell commands. For each type: a
// passing check and one failing check per failure mode; and checks never block the event loop.
#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "health/check.h"
#include "health/check_common.h"
#include "health/syn_prober.h"

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;
using fulcrum::config::CheckType;
using fulcrum::config::HealthCheck;
using fulcrum::health::Failure;
using fulcrum::health::Result;
using fulcrum::health::Target;
using fulcrum::health::failure_name;

namespace {

// ---- helpers ------------------------------------------------------------------------------------

fulcrum::config::Address addr(const std::string& text)
{
    fulcrum::config::Address a;
    a.text = text;
    if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
        a.family = AF_INET;
    } else {
        REQUIRE(inet_pton(AF_INET6, text.c_str(), a.bytes) == 1);
        a.family = AF_INET6;
    }
    return a;
}

Target target(const std::string& address, std::uint16_t port, const std::string& service = "web")
{
    return Target{service, addr(address), port};
}

HealthCheck make_check(CheckType type, std::chrono::milliseconds timeout = 1000ms)
{
    HealthCheck hc;
    hc.type = type;
    hc.timeout = timeout;
    return hc;
}

// Runs one check to its end (the servers run on the same io_context); exactly one `done`.
Result run(asio::io_context& io, const HealthCheck& hc, const Target& t, const char* label = nullptr)
{
    std::optional<Result> result;
    int calls = 0;
    fulcrum::health::run_check(io, hc, t, [&](Result r) {
        ++calls;
        result = std::move(r);
    });
    CHECK(calls == 0);  // never inside run_check
    const auto limit = std::chrono::steady_clock::now() + hc.timeout + 5s;
    while (!result && std::chrono::steady_clock::now() < limit) {
        if (io.stopped()) io.restart();
        io.run_one_for(50ms);
    }
    REQUIRE(result.has_value());
    if (io.stopped()) io.restart();
    io.poll();
    CHECK(calls == 1);
    if (label)
        std::cout << "  " << label << ": " << failure_name(result->failure) << " — " << result->detail << " ("
                  << std::chrono::duration_cast<std::chrono::milliseconds>(result->duration).count() << " ms)\n";
    if (!result->ok()) CHECK_FALSE(result->detail.empty());  // every failure says why
    return *result;
}

// Runs `io` for up to `limit` or until `pred` holds.
template <class Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds limit = 3000ms)
{
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < end) {
        if (io.stopped()) io.restart();
        io.run_one_for(20ms);
    }
    return pred();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// No child process at all, live or zombie (peeks without reaping).
bool no_children()
{
    siginfo_t info{};
    return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

// A free port: bound then released (TCP refused / ICMP port unreachable for UDP).
std::uint16_t closed_tcp_port(const std::string& host)
{
    asio::io_context tmp;
    tcp::acceptor a(tmp, tcp::endpoint(asio::ip::make_address(host), 0));
    return a.local_endpoint().port();
}
std::uint16_t closed_udp_port(const std::string& host)
{
    asio::io_context tmp;
    udp::socket s(tmp, udp::endpoint(asio::ip::make_address(host), 0));
    return s.local_endpoint().port();
}

// A listener whose accept queue is full: further SYNs are dropped, connects hang (tcp timeout).
struct BlackholeListener {
    int listen_fd = -1;
    int filler_fd = -1;
    std::uint16_t port = 0;
    explicit BlackholeListener(const std::string& host)
    {
        const bool v6 = host.find(':') != std::string::npos;
        sockaddr_storage ss{};
        socklen_t len;
        if (v6) {
            auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
            s6->sin6_family = AF_INET6;
            inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr);
            len = sizeof *s6;
        } else {
            auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
            s4->sin_family = AF_INET;
            inet_pton(AF_INET, host.c_str(), &s4->sin_addr);
            len = sizeof *s4;
        }
        listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listen_fd >= 0);
        REQUIRE(bind(listen_fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
        REQUIRE(listen(listen_fd, 0) == 0);  // the queue holds one connection
        REQUIRE(getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
        port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
        filler_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(connect(filler_fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);  // fills it
    }
    ~BlackholeListener()
    {
        close(filler_fd);
        close(listen_fd);
    }
};

// ---- servers ------------------------------------------------------------------------------------

// Accepts and holds every connection without a byte (an HTTP server that never answers).
asio::awaitable<void> silent_server(tcp::acceptor acceptor)
{
    std::vector<tcp::socket> held;
    while (true) {
        error_code ec;
        tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        held.push_back(std::move(s));
    }
}

struct HttpSpec {
    unsigned status = 200;
    std::string reason = "OK";
    std::string body = "all good";
    std::vector<std::string> requests;  // what came in
    std::string sni;                    // https: the server name the client sent
};

// One connection: reads the request head and answers per spec; anything that does not start like
// HTTP (a TLS ClientHello) gets a 400 at once, as real servers do.
template <class Stream>
asio::awaitable<void> serve_http(Stream& s, std::shared_ptr<HttpSpec> spec)
{
    std::string data;
    char buf[4096];
    error_code ec;
    while (data.find("\r\n\r\n") == std::string::npos) {
        const std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        data.append(buf, n);
        if (data[0] < 'A' || data[0] > 'Z') {
            static const std::string bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            co_await asio::async_write(s, asio::buffer(bad), asio::redirect_error(asio::use_awaitable, ec));
            co_return;
        }
    }
    spec->requests.push_back(data);
    const std::string response = "HTTP/1.1 " + std::to_string(spec->status) + " " + spec->reason +
                                 "\r\nContent-Length: " + std::to_string(spec->body.size()) +
                                 "\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + spec->body;
    co_await asio::async_write(s, asio::buffer(response), asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> http_connection(tcp::socket s, std::shared_ptr<HttpSpec> spec, ssl::context* tls)
{
    if (!tls) {
        co_await serve_http(s, spec);
        co_return;
    }
    ssl::stream<tcp::socket> stream(std::move(s), *tls);
    error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
    spec->sni = sni ? sni : "";
    co_await serve_http(stream, spec);
}

asio::awaitable<void> http_server(tcp::acceptor acceptor, std::shared_ptr<HttpSpec> spec, ssl::context* tls)
{
    while (true) {
        error_code ec;
        tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        asio::co_spawn(acceptor.get_executor(), http_connection(std::move(s), spec, tls), asio::detached);
    }
}

// Starts a server on host:0 and returns its port.
std::uint16_t start_http(asio::io_context& io, const std::string& host, std::shared_ptr<HttpSpec> spec,
                         ssl::context* tls = nullptr)
{
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address(host), 0));
    const auto port = acceptor.local_endpoint().port();
    asio::co_spawn(io, http_server(std::move(acceptor), spec, tls), asio::detached);
    return port;
}

std::uint16_t start_silent(asio::io_context& io, const std::string& host)
{
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address(host), 0));
    const auto port = acceptor.local_endpoint().port();
    asio::co_spawn(io, silent_server(std::move(acceptor)), asio::detached);
    return port;
}

// A TLS server context with a self-signed certificate for CN=localhost made now (OpenSSL API: no
// dependency on the openssl program).
void make_server_context(ssl::context& ctx)
{
    EVP_PKEY* key = EVP_EC_gen("P-256");
    REQUIRE(key);
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);

    auto pem = [](auto write) {
        BIO* bio = BIO_new(BIO_s_mem());
        write(bio);
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        std::string out(data, static_cast<std::size_t>(n));
        BIO_free(bio);
        return out;
    };
    const std::string cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, cert); });
    const std::string key_pem = pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
    X509_free(cert);
    EVP_PKEY_free(key);
    ctx.use_certificate_chain(asio::buffer(cert_pem));
    ctx.use_private_key(asio::buffer(key_pem), ssl::context::pem);
}

// UDP: replies "<prefix><what came>" to every datagram.
asio::awaitable<void> udp_responder(udp::socket s, std::string prefix)
{
    char buf[2048];
    while (true) {
        udp::endpoint from;
        error_code ec;
        const std::size_t n =
            co_await s.async_receive_from(asio::buffer(buf), from, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        const std::string reply = prefix + std::string(buf, n);
        co_await s.async_send_to(asio::buffer(reply), from, asio::redirect_error(asio::use_awaitable, ec));
    }
}

std::uint16_t start_udp(asio::io_context& io, const std::string& host, const std::string& prefix)
{
    udp::socket s(io, udp::endpoint(asio::ip::make_address(host), 0));
    const auto port = s.local_endpoint().port();
    asio::co_spawn(io, udp_responder(std::move(s), prefix), asio::detached);
    return port;
}

// A bound UDP socket that never reads: datagrams vanish, no ICMP.
struct UdpSwallower {
    asio::io_context tmp;
    udp::socket s;
    std::uint16_t port;
    explicit UdpSwallower(const std::string& host)
        : s(tmp, udp::endpoint(asio::ip::make_address(host), 0)), port(s.local_endpoint().port())
    {
    }
};

struct DnsSpec {
    unsigned rcode = 0;
    unsigned answers = 0;
    bool wrong_id_first = false;  // first a response with another id, and a QR=0 one
    bool truncated = false;
    bool malformed = false;       // 6 bytes with the right id
    bool other_question = false;  // echoes another QTYPE
    std::vector<std::uint8_t> last_query;
};

std::vector<std::uint8_t> dns_response(const std::vector<std::uint8_t>& query, const DnsSpec& spec)
{
    if (spec.malformed) return {query[0], query[1], 0x81, 0x80, 0, 1};
    std::vector<std::uint8_t> m = query;  // header + question, as asked
    m[2] = static_cast<std::uint8_t>(0x81 | (spec.truncated ? 0x02 : 0));  // QR, RD (+TC)
    m[3] = static_cast<std::uint8_t>(0x80 | spec.rcode);                   // RA, RCODE
    m[6] = 0;
    m[7] = static_cast<std::uint8_t>(spec.answers);
    if (spec.other_question) m[m.size() - 3] ^= 0x01;
    for (unsigned i = 0; i < spec.answers; ++i)
        m.insert(m.end(), {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, static_cast<std::uint8_t>(i + 1)});
    return m;
}

asio::awaitable<void> dns_responder(udp::socket s, std::shared_ptr<DnsSpec> spec)
{
    std::vector<std::uint8_t> buf(1500);
    while (true) {
        udp::endpoint from;
        error_code ec;
        const std::size_t n =
            co_await s.async_receive_from(asio::buffer(buf), from, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        spec->last_query.assign(buf.begin(), buf.begin() + static_cast<long>(n));
        if (n < 12) continue;
        const auto m = dns_response(spec->last_query, *spec);
        if (spec->wrong_id_first) {
            auto wrong = m;
            wrong[0] ^= 0xff;
            co_await s.async_send_to(asio::buffer(wrong), from, asio::redirect_error(asio::use_awaitable, ec));
            auto query = m;
            query[2] &= 0x7f;  // QR=0
            co_await s.async_send_to(asio::buffer(query), from, asio::redirect_error(asio::use_awaitable, ec));
        }
        co_await s.async_send_to(asio::buffer(m), from, asio::redirect_error(asio::use_awaitable, ec));
    }
}

std::uint16_t start_dns(asio::io_context& io, const std::string& host, std::shared_ptr<DnsSpec> spec)
{
    udp::socket s(io, udp::endpoint(asio::ip::make_address(host), 0));
    const auto port = s.local_endpoint().port();
    asio::co_spawn(io, dns_responder(std::move(s), spec), asio::detached);
    return port;
}

}  // namespace

// ---- tcp ----------------------------------------------------------------------------------------

TEST_CASE("tcp check: connect, refused, timeout, source", "[health]")
{
    asio::io_context io;
    std::cout << "tcp:\n";
    for (const std::string host : {"127.0.0.1", "::1"}) {
        const auto port = start_silent(io, host);  // accepts: enough for tcp
        auto hc = make_check(CheckType::tcp);
        auto r = run(io, hc, target(host, port), ("up " + host).c_str());
        CHECK(r.ok());
        CHECK(r.duration > 0ns);

        r = run(io, hc, target(host, closed_tcp_port(host)), ("closed port " + host).c_str());
        CHECK(r.failure == Failure::refused);
        CHECK(contains(r.detail, "Connection refused"));

        BlackholeListener blackhole(host);
        hc.timeout = 300ms;
        r = run(io, hc, target(host, blackhole.port), ("SYNs dropped " + host).c_str());
        CHECK(r.failure == Failure::timeout);
        CHECK(contains(r.detail, "timed out after 300 ms while connecting"));
        CHECK(r.duration >= 290ms);
        CHECK(r.duration < 1s);
    }

    const auto port = start_silent(io, "127.0.0.1");
    auto hc = make_check(CheckType::tcp);
    hc.source = addr("127.0.0.1");
    CHECK(run(io, hc, target("127.0.0.1", port), "from source 127.0.0.1").ok());
    hc.source = addr("::1");
    auto r = run(io, hc, target("127.0.0.1", port), "from an IPv6 source to IPv4");
    CHECK(r.failure == Failure::other);
    CHECK(contains(r.detail, "source ::1 is IPv6 but the target is IPv4"));
    hc.source = addr("192.0.2.77");  // not ours
    r = run(io, hc, target("127.0.0.1", port), "from a source not on this host");
    CHECK(r.failure == Failure::other);
    CHECK(contains(r.detail, "bind to source 192.0.2.77"));
}

// ---- http ---------------------------------------------------------------------------------------

TEST_CASE("http check: status, body, Host, timeout, refused", "[health]")
{
    asio::io_context io;
    std::cout << "http:\n";
    for (const std::string host : {"127.0.0.1", "::1"}) {
        auto spec = std::make_shared<HttpSpec>();
        const auto port = start_http(io, host, spec);
        auto hc = make_check(CheckType::http);
        hc.path = "/healthz";
        hc.expect_body = "good";

        auto r = run(io, hc, target(host, port), ("200 with the body " + host).c_str());
        CHECK(r.ok());
        CHECK(r.detail == "HTTP 200 OK");
        REQUIRE(spec->requests.size() == 1);
        const auto& req = spec->requests[0];
        CHECK(req.rfind("GET /healthz HTTP/1.1\r\n", 0) == 0);
        const std::string host_header = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        CHECK(contains(req, "Host: " + host_header + ":" + std::to_string(port) + "\r\n"));
        CHECK(contains(req, "User-Agent: fulcrum-healthcheck\r\n"));
        CHECK(contains(req, "Connection: close\r\n"));

        spec->status = 503;
        spec->reason = "Service Unavailable";
        r = run(io, hc, target(host, port), ("503 " + host).c_str());
        CHECK(r.failure == Failure::bad_status);
        CHECK(r.detail == "HTTP 503 Service Unavailable (expected 200-299)");

        spec->status = 200;
        spec->reason = "OK";
        spec->body = "degraded";
        r = run(io, hc, target(host, port), ("wrong body " + host).c_str());
        CHECK(r.failure == Failure::bad_body);
        CHECK(contains(r.detail, "lacks \"good\""));

        r = run(io, hc, target(host, closed_tcp_port(host)), ("closed port " + host).c_str());
        CHECK(r.failure == Failure::refused);

        hc.timeout = 300ms;
        r = run(io, hc, target(host, start_silent(io, host)), ("never answers " + host).c_str());
        CHECK(r.failure == Failure::timeout);
        CHECK(contains(r.detail, "waiting for the response"));
        CHECK(r.duration < 1s);
    }

    SECTION("expect_status ranges, method, explicit Host, body past the first read")
    {
        auto spec = std::make_shared<HttpSpec>();
        spec->status = 302;
        spec->reason = "Found";
        spec->body = std::string(100'000, 'x') + "needle";
        const auto port = start_http(io, "127.0.0.1", spec);
        auto hc = make_check(CheckType::http);
        hc.method = "HEAD";
        hc.host = "www.example.org";
        hc.expect_status = {{200, 200}, {301, 302}};
        CHECK(run(io, hc, target("127.0.0.1", port), "302 in 200, 301-302").ok());
        REQUIRE(spec->requests.size() == 1);
        CHECK(spec->requests[0].rfind("HEAD / HTTP/1.1\r\n", 0) == 0);
        CHECK(contains(spec->requests[0], "Host: www.example.org\r\n"));

        hc.method = "GET";
        hc.expect_status = {{200, 299}, {404, 404}};
        spec->status = 500;
        auto r = run(io, hc, target("127.0.0.1", port), "500 not in 200-299, 404");
        CHECK(r.detail == "HTTP 500 Found (expected 200-299, 404)");

        spec->status = 200;
        spec->reason = "OK";
        hc.expect_body = "needle";  // beyond the 64 KiB searched
        r = run(io, hc, target("127.0.0.1", port), "text beyond 64 KiB");
        CHECK(r.failure == Failure::bad_body);
        CHECK(contains(r.detail, "first 65536 bytes"));
        spec->body = std::string(50'000, 'x') + "needle" + std::string(50'000, 'y');
        CHECK(run(io, hc, target("127.0.0.1", port), "text within 64 KiB").ok());
    }
}

// ---- https --------------------------------------------------------------------------------------

TEST_CASE("https check: TLS, status over TLS, plain server, verification, timeout", "[health]")
{
    ssl::context server_ctx(ssl::context::tls_server);  // outlives io (declared first)
    make_server_context(server_ctx);
    asio::io_context io;
    std::cout << "https:\n";
    for (const std::string host : {"127.0.0.1", "::1"}) {
        auto spec = std::make_shared<HttpSpec>();
        const auto port = start_http(io, host, spec, &server_ctx);
        auto hc = make_check(CheckType::https);
        hc.expect_body = "good";
        hc.host = "localhost";
        auto r = run(io, hc, target(host, port), ("200 over TLS " + host).c_str());
        CHECK(r.detail == "HTTP 200 OK");
        CHECK(r.ok());
        REQUIRE(spec->requests.size() == 1);
        CHECK(contains(spec->requests[0], "Host: localhost\r\n"));
        CHECK(spec->sni == "localhost");

        spec->status = 503;
        spec->reason = "Service Unavailable";
        r = run(io, hc, target(host, port), ("503 over TLS " + host).c_str());
        CHECK(r.failure == Failure::bad_status);
        CHECK(contains(r.detail, "HTTP 503"));

        spec->status = 200;
        spec->reason = "OK";
        spec->body = "nope";
        r = run(io, hc, target(host, port), ("wrong body over TLS " + host).c_str());
        CHECK(r.failure == Failure::bad_body);

        const auto plain = start_http(io, host, std::make_shared<HttpSpec>());
        r = run(io, hc, target(host, plain), ("plain-HTTP server " + host).c_str());
        CHECK(r.failure == Failure::tls);
        CHECK(contains(r.detail, "TLS handshake"));

        spec->body = "good";
        hc.tls_verify = true;  // self-signed: no CA vouches for it
        r = run(io, hc, target(host, port), ("tls_verify, self-signed " + host).c_str());
        CHECK(r.failure == Failure::tls);
        CHECK(contains(r.detail, "certificate"));
        hc.tls_verify = false;

        r = run(io, hc, target(host, closed_tcp_port(host)), ("closed port " + host).c_str());
        CHECK(r.failure == Failure::refused);

        hc.timeout = 300ms;
        r = run(io, hc, target(host, start_silent(io, host)), ("no TLS answer " + host).c_str());
        CHECK(r.failure == Failure::timeout);
        CHECK(contains(r.detail, "TLS handshake"));
    }
}

// ---- udp ----------------------------------------------------------------------------------------

TEST_CASE("udp check: reply, bad reply, no reply, refused, require_reply false", "[health]")
{
    asio::io_context io;
    std::cout << "udp:\n";
    for (const std::string host : {"127.0.0.1", "::1"}) {
        const auto port = start_udp(io, host, "pong ");
        auto hc = make_check(CheckType::udp, 300ms);
        hc.payload = "ping";
        hc.expect = "pong ping";
        auto r = run(io, hc, target(host, port), ("reply " + host).c_str());
        CHECK(r.ok());
        CHECK(r.duration < 300ms);

        hc.expect = "ready";
        r = run(io, hc, target(host, port), ("reply lacks expect " + host).c_str());
        CHECK(r.failure == Failure::bad_reply);
        CHECK(contains(r.detail, "lacks \"ready\""));

        UdpSwallower swallower(host);
        hc.expect = "";
        r = run(io, hc, target(host, swallower.port), ("swallowed " + host).c_str());
        CHECK(r.failure == Failure::no_reply);
        CHECK(r.duration >= 290ms);

        r = run(io, hc, target(host, closed_udp_port(host)), ("closed port " + host).c_str());
        CHECK(r.failure == Failure::refused);

        hc.require_reply = false;
        r = run(io, hc, target(host, swallower.port), ("swallowed, no reply required " + host).c_str());
        CHECK(r.ok());
        r = run(io, hc, target(host, closed_udp_port(host)), ("closed port, no reply required " + host).c_str());
        CHECK(r.failure == Failure::refused);
        r = run(io, hc, target(host, port), ("reply, none required " + host).c_str());
        CHECK(r.ok());
    }
}

// ---- dns ----------------------------------------------------------------------------------------

TEST_CASE("dns check: NOERROR, rcodes, ids, truncated, malformed, timeout", "[health]")
{
    asio::io_context io;
    std::cout << "dns:\n";
    for (const std::string host : {"127.0.0.1", "::1"}) {
        auto spec = std::make_shared<DnsSpec>();
        const auto port = start_dns(io, host, spec);
        auto hc = make_check(CheckType::dns, 300ms);
        hc.query_name = "Example.org.";
        hc.query_type = "aaaa";

        auto r = run(io, hc, target(host, port), ("NOERROR, no answer " + host).c_str());
        CHECK(r.ok());
        // The query on the wire: RD, one question, 7example3org0, AAAA (28), IN.
        const auto& q = spec->last_query;
        REQUIRE(q.size() == 12 + 13 + 4);
        CHECK(q[2] == 0x01);
        CHECK(q[3] == 0x00);
        CHECK(q[5] == 1);
        CHECK(std::string(q.begin() + 12, q.begin() + 25) == std::string("\7Example\3org\0", 13));
        CHECK(q[25] == 0);
        CHECK(q[26] == 28);
        CHECK(q[28] == 1);

        spec->answers = 2;
        r = run(io, hc, target(host, port), ("NOERROR, 2 answers " + host).c_str());
        CHECK(r.ok());
        CHECK(contains(r.detail, "2 answers"));

        spec->answers = 0;
        spec->rcode = 3;
        r = run(io, hc, target(host, port), ("NXDOMAIN " + host).c_str());
        CHECK(r.failure == Failure::dns_error);
        CHECK(contains(r.detail, "NXDOMAIN"));
        spec->rcode = 2;
        r = run(io, hc, target(host, port), ("SERVFAIL " + host).c_str());
        CHECK(r.failure == Failure::dns_error);
        CHECK(contains(r.detail, "SERVFAIL"));

        spec->rcode = 0;
        spec->wrong_id_first = true;
        r = run(io, hc, target(host, port), ("another id and a QR=0 first " + host).c_str());
        CHECK(r.ok());
        spec->wrong_id_first = false;

        spec->truncated = true;
        r = run(io, hc, target(host, port), ("TC set " + host).c_str());
        CHECK(r.failure == Failure::dns_error);
        CHECK(contains(r.detail, "truncated"));
        spec->truncated = false;

        spec->malformed = true;
        r = run(io, hc, target(host, port), ("6-byte answer " + host).c_str());
        CHECK(r.failure == Failure::dns_error);
        CHECK(contains(r.detail, "malformed"));
        spec->malformed = false;

        spec->other_question = true;
        r = run(io, hc, target(host, port), ("answer to another question " + host).c_str());
        CHECK(r.failure == Failure::dns_error);
        spec->other_question = false;

        UdpSwallower swallower(host);
        r = run(io, hc, target(host, swallower.port), ("no answer " + host).c_str());
        CHECK(r.failure == Failure::timeout);

        r = run(io, hc, target(host, closed_udp_port(host)), ("closed port " + host).c_str());
        CHECK(r.failure == Failure::refused);
    }

    SECTION("root and unknown types")
    {
        auto spec = std::make_shared<DnsSpec>();
        const auto port = start_dns(io, "127.0.0.1", spec);
        auto hc = make_check(CheckType::dns, 300ms);
        hc.query_name = ".";
        hc.query_type = "NS";
        CHECK(run(io, hc, target("127.0.0.1", port), "root NS").ok());
        REQUIRE(spec->last_query.size() == 12 + 1 + 4);
        CHECK(spec->last_query[12] == 0);
        CHECK(spec->last_query[14] == 2);
        hc.query_type = "BOGUS";
        auto r = run(io, hc, target("127.0.0.1", port), "unknown type");
        CHECK(r.failure == Failure::other);
        CHECK(fulcrum::health::detail::dns_qtype("TYPE65534") == 65534);
        CHECK(fulcrum::health::detail::dns_rcode_name(5) == "REFUSED");
    }
}

// ---- exec ---------------------------------------------------------------------------------------

TEST_CASE("exec check: exit codes, signals, environment, timeout without zombies", "[health]")
{
    asio::io_context io;
    std::cout << "exec:\n";
    auto hc = make_check(CheckType::exec, 2000ms);
    const auto t = target("10.1.2.3", 8080, "web");

    hc.command = "exit 0";
    auto r = run(io, hc, t, "exit 0");
    CHECK(r.ok());

    hc.command = "exit 3";
    r = run(io, hc, t, "exit 3");
    CHECK(r.failure == Failure::exec_failed);
    CHECK(r.detail == "exit 3");

    hc.command = "kill -KILL $$";
    r = run(io, hc, t, "killed");
    CHECK(r.failure == Failure::exec_failed);
    CHECK(r.detail == "killed by signal 9 (SIGKILL)");

    hc.command = "test \"$FULCRUM_SERVICE\" = web && test \"$FULCRUM_ADDRESS\" = 10.1.2.3 && test \"$FULCRUM_PORT\" = 8080";
    CHECK(run(io, hc, t, "environment").ok());

    hc.command = "echo to-stdout; echo to-stderr >&2; read line; test -z \"$line\"";  // stdin is /dev/null
    CHECK(run(io, hc, t, "stdio on /dev/null").ok());

    hc.command = "/nonexistent/check";
    r = run(io, hc, t, "command not found");
    CHECK(r.detail == "exit 127");

    // What the command leaves behind in its group is killed at its exit.
    char dir_template[] = "/tmp/hc-test-XXXXXX";
    REQUIRE(mkdtemp(dir_template));
    REQUIRE(chmod(dir_template, 0777) == 0);  // the command runs as healthcheck.user, not root
    const std::string pid_file = std::string(dir_template) + "/pid";
    hc.command = "sleep 30 & echo $! > " + pid_file + "; exit 0";
    CHECK(run(io, hc, t, "leaves a background process").ok());
    {
        std::ifstream in(pid_file);
        int left = 0;
        REQUIRE(in >> left);
        bool gone = false;
        for (int i = 0; i < 100 && !gone; ++i) {
            std::ifstream stat("/proc/" + std::to_string(left) + "/stat");
            std::string pid, comm, state;
            gone = !(stat >> pid >> comm >> state) || state == "Z";
            if (!gone) usleep(10'000);
        }
        CHECK(gone);
    }
    std::remove(pid_file.c_str());
    rmdir(dir_template);
    CHECK(no_children());

    hc.command = "sleep 5";
    hc.timeout = 300ms;
    r = run(io, hc, t, "sleep 5, timeout 300 ms");
    CHECK(r.failure == Failure::exec_failed);
    CHECK(contains(r.detail, "timeout"));
    CHECK(r.duration >= 290ms);
    CHECK(r.duration < 1s);
    CHECK(run_until(io, no_children));  // killed and reaped: no zombie

    hc.command = "";
    r = run(io, hc, t, "no command");
    CHECK(r.failure == Failure::exec_failed);
}

// Run by an exec check's command (copied where the check's user can read it): the shell's ids,
// capabilities, initial environment, descriptors and cwd. Shared with tests/system/test_privileges.py.
const std::string kExecProbe = FULCRUM_SOURCE_DIR "/tests/support/exec_probe.py";

// What a command sees of the daemon: run by a root process with every capability, a secret and
// NOTIFY_SOCKET in its environment and descriptors open without close-on-exec, the command must
// still be healthcheck.user with no capability, only PATH and FULCRUM_*, and fds 0-2.
TEST_CASE("exec check: runs as healthcheck.user, no capabilities, minimal environment, fds 0-2 only", "[health]")
{
    asio::io_context io;
    const auto nobody = fulcrum::config::lookup_user("nobody");
    REQUIRE(nobody);
    REQUIRE(getuid() == 0);  // the tests run as root: the command must not
    ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
    ::setenv("FULCRUM_TEST_SECRET", "do-not-leak", 1);
    const int leaked = open("/dev/null", O_RDONLY);  // no O_CLOEXEC, like Asio's sockets
    REQUIRE(leaked > 2);

    char dir_template[] = "/tmp/hc-who-XXXXXX";
    REQUIRE(mkdtemp(dir_template));
    REQUIRE(chmod(dir_template, 0777) == 0);
    const std::string report = std::string(dir_template) + "/report";
    auto hc = make_check(CheckType::exec, 5000ms);
    hc.user = *nobody;
    // A child of the shell, started before the shell opened anything, reports what the shell was given.
    const std::string probe = std::string(dir_template) + "/probe.py";
    std::error_code copied;
    std::filesystem::copy_file(kExecProbe, probe, copied);
    REQUIRE_FALSE(copied);
    REQUIRE(chmod(probe.c_str(), 0644) == 0);
    hc.command = "/usr/bin/python3 " + probe + " " + report + "; exit 0";
    auto r = run(io, hc, target("10.1.2.3", 8080, "web"), "who am i");
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("FULCRUM_TEST_SECRET");
    close(leaked);
    REQUIRE(r.ok());

    std::ifstream in(report);
    std::vector<std::string> env, fds;
    std::map<std::string, std::string> fields;
    std::string line;
    while (std::getline(in, line)) {
        std::cout << "    " << line << "\n";
        if (line.rfind("env ", 0) == 0) {
            env.push_back(line.substr(4));
        } else if (line.rfind("fd ", 0) == 0) {
            fds.push_back(line.substr(3));
        } else if (line.rfind("Cap", 0) == 0 || line.rfind("NoNewPrivs:", 0) == 0) {  // "CapEff:\t0000..."
            const auto colon = line.find(':');
            fields[line.substr(0, colon)] = line.substr(line.find_first_not_of(" \t", colon + 1));
        } else {  // "uid 65534 gid ...", "cwd /"
            fields[line.substr(0, line.find(' '))] = line.substr(line.find(' ') + 1);
        }
    }
    const std::string id = std::to_string(nobody->gid);
    CHECK(fields["uid"] == std::to_string(nobody->uid) + " gid " + id + " groups " + id);
    CHECK(fields["CapEff"] == "0000000000000000");
    CHECK(fields["CapPrm"] == "0000000000000000");
    CHECK(fields["CapInh"] == "0000000000000000");
    CHECK(fields["CapAmb"] == "0000000000000000");
    CHECK(fields["NoNewPrivs"] == "1");
    CHECK(fields["cwd"] == "/");
    std::sort(env.begin(), env.end());
    CHECK(env == std::vector<std::string>{"FULCRUM_ADDRESS=10.1.2.3", "FULCRUM_PORT=8080", "FULCRUM_SERVICE=web",
                                          "PATH=/usr/sbin:/usr/bin:/sbin:/bin"});
    CHECK(fds == std::vector<std::string>{"0", "1", "2"});
    std::remove(report.c_str());
    std::remove(probe.c_str());
    rmdir(dir_template);

    // A user that cannot be taken (uid -1 is "unchanged" to setresuid, so it is refused, never run as
    // root): a clear reason, not "exit 126".
    hc.user = fulcrum::config::RunAs{"ghost", 0xffffffffu, 0xffffffffu};
    hc.command = "exit 0";
    r = run(io, hc, target("10.1.2.3", 8080), "unmappable user");
    CHECK(r.failure == Failure::exec_failed);
    CHECK(contains(r.detail, "cannot run the command as ghost"));
    CHECK(run_until(io, no_children));
}

// ---- never blocking -----------------------------------------------------------------------------

TEST_CASE("checks never block: hundreds at once finish in about one timeout", "[health]")
{
    asio::io_context io;
    BlackholeListener blackhole("127.0.0.1");
    UdpSwallower swallower("127.0.0.1");

    constexpr int kTcp = 200, kOthers = 10;
    int finished = 0, timeouts = 0, others_ok = 0;
    const auto start = std::chrono::steady_clock::now();
    auto tcp_check = make_check(CheckType::tcp, 300ms);
    for (int i = 0; i < kTcp; ++i)
        fulcrum::health::run_check(io, tcp_check, target("127.0.0.1", blackhole.port), [&](Result r) {
            ++finished;
            timeouts += r.failure == Failure::timeout;
        });
    auto exec_check = make_check(CheckType::exec, 300ms);
    exec_check.command = "sleep 5";
    auto udp_check = make_check(CheckType::udp, 300ms);
    udp_check.require_reply = false;
    auto dns_check = make_check(CheckType::dns, 300ms);
    for (int i = 0; i < kOthers; ++i) {
        fulcrum::health::run_check(io, exec_check, target("127.0.0.1", 0), [&](Result r) {
            ++finished;
            others_ok += r.failure == Failure::exec_failed;
        });
        fulcrum::health::run_check(io, udp_check, target("127.0.0.1", swallower.port), [&](Result r) {
            ++finished;
            others_ok += r.ok();
        });
        fulcrum::health::run_check(io, dns_check, target("127.0.0.1", swallower.port), [&](Result r) {
            ++finished;
            others_ok += r.failure == Failure::timeout;
        });
    }
    const int total = kTcp + 3 * kOthers;
    REQUIRE(run_until(io, [&] { return finished == total; }, 10'000ms));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
    std::cout << "concurrency: " << total << " checks (" << kTcp << " tcp, " << kOthers << " each exec/udp/dns) "
              << "with a 300 ms timeout finished in " << ms << " ms\n";
    CHECK(timeouts == kTcp);
    CHECK(others_ok == 3 * kOthers);
    CHECK(elapsed < 3s);
    CHECK(run_until(io, no_children));
}

// ---- tcp by raw SYN (health/syn_prober.h) ---------------------------------------------------------

namespace {

Result run_check_result(asio::io_context& io, const HealthCheck& hc, const Target& t)
{
    return run(io, hc, t, "the same by connect");
}

// One probe to its end, as run() does for run_check.
Result probe(asio::io_context& io, fulcrum::health::SynProber& prober, const HealthCheck& hc, const Target& t,
             const char* label)
{
    std::optional<Result> result;
    int calls = 0;
    prober.probe(hc, t, [&](Result r) {
        ++calls;
        result = std::move(r);
    });
    CHECK(calls == 0);  // never inside probe
    REQUIRE(run_until(io, [&] { return result.has_value(); }, hc.timeout + 5000ms));
    io.poll();
    CHECK(calls == 1);
    std::cout << "  " << label << ": " << failure_name(result->failure) << " — " << result->detail << " ("
              << std::chrono::duration_cast<std::chrono::milliseconds>(result->duration).count() << " ms)\n";
    if (!result->ok()) CHECK_FALSE(result->detail.empty());
    return *result;
}

}  // namespace

TEST_CASE("tcp check by SYN probe: the connect check's results, without a socket per check", "[health]")
{
    asio::io_context io;
    auto opened = fulcrum::health::SynProber::open(io);
    REQUIRE(opened.ok());  // the tests run as root: CAP_NET_RAW
    auto& prober = **opened;
    std::cout << "tcp by SYN probe:\n";
    for (const std::string host : {"127.0.0.1", "::1"}) {
        const auto port = start_silent(io, host);
        auto hc = make_check(CheckType::tcp);
        auto r = probe(io, prober, hc, target(host, port), ("up " + host).c_str());
        CHECK(r.ok());
        CHECK(r.duration > 0ns);

        // The answer was a SYN-ACK that our kernel reset: the server never saw a connection.
        const auto closed = closed_tcp_port(host);
        r = probe(io, prober, hc, target(host, closed), ("closed port " + host).c_str());
        CHECK(r.failure == Failure::refused);
        CHECK(r.detail == "connect to " + (host == "::1" ? "[::1]" : host) + ":" + std::to_string(closed) +
                              ": Connection refused");
        CHECK(run_check_result(io, hc, target(host, closed)).detail == r.detail);  // as connect says it

        BlackholeListener blackhole(host);
        hc.timeout = 300ms;
        r = probe(io, prober, hc, target(host, blackhole.port), ("SYNs dropped " + host).c_str());
        CHECK(r.failure == Failure::timeout);
        CHECK(contains(r.detail, "timed out after 300 ms while connecting to"));
        CHECK(r.duration >= 290ms);
    }

    const auto port = start_silent(io, "127.0.0.1");
    auto hc = make_check(CheckType::tcp);
    hc.source = addr("127.0.0.1");
    CHECK(probe(io, prober, hc, target("127.0.0.1", port), "from source 127.0.0.1").ok());
    hc.source = addr("::1");
    auto r = probe(io, prober, hc, target("127.0.0.1", port), "from an IPv6 source to IPv4");
    CHECK(r.failure == Failure::other);
    CHECK(contains(r.detail, "source ::1 is IPv6 but the target is IPv4"));
    hc.source = addr("192.0.2.77");  // not ours
    r = probe(io, prober, hc, target("127.0.0.1", port), "from a source not on this host");
    CHECK(r.failure == Failure::other);
    CHECK(contains(r.detail, "bind to source 192.0.2.77"));
    CHECK(prober.in_flight() == 0);
}

TEST_CASE("tcp check by SYN probe: SYNs are retransmitted within the timeout, as connect(2) does", "[health]")
{
    // The listener's queue is full when the first SYN comes (dropped); it is emptied before the
    // kernel's first retransmit time (1 s): only a retransmitted SYN can pass.
    asio::io_context io;
    auto opened = fulcrum::health::SynProber::open(io);
    REQUIRE(opened.ok());
    BlackholeListener blackhole("127.0.0.1");
    auto hc = make_check(CheckType::tcp, 2500ms);
    std::optional<Result> result;
    (*opened)->probe(hc, target("127.0.0.1", blackhole.port), [&](Result r) { result = std::move(r); });
    io.run_for(300ms);
    REQUIRE_FALSE(result.has_value());
    const std::uint64_t sent = (*opened)->syns_sent();
    int accepted = ::accept(blackhole.listen_fd, nullptr, nullptr);  // the filler: room for one more
    REQUIRE(accepted >= 0);
    REQUIRE(run_until(io, [&] { return result.has_value(); }, 5000ms));
    ::close(accepted);
    CHECK(result->ok());
    CHECK((*opened)->syns_sent() > sent);
}

TEST_CASE("tcp check by SYN probe: many at once, to many ports, each answered on its own", "[health]")
{
    asio::io_context io;
    auto opened = fulcrum::health::SynProber::open(io);
    REQUIRE(opened.ok());
    std::vector<std::uint16_t> open_ports, closed_ports;
    for (int i = 0; i < 20; ++i) {
        open_ports.push_back(start_silent(io, i % 2 ? "::1" : "127.0.0.1"));
        closed_ports.push_back(closed_tcp_port(i % 2 ? "::1" : "127.0.0.1"));
    }
    int ok = 0, refused = 0, finished = 0;
    auto hc = make_check(CheckType::tcp, 2000ms);
    for (int round = 0; round < 10; ++round)
        for (int i = 0; i < 20; ++i) {
            const char* host = i % 2 ? "::1" : "127.0.0.1";
            (*opened)->probe(hc, target(host, open_ports[i]), [&](Result r) {
                ++finished;
                ok += r.ok();
            });
            (*opened)->probe(hc, target(host, closed_ports[i]), [&](Result r) {
                ++finished;
                refused += r.failure == Failure::refused;
            });
        }
    REQUIRE(run_until(io, [&] { return finished == 400; }, 10'000ms));
    CHECK(ok == 200);
    CHECK(refused == 200);
    CHECK((*opened)->in_flight() == 0);
}
