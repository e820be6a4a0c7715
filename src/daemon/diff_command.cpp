// `fulcrumctl diff FILE`: what a reload of FILE would change against the running state, with
// nothing changed. The figures come from the plan a reload would execute (Reconciler::preview)
// and, for recorded flows, from one pass over the flow tables.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <climits>
#include <cstdlib>
#include <unistd.h>

#include "control/protocol.h"
#include "daemon/daemon_impl.h"
#include "plan/diff.h"
#include "util/json.h"

namespace fulcrum::daemon {
namespace {

std::string percent(double share)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", share * 100);
    return buf;
}

std::string backend_line(const plan::BackendDiff& b)
{
    if (b.before.empty())
        return "backend " + b.address + ": added (" + b.after + ")";
    if (b.after.empty())
        return "backend " + b.address + ": removed (was " + b.before + ")";
    return "backend " + b.address + ": " + b.before + " -> " + b.after;
}

std::string render_text(const std::string& file, std::uint64_t generation, const plan::Diff& diff)
{
    std::string text = "diff of " + file + " against the running state (generation " + std::to_string(generation) +
                       "):\n";
    std::size_t unchanged = 0;
    for (const plan::ServiceDiff& s : diff.services) {
        if (s.change == plan::ServiceDiff::Change::unchanged) {
            unchanged++;
            continue;
        }
        text += "service " + s.name + " (" + s.key + "): " + plan::to_string(s.change) + "\n";
        for (const plan::BackendDiff& b : s.backends)
            text += "  " + backend_line(b) + "\n";
        const bool rehashed = s.change == plan::ServiceDiff::Change::changed && s.hash_before != s.hash_after;
        if (s.change == plan::ServiceDiff::Change::changed && s.quic_before != s.quic_after)
            text += "  quic: " + s.quic_before + " -> " + s.quic_after + "\n";
        if (rehashed)
            text += "  hash: " + s.hash_before + " -> " + s.hash_after + ", about " + percent(s.slots_moved) +
                    " of new flows go to another backend than before (recorded flows keep theirs)\n";
        if (s.change == plan::ServiceDiff::Change::changed && s.encap_before != s.encap_after)
            text += "  encap: " + s.encap_before + " -> " + s.encap_after +
                    ", every flow keeps its backend; its next packet travels in the new tunnel\n";
        if (!rehashed && s.change == plan::ServiceDiff::Change::changed && (s.table_rebuilt || s.slots_moved_when_up > 0)) {
            text += "  table: " + std::to_string(s.table_before) +
                    (s.table_before == s.table_after ? "" : " -> " + std::to_string(s.table_after)) + " slots, " +
                    percent(s.slots_moved) + " of flow hashes go to another backend at the reload";
            if (s.slots_moved_when_up != s.slots_moved)
                text += ", " + percent(s.slots_moved_when_up) + " once the added backends pass their checks";
            text += " (new flows, and flows not recorded)\n";
        }
        if (s.change != plan::ServiceDiff::Change::added)
            text += "  recorded flows: " + std::to_string(s.flows_moving) + " of " + std::to_string(s.flows) +
                    (s.change == plan::ServiceDiff::Change::removed ? " lose their service\n"
                                                                    : " lose their backend (re-hashed)\n");
    }
    if (diff.writes == 0)
        return text + "no change: a reload of this file would write nothing\n";
    text += std::to_string(unchanged) + " service" + (unchanged == 1 ? "" : "s") + " unchanged; settings " +
            (diff.settings_changed ? "changed" : "unchanged") + "; " + std::to_string(diff.writes) + " map writes\n";
    return text;
}

std::string render_json(const std::string& file, std::uint64_t generation, const plan::Diff& diff)
{
    JsonWriter j;
    j.begin_object().field("file", file).field("generation", generation);
    j.field("settings_changed", diff.settings_changed).field("writes", diff.writes);
    j.key("services").begin_array();
    for (const plan::ServiceDiff& s : diff.services) {
        j.begin_object().field("name", s.name).field("change", plan::to_string(s.change)).field("key", s.key);
        j.field("table_before", s.table_before).field("table_after", s.table_after);
        j.field("table_rebuilt", s.table_rebuilt).field("slots_moved", s.slots_moved);
        j.field("hash_before", s.hash_before).field("hash_after", s.hash_after);
        j.field("quic_before", s.quic_before).field("quic_after", s.quic_after);
        j.field("encap_before", s.encap_before).field("encap_after", s.encap_after);
        j.field("slots_moved_when_up", s.slots_moved_when_up);
        j.field("flows", s.flows).field("flows_moving", s.flows_moving);
        j.key("backends").begin_array();
        for (const plan::BackendDiff& b : s.backends) {
            j.begin_object().field("address", b.address);
            j.key("before");
            b.before.empty() ? j.null() : j.value(b.before);
            j.key("after");
            b.after.empty() ? j.null() : j.value(b.after);
            j.end_object();
        }
        j.end_array().end_object();
    }
    j.end_array().end_object();
    return j.str() + "\n";
}

}  // namespace

