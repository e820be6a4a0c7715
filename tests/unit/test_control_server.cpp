// control::Server's answer deadline: it is the client's (no byte taken for answer_timeout), never
// the daemon's own busy time. A real unix socket and a real client thread.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "control/server.h"

using namespace fulcrum;
using namespace std::chrono_literals;

namespace {

int connect_to(const std::string& path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
}

// Sends one request and reads until the server closes; `pause` is called once the first bytes
// of the answer have arrived.
std::string ask(const std::string& path, const std::function<void()>& pause)
{
    int fd = connect_to(path);
    const std::string request = "text status\n";
    REQUIRE(write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string answer;
    char buffer[65536];
    bool paused = false;
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n <= 0)
            break;
        answer.append(buffer, static_cast<std::size_t>(n));
        if (!paused) {
            paused = true;
            pause();
        }
    }
    close(fd);
    return answer;
}

}  // namespace

TEST_CASE("control: a long answer is sent whole while the daemon's loop is busy past the answer deadline",
          "[control]")
{
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("fulcrum-test-control-" + std::to_string(getpid()) + ".sock")).string();
    boost::asio::io_context io;
    control::Limits limits;
    limits.answer_timeout = 200ms;
    const std::string body(16 << 20, 'x');  // far more than a socket buffer holds
    control::Server server(io, path, [&](const control::Request&, control::Server::Reply reply) {
        reply({control::kOk, body});
    }, limits);
    REQUIRE(server.start().ok());
    std::thread loop([&] { io.run(); });

    // The client reads all the time; the loop stops for 5 answer deadlines right after the
    // answer began (an apply would), with the socket buffer full.
    const std::string answer = ask(path, [&] {
        boost::asio::post(io, [] { std::this_thread::sleep_for(1s); });
    });
    CHECK(answer.size() == 2 + body.size());
    CHECK(answer.starts_with("0\n"));
    CHECK(server.stats().timed_out == 0);

    // A client that stops reading is still closed at its deadline, with the answer cut short.
    const std::string cut = ask(path, [] { std::this_thread::sleep_for(1500ms); });
    CHECK(cut.size() < 2 + body.size());
    CHECK(server.stats().timed_out == 1);

    io.stop();
    loop.join();
}
