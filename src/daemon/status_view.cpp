// Daemon::status_view and Daemon::drop_view: the one computation behind `fulcrumctl status`,
// `fulcrumctl top` and the status page (status_view.h). Runs on the event loop, which owns the
// plan, the overrides and the rates.
#include <arpa/inet.h>

#include <chrono>

#include "daemon/command_text.h"
#include "daemon/daemon_impl.h"
#include "daemon/status_view.h"
#include "dataplane/reasons.h"
#include "health/check.h"

namespace fulcrum::daemon {

StatusView Daemon::status_view()
{
    StatusView view;
    view.generation = generation_;
    const auto health = health_->snapshot();
    const auto now = std::chrono::system_clock::now();
    for (const plan::ServicePlan& s : desired_.services) {
        // desired_ and the applied state change together (Daemon::apply); a name missing from
        // one of them is shown as such rather than ending the daemon.
        const plan::AppliedService* applied = applied_service(s.name);
        const ServiceRates rates = applied ? service_rates_[applied->id] : ServiceRates{};
        ServiceView& sv = view.services.emplace_back();
        sv.name = s.name;
        sv.vip = s.vip;
        sv.endpoint = service_endpoint(s);
        sv.v6 = s.key.family == FULCRUM_AF_INET6;
        sv.port = ntohs(s.key.port);
        sv.protocol = protocol_name(s.key.proto);
        sv.table_size = s.table_size;
        sv.hash = plan::hash_policy_name(s.hash_omit);
        sv.encap = plan::encap_name(s.encap);
        sv.healthy = s.healthy;
        sv.min_healthy = s.needed;
        sv.panic = s.panic;
        sv.packets_per_second = rates.packets.per_second;
        sv.bits_per_second = 8 * rates.bytes.per_second;
        sv.new_flows_per_second = rates.new_flows.per_second;
        for (const plan::BackendPlan& b : s.backends) {
            BackendView& bv = sv.backends.emplace_back();
            bv.address = b.address;
            bv.weight = b.weight;
            bv.server_id = b.server_id;
            bv.state = backend_state_name(b.use);
            bv.drained_by = !b.drained                                        ? ""
                            : overrides_.drained.contains({s.name, b.address}) ? "operator"
                                                                                : "config";
            if (applied)
                if (auto it = applied->backends.find(b.address); it != applied->backends.end()) {
                    const BackendRates& brates = backend_rates_[it->second.id];
                    bv.packets_per_second = brates.packets.per_second;
                    bv.bits_per_second = 8 * brates.bytes.per_second;
                }
            if (auto h = health.find({s.name, b.address}); h != health.end()) {
                bv.up = h->second.up;
                if (h->second.checked)
                    bv.last_check = h->second.last.ok()
                                        ? "passed"
                                        : std::string(health::failure_name(h->second.last.failure)) +
                                              (h->second.last.detail.empty() ? "" : ": " + h->second.last.detail);
                bv.seconds_since_change = std::chrono::duration<double>(now - h->second.last_change).count();
            }
        }
    }
    return view;
}

std::vector<DropView> Daemon::drop_view()
{
    std::vector<DropView> out;
    for (int r = 0; r < FULCRUM_REASON_COUNT; r++) {
        auto reason = static_cast<fulcrum_reason>(r);
        if (dataplane::reason_kind(reason) != dataplane::ReasonKind::dropped)
            continue;
        out.push_back({std::string(dataplane::reason_name(reason)), program_->reason_counters(reason).packets,
                       reason_rates_[r].per_second});
    }
    return out;
}

}  // namespace fulcrum::daemon
