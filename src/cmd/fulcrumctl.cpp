// fulcrumctl: talks to a running fulcrumd over its control socket (src/control/protocol.h).
// It validates arguments itself, sends one request line, and prints the body the daemon already
// rendered (text or JSON), exiting with the code the daemon chose. All the knowledge of services
// and backends lives in the daemon; this program only knows the protocol and how to fail helpfully.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "cmd/capture_client.h"
#include "control/protocol.h"
#include "control/quic_dcid.h"
#include "daemon/daemon.h"

namespace fulcrum::ctl {
namespace {

using control::ExitCode;

// Generous: `reload` re-reads the file and reprograms the kernel before it answers.
constexpr int kDefaultTimeoutSeconds = 30;

struct Command {
    std::string_view name;
    std::vector<std::string_view> args;  // placeholders, for the usage line and messages
    size_t optional_args;                // how many trailing placeholders may be left out
};

const std::vector<Command> kCommands = {
    {"status", {}, 0},
    {"reload", {}, 0},
    {"drain", {"SERVICE", "BACKEND"}, 0},
    {"undrain", {"SERVICE", "BACKEND"}, 0},
    {"lookup", {"SERVICE", "SRC_IP", "SRC_PORT", "DST_PORT"}, 1},
    {"stats", {}, 0},
    {"diff", {"FILE"}, 0},
    {"top", {}, 0},
    {"capture", {}, 0},  // its options: -w FILE [-c N] [--service NAME | --vip ADDRESS]
};

const char kHelp[] =
    "\n"
    "Asks the running fulcrumd, over its control socket, about or to change its state.\n"
    "\n"
    "  status    services, backends (state, weight, health) and packet rates\n"
    "  reload    re-read the configuration file; prints the errors and fails if it is bad\n"
    "  drain     set a backend to drain: no new flows, existing flows stay\n"
    "  undrain   make a drained backend active again\n"
    "  lookup    which backend a flow from SRC_IP:SRC_PORT goes to (DST_PORT: for port-0 services),\n"
    "            and its tunnel (ipip, or gue with the UDP ports); with --quic-dcid, for a QUIC short\n"
    "            header carrying that destination connection ID (services with quic)\n"
    "  stats     counters\n"
    "  diff      what a reload of FILE would change: services and backends added, removed or changed,\n"
    "            the share of flow hashes that would go to another backend, and the recorded flows\n"
    "            that would lose theirs; changes nothing (FILE is read by fulcrumd)\n"
    "  top       a live view: services and backends with packets/s, bits/s, new flows/s, state and\n"
    "            health, redrawn every --interval seconds (default 1) until Ctrl-C or --iterations N\n"
    "  capture   write the packets the balancer handles to a pcapng file (-w FILE, \"-\" for stdout):\n"
    "            each as received and, if sent, as sent (encapsulated), with its verdict and reason in\n"
    "            the packet comment; until -c N packets or Ctrl-C; --service NAME or --vip ADDRESS\n"
    "            keep only that service's or that address's packets\n"
    "\n"
    "  -s, --socket PATH   control socket (default $FULCRUM_SOCKET, else /run/fulcrum/fulcrumd.sock)\n"
    "  --json              answer as JSON (may appear anywhere)\n"
    "  --timeout SECONDS   how long to wait for the daemon's answer, busy retries included (default 30)\n"
    "  --iterations N      top: stop after N frames (default: until interrupted)\n"
    "  --interval SECONDS  top: seconds between frames, 1..3600 (default 1)\n"
    "  -w FILE             capture: the pcapng file to write (\"-\": standard output)\n"
    "  -c N                capture: stop after N packets (default: until interrupted)\n"
    "  --service NAME      capture: only packets of this service\n"
    "  --vip ADDRESS       capture: only packets to this address (any port, served or not)\n"
    "  --quic-dcid HEX     lookup: the destination connection ID of a QUIC short header, in hex\n"
    "  --version           print the version\n"
    "  -h, --help          this text\n"
    "Exit status: 0 done, 1 the command failed, 2 usage error, 3 no daemon at the socket,\n"
    "4 the daemon's answer was not understood, 5 the daemon stayed busy (too many control\n"
    "sessions open) until the timeout.\n";

struct Options {
    std::string socket_path;
    bool json = false;
    int timeout_seconds = kDefaultTimeoutSeconds;
    unsigned iterations = 0;  // top: 0 = until interrupted
    unsigned interval_seconds = 1;
    bool top_option = false;  // --iterations or --interval given (only top takes them)
    CaptureOptions capture;
    std::optional<std::string> quic_dcid;  // lookup --quic-dcid: the hex as given
    std::vector<std::string> words;  // the command and its arguments
};

std::string usage_line(const Command& command)
{
    std::string line = "usage: fulcrumctl [-s SOCKET] " + std::string(command.name);
    if (command.name == "capture") return line + " [--service NAME | --vip ADDRESS] [-c N] -w FILE\n";
    for (size_t i = 0; i < command.args.size(); i++) {
        bool optional = i >= command.args.size() - command.optional_args;
        line += optional ? " [" + std::string(command.args[i]) + "]" : " " + std::string(command.args[i]);
    }
    if (command.name == "lookup") line += " [--quic-dcid HEX]";
    return line + " [--json]\n";
}

std::string synopsis()
{
    std::string text;
    for (const Command& command : kCommands) {
        std::string line = usage_line(command);
        text += text.empty() ? line : "       " + line.substr(7);  // align under "usage: "
    }
    return text;
}

// Every usage error says what was wrong and how the command is called: exit 2.
int usage_error(const std::string& message, const Command* command = nullptr)
{
    std::string how = command ? usage_line(*command) : synopsis();
    std::fprintf(stderr, "fulcrumctl: %s\n%s(fulcrumctl --help for more)\n", message.c_str(), how.c_str());
    return control::kUsage;
}

// Connection and protocol failures carry no usage text: the arguments were fine.
int fail(int code, const std::string& message)
{
    std::fprintf(stderr, "fulcrumctl: %s\n", message.c_str());
    return code;
}

const Command* find_command(std::string_view name)
{
    for (const Command& command : kCommands)
        if (command.name == name) return &command;
    return nullptr;
}

std::optional<unsigned> parse_number(std::string_view text)
{
    unsigned value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

bool is_ip_address(const std::string& text)
{
    unsigned char buffer[sizeof(in6_addr)];
    return inet_pton(AF_INET, text.c_str(), buffer) == 1 || inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// The request is one space-separated line, so an argument must be a single non-empty word.
bool is_one_word(const std::string& text)
{
    if (text.empty()) return false;
    for (unsigned char c : text)
        if (c <= ' ' || c == 0x7f) return false;
    return true;
}

// Checks one argument against its placeholder; returns the problem, or "" if it is fine.
std::string check_argument(std::string_view placeholder, const std::string& value)
{
    std::string quoted = std::string(placeholder) + " \"" + value + "\"";
    if (placeholder == "SRC_IP" && !is_ip_address(value)) return quoted + " is not an IPv4 or IPv6 address";
    if (placeholder == "SRC_PORT" || placeholder == "DST_PORT") {
        std::optional<unsigned> port = parse_number(value);
        if (!port || *port < 1 || *port > 65535) return quoted + " is not a port (1..65535)";
    }
    if (!is_one_word(value)) return quoted + " must be one word (no spaces or control characters)";
    return "";
}

// diff FILE: fulcrumd reads the file from its own working directory (/), so a relative path is
// made absolute here. The file must exist; fulcrumd reports what is wrong inside it.
std::optional<int> absolute_file_argument(std::vector<std::string>& words)
{
    if (words.size() != 2 || words[0] != "diff") return std::nullopt;
    char* resolved = realpath(words[1].c_str(), nullptr);
    if (!resolved)
        return usage_error("diff: FILE \"" + words[1] + "\": " + std::strerror(errno), find_command("diff"));
    words[1] = resolved;
    std::free(resolved);
    if (!is_one_word(words[1]))
        return usage_error("diff: FILE \"" + words[1] + "\" must be one word (no spaces or control characters)",
                           find_command("diff"));
    return std::nullopt;
}

// Splits argv into options and words; returns an exit code if the program should stop here.
std::optional<int> parse_options(int argc, char** argv, Options& options)
{
    const char* from_env = std::getenv("FULCRUM_SOCKET");
    options.socket_path = from_env && *from_env ? from_env : control::kDefaultSocket;
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        auto value = [&](const char* name) -> std::optional<std::string> {
            if (i + 1 < argc) return argv[++i];
            usage_error(std::string(name) + " needs a value");
            return std::nullopt;
        };
        if (arg == "--json") {
            options.json = true;
        } else if (arg == "-s" || arg == "--socket") {
            std::optional<std::string> path = value(argv[i]);
            if (!path) return control::kUsage;
            options.socket_path = *path;
        } else if (arg.starts_with("--socket=")) {
            options.socket_path = arg.substr(9);
        } else if (arg == "--timeout") {
            std::optional<std::string> text = value("--timeout");
            if (!text) return control::kUsage;
            std::optional<unsigned> seconds = parse_number(*text);
            if (!seconds || *seconds < 1 || *seconds > 3600)
                return usage_error("--timeout \"" + *text + "\" is not a number of seconds (1..3600)");
            options.timeout_seconds = static_cast<int>(*seconds);
        } else if (arg == "--iterations" || arg == "--interval") {
            std::optional<std::string> text = value(argv[i]);
            if (!text) return control::kUsage;
            std::optional<unsigned> n = parse_number(*text);
            const unsigned most = arg == "--iterations" ? 1000000 : 3600;
            if (!n || *n < 1 || *n > most)
                return usage_error(arg + " \"" + *text + "\" is not a number 1.." + std::to_string(most));
            (arg == "--iterations" ? options.iterations : options.interval_seconds) = *n;
            options.top_option = true;
        } else if (arg == "-w" || arg == "--service" || arg == "--vip") {
            std::optional<std::string> text = value(argv[i]);
            if (!text) return control::kUsage;
            (arg == "-w" ? options.capture.file : arg == "--service" ? options.capture.service : options.capture.vip) =
                *text;
            options.capture.any = true;
        } else if (arg == "-c") {
            std::optional<std::string> text = value("-c");
            if (!text) return control::kUsage;
            std::optional<unsigned> n = parse_number(*text);
            if (!n || *n < 1 || *n > 100000000)
                return usage_error("-c \"" + *text + "\" is not a number of packets 1..100000000");
            options.capture.count = *n;
            options.capture.any = true;
        } else if (arg == "--quic-dcid") {
            std::optional<std::string> text = value("--quic-dcid");
            if (!text) return control::kUsage;
            if (!control::parse_quic_dcid(*text))
                return usage_error(control::quic_dcid_problem(*text), find_command("lookup"));
            options.quic_dcid = *text;
        } else if (arg == "-h" || arg == "--help") {
            std::printf("%s%s", synopsis().c_str(), kHelp);
            return control::kOk;
        } else if (arg == "--version") {
            std::printf("fulcrumctl %s\n", daemon::kVersion);
            return control::kOk;
        } else if (arg.size() > 1 && arg[0] == '-') {
            return usage_error("unknown option \"" + arg + "\"");
        } else {
            options.words.push_back(arg);
        }
    }
    if (options.socket_path.empty()) return usage_error("the socket path is empty");
    return std::nullopt;
}

// Checks the command and its arguments; returns an exit code if they are wrong.
std::optional<int> validate_command(const std::vector<std::string>& words)
{
    if (words.empty()) return usage_error("no command given");
    const Command* command = find_command(words[0]);
    if (!command) return usage_error("unknown command \"" + words[0] + "\"");

    size_t given = words.size() - 1, most = command->args.size(), least = most - command->optional_args;
    if (given < least || given > most) {
        std::string expected =
            least == most ? std::to_string(most) : std::to_string(least) + " or " + std::to_string(most);
        return usage_error(std::string(command->name) + ": expected " + expected + " argument" +
                               (most == 1 ? "" : "s") + ", got " + std::to_string(given),
                           command);
    }
    for (size_t i = 0; i < given; i++) {
        std::string problem = check_argument(command->args[i], words[i + 1]);
        if (!problem.empty()) return usage_error(std::string(command->name) + ": " + problem, command);
    }
    return std::nullopt;
}

std::string request_line(const Options& options)
{
    std::string line = options.json ? "json" : "text";
    for (const std::string& word : options.words) line += " " + word;
    return line + "\n";
}

// Why connect() failed, in the words a user needs to fix it.
std::string connect_problem(const std::string& path, int error, int timeout_seconds)
{
    struct stat st {};
    // connect() to a file that is not a socket reports ECONNREFUSED: tell the two apart.
    if (stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
        return "no fulcrumd at " + path + ": not a socket (wrong path? see -s SOCKET)";
    switch (error) {
        case ENOENT:
        case ENOTDIR:
            return "no fulcrumd at " + path +
                   " (socket not found): is fulcrumd running? (systemctl status fulcrum)";
        case ECONNREFUSED:
            return "no fulcrumd at " + path +
                   ": socket exists but nobody listens (stale socket: fulcrumd not running)";
        case EACCES:
        case EPERM:
            return "cannot reach fulcrumd at " + path + ": permission denied (run as root)";
        case EAGAIN:  // a unix socket's connect() times out this way when the backlog stays full
            return "fulcrumd at " + path + " did not accept the connection in " +
                   std::to_string(timeout_seconds) + " s (is it stuck?)";
        default:
            return "cannot reach fulcrumd at " + path + ": " + std::strerror(error);
    }
}

// Connects to the daemon; returns the socket, or -1 after printing why (exit 3).
int connect_daemon(const Options& options)
{
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (options.socket_path.size() >= sizeof address.sun_path) {
        fail(control::kUnreachable, "socket path too long (at most " +
                                        std::to_string(sizeof address.sun_path - 1) +
                                        " bytes): " + options.socket_path);
        return -1;
    }
    std::memcpy(address.sun_path, options.socket_path.c_str(), options.socket_path.size());

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail(control::kUnreachable, std::string("cannot create a socket: ") + std::strerror(errno));
        return -1;
    }
    // One timeout for connecting, sending and each read, so a hung daemon cannot hang scripts.
    timeval timeout{.tv_sec = options.timeout_seconds, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        int error = errno;
        close(fd);
        fail(control::kUnreachable, connect_problem(options.socket_path, error, options.timeout_seconds));
        return -1;
    }
    return fd;
}

bool timed_out(int error)
{
    return error == EAGAIN || error == EWOULDBLOCK;
}

std::string no_answer(const Options& options)
{
    return "fulcrumd at " + options.socket_path + " did not answer in " +
           std::to_string(options.timeout_seconds) + " s";
}

// Sends the request and reads the whole answer (the daemon closes the connection when done).
// Returns the answer, or an exit code after printing why.
std::variant<std::string, int> exchange(int fd, const Options& options, const std::string& request)
{
    for (size_t sent = 0; sent < request.size();) {
        // MSG_NOSIGNAL: a daemon that hangs up early is an error to report, not a SIGPIPE death.
        ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && timed_out(errno)) return fail(control::kUnreachable, no_answer(options));
        // A busy daemon answers and closes without reading: its answer may be waiting.
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) break;
        if (n < 0)
            return fail(control::kProtocol,
                        std::string("cannot send the request to fulcrumd: ") + std::strerror(errno));
        sent += static_cast<size_t>(n);
    }
    std::string answer;
    char buffer[65536];
    for (;;) {
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n == 0) return answer;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && timed_out(errno)) return fail(control::kUnreachable, no_answer(options));
        // The daemon closed with our request unread (the busy answer): what came first counts.
        if (n < 0 && errno == ECONNRESET && !answer.empty()) return answer;
        if (n < 0)
            return fail(control::kProtocol,
                        std::string("cannot read fulcrumd's answer: ") + std::strerror(errno));
        answer.append(buffer, static_cast<size_t>(n));
    }
}

