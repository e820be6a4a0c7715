// The control socket server: a unix stream socket (mode 0600) on the daemon's io_context; one
// request line in, one answer out (protocol.h). The commands themselves live with the daemon; a
// command answers through a Reply it may call later (a reload answers once its apply is done).
//
// Bounded against misbehaving clients (all local root processes, but a stuck script or a leak is
// enough): each session has a deadline, at most Limits::max_sessions are open at once (more are
// answered "busy" at once and closed), and a failing accept() (EMFILE, ENFILE, ...) is retried on
// a timer instead of at once, so fulcrumd never spins on its listening socket.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <sys/types.h>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/protocol.h"
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

struct Limits {
    std::chrono::milliseconds request_timeout = kRequestTimeout;  // connect to full request line
    std::chrono::milliseconds answer_timeout = kAnswerTimeout;    // the client reading the answer
    std::size_t max_sessions = kMaxSessions;
    std::chrono::milliseconds accept_retry = std::chrono::milliseconds(100);  // after a failed accept
    std::chrono::seconds log_interval = std::chrono::seconds(10);  // refusals/timeouts: one line per
};

// Counters since the server started (status shows them).
struct ServerStats {
    std::size_t open = 0;            // sessions open now
    std::uint64_t sessions = 0;      // connections served (given a session)
    std::uint64_t refused = 0;       // connections answered "busy" (max_sessions open)
    std::uint64_t timed_out = 0;     // sessions closed at their deadline
    std::uint64_t accept_failures = 0;  // failed accept() calls (EMFILE, ENFILE, ...)
};

class Server {
public:
    // Called exactly once per request, at once or later on the io_context. While a command runs
    // the session has no deadline (its time does not count); the answer timeout starts at the
    // reply. A Reply dropped uncalled (the daemon stopping) closes the connection unanswered.
    using Reply = std::function<void(Response)>;
    using Handler = std::function<void(const Request&, Reply)>;
    Server(boost::asio::io_context& io, std::string path, Handler handler, Limits limits = {});
    ~Server();  // closes and unlinks the socket
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds (replacing a stale socket file, never one a daemon answers on, nor a file that is not
    // a socket), restricts it to root (0600) and starts accepting.
    Status start();

    const ServerStats& stats() const;
    const Limits& limits() const;

    // What sessions and the server share; sessions may outlive the server (their handlers are
    // still queued on the io_context when it is destroyed).
    struct Shared;

private:
    void accept();
    void on_accept_error(const boost::system::error_code& ec);
    void refuse(boost::asio::local::stream_protocol::socket socket);

    boost::asio::io_context& io_;
    std::string path_;
    std::shared_ptr<Shared> shared_;
    std::optional<std::pair<dev_t, ino_t>> bound_;  // the socket file this server made (unlinked at the end)
    boost::asio::local::stream_protocol::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    // A run of failed accepts is one episode: logged when it starts and when accepting works again.
    std::uint64_t failures_in_episode_ = 0;
    bool episode_logged_ = false;
    std::chrono::steady_clock::time_point episode_start_, next_failure_log_;
};

// Parses "FORMAT COMMAND ARGS..." (protocol.h); false if malformed.
bool parse_request(const std::string& line, Request* request);

}  // namespace fulcrum::control
