// metrics::HttpServer over a real TCP socket on loopback, with raw requests written by hand (so
// malformed and oversized ones can be sent): routing, methods, HEAD, the security headers, the
// bounds (request head, body, connections, a page never made, an idle connection), a page
// answered from another thread, and gzip. Also /metrics through metrics::Scrape.
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <prometheus/text_serializer.h>
#include <prometheus/registry.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <string>
#include <thread>

#include "metrics/http_server.h"
#include "metrics/scrape.h"

using namespace fulcrum;
using namespace std::chrono_literals;

namespace {

int connect_to(unsigned short port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{10, 0};  // a hung server fails the test instead of hanging it
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// Everything the server sends until it closes the connection.
std::string read_all(int fd)
{
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
        out.append(buf, static_cast<std::size_t>(n));
    return out;
}

// One raw request on a new connection (the caller's request says Connection: close).
std::string ask(unsigned short port, const std::string& request)
{
    int fd = connect_to(port);
    REQUIRE(write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string answer = read_all(fd);
    close(fd);
    return answer;
}

std::string get(unsigned short port, const std::string& method, const std::string& path)
{
    return ask(port, method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

std::string status_line(const std::string& answer) { return answer.substr(0, answer.find("\r\n")); }
std::string body_of(const std::string& answer)
{
    auto at = answer.find("\r\n\r\n");
    return at == std::string::npos ? "" : answer.substr(at + 4);
}

struct Fixture {
    std::map<std::string, metrics::HttpHandler> pages;
    std::unique_ptr<metrics::HttpServer> server;
    unsigned short start(metrics::HttpLimits limits = {})
    {
        auto s = metrics::HttpServer::start("127.0.0.1:0", pages, limits);
        REQUIRE(s.ok());
        server = std::move(s).value();
        return server->port();
    }
};

}  // namespace

TEST_CASE("http server: routes GET and HEAD, 404 and 405, security headers", "[http]")
{
    Fixture f;
    f.pages["/"] = [](metrics::HttpRespond r) { r({"text/html; charset=utf-8", "<p>page</p>"}); };
    const unsigned short port = f.start();

    std::string a = get(port, "GET", "/");
    CHECK(status_line(a) == "HTTP/1.1 200 OK");
    CHECK(body_of(a) == "<p>page</p>");
    CHECK(a.find("Content-Type: text/html; charset=utf-8\r\n") != std::string::npos);
    CHECK(a.find(std::string("Content-Security-Policy: ") + metrics::kContentSecurityPolicy + "\r\n") !=
          std::string::npos);
    CHECK(a.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
    CHECK(status_line(get(port, "GET", "/?refresh=1")) == "HTTP/1.1 200 OK");  // the query is not the path

    std::string head = get(port, "HEAD", "/");
    CHECK(status_line(head) == "HTTP/1.1 200 OK");
    CHECK(head.find("Content-Length: 11\r\n") != std::string::npos);
    CHECK(body_of(head).empty());

    std::string missing = get(port, "GET", "/nothing");
    CHECK(status_line(missing) == "HTTP/1.1 404 Not Found");
    CHECK(missing.find("Content-Security-Policy: ") != std::string::npos);

    for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
        std::string refused = get(port, method, "/");
        CHECK(status_line(refused) == "HTTP/1.1 405 Method Not Allowed");
        CHECK(refused.find("Allow: GET, HEAD\r\n") != std::string::npos);
    }
    // A form post: 405 as well, its body never read.
    CHECK(status_line(ask(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nx=1")) ==
          "HTTP/1.1 405 Method Not Allowed");
}

TEST_CASE("http server: gzip for clients that ask, and only them", "[http]")
{
    const std::string text(5000, 'm');
    Fixture f;
    f.pages["/big"] = [&text](metrics::HttpRespond r) { r({"text/plain", text}); };
    const unsigned short port = f.start();
    std::string plain = get(port, "GET", "/big");
    CHECK(body_of(plain) == text);
    CHECK(plain.find("Content-Encoding") == std::string::npos);
    for (const char* accept : {"gzip", "deflate, gzip", "br;q=1.0, gzip;q=0.5"}) {
        std::string zipped = ask(port, std::string("GET /big HTTP/1.1\r\nHost: x\r\nAccept-Encoding: ") + accept +
                                           "\r\nConnection: close\r\n\r\n");
        INFO(accept);
        CHECK(zipped.find("Content-Encoding: gzip\r\n") != std::string::npos);
        const std::string z = body_of(zipped);
        REQUIRE(z.size() > 18);
        CHECK(z.size() < text.size() / 10);
        CHECK((static_cast<unsigned char>(z[0]) == 0x1f && static_cast<unsigned char>(z[1]) == 0x8b));  // gzip magic
    }
    for (const char* accept : {"identity", "gzip;q=0", "deflate, gzip;q=0.0", "xgzip"}) {
        INFO(accept);
        std::string refused = ask(port, std::string("GET /big HTTP/1.1\r\nHost: x\r\nAccept-Encoding: ") + accept +
                                            "\r\nConnection: close\r\n\r\n");
        CHECK(body_of(refused) == text);
    }
}

TEST_CASE("http server: keep-alive serves several requests on one connection", "[http]")
{
    Fixture f;
    f.pages["/a"] = [](metrics::HttpRespond r) { r({"text/plain", "A"}); };
    const unsigned short port = f.start();
    std::string two = ask(port, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(two.find("HTTP/1.1 200 OK") == 0);
    CHECK(two.find("HTTP/1.1 404 Not Found") != std::string::npos);
}

TEST_CASE("http server: bounded requests", "[http]")
{
    Fixture f;
    f.pages["/"] = [](metrics::HttpRespond r) { r({"text/plain", "ok"}); };
    metrics::HttpLimits limits;
    limits.max_request_bytes = 1024;
    limits.timeout = 300ms;
    limits.max_connections = 2;
    const unsigned short port = f.start(limits);

    SECTION("a request head over the limit is refused and the connection closed")
    {
        std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(2000, 'a') + "\r\n\r\n";
        CHECK(status_line(ask(port, big)) == "HTTP/1.1 431 Request Header Fields Too Large");
    }
    SECTION("a request with a body is refused")
    {
        CHECK(status_line(ask(port, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")) ==
              "HTTP/1.1 400 Bad Request");
    }
    SECTION("garbage is a bad request")
    {
        CHECK(status_line(ask(port, "NOT HTTP AT ALL\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
    }
    SECTION("an idle connection is closed at the deadline, unanswered")
    {
        int fd = connect_to(port);
        CHECK(read_all(fd).empty());  // returns once the server closes (the deadline is 300 ms)
        close(fd);
    }
    SECTION("past max_connections a connection is closed at once; the others still served")
    {
        int a = connect_to(port), b = connect_to(port);
        std::string third = get(port, "GET", "/");
        CHECK(third.empty());
        close(a);
        close(b);
        // Once they are closed (the server sees it at their deadline at the latest), it serves again.
        std::string later;
        for (int i = 0; i < 50 && later.empty(); i++) {
            std::this_thread::sleep_for(50ms);
            later = get(port, "GET", "/");
        }
        CHECK(status_line(later) == "HTTP/1.1 200 OK");
    }
}

TEST_CASE("http server: pages made on another thread, and one never made", "[http]")
{
    Fixture f;
    std::thread worker;
    f.pages["/later"] = [&worker](metrics::HttpRespond r) {
        worker = std::thread([r] {
            std::this_thread::sleep_for(50ms);
            r({"application/json", "{\"later\":true}"});
        });
    };
    f.pages["/never"] = [](metrics::HttpRespond) {};
    metrics::HttpLimits limits;
    limits.timeout = 500ms;
    const unsigned short port = f.start(limits);
    std::string later = get(port, "GET", "/later");
    worker.join();
    CHECK(status_line(later) == "HTTP/1.1 200 OK");
    CHECK(body_of(later) == "{\"later\":true}");
    CHECK(status_line(get(port, "GET", "/never")) == "HTTP/1.1 503 Service Unavailable");
}

TEST_CASE("http server: a listen address it cannot use is a clear error", "[http]")
{
    auto bad = metrics::HttpServer::start("not-an-address:80", {});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.message() == "metrics: not ADDRESS:PORT: not-an-address:80");
    Fixture f;
    const unsigned short port = f.start();
    auto taken = metrics::HttpServer::start("127.0.0.1:" + std::to_string(port), {});
    REQUIRE_FALSE(taken.ok());
    CHECK(taken.message().find("metrics: cannot listen on 127.0.0.1:" + std::to_string(port)) == 0);
    CHECK(taken.message().find("Address already in use") != std::string::npos);
}

TEST_CASE("/metrics: the collectables in the text format after the exposer_* scrape statistics", "[http]")
{
    auto registry = std::make_shared<prometheus::Registry>();
    prometheus::BuildGauge().Name("fulcrum_test_gauge").Help("A gauge.").Register(*registry).Add({{"k", "v"}}).Set(7);
    metrics::Scrape scrape({registry});
    Fixture f;
    f.pages["/metrics"] = scrape.handler();
    const unsigned short port = f.start();
    std::string first = body_of(get(port, "GET", "/metrics"));
    CHECK(first.find("# HELP exposer_transferred_bytes_total Transferred bytes to metrics services\n") == 0);
    CHECK(first.find("exposer_scrapes_total 0\n") != std::string::npos);
    CHECK(first.find("# TYPE exposer_request_latencies summary\n") != std::string::npos);
    CHECK(first.find("fulcrum_test_gauge{k=\"v\"} 7\n") != std::string::npos);
    CHECK(first.find("exposer_") < first.find("fulcrum_test_gauge"));
    std::string second = get(port, "GET", "/metrics");
    CHECK(second.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
    CHECK(body_of(second).find("exposer_scrapes_total 1\n") != std::string::npos);
}

TEST_CASE("/metrics: serialised family by family, the text is prometheus-cpp's for them all at once", "[http]")
{
    // Several families of several types, label values that need escaping, and a histogram: the
    // page after the exposer_* statistics must be byte for byte what TextSerializer makes of the
    // whole list (Scrape serialises and frees one family at a time to bound its memory).
    auto registry = std::make_shared<prometheus::Registry>();
    auto& gauges = prometheus::BuildGauge().Name("fulcrum_test_gauge").Help("A gauge.").Register(*registry);
    gauges.Add({{"k", "v"}}).Set(7.25);
    gauges.Add({{"k", "quote\"and\\slash\nline"}}).Set(-1e-9);
    prometheus::BuildCounter().Name("fulcrum_test_total").Help("A counter.").Register(*registry).Add({}).Increment(3);
    prometheus::BuildHistogram()
        .Name("fulcrum_test_seconds")
        .Help("A histogram.")
        .Register(*registry)
        .Add({{"b", "1"}}, prometheus::Histogram::BucketBoundaries{0.001, 0.5, 10})
        .Observe(0.25);
    const std::string expected = prometheus::TextSerializer().Serialize(registry->Collect());
    REQUIRE(expected.find("# HELP fulcrum_test_") == 0);
    metrics::Scrape scrape({registry});
    Fixture f;
    f.pages["/metrics"] = scrape.handler();
    const unsigned short port = f.start();
    for (int i = 0; i < 2; i++) {  // the second with the room reserved from the first
        const std::string body = body_of(get(port, "GET", "/metrics"));
        const std::size_t own = body.find("# HELP fulcrum_test_");
        REQUIRE(own != std::string::npos);
        CHECK(body.substr(own) == expected);
    }
}
