// The control socket's commands (protocol in src/control/protocol.h): each renders its answer as
// human text or one JSON object, and returns the exit code fulcrumctl passes on.
#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "control/protocol.h"
#include "daemon/command_text.h"
#include "daemon/daemon.h"
#include "daemon/daemon_impl.h"
#include "dataplane/reasons.h"
#include "health/check.h"
#include "util/json.h"
#include "util/log.h"

namespace fulcrum::daemon {

using control::Response;

const plan::AppliedService* Daemon::applied_service(const std::string& name) const
{
    auto it = reconciler_->services().find(name);
    return it == reconciler_->services().end() ? nullptr : &it->second;
}

// reload, drain and undrain apply: they answer once their apply is over (it may wait for the
// applies asked before it, and for the neighbours of new backends). The others answer at once.
void Daemon::handle(const control::Request& r, control::Server::Reply reply)
{
    if (r.command == "reload" && r.args.empty())
        return cmd_reload(r.json, std::move(reply));
    if (r.command == "drain" || r.command == "undrain")
        return cmd_drain(r.json, r.args, r.command == "drain", std::move(reply));
    if (r.command == "capture")  // a read answers once records arrive (capture_session.h)
        return cmd_capture(r.args, std::move(reply));
    reply(answer_now(r));
}

Response Daemon::answer_now(const control::Request& r)
{
    if (r.command == "status" && r.args.empty())
        return cmd_status(r.json);
    if (r.command == "lookup")
        return cmd_lookup(r.json, r.args);
    if (r.command == "stats" && r.args.empty())
        return cmd_stats(r.json);
    if (r.command == "diff")
        return cmd_diff(r.json, r.args);
    if (r.command == "top" && r.args.empty())
        return cmd_top(r.json);
    return usage("unknown command or wrong arguments: " + r.command);
}

Response Daemon::cmd_status(bool json)
{
    JsonWriter j;
    std::string text = fmt("fulcrumd %s, config %s, generation %llu, reloads %llu ok / %llu failed\n", kVersion,
                           path_.c_str(), static_cast<unsigned long long>(generation_),
                           static_cast<unsigned long long>(reloads_ok_),
                           static_cast<unsigned long long>(reloads_failed_));
    j.begin_object().field("version", kVersion).field("config", path_).field("generation", generation_);
    j.field("reloads_ok", reloads_ok_).field("reloads_failed", reloads_failed_);
    j.field("last_reload_error", last_reload_error_);
    // An apply waiting for the neighbour entries of new backends, and those queued behind it.
    j.field("apply_in_progress", apply_queue_.running()).field("applies_queued", apply_queue_.queued());
    if (!apply_queue_.running().empty())
        text += fmt("apply in progress: %s (%zu more queued)\n", apply_queue_.running().c_str(),
                    apply_queue_.queued());
    j.key("services").begin_array();
    for (const ServiceView& s : status_view().services) {
        // The hash policy only when it is not the default, so the common line stays as it was.
        const std::string hash = s.hash == "5-tuple" ? "" : "  hash " + s.hash;
        const std::string encap = s.encap == "ipip" ? "" : "  encap " + s.encap;
        text += fmt("service %-16s %s  table %u%s%s  %.0f pkt/s  healthy %u (need %u)%s\n", s.name.c_str(),
                    s.endpoint.c_str(), s.table_size, hash.c_str(), encap.c_str(), s.packets_per_second, s.healthy, s.min_healthy,
                    s.panic ? "  PANIC: using all non-drained backends" : "");
        j.begin_object().field("name", s.name).field("vip", s.vip).field("port", s.port);
        j.field("protocol", s.protocol).field("table_size", s.table_size).field("hash", s.hash).field("encap", s.encap);
        j.field("healthy", s.healthy).field("min_healthy", s.min_healthy).field("panic", s.panic);
        j.field("packets_per_second", s.packets_per_second).key("backends").begin_array();
        for (const BackendView& b : s.backends) {
            // A drained backend that is down shows "down" (its flows were re-hashed) and who drained it.
            const std::string drained_by = b.drained_by;
            const char* why = drained_by.empty() ? "" : drained_by == "operator" ? " (fulcrumctl drain)" : " (config)";
            const std::string health_state = !b.up ? "unknown" : *b.up ? "up" : "down";
            // A QUIC server id only when there is one, so the common line stays as it was.
            const std::string server_id = b.server_id ? fmt("  server_id %u", b.server_id) : "";
            text += fmt("  backend %-28s weight %-5u %-8s%-19s health %-4s %5.0fs  last %-28s %.0f pkt/s%s\n",
                        b.address.c_str(), b.weight, b.state, why, health_state.c_str(), b.seconds_since_change,
                        b.last_check.c_str(), b.packets_per_second, server_id.c_str());
            j.begin_object().field("address", b.address).field("weight", b.weight).field("state", b.state);
            j.field("server_id", b.server_id);
            j.field("drained_by", b.drained_by);
            j.field("health", health_state).field("last_check", b.last_check);
            j.field("seconds_since_change", b.seconds_since_change);
            j.field("packets_per_second", b.packets_per_second).end_object();
        }
        j.end_array().end_object();
    }
    j.end_array();
    // The control socket itself (its limits: src/control/protocol.h); this session is one of `open`.
    const control::ServerStats& cs = control_->stats();
    text += fmt("control socket: %zu sessions open (limit %zu), %llu refused busy, %llu closed at their deadline, "
                "%llu failed accepts\n",
                cs.open, control_->limits().max_sessions, static_cast<unsigned long long>(cs.refused),
                static_cast<unsigned long long>(cs.timed_out), static_cast<unsigned long long>(cs.accept_failures));
    j.key("control").begin_object().field("sessions_open", cs.open).field("max_sessions", control_->limits().max_sessions);
    j.field("sessions", cs.sessions).field("refused_busy", cs.refused).field("timed_out", cs.timed_out);
    j.field("accept_failures", cs.accept_failures).end_object();
    j.end_object();
    return {control::kOk, json ? j.str() + "\n" : text};
}

void Daemon::cmd_reload(bool json, control::Server::Reply reply)
{
    queue_reload("reload (fulcrumctl)", [this, json, reply = std::move(reply)](Status s) {
        JsonWriter j;
        j.begin_object().field("ok", s.ok()).field("generation", generation_).field("error", s.message()).end_object();
        if (json)
            reply({s.ok() ? control::kOk : control::kFailed, j.str() + "\n"});
        else if (!s.ok())
            reply(failed(s.message()));
        else
            reply({control::kOk, fmt("reloaded %s: generation %llu\n", path_.c_str(),
                                     static_cast<unsigned long long>(generation_))});
    });
}

void Daemon::cmd_drain(bool json, const std::vector<std::string>& args, bool drain, control::Server::Reply reply)
{
    const char* verb = drain ? "drain" : "undrain";
    if (args.size() != 2)
        return reply(usage(std::string("usage: fulcrumctl ") + verb + " SERVICE BACKEND"));
    // Checked against the state the applies queued before it leave, so it runs as a job too.
    apply_queue_.push(verb, [this, json, args, drain, reply = std::move(reply)](ApplyQueue::Done finished) {
        run_drain(json, args, drain, reply, std::move(finished));
    });
}

void Daemon::run_drain(bool json, const std::vector<std::string>& args, bool drain, control::Server::Reply reply,
                       ApplyQueue::Done finished)
{
    const char* verb = drain ? "drain" : "undrain";
    auto answer = [&](Response r) {
        reply(std::move(r));
        finished();
    };
    const plan::ServicePlan* svc = find_service(desired_, args[0]);
    if (!svc)
        return answer(failed("no service \"" + args[0] + "\""));
    std::string address = canonical(args[1]);
    const plan::BackendPlan* backend = nullptr;
    for (const auto& b : svc->backends)
        if (b.address == address)
            backend = &b;
    if (!backend)
        return answer(failed("service " + svc->name + " has no backend \"" + args[1] + "\""));
    // Copies: the apply below replaces desired_, which svc and backend point into.
    const std::string service = svc->name;
    const bool drained_by_config = backend->drained && !overrides_.drained.contains({svc->name, address});
    std::pair<std::string, std::string> key{service, address};
    plan::Overrides next = overrides_;  // in force only if the apply succeeds
    if (drain) {
        if (!next.drained.insert(key).second)
            return answer(failed("backend " + address + " of " + service + " is already drained by fulcrumctl"));
    } else if (next.drained.erase(key) == 0) {
        return answer(failed("backend " + address + " of " + service + " is not drained by fulcrumctl" +
                             (drained_by_config ? " (the config file drains it)" : "")));
    }
    apply(config_, next, hash_seed_, "operator",
          [this, json, verb, drain, service, address, reply, finished](Status s) {
              if (!s.ok()) {
                  LOG_ERROR("control: %s %s %s failed: %s", verb, service.c_str(), address.c_str(),
                            s.message().c_str());
                  reply(failed(s.message()));
                  finished();
                  return;
              }
              LOG_INFO("control: %s %s %s", verb, service.c_str(), address.c_str());
              // Kept with the pinned state, so a restarted fulcrumd restores it (Daemon::restore_operator_drains).
              if (Status k = program_->keep_operator_drain(service, address, drain); !k.ok())
                  LOG_WARN("%s; the %s holds until fulcrumd restarts", k.message().c_str(), verb);
              JsonWriter j;
              j.begin_object().field("service", service).field("backend", address).field("drained", drain).end_object();
              std::string text = drain ? "drained " + address + " of " + service +
                                             ": existing flows stay, new flows go to the others (kept across "
                                             "reloads and restarts)\n"
                                       : "undrained " + address + " of " + service + ": it takes new flows again\n";
              reply({control::kOk, json ? j.str() + "\n" : text});
              finished();
          });
}

Response Daemon::cmd_stats(bool json)
{
    JsonWriter j;
    std::string text;
    j.begin_object().field("generation", generation_).field("reloads_ok", reloads_ok_);
    j.field("reloads_failed", reloads_failed_).key("services").begin_array();
    for (const plan::ServicePlan& s : desired_.services) {
        const plan::AppliedService* applied = applied_service(s.name);
        auto c = applied ? program_->service_counters(applied->id) : dataplane::ServiceCounters{};
        text += fmt("service %-16s packets %-12llu bytes %-14llu new flows %llu\n", s.name.c_str(),
                    static_cast<unsigned long long>(c.packets), static_cast<unsigned long long>(c.bytes),
                    static_cast<unsigned long long>(c.new_flows));
        j.begin_object().field("name", s.name).field("packets", c.packets).field("bytes", c.bytes);
        j.field("new_flows", c.new_flows).end_object();
    }
    j.end_array().key("reasons").begin_object();
    for (int r = 0; r < FULCRUM_REASON_COUNT; r++) {
        auto reason = static_cast<fulcrum_reason>(r);
        auto c = program_->reason_counters(reason);
        std::string name(dataplane::reason_name(reason));
        text += fmt("%-22s packets %-12llu bytes %llu\n", name.c_str(), static_cast<unsigned long long>(c.packets),
                    static_cast<unsigned long long>(c.bytes));
        j.field(name, c.packets);
    }
    j.end_object().end_object();
    return {control::kOk, json ? j.str() + "\n" : text};
}

}  // namespace fulcrum::daemon