// The daemon's "too many sessions" answer (protocol.h): worth asking again shortly.
bool busy(const std::string& answer)
{
    return answer.starts_with(std::to_string(control::kBusy) + "\n");
}

// Prints the body (stdout on success, stderr otherwise) and returns the daemon's exit code.
int deliver(const std::string& answer)
{
    if (answer.empty()) return fail(control::kProtocol, "fulcrumd closed the connection without answering");
    size_t newline = answer.find('\n');
    std::optional<unsigned> code = newline == std::string::npos
                                       ? std::nullopt
                                       : parse_number(std::string_view(answer).substr(0, newline));
    if (!code || *code > 255) {
        std::string first = answer.substr(0, std::min<size_t>(std::min(newline, answer.size()), 80));
        return fail(control::kProtocol,
                    "malformed answer from fulcrumd (expected an exit code on the first "
                    "line, got \"" +
                        first + "\"); is it the same version as fulcrumctl?");
    }
    std::string body = answer.substr(newline + 1);
    // Bodies are printed as the daemon rendered them; only a missing final newline is added,
    // so a JSON object does not run into the shell prompt.
    if (!body.empty() && body.back() != '\n') body += '\n';
    FILE* out = *code == control::kOk ? stdout : stderr;
    std::fwrite(body.data(), 1, body.size(), out);
    if (std::fflush(out) != 0 && *code == control::kOk)
        return fail(control::kFailed, std::string("cannot write the answer: ") + std::strerror(errno));
    return static_cast<int>(*code);
}

