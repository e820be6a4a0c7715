// Small text helpers shared by the control commands (commands.cpp, top_command.cpp, ...), so that
// every view names a protocol, a backend state and a service endpoint the same way.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "plan/desired.h"

namespace fulcrum::daemon {

// printf into a std::string; command lines are short, longer output is cut at 511 bytes.
std::string fmt(const char* format, auto... args)
{
    char buf[512];
    std::snprintf(buf, sizeof buf, format, args...);
    return buf;
}

inline const char* protocol_name(std::uint8_t proto) { return proto == IPPROTO_TCP ? "tcp" : "udp"; }

inline const char* backend_state_name(plan::BackendUse use)
{
    return use == plan::BackendUse::active ? "active" : use == plan::BackendUse::draining ? "draining" : "down";
}

// "192.0.2.1:80/tcp", "[2001:db8::1]:443/tcp": where a service listens, as operators write it.
inline std::string service_endpoint(const plan::ServicePlan& s)
{
    const bool v6 = s.key.family == FULCRUM_AF_INET6;
    return (v6 ? "[" : "") + s.vip + (v6 ? "]:" : ":") + std::to_string(ntohs(s.key.port)) + "/" +
           protocol_name(s.key.proto);
}

}  // namespace fulcrum::daemon
