// fulcrumctl capture; see capture_client.h.
#include "cmd/capture_client.h"

#include <arpa/inet.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <vector>

#include "control/pcapng.h"
#include "control/protocol.h"

namespace fulcrum::ctl {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_signal(int) { g_interrupted = 1; }

// A name or address goes into one request word.
bool one_word(const std::string& text)
{
    if (text.empty()) return false;
    for (unsigned char c : text)
        if (c <= ' ' || c == 0x7f) return false;
    return true;
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

struct Record {
    std::uint64_t time_ns = 0;
    std::uint32_t wire_length = 0;
    std::vector<std::uint8_t> data;
    std::string comment;
};

// "TIME_NS STAGE VERDICT REASON SERVICE INTERFACE WIRE_LEN [HEX]" (capture_session.h).
bool parse_record(const std::string& line, Record* out)
{
    std::istringstream in(line);
    std::string stage, verdict, reason, service, interface, hex;
    if (!(in >> out->time_ns >> stage >> verdict >> reason >> service >> interface >> out->wire_length))
        return false;
    in >> hex;
    if (hex.size() % 2) return false;
    out->data.clear();
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out->data.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
    }
    if (out->data.size() > out->wire_length) return false;
    out->comment = "stage=" + stage + " verdict=" + verdict + " reason=" + reason + " service=" + service +
                   " interface=" + interface +
                   "\n";  // Scapy 2.5's pcapng reader keeps a comment only up to a newline
    return true;
}

int protocol_error(const std::string& what)
{
    std::fprintf(stderr, "fulcrumctl: capture: malformed answer from fulcrumd (%s); is it the same version?\n",
                 what.c_str());
    return control::kProtocol;
}

bool write_all(std::FILE* out, const std::string& bytes)
{
    return std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
}

// Sends one request; on a failure answer prints its body and gives the code in *code.
std::optional<std::string> ask(const Query& query, const std::string& request, int* code)
{
    auto answer = query(request);
    if (const int* failed = std::get_if<int>(&answer)) {
        *code = *failed;
        return std::nullopt;
    }
    auto& [status, body] = std::get<std::pair<int, std::string>>(answer);
    if (status != control::kOk) {
        std::fputs(("fulcrumctl: " + body).c_str(), stderr);
        *code = status;
        return std::nullopt;
    }
    return body;
}

}  // namespace

std::string check_capture_options(const CaptureOptions& o)
{
    unsigned char buffer[16];
    if (o.file.empty()) return "capture: -w FILE is required (\"-\" writes to standard output)";
    if (!o.service.empty() && !o.vip.empty()) return "capture: --service and --vip exclude each other";
    if (!o.service.empty() && !one_word(o.service))
        return "capture: --service \"" + o.service + "\" must be one word (no spaces or control characters)";
    if (!o.vip.empty() && inet_pton(AF_INET, o.vip.c_str(), buffer) != 1 &&
        inet_pton(AF_INET6, o.vip.c_str(), buffer) != 1)
        return "capture: --vip \"" + o.vip + "\" is not an IPv4 or IPv6 address";
    return "";
}

int run_capture(const CaptureOptions& options, const Query& query)
{
    const bool to_stdout = options.file == "-";
    std::FILE* out = to_stdout ? stdout : std::fopen(options.file.c_str(), "wb");
    if (!out) {
        std::fprintf(stderr, "fulcrumctl: capture: cannot write %s: %s\n", options.file.c_str(), std::strerror(errno));
        return control::kFailed;
    }
    auto close_out = [&] { return to_stdout ? std::fflush(out) : std::fclose(out); };

    std::string start = "text capture start";
    if (!options.service.empty()) start += " service " + options.service;
    if (!options.vip.empty()) start += " vip " + options.vip;
    int code = control::kOk;
    std::optional<std::string> started = ask(query, start + "\n", &code);
    if (!started) {
        close_out();
        if (!to_stdout) std::remove(options.file.c_str());  // nothing captured: leave no empty file
        return code;
    }
    std::istringstream head(*started);
    std::string word, id;
    unsigned snap = 0;
    if (!(head >> word >> id) || word != "capture" || !(head >> word >> snap) || word != "snap") {
        close_out();
        return protocol_error("start: \"" + started->substr(0, 60) + "\"");
    }

    // From here the capture runs in the kernel: Ctrl-C and SIGTERM end the loop, which stops it.
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);

    bool ok = write_all(out, pcapng::section_header("fulcrumctl capture")) &&
              write_all(out, pcapng::interface_description(pcapng::kLinkEthernet, snap, "fulcrum"));
    unsigned written = 0;
    std::uint64_t lost = 0;
    while (ok && !g_interrupted && (!options.count || written < options.count)) {
        std::optional<std::string> body = ask(query, "text capture read " + id + "\n", &code);
        if (!body) break;
        std::istringstream lines(*body);
        std::string line;
        std::uint64_t records = 0, now_lost = 0;
        if (!std::getline(lines, line) || std::sscanf(line.c_str(), "records %lu lost %lu", &records, &now_lost) != 2) {
            code = protocol_error("read: \"" + line.substr(0, 60) + "\"");
            break;
        }
        if (now_lost > lost)
            std::fprintf(stderr, "fulcrumctl: capture: %lu records lost so far (the ring or fulcrumd's buffer was full)\n",
                         now_lost);
        lost = now_lost;
        Record record;
        while (ok && std::getline(lines, line) && (!options.count || written < options.count)) {
            if (!parse_record(line, &record)) {
                code = protocol_error("record \"" + line.substr(0, 60) + "\"");
                ok = false;
                break;
            }
            ok = write_all(out, pcapng::enhanced_packet(record.time_ns, record.wire_length, record.data, record.comment));
            written++;
        }
        if (code != control::kOk) break;
        if (std::fflush(out) != 0) ok = false;
    }
    if (!ok && code == control::kOk) {
        std::fprintf(stderr, "fulcrumctl: capture: cannot write %s: %s\n", options.file.c_str(), std::strerror(errno));
        code = control::kFailed;
    }
    query("text capture stop " + id + "\n");  // its answer does not matter: over either way
    if (close_out() != 0 && code == control::kOk) {
        std::fprintf(stderr, "fulcrumctl: capture: cannot write %s: %s\n", options.file.c_str(), std::strerror(errno));
        code = control::kFailed;
    }
    std::fprintf(stderr, "fulcrumctl: capture: %u packets written to %s, %lu lost\n", written,
                 to_stdout ? "standard output" : options.file.c_str(), lost);
    return code;
}

}  // namespace fulcrum::ctl
