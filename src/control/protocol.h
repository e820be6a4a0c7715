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
// lookup SERVICE SRC_IP SRC_PORT [DST_PORT] | stats. Arguments contain no spaces.
#pragma once

namespace fulcrum::control {

// Exit codes shared by fulcrumctl and the daemon's responses; scripts rely on them.
enum ExitCode {
    kOk = 0,
    kFailed = 1,        // the command ran and failed (bad config on reload, unknown service, ...)
    kUsage = 2,         // bad arguments (fulcrumctl or the daemon found them malformed)
    kUnreachable = 3,   // no daemon at the socket (not running, wrong path, permission)
    kProtocol = 4,      // the daemon's answer was not understood
};

inline constexpr const char* kDefaultSocket = "/run/fulcrum/fulcrumd.sock";
inline constexpr unsigned kMaxRequestBytes = 4096;

}  // namespace fulcrum::control
