// The HTTP listener of metrics.listen: a small read-only server (Boost.Beast) for /metrics and
// the status page. It runs on a thread of its own with its own io_context, as the prometheus-cpp
// Exposer it replaces did, so a scrape (which reads every counter of the maps) never stalls the
// daemon's event loop; a page made on the event loop (the status data) answers asynchronously.
//
// Bounded, since anyone who can reach the port can talk to it: GET and HEAD only (405 otherwise,
// 404 for a path it does not serve), no request body read (a request with one is answered and
// closed), a request head of at most HttpLimits::max_request_bytes (431/400 and closed), a
// deadline on every read, write and page
// (a connection idle or stuck past it is closed), and at most max_connections at once (more are
// closed at accept). Every answer carries a Content-Security-Policy that lets a page run only its
// own inline script and style and fetch only from this origin. Answers are gzipped for clients
// that ask (metrics/gzip.h).
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "util/status.h"

namespace fulcrum::metrics {

struct HttpLimits {
    std::size_t max_request_bytes = 8 * 1024;               // request line and headers
    std::chrono::milliseconds timeout = std::chrono::seconds(10);  // each read, write and page
    std::size_t max_connections = 32;
};

struct HttpPage {
    std::string content_type;
    std::string body;
};
// Answers one request: call it once, from any thread (a page made on another event loop). A
// page not answered within HttpLimits::timeout gets 503.
using HttpRespond = std::function<void(HttpPage)>;
using HttpHandler = std::function<void(HttpRespond)>;  // called on the server's thread

// The security headers of every answer (tests and the README quote them).
inline constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

class HttpServer {
public:
    // Binds `listen` (ADDRESS:PORT, [V6ADDRESS]:PORT; port 0 picks a free one) and serves `pages`
    // (path without query -> handler) on a new thread. A failure names the address and the errno.
    static Result<std::unique_ptr<HttpServer>> start(const std::string& listen,
                                                     std::map<std::string, HttpHandler> pages,
                                                     HttpLimits limits = {});
    ~HttpServer();  // stops the thread; open connections are closed
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    unsigned short port() const;  // the bound port

    struct Impl;

private:
    explicit HttpServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace fulcrum::metrics