// One request's raw answer, or an exit code if there was none. Sessions are short (the daemon
// closes idle ones within seconds): a busy daemon is asked again, every 100 ms, until the timeout.
std::variant<std::string, int> answer_of(const Options& options, const std::string& request)
{
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(options.timeout_seconds);
    for (;;) {
        int fd = connect_daemon(options);
        if (fd < 0) return control::kUnreachable;
        std::variant<std::string, int> answer = exchange(fd, options, request);
        close(fd);
        if (std::holds_alternative<std::string>(answer) && busy(std::get<std::string>(answer)) &&
            std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        return answer;
    }
}

// One request, one answer delivered.
int ask(const Options& options, const std::string& request, const char* before_body = "")
{
    std::variant<std::string, int> answer = answer_of(options, request);
    if (const int* code = std::get_if<int>(&answer)) return *code;
    std::fputs(before_body, stdout);
    return deliver(std::get<std::string>(answer));
}

// One request, its (exit code, body) undelivered: capture reads the bodies itself.
std::variant<std::pair<int, std::string>, int> query(const Options& options, const std::string& request)
{
    std::variant<std::string, int> answer = answer_of(options, request);
    if (const int* code = std::get_if<int>(&answer)) return *code;
    const std::string& text = std::get<std::string>(answer);
    size_t newline = text.find('\n');
    std::optional<unsigned> code =
        newline == std::string::npos ? std::nullopt : parse_number(std::string_view(text).substr(0, newline));
    if (!code || *code > 255)
        return fail(control::kProtocol, "malformed answer from fulcrumd (expected an exit code on the first line)");
    return std::pair<int, std::string>(static_cast<int>(*code), text.substr(newline + 1));
}

// top: a frame every interval, each a fresh request (the daemon's rates are per second). On a
// terminal each frame replaces the last; otherwise (a pipe, a script) frames follow each other,
// text frames separated by a blank line, JSON one object per line.
int top(const Options& options, const std::string& request)
{
    const bool terminal = isatty(STDOUT_FILENO) && !options.json;
    for (unsigned frame = 1;; frame++) {
        const char* before = terminal ? "\033[H\033[2J" : frame > 1 && !options.json ? "\n" : "";
        if (int code = ask(options, request, before); code != control::kOk) return code;
        if (options.iterations && frame >= options.iterations) return control::kOk;
        std::this_thread::sleep_for(std::chrono::seconds(options.interval_seconds));
    }
}

int run(int argc, char** argv)
{
    Options options;
    if (std::optional<int> done = parse_options(argc, argv, options)) return *done;
    if (std::optional<int> bad = validate_command(options.words)) return *bad;
    if (std::optional<int> bad = absolute_file_argument(options.words)) return *bad;
    const bool is_top = options.words[0] == "top";
    if (options.top_option && !is_top) return usage_error("--iterations and --interval go with top");
    if (options.words[0] == "capture") {
        if (options.json) return usage_error("capture writes a pcapng file; --json does not apply", find_command("capture"));
        if (std::string problem = check_capture_options(options.capture); !problem.empty())
            return usage_error(problem, find_command("capture"));
        return run_capture(options.capture, [&](const std::string& request) { return query(options, request); });
    }
    if (options.capture.any) return usage_error("-w, -c, --service and --vip go with capture");
    if (options.quic_dcid) {
        if (options.words[0] != "lookup") return usage_error("--quic-dcid goes with lookup");
        options.words.push_back(std::string(control::kQuicDcidWord) + *options.quic_dcid);
    }

    std::string request = request_line(options);
    if (request.size() > control::kMaxRequestBytes)
        return usage_error("the request is longer than " + std::to_string(control::kMaxRequestBytes) +
                           " bytes");
    return is_top ? top(options, request) : ask(options, request);
}

}  // namespace
}  // namespace fulcrum::ctl

int main(int argc, char** argv)
{
    return fulcrum::ctl::run(argc, argv);
}
