// metrics::HttpServer (http_server.h): one coroutine per connection on the server's own
// io_context and thread.
#include "metrics/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "metrics/gzip.h"
#include "util/log.h"

namespace fulcrum::metrics {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

// A page being made elsewhere: the handler's respond() stores it and wakes the connection,
// which waits on `wake` for at most the timeout. respond() holds it weakly, so a connection
// closed meanwhile (or a server stopped) is never touched.
struct Pending {
    explicit Pending(asio::any_io_executor ex) : wake(ex) {}
    std::mutex mutex;
    std::optional<HttpPage> page;
    asio::steady_timer wake;
};

Result<tcp::endpoint> parse_listen(const std::string& listen)
{
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string::npos)
        return Status::failure("metrics: not ADDRESS:PORT: " + listen);
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    error_code ec;
    const asio::ip::address address = asio::ip::make_address(host, ec);
    char* end = nullptr;
    const unsigned long port = std::strtoul(listen.c_str() + colon + 1, &end, 10);
    if (ec || *end != '\0' || colon + 1 == listen.size() || port > 65535)
        return Status::failure("metrics: not ADDRESS:PORT: " + listen);
    return tcp::endpoint(address, static_cast<unsigned short>(port));
}

}  // namespace

struct HttpServer::Impl {
    Impl(std::map<std::string, HttpHandler> p, HttpLimits l) : pages(std::move(p)), limits(l) {}

    asio::io_context io{1};
    tcp::acceptor acceptor{io};
    std::map<std::string, HttpHandler> pages;
    HttpLimits limits;
    std::size_t open = 0;  // connections open (server thread only)
    std::thread thread;

    asio::awaitable<void> accept();
    asio::awaitable<void> serve(tcp::socket socket);
    asio::awaitable<HttpPage> page(const HttpHandler& handler, bool& timed_out);
    http::response<http::string_body> answer(const http::request<http::empty_body>& req, http::status status,
                                             HttpPage page) const;
};

