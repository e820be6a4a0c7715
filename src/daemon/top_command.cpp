// `fulcrumctl top`: one frame of the live view, services and their backends with per-second
// rates (packets, bits, new flows: the rate sampler's last second), state and health.
// fulcrumctl asks for a frame every second and redraws it; the daemon keeps no view state.
#include <cstdio>
#include <ctime>

#include "control/protocol.h"
#include "daemon/command_text.h"
#include "daemon/daemon.h"
#include "daemon/daemon_impl.h"
#include "util/json.h"

namespace fulcrum::daemon {
namespace {

// 1234567 -> "1.23M": rates in a fixed-width column.
std::string si(double value)
{
    static const char* const kUnits[] = {"", "k", "M", "G", "T"};
    int unit = 0;
    while (value >= 1000 && unit < 4) {
        value /= 1000;
        unit++;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f%s" : "%.2f%s", value, kUnits[unit]);
    return buf;
}

}  // namespace

control::Response Daemon::cmd_top(bool json)
{
    const std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
    std::string text = fmt("fulcrumd %s  generation %llu  %s  (per second, over the last second)\n", kVersion,
                            static_cast<unsigned long long>(generation_), stamp);
    text += fmt("%-40s %-9s %-6s %6s %9s %9s %9s\n", "SERVICE / backend", "STATE", "HEALTH", "WEIGHT", "PKT/S",
                 "BIT/S", "NEW/S");
    JsonWriter j;
    j.begin_object().field("version", kVersion).field("generation", generation_).field("time", stamp);
    j.key("services").begin_array();
    for (const ServiceView& s : status_view().services) {
        std::string name = s.name + " " + s.endpoint;
        std::string healthy = std::to_string(s.healthy) + "/" + std::to_string(s.backends.size()) + " up";
        text += fmt("%-40s %-16s %6s %9s %9s %9s%s\n", name.c_str(), healthy.c_str(), "",
                     si(s.packets_per_second).c_str(), si(s.bits_per_second).c_str(),
                     si(s.new_flows_per_second).c_str(), s.panic ? "  PANIC" : "");
        j.begin_object().field("name", s.name).field("vip", s.vip).field("port", s.port).field("protocol", s.protocol);
        j.field("healthy", s.healthy).field("backends_total", s.backends.size()).field("panic", s.panic);
        j.field("packets_per_second", s.packets_per_second).field("bits_per_second", s.bits_per_second);
        j.field("new_flows_per_second", s.new_flows_per_second).key("backends").begin_array();
        for (const BackendView& b : s.backends) {
            const std::string health_state = !b.up ? "-" : *b.up ? "up" : "down";
            text += fmt("  %-38s %-9s %-6s %6u %9s %9s\n", b.address.c_str(), b.state, health_state.c_str(),
                         b.weight, si(b.packets_per_second).c_str(), si(b.bits_per_second).c_str());
            j.begin_object().field("address", b.address).field("state", b.state);
            j.field("health", health_state).field("weight", b.weight);
            j.field("packets_per_second", b.packets_per_second);
            j.field("bits_per_second", b.bits_per_second).end_object();
        }
        j.end_array().end_object();
    }
    j.end_array().end_object();
    return {control::kOk, json ? j.str() + "\n" : text};
}

}  // namespace fulcrum::daemon
