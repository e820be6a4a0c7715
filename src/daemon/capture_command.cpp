// The `capture` control command: parses the request and resolves the filter (a service name to
// its id, a VIP to its key form); the capture itself is CaptureSession's (capture_session.h).
#include <arpa/inet.h>

#include <cstring>

#include "control/protocol.h"
#include "daemon/command_text.h"
#include "daemon/daemon.h"
#include "daemon/daemon_impl.h"

namespace fulcrum::daemon {
std::string Daemon::service_name_of(std::uint32_t id) const
{
    for (const auto& [name, svc] : reconciler_->services())
        if (svc.id == id)
            return name;
    return "";
}

void Daemon::cmd_capture(const std::vector<std::string>& args, control::Server::Reply reply)
{
    const std::string verb = args.empty() ? "" : args[0];
    if ((verb == "read" || verb == "stop") && args.size() == 2) {
        if (verb == "read")
            return capture_->read(args[1], std::move(reply));
        return reply(capture_->stop(args[1]));
    }
    if (verb != "start" || (args.size() != 1 && args.size() != 3))
        return reply(usage("capture: expected start [service NAME | vip ADDRESS], read ID or stop ID"));
    dataplane::CaptureFilter filter;
    std::string what = "every packet";
    if (args.size() == 3 && args[1] == "service") {
        const plan::AppliedService* svc = applied_service(args[2]);
        if (!svc)
            return reply(failed("capture: no service \"" + args[2] + "\" is applied (fulcrumctl status lists them)"));
        filter.service_id = svc->id;
        what = "service " + args[2];
    } else if (args.size() == 3 && args[1] == "vip") {
        unsigned char bytes[16] = {};
        if (inet_pton(AF_INET, args[2].c_str(), bytes) == 1)
            filter.vip_family = FULCRUM_AF_INET;
        else if (inet_pton(AF_INET6, args[2].c_str(), bytes) == 1)
            filter.vip_family = FULCRUM_AF_INET6;
        else
            return reply(usage("capture: vip \"" + args[2] + "\" is not an IPv4 or IPv6 address"));
        std::memcpy(&filter.vip, bytes, sizeof bytes);
        bool known = false;
        for (const auto& [name, svc] : reconciler_->services())
            known |= svc.key.family == filter.vip_family && !std::memcmp(&svc.key.vip, &filter.vip, sizeof filter.vip);
        if (!known)
            return reply(failed("capture: " + args[2] + " is not the VIP of any applied service"));
        what = "vip " + args[2];
    } else if (args.size() == 3) {
        return reply(usage("capture: filter \"" + args[1] + "\": expected service NAME or vip ADDRESS"));
    }
    reply(capture_->start(filter, what));
}

}  // namespace fulcrum::daemon
