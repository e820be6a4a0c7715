// The control socket's protocol, between fulcrumd and fulcrumctl (and scripts: it is plain text).
//
// A client connects to the unix stream socket (control.socket, mode 0600, root), writes ONE
// request line and reads the response until the daemon closes the connection:
//
//   request:   FORMAT SP COMMAND [SP ARG]... LF      FORMAT is "text" or "json"
//   response:  EXIT-CODE LF BODY                      EXIT-CODE is what fulcrumctl exits with
//
// The daemon renders BODY in the requested format (human text, or one JSON object), so the client
// only prints it. Commands: status | reload | drain SERVICE BACKEND | undrain SERVICE BACKEND |
// lookup SERVICE SRC_IP SRC_PORT [DST_PORT] [quic-dcid=HEX] | stats | diff ABSOLUTE_FILE. Arguments
// contain no spaces; lookup's option is a NAME=VALUE word after its positional arguments
// (control/quic_dcid.h).
//
// Limits (server.h): the request line must arrive within kRequestTimeout of connecting, and the
// client must take some of the answer at least every kAnswerTimeout (the command's own time
// counts toward neither: a reload answers once its apply is done; nor does the daemon's busy
// time while it sends), else the daemon closes the connection without a word; at
// most kMaxSessions connections are served at once, and one more is answered at once with
// "5 LF fulcrumd: busy ..." (kBusy) and closed: fulcrumctl then tries again until its --timeout.
#pragma once

#include <chrono>
#include <cstddef>

namespace fulcrum::control {

// Exit codes shared by fulcrumctl and the daemon's responses; scripts rely on them.
enum ExitCode {
    kOk = 0,
    kFailed = 1,        // the command ran and failed (bad config on reload, unknown service, ...)
    kUsage = 2,         // bad arguments (fulcrumctl or the daemon found them malformed)
    kUnreachable = 3,   // no daemon at the socket (not running, wrong path, permission)
    kProtocol = 4,      // the daemon's answer was not understood
    kBusy = 5,          // the daemon had kMaxSessions connections open (fulcrumctl retries first)
};

inline constexpr const char* kDefaultSocket = "/run/fulcrum/fulcrumd.sock";
inline constexpr unsigned kMaxRequestBytes = 4096;
inline constexpr std::chrono::milliseconds kRequestTimeout{3000};  // connect to the request's LF
inline constexpr std::chrono::milliseconds kAnswerTimeout{5000};   // the client taking nothing of it
inline constexpr std::size_t kMaxSessions = 64;

}  // namespace fulcrum::control