asio::awaitable<void> HttpServer::Impl::accept()
{
    for (;;) {
        error_code ec;
        tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted)
            co_return;
        if (ec) {
            // EMFILE and the like: wait a little rather than spin on the listening socket.
            LOG_WARN("metrics: accept on %s failed: %s", acceptor.local_endpoint(ec).address().to_string().c_str(),
                     ec.message().c_str());
            asio::steady_timer pause(io, std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        if (open >= limits.max_connections) {
            socket.close(ec);  // busy: the client retries, as a scraper does at its next interval
            continue;
        }
        open++;
        asio::co_spawn(io, serve(std::move(socket)), [this](std::exception_ptr) { open--; });
    }
}

// Runs the handler and waits for its page, up to the timeout.
asio::awaitable<HttpPage> HttpServer::Impl::page(const HttpHandler& handler, bool& timed_out)
{
    auto pending = std::make_shared<Pending>(io.get_executor());
    pending->wake.expires_after(limits.timeout);
    handler([weak = std::weak_ptr<Pending>(pending)](HttpPage page) {
        auto p = weak.lock();
        if (!p)
            return;  // the connection is gone
        {
            std::lock_guard lock(p->mutex);
            p->page = std::move(page);
        }
        asio::post(p->wake.get_executor(), [p] { p->wake.cancel(); });
    });
    bool ready;
    {
        std::lock_guard lock(pending->mutex);
        ready = pending->page.has_value();
    }
    if (!ready) {
        error_code ec;
        co_await pending->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    std::lock_guard lock(pending->mutex);
    timed_out = !pending->page;
    co_return timed_out ? HttpPage{} : std::move(*pending->page);
}

http::response<http::string_body> HttpServer::Impl::answer(const http::request<http::empty_body>& req,
                                                           http::status status, HttpPage page) const
{
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::server, "fulcrumd");
    res.set(http::field::content_type, page.content_type.empty() ? "text/plain; charset=utf-8" : page.content_type);
    res.set(http::field::cache_control, "no-store");
    res.set("Content-Security-Policy", kContentSecurityPolicy);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Referrer-Policy", "no-referrer");
    if (status == http::status::method_not_allowed)
        res.set(http::field::allow, "GET, HEAD");
    res.keep_alive(req.keep_alive() && status != http::status::service_unavailable);
    res.body() = std::move(page.body);
    if (status == http::status::ok) {
        // Compressed for clients that ask (Prometheus and browsers do), as the Exposer did.
        res.set(http::field::vary, "Accept-Encoding");
        const auto accept = req[http::field::accept_encoding];
        if (accepts_gzip(std::string_view(accept.data(), accept.size())))
            if (std::optional<std::string> z = gzip(res.body())) {
                res.body() = std::move(*z);
                res.set(http::field::content_encoding, "gzip");
            }
    }
    res.prepare_payload();
    if (req.method() == http::verb::head)
        res.body().clear();  // Content-Length stays that of the GET
    return res;
}

asio::awaitable<void> HttpServer::Impl::serve(tcp::socket socket)
{
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer(limits.max_request_bytes);
    error_code ec;
    for (;;) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(limits.max_request_bytes));
        stream.expires_after(limits.timeout);
        // The head only: a body is never read (read-only; GET and HEAD have none).
        co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        // Closed, idle past the deadline, or a socket error: nothing to answer. A parse error
        // (the HTTP category) gets one answer below.
        if (ec == http::error::end_of_stream ||
            (ec && ec.category() != http::make_error_code(http::error::end_of_stream).category()))
            break;
        const http::request<http::empty_body>& req = parser.get();
        const bool has_body = !ec && !parser.is_done();  // unread: the connection closes after the answer
        http::response<http::string_body> res;
        if (ec) {
            // A malformed or oversized request: say so once and close.
            const bool too_big = ec == http::error::header_limit || ec == http::error::buffer_overflow;
            http::request<http::empty_body> plain;
            plain.keep_alive(false);
            res = answer(plain, too_big ? http::status::request_header_fields_too_large : http::status::bad_request,
                         {"", too_big ? "request head too large\n" : "bad request: " + ec.message() + "\n"});
        } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
            res = answer(req, http::status::method_not_allowed, {"", "read-only: GET and HEAD only\n"});
        } else if (has_body) {
            res = answer(req, http::status::bad_request, {"", "bad request: GET and HEAD take no body\n"});
        } else {
            std::string path(req.target());
            path = path.substr(0, path.find('?'));
            auto it = pages.find(path);
            if (it == pages.end()) {
                res = answer(req, http::status::not_found, {"", "not found; see / or /metrics\n"});
            } else {
                bool timed_out = false;
                HttpPage made = co_await page(it->second, timed_out);
                res = timed_out ? answer(req, http::status::service_unavailable, {"", "the daemon did not answer in time\n"})
                                : answer(req, http::status::ok, std::move(made));
            }
        }
        if (has_body)
            res.keep_alive(false);
        stream.expires_after(limits.timeout);
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || !res.keep_alive())
            break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen,
                                                      std::map<std::string, HttpHandler> pages, HttpLimits limits)
{
    Result<tcp::endpoint> endpoint = parse_listen(listen);
    if (!endpoint.ok())
        return endpoint.status();
    auto impl = std::make_unique<Impl>(std::move(pages), limits);
    error_code ec;
    const char* step = "open a socket for";
    impl->acceptor.open(endpoint->protocol(), ec);
    if (!ec) {
        step = "set SO_REUSEADDR on";  // a restart rebinds while old connections are in TIME_WAIT
        impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec) {
        step = "listen on";
        impl->acceptor.bind(*endpoint, ec);
    }
    if (!ec)
        impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return Status::failure(std::string("metrics: cannot ") + step + " " + listen +
                               " (address in use, or not an address of this host): " + ec.message());
    asio::co_spawn(impl->io, impl->accept(), asio::detached);
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->io.run(); });
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer()
{
    impl_->io.stop();
    if (impl_->thread.joinable())
        impl_->thread.join();
}

unsigned short HttpServer::port() const
{
    error_code ec;
    return impl_->acceptor.local_endpoint(ec).port();
}

}  // namespace fulcrum::metrics