control::Response Daemon::cmd_diff(bool json, const std::vector<std::string>& args)
{
    if (args.size() != 1 || args[0].empty() || args[0][0] != '/')
        return {control::kUsage, "diff: expected one absolute FILE path\n"};
    const std::string& file = args[0];
    config::ParseResult parsed = config::load_file(file);
    if (!parsed.errors.empty()) {
        std::string text;
        for (const config::Error& e : parsed.errors)
            text += e.to_string() + "\n";
        return {control::kFailed, text + "diff: " + file + " has errors: a reload of it would be refused\n"};
    }
    const config::Config& next = *parsed.config;
    const ReloadInputs inputs = reload_inputs(next);
    // As a reload plans it, on a copy of the table cache (the preview must not evict a table the
    // running state will need again).
    auto preview = [&](const plan::Overrides& overrides, plan::Diff* diff) {
        plan::TableCache tables = tables_;
        plan::Desired desired = plan::make_desired(next, inputs.seed.seed, overrides);
        if (Status s = tables.build(desired); !s.ok())
            return s;
        return reconciler_->preview(desired, diff);
    };
    plan::Diff diff, when_up;
    if (Status s = preview(inputs.overrides, &diff); !s.ok())
        return {control::kFailed, "diff: a reload of " + file + " would fail: " + s.message() + "\n"};
    // The added backends up, the others with the health they have now.
    plan::Overrides up = inputs.overrides;
    up.down = overrides_.down;
    if (Status s = preview(up, &when_up); !s.ok())
        return {control::kFailed, "diff: a reload of " + file + " would fail: " + s.message() + "\n"};
    for (plan::ServiceDiff& s : diff.services) {
        s.slots_moved_when_up = s.slots_moved;
        for (const plan::ServiceDiff& u : when_up.services)
            if (u.name == s.name && u.change == s.change)
                s.slots_moved_when_up = u.slots_moved;
    }
    auto flows = program_->flows_per_backend();
    if (!flows.ok())
        return {control::kFailed, "diff: " + flows.message() + "\n"};
    for (plan::ServiceDiff& s : diff.services) {
        for (std::uint32_t id : s.backends_now)
            if (auto it = flows->find(id); it != flows->end())
                s.flows += it->second;
        for (std::uint32_t id : s.leaving_backends)
            if (auto it = flows->find(id); it != flows->end())
                s.flows_moving += it->second;
    }
    return {control::kOk, json ? render_json(file, generation_, diff) : render_text(file, generation_, diff)};
}

int check_diff(const std::string& path)
{
    config::ParseResult parsed = config::load_file(path);
    if (!parsed.errors.empty())
        return control::kFailed;  // check_config printed them
    char exe[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string ctl = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string();
    ctl = ctl.substr(0, ctl.rfind('/') + 1) + "fulcrumctl";
    std::fflush(stdout);
    const std::string socket = parsed.config->control_socket;
    execl(ctl.c_str(), "fulcrumctl", "-s", socket.c_str(), "diff", path.c_str(), static_cast<char*>(nullptr));
    std::fprintf(stderr, "fulcrumd: --diff: cannot run %s: %s\n", ctl.c_str(), std::strerror(errno));
    return control::kUnreachable;
}

}  // namespace fulcrum::daemon
