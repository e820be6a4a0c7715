// fulcrumctl capture: asks fulcrumd for the balancer's packets (daemon/capture_session.h has the
// requests) and writes them to a pcapng file (control/pcapng.h), until -c N packets are written
// or SIGINT/SIGTERM; then stops the capture. README "Packet capture" documents the file.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <variant>

namespace fulcrum::ctl {

struct CaptureOptions {
    std::string service;  // --service NAME
    std::string vip;      // --vip ADDRESS
    std::string file;     // -w FILE ("-": standard output)
    unsigned count = 0;   // -c N (0: until interrupted)
    bool any = false;     // one of the above was given (only capture takes them)
};

// One request to fulcrumd: its (exit code, body), or fulcrumctl's exit code after printing why.
using Query = std::function<std::variant<std::pair<int, std::string>, int>(const std::string& request)>;

// Checks the options; "" when fine, else the problem (a usage error).
std::string check_capture_options(const CaptureOptions& options);

// Runs the capture; returns fulcrumctl's exit code.
int run_capture(const CaptureOptions& options, const Query& query);

}  // namespace fulcrum::ctl
