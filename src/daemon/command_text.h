// Small text helpers shared by the control commands (commands.cpp, top_command.cpp, ...), so that
// every view names a protocol, a backend state and a service endpoint the same way.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "control/protocol.h"
#include "control/server.h"
#include "plan/desired.h"

namespace fulcrum::daemon {

// printf into a std::string; command lines are short, longer output is cut at 511 bytes.
std::string fmt(const char* format, auto... args)
{
    char buf[512];
    std::snprintf(buf, sizeof buf, format, args...);
    return buf;
}

// The answers of a command that could not do what was asked: a usage error (exit 2) or a failure
// (exit 1), each one line.
inline control::Response usage(const std::string& text) { return {control::kUsage, text + "\n"}; }
inline control::Response failed(const std::string& text) { return {control::kFailed, text + "\n"}; }

// Canonical text of an address written by an operator, or "" if it is not one.
inline std::string canonical(const std::string& text, int* family = nullptr)
{
    unsigned char bytes[16];
    char out[INET6_ADDRSTRLEN];
    for (int af : {AF_INET, AF_INET6})
        if (inet_pton(af, text.c_str(), bytes) == 1 && inet_ntop(af, bytes, out, sizeof out)) {
            if (family)
                *family = af;
            return out;
        }
    return "";
}

inline const plan::ServicePlan* find_service(const plan::Desired& d, const std::string& name)
{
    for (const auto& s : d.services)
        if (s.name == name)
            return &s;
    return nullptr;
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
