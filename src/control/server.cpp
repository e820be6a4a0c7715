// Control socket server; see server.h.
#include "control/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "control/protocol.h"
#include "util/log.h"

namespace fulcrum::control {
namespace {

using boost::asio::local::stream_protocol;

// One connection: read a line, answer, close.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(stream_protocol::socket socket, const Server::Handler& handler)
        : socket_(std::move(socket)), handler_(handler), buffer_(kMaxRequestBytes)
    {
    }

    void start()
    {
        auto self = shared_from_this();
        boost::asio::async_read_until(socket_, buffer_, '\n',
                                      [self](const boost::system::error_code& ec, std::size_t) {
                                          self->on_line(ec);
                                      });
    }

private:
    void on_line(const boost::system::error_code& ec)
    {
        Response response;
        std::string line;
        if (ec) {
            response = {kUsage, "request too long or connection closed before a full line\n"};
        } else {
            std::istream in(&buffer_);
            std::getline(in, line);
            Request request;
            response = parse_request(line, &request) ? handler_(request)
                                                     : Response{kUsage, "malformed request: \"" + line + "\"\n"};
        }
        answer_ = std::to_string(response.code) + "\n" + response.body;
        auto self = shared_from_this();
        boost::asio::async_write(socket_, boost::asio::buffer(answer_),
                                 [self](const boost::system::error_code&, std::size_t) {
                                     boost::system::error_code ignored;
                                     self->socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
                                 });
    }

    stream_protocol::socket socket_;
    const Server::Handler& handler_;
    boost::asio::streambuf buffer_;
    std::string answer_;
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

Server::Server(boost::asio::io_context& io, std::string path, Handler handler)
    : io_(io), path_(std::move(path)), handler_(std::move(handler)), acceptor_(io)
{
}

Server::~Server()
{
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (!path_.empty())
        unlink(path_.c_str());
}

Status Server::start()
{
    std::error_code fs_error;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), fs_error);
    // A socket file left by a daemon that died is stale: nobody can be listening on it, since a
    // live fulcrumd holds the lock this one took before getting here.
    unlink(path_.c_str());
    boost::system::error_code ec;
    acceptor_.open(stream_protocol(), ec);
    if (!ec)
        acceptor_.bind(stream_protocol::endpoint(path_), ec);
    if (!ec && chmod(path_.c_str(), 0600) != 0)
        ec.assign(errno, boost::system::system_category());
    if (!ec)
        acceptor_.listen(16, ec);
    if (ec)
        return Status::failure("control: cannot listen on " + path_ + ": " + ec.message());
    accept();
    return {};
}

void Server::accept()
{
    acceptor_.async_accept([this](const boost::system::error_code& ec, stream_protocol::socket socket) {
        if (ec == boost::asio::error::operation_aborted)
            return;
        if (!ec)
            std::make_shared<Session>(std::move(socket), handler_)->start();
        else
            LOG_WARN("control: accept failed on %s: %s", path_.c_str(), ec.message().c_str());
        accept();
    });
}

}  // namespace fulcrum::control
