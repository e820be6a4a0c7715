// Control socket server; see server.h.
#include "control/server.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "util/log.h"

namespace fulcrum::control {

using boost::asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

struct Server::Shared {
    Handler handler;
    Limits limits;
    std::string path;
    ServerStats stats;
    Clock::time_point next_refused_log{}, next_timeout_log{};

    // Refusals and deadlines come in floods: one warning, then at most one line of each kind per
    // log_interval, each with the running totals (status shows them too).
    void report(const char* what, Clock::time_point& next_report)
    {
        const Clock::time_point now = Clock::now();
        if (now < next_report)
            return;
        next_report = now + limits.log_interval;
        LOG_WARN("control: %s on %s (%zu sessions open, limit %zu; since start %llu refused busy, %llu "
                 "closed at their deadline; next such line in %llds at the earliest)",
                 what, path.c_str(), stats.open, limits.max_sessions,
                 static_cast<unsigned long long>(stats.refused), static_cast<unsigned long long>(stats.timed_out),
                 static_cast<long long>(limits.log_interval.count()));
    }
};

namespace {

// One connection: read a line before the request deadline, answer before the answer deadline,
// close. A client that says nothing, sends part of a line or does not read is closed at the
// deadline without an answer.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(stream_protocol::socket socket, std::shared_ptr<Server::Shared> shared)
        : socket_(std::move(socket)), shared_(std::move(shared)), buffer_(kMaxRequestBytes),
          deadline_(socket_.get_executor())
    {
        shared_->stats.open++;
        shared_->stats.sessions++;
    }
    ~Session() { shared_->stats.open--; }

    void start()
    {
        arm(shared_->limits.request_timeout);
        auto self = shared_from_this();
        boost::asio::async_read_until(socket_, buffer_, '\n',
                                      [self](const boost::system::error_code& ec, std::size_t) {
                                          self->on_line(ec);
                                      });
    }

private:
    void arm(std::chrono::milliseconds timeout)
    {
        deadline_.expires_after(timeout);
        auto self = shared_from_this();
        deadline_.async_wait([self](const boost::system::error_code& ec) {
            // Cancelled, or re-armed after this wait had already completed (the command ran
            // past the request deadline): only the current deadline counts.
            if (ec || self->closed_ || self->deadline_.expiry() > Clock::now())
                return;
            if (self->answering_ && self->client_took_more())
                return self->arm(self->shared_->limits.answer_timeout);  // its write runs next
            self->shared_->stats.timed_out++;
            self->shared_->report("closed a session at its deadline", self->shared_->next_timeout_log);
            self->close();
        });
    }

    void on_line(const boost::system::error_code& ec)
    {
        if (closed_)
            return;  // the deadline closed the socket
        if (ec) {
            answer({kUsage, "request too long or connection closed before a full line\n"});
            return;
        }
        std::string line;
        std::istream in(&buffer_);
        std::getline(in, line);
        Request request;
        if (!parse_request(line, &request)) {
            answer({kUsage, "malformed request: \"" + line + "\"\n"});
            return;
        }
        // No deadline while the command runs (it ends: Server::Handler). A deadline wait that has
        // already completed sees this expiry and lets the session be.
        deadline_.expires_at(Clock::time_point::max());
        auto self = shared_from_this();
        shared_->handler(request, [self](Response response) { self->answer(response); });
    }

    void answer(const Response& response)
    {
        if (closed_)
            return;
        answer_ = std::to_string(response.code) + "\n" + response.body;
        answering_ = true;
        send_rest();
    }

    // The answer deadline is the client's: it runs from the last byte the client took, not from
    // the start of the answer. A large answer (status of a thousand services is megabytes) meets
    // a daemon whose loop is busy for seconds (an apply); had the deadline counted that time, the
    // session would be closed mid-answer and the client would see a truncated body it cannot
    // tell from a whole one (the protocol ends an answer by closing).
    void send_rest()
    {
        arm(shared_->limits.answer_timeout);
        auto self = shared_from_this();
        socket_.async_write_some(boost::asio::buffer(answer_.data() + sent_, answer_.size() - sent_),
                                 [self](const boost::system::error_code& ec, std::size_t n) {
                                     if (self->closed_)
                                         return;
                                     self->sent_ += n;
                                     if (ec || self->sent_ == self->answer_.size())
                                         return self->close();
                                     self->send_rest();
                                 });
    }

    // Whether the client made room for more of the answer since the last write: then the
    // deadline found the loop late, not the client idle.
    bool client_took_more()
    {
        pollfd p{socket_.native_handle(), POLLOUT, 0};
        return ::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
    }

    void close()
    {
        if (closed_)
            return;
        closed_ = true;
        deadline_.cancel();
        boost::system::error_code ignored;
        socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
        socket_.close(ignored);  // a pending read or write ends with operation_aborted
    }

    stream_protocol::socket socket_;
    std::shared_ptr<Server::Shared> shared_;
    boost::asio::streambuf buffer_;
    boost::asio::steady_timer deadline_;
    std::string answer_;
    std::size_t sent_ = 0;
    bool answering_ = false;
    bool closed_ = false;
};

}  // namespace

bool parse_request(const std::string& line, Request* request)
{
    std::istringstream words(line);
    std::string format;
    if (!(words >> format >> request->command) || (format != "text" && format != "json"))
        return false;
    request->json = format == "json";
    for (std::string arg; words >> arg;)
        request->args.push_back(arg);
    return true;
}

Server::Server(boost::asio::io_context& io, std::string path, Handler handler, Limits limits)
    : io_(io), path_(std::move(path)),
      shared_(std::make_shared<Shared>(Shared{std::move(handler), limits, path_, {}, {}, {}})), acceptor_(io),
      retry_timer_(io)
{
}

