// The control socket server: a unix stream socket (mode 0600) on the daemon's io_context; one
// request line in, one answer out (protocol.h). The commands themselves live with the daemon.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace fulcrum::control {

struct Request {
    bool json = false;
    std::string command;
    std::vector<std::string> args;
};

struct Response {
    int code = 0;  // ExitCode
    std::string body;
};

class Server {
public:
    using Handler = std::function<Response(const Request&)>;
    Server(boost::asio::io_context& io, std::string path, Handler handler);
    ~Server();  // closes and unlinks the socket
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds (replacing a stale socket file), restricts it to root (0600) and starts accepting.
    Status start();

private:
    void accept();

    boost::asio::io_context& io_;
    std::string path_;
    Handler handler_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
};

// Parses "FORMAT COMMAND ARGS..." (protocol.h); false if malformed.
bool parse_request(const std::string& line, Request* request);

}  // namespace fulcrum::control
