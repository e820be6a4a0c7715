// `fulcrumctl lookup SERVICE SRC_IP SRC_PORT [DST_PORT] [--quic-dcid HEX]`: which backend the data
// plane sends that client flow to, and how (the tunnel: IP-in-IP, or GUE with the UDP ports the
// packets carry), decided as xdp/balancer.bpf.c decides it: for a QUIC service given a short
// header's connection ID, the backend its server id names while that one is active; else a usable
// flow-table entry; else the Maglev slot of the service's hash policy. The hash, the GUE source
// port and the server id come from the program's own headers (flow_hash.h, quic_id.h).
#include <arpa/inet.h>

#include <cstdio>
#include <ctime>
#include <map>
#include <optional>

#include "control/protocol.h"
#include "control/quic_dcid.h"
#include "daemon/command_text.h"
#include "daemon/daemon.h"
#include "daemon/daemon_impl.h"
#include "dataplane/reasons.h"
#include "flow_hash.h"
#include "plan/quic_route.h"
#include "util/json.h"

namespace fulcrum::daemon {
namespace {

std::string hex_of(const std::vector<std::uint8_t>& bytes)
{
    std::string text;
    for (std::uint8_t b : bytes)
        text += fmt("%02x", b);
    return text;
}

// Why a short header's server id did not choose the backend, for the text answer.
std::string quic_fallback_text(const plan::QuicRoute& q, const plan::AppliedService& applied)
{
    const std::string id = q.server_id ? fmt("server id %u (%#x)", *q.server_id, *q.server_id) : "";
    switch (q.outcome) {
    case FULCRUM_QUIC_UNKNOWN_ID:
        return id + ": no backend of the service has it";
    case FULCRUM_QUIC_UNUSABLE_ID:
        return id + ": its backend is not active (draining or down)";
    case FULCRUM_QUIC_TRUNCATED:
        return fmt("the connection ID ends before the server id (%u bits from its byte %u)", applied.quic_id_bits,
                   applied.quic_id_offset - 1u);
    default:
        return std::string(dataplane::quic_event_name(q.outcome));
    }
}

}  // namespace

control::Response Daemon::cmd_lookup(bool json, const std::vector<std::string>& words)
{
    // Positional arguments, then options as NAME=VALUE words (control/protocol.h).
    std::vector<std::string> args;
    std::optional<std::vector<std::uint8_t>> dcid;
    for (const std::string& word : words) {
        if (!word.starts_with(control::kQuicDcidWord)) {
            args.push_back(word);
            continue;
        }
        const std::string hex = word.substr(control::kQuicDcidWord.size());
        dcid = control::parse_quic_dcid(hex);
        if (!dcid)
            return usage(control::quic_dcid_problem(hex));
    }
    if (args.size() != 3 && args.size() != 4)
        return usage("usage: fulcrumctl lookup SERVICE SRC_IP SRC_PORT [DST_PORT] [--quic-dcid HEX]");
    const plan::ServicePlan* svc = find_service(desired_, args[0]);
    if (!svc)
        return failed("no service \"" + args[0] + "\"");
    int family = 0;
    std::string src = canonical(args[1], &family);
    if (src.empty())
        return usage("not an address: " + args[1]);
    if ((family == AF_INET) != (svc->key.family == FULCRUM_AF_INET))
        return failed("the client address family does not match the VIP " + svc->vip);
    unsigned long sport = std::strtoul(args[2].c_str(), nullptr, 10);
    unsigned long dport = args.size() == 4 ? std::strtoul(args[3].c_str(), nullptr, 10) : ntohs(svc->key.port);
    if (sport == 0 || sport > 65535 || dport == 0 || dport > 65535)
        return usage(svc->key.port == 0 && args.size() == 3 ? "service " + svc->name +
                                                                  " serves every port: give DST_PORT"
                                                            : "ports are 1..65535");

    fulcrum_flow_key key{};
    inet_pton(family, src.c_str(), key.src.w);
    key.dst = svc->key.vip;
    key.sport = htons(static_cast<std::uint16_t>(sport));
    key.dport = htons(static_cast<std::uint16_t>(dport));
    key.proto = svc->key.proto;
    key.family = svc->key.family;

    const plan::AppliedService* found = applied_service(svc->name);
    if (!found)
        return failed("service " + svc->name + " is not in the maps (its last apply failed); see the log");
    const plan::AppliedService& applied = *found;
    if (dcid && !applied.quic_id_offset)
        return failed("service " + svc->name + " has no quic: the data plane reads no connection ID there (drop "
                      "--quic-dcid)");
    std::map<std::uint32_t, const plan::AppliedBackend*> by_id;
    for (const auto& [address, b] : applied.backends)
        by_id[b.id] = &b;
    auto address_of = [&](std::uint32_t id) -> std::string {
        auto it = by_id.find(id);
        return it == by_id.end() ? "" : plan::address_text(it->second->value.addr, it->second->value.family);
    };
    const std::uint32_t seed = desired_.settings.hash_seed;
    std::string backend, source;
    std::uint32_t slot = 0;
    std::uint32_t hash = 0;  // the flow's hash as the packet's tunnel uses it (GUE source port)

    // 1. A QUIC short header whose server id names an active backend: no flow table.
    std::optional<plan::QuicRoute> quic;
    if (dcid) {
        quic = plan::quic_route_short_header(applied, *dcid);
        if (quic->outcome == FULCRUM_QUIC_ROUTED_BY_ID) {
            backend = address_of(quic->backend_id);
            source = "quic_id";
            hash = fulcrum_flow_hash(&key, seed);
        }
    }
    // 2. A usable flow-table entry.
    if (backend.empty()) {
        for (const fulcrum_flow_value& v : program_->flow_entries(key)) {
            auto it = by_id.find(v.backend_id);
            if (it == by_id.end())
                continue;
            std::uint8_t state = it->second->value.state;
            bool usable = state == FULCRUM_BACKEND_ACTIVE || state == FULCRUM_BACKEND_DRAINING;
            // A UDP entry idle past the timeout the program was loaded with is re-hashed by the data
            // plane; its clock is bpf_ktime_get_coarse_ns, i.e. CLOCK_MONOTONIC_COARSE.
            if (usable && key.proto == IPPROTO_UDP) {
                timespec now{};
                clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
                std::uint64_t now_ns = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL +
                                       static_cast<std::uint64_t>(now.tv_nsec);
                usable = now_ns - v.last_seen_ns <= loaded_udp_idle_timeout_ns_;
            }
            if (usable) {
                backend = address_of(v.backend_id);
                source = "flow_table";
                hash = v.hash;  // the entry keeps the hash its tunnel was built with
                break;
            }
        }
    }
    // 3. The Maglev slot.
    if (backend.empty()) {
        // An adopted service has no table in memory until its first apply rewrites it.
        if (applied.table_size == 0 || !applied.table || applied.table->size != applied.table_size)
            return failed("service " + svc->name + " has no Maglev table in memory yet; try again after the next apply");
        // The policy the services entry holds, through the data plane's own function (flow_hash.h).
        hash = fulcrum_flow_hash(&key, seed);
        slot = fulcrum_slot_hash(&key, seed, applied.hash_omit, hash) % applied.table_size;
        std::uint32_t id = applied.backend_in_slot(slot);
        backend = id ? address_of(id) : "";
        source = "maglev";
    }

    const bool gue = applied.encap == FULCRUM_ENCAP_GUE;
    const unsigned gue_port = ntohs(desired_.settings.gue_port);
    const unsigned gue_sport = fulcrum_gue_sport(hash);
    JsonWriter j;
    j.begin_object().field("service", svc->name).field("client", src).field("client_port", sport);
    j.field("vip", svc->vip).field("port", dport).field("backend", backend).field("source", source);
    if (source == "maglev")
        j.field("slot", slot).field("table_size", applied.table_size);
    j.field("hash", plan::hash_policy_name(applied.hash_omit)).field("encap", plan::encap_name(applied.encap));
    if (gue)
        j.field("gue_port", gue_port).field("gue_source_port", gue_sport);
    if (quic) {
        j.key("quic").begin_object().field("dcid", hex_of(*dcid)).key("server_id");
        if (quic->server_id)
            j.value(*quic->server_id);
        else
            j.null();
        j.field("outcome", dataplane::quic_event_name(quic->outcome)).end_object();
    }
    j.end_object();
    if (backend.empty())
        return {control::kFailed, json ? j.str() + "\n" : "no usable backend for this flow\n"};

    std::string why = source == "quic_id"
                          ? fmt("QUIC short header: its connection ID carries server id %u (%#x), this backend's",
                                *quic->server_id, *quic->server_id)
                      : source == "maglev" ? fmt("new flow: Maglev slot %u of %u, hash %s", slot, applied.table_size,
                                                 plan::hash_policy_name(applied.hash_omit).c_str())
                                           : std::string("existing flow: flow-table entry");
    std::string text = fmt("%s: %s port %lu -> %s port %lu/%s goes to %s (%s)\n", svc->name.c_str(), src.c_str(),
                           sport, svc->vip.c_str(), dport, protocol_name(key.proto), backend.c_str(), why.c_str());
    if (quic && source != "quic_id")
        text += "  QUIC short header: " + quic_fallback_text(*quic, applied) + ", so the usual path (" +
                std::string(dataplane::quic_event_name(quic->outcome)) + ")\n";
    text += gue ? fmt("  encap gue: UDP from port %u to port %u\n", gue_sport, gue_port) : "  encap ipip\n";
    return {control::kOk, json ? j.str() + "\n" : text};
}

}  // namespace fulcrum::daemon