Server::~Server()
{
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    // Only the socket this server bound: after a refused start the file is another daemon's.
    struct stat st {};
    if (bound_ && stat(path_.c_str(), &st) == 0 && std::make_pair(st.st_dev, st.st_ino) == *bound_)
        unlink(path_.c_str());
}

const ServerStats& Server::stats() const { return shared_->stats; }
const Limits& Server::limits() const { return shared_->limits; }

namespace {

// What is at `path` before binding: nothing, a stale socket (its daemon died: nobody accepts), a
// live one (another fulcrumd, whatever its pin path: the lock only covers the pins), or something
// that is not a socket at all. Only nothing and stale may be replaced.
Status check_socket_path(const std::string& path)
{
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0)
        return {};
    if (!S_ISSOCK(st.st_mode))
        return Status::failure("control: " + path + " exists and is not a socket; refusing to replace it "
                               "(set control.socket to another path, or remove it)");
    boost::asio::io_context io;
    stream_protocol::socket probe(io);
    boost::system::error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec)
        return Status::failure("control: another fulcrumd answers on " + path +
                               "; refusing to start (give this one another control.socket)");
    if (ec != boost::asio::error::connection_refused)
        return Status::failure("control: cannot tell whether a daemon answers on " + path + ": " + ec.message() +
                               "; refusing to replace it");
    return {};
}

}  // namespace

Status Server::start()
{
    std::error_code fs_error;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), fs_error);
    if (Status s = check_socket_path(path_); !s.ok())
        return s;
    unlink(path_.c_str());  // stale: left by a daemon that died
    boost::system::error_code ec;
    acceptor_.open(stream_protocol(), ec);
    if (!ec)
        acceptor_.bind(stream_protocol::endpoint(path_), ec);
    struct stat st {};
    if (!ec && stat(path_.c_str(), &st) != 0)
        ec.assign(errno, boost::system::system_category());
    if (!ec && chmod(path_.c_str(), 0600) != 0)
        ec.assign(errno, boost::system::system_category());
    if (!ec)
        acceptor_.listen(64, ec);
    if (ec)
        return Status::failure("control: cannot listen on " + path_ + ": " + ec.message());
    bound_ = std::make_pair(st.st_dev, st.st_ino);
    accept();
    return {};
}

void Server::accept()
{
    acceptor_.async_accept([this](const boost::system::error_code& ec, stream_protocol::socket socket) {
        if (ec == boost::asio::error::operation_aborted)
            return;
        if (ec) {
            on_accept_error(ec);
            return;
        }
        if (failures_in_episode_) {
            if (episode_logged_)
                LOG_INFO("control: accepting on %s again, after %llu failed accepts over %.1fs", path_.c_str(),
                         static_cast<unsigned long long>(failures_in_episode_),
                         std::chrono::duration<double>(Clock::now() - episode_start_).count());
            failures_in_episode_ = 0;
            episode_logged_ = false;
        }
        if (shared_->stats.open >= shared_->limits.max_sessions)
            refuse(std::move(socket));
        else
            std::make_shared<Session>(std::move(socket), shared_)->start();
        accept();
    });
}

// accept() failing (EMFILE, ENFILE, ENOBUFS, ...) leaves the connection in the backlog, so the
// listening socket stays readable: accepting again at once would spin. Wait, then try again.
// An episode (failures until an accept works) is logged once, when it starts and when it ends;
// at the fd limit episodes can follow each other as sessions end, so a start is logged at most
// once per log_interval (the failures are all counted: status).
void Server::on_accept_error(const boost::system::error_code& ec)
{
    shared_->stats.accept_failures++;
    const Clock::time_point now = Clock::now();
    if (failures_in_episode_++ == 0 && now >= next_failure_log_) {
        episode_start_ = now;
        episode_logged_ = true;
        next_failure_log_ = now + shared_->limits.log_interval;
        LOG_WARN("control: cannot accept on %s: %s; trying again every %lldms (connections wait in the "
                 "backlog; logged again when accepting works)",
                 path_.c_str(), ec.message().c_str(), static_cast<long long>(shared_->limits.accept_retry.count()));
    }
    retry_timer_.expires_after(shared_->limits.accept_retry);
    retry_timer_.async_wait([this](const boost::system::error_code& wait_ec) {
        if (wait_ec == boost::asio::error::operation_aborted)
            return;
        accept();
    });
}

// Over the session limit: one line (protocol.h, kBusy) and close, without holding the fd.
void Server::refuse(stream_protocol::socket socket)
{
    shared_->stats.refused++;
    shared_->report("refused a connection: too many sessions open", shared_->next_refused_log);
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
    // Read what the client already sent (a request is at most kMaxRequestBytes): a unix socket
    // closed with unread data makes the client's read fail with ECONNRESET, not see this line.
    char sink[1024];
    for (unsigned read = 0; read < kMaxRequestBytes;) {
        std::size_t n = socket.read_some(boost::asio::buffer(sink), ignored);
        if (ignored || n == 0)
            break;
        read += static_cast<unsigned>(n);
    }
    const std::string busy = std::to_string(kBusy) + "\nfulcrumd is busy: " +
                             std::to_string(shared_->limits.max_sessions) +
                             " control sessions open (the limit); try again\n";
    socket.write_some(boost::asio::buffer(busy), ignored);  // a short line: fits in the empty buffer
    socket.shutdown(stream_protocol::socket::shutdown_both, ignored);
    socket.close(ignored);
}

}  // namespace fulcrum::control
