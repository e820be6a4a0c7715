// YAML file -> typed Config: the schema (which keys each section has and what each value must
// be), file reading and YAML syntax errors, and the rest of the API of config.h.
#include "config/config.h"

#include <pwd.h>
#include <sys/socket.h>
#include <yaml-cpp/exceptions.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "config/checks.h"
#include "config/fields.h"
#include "config/yaml_load.h"
#include "config/yaml_tree.h"
#include "config/yaml_walk.h"

namespace fulcrum::config {
namespace {

using namespace detail;  // the walking helpers, field parsers and checks of this directory

// Stores a parsed value; an invalid one was reported and leaves the default in place.
template <class T, class U>
bool assign(T& out, const std::optional<U>& parsed)
{
    if (parsed) out = *parsed;
    return parsed.has_value();
}

std::optional<AttachMode> parse_mode(Errors& errors, const Value& value)
{
    return parse_choice<AttachMode>(
        errors, value,
        {{"native", AttachMode::native}, {"generic", AttachMode::generic}, {"auto", AttachMode::automatic}});
}

std::optional<CheckType> parse_check_type(Errors& errors, const Value& value)
{
    return parse_choice<CheckType>(errors, value,
                                   {{"tcp", CheckType::tcp},
                                    {"http", CheckType::http},
                                    {"https", CheckType::https},
                                    {"udp", CheckType::udp},
                                    {"dns", CheckType::dns},
                                    {"exec", CheckType::exec}});
}

std::optional<CheckVia> parse_check_via(Errors& errors, const Value& value)
{
    return parse_choice<CheckVia>(errors, value,
                                  {{to_string(CheckVia::direct), CheckVia::direct},
                                   {to_string(CheckVia::tunnel), CheckVia::tunnel}});
}

void read_interfaces(Errors& errors, const Value& value, Config& config, Spots& spots)
{
    spots.interfaces_at = value.spot;
    auto items = list_items(errors, value, "a list of interfaces");
    if (!items) return;
    if (items->empty()) errors.expected(value, "at least one interface");
    for (const Value& item : *items) {
        if (config.interfaces.size() > kMaxInterfaces) break;  // reported by check_capacity
        if (!errors.build(item.spot, sizeof(Interface) + sizeof(Spot))) return;
        Mapping m(errors, item, {"name", "mode"});
        Interface interface;
        std::optional<Spot> name_spot;
        if (auto v = m.require("name"); v && assign(interface.name, parse_interface_name(errors, *v)))
            name_spot = v->spot;
        if (auto v = m.get("mode")) assign(interface.mode, parse_mode(errors, *v));
        config.interfaces.push_back(interface);
        spots.interface_names.push_back(name_spot);
    }
}

void read_tunnel(Errors& errors, const Value& value, Tunnel& tunnel, Spots& spots)
{
    Mapping m(errors, value, {"source_v4", "source_v6", "source_v4_vary_bits", "source_v6_vary_bits", "gue_port"});
    if (auto v = m.get("source_v4")) {
        spots.source_v4_given = true;
        assign(tunnel.source_v4, parse_address(errors, *v, AF_INET));
    }
    if (auto v = m.get("source_v6")) {
        spots.source_v6_given = true;
        assign(tunnel.source_v6, parse_address(errors, *v, AF_INET6));
    }
    // Bounds: enough flow-hash bits for RSS without spreading a backend's traffic over a whole /16.
    if (auto v = m.get("source_v4_vary_bits"))
        assign(tunnel.source_v4_vary_bits, parse_uint(errors, *v, 0u, 16u));
    if (auto v = m.get("source_v6_vary_bits"))
        assign(tunnel.source_v6_vary_bits, parse_uint(errors, *v, 0u, 32u));
    // Port 0 is no UDP destination (and the data plane reads 0 as "not GUE").
    if (auto v = m.get("gue_port"))
        assign(tunnel.gue_port, parse_uint<std::uint16_t>(errors, *v, 1, 65535));
}

// Upper bound of the per-CPU rates (flows.new_per_second, icmp.replies_per_second); 0 = no limit.
constexpr std::uint32_t kMaxPerSecond = 100'000'000;

void read_daemon_sections(Errors& errors, Mapping& top, Config& config, Spots& spots)
{
    if (auto v = top.get("flows")) {
        Mapping m(errors, *v, {"capacity", "udp_idle_timeout", "new_per_second"});
        if (auto x = m.get("capacity"))
            assign(config.flows.capacity, parse_uint<std::uint32_t>(errors, *x, 1, 100'000'000));
        if (auto x = m.get("udp_idle_timeout"))
            assign(config.flows.udp_idle_timeout, parse_duration(errors, *x));
        // Per CPU; far above what one CPU can insert, so a larger number is a typo.
        if (auto x = m.get("new_per_second"))
            assign(config.flows.new_per_second, parse_uint<std::uint32_t>(errors, *x, 0, kMaxPerSecond));
    }
    if (auto v = top.get("icmp")) {
        Mapping m(errors, *v, {"replies_per_second"});
        if (auto x = m.get("replies_per_second"))
            assign(config.icmp.replies_per_second, parse_uint<std::uint32_t>(errors, *x, 0, kMaxPerSecond));
    }
    if (auto v = top.get("bpf")) {
        Mapping m(errors, *v, {"pin_path", "hash_seed"});
        if (auto x = m.get("pin_path")) assign(config.pin_path, parse_absolute_path(errors, *x));
        if (auto x = m.get("hash_seed"); x && assign(config.hash_seed, parse_uint<std::uint32_t>(errors, *x, 0, UINT32_MAX)))
            spots.hash_seed = x->spot;
    }
    if (auto v = top.get("control")) {
        Mapping m(errors, *v, {"socket"});
        if (auto x = m.get("socket")) assign(config.control_socket, parse_absolute_path(errors, *x));
    }
    if (auto v = top.get("metrics")) {
        Mapping m(errors, *v, {"listen"});
        if (auto x = m.get("listen")) assign(config.metrics_listen, parse_listen_address(errors, *x));
    }
    if (auto v = top.get("routes")) {
        Mapping m(errors, *v, {"table", "need"});
        if (auto x = m.get("table"))
            assign(config.routes_table, parse_uint<std::uint32_t>(errors, *x, 0, UINT32_MAX));
        if (auto x = m.get("need"))
            assign(config.routes_need, parse_uint<std::uint32_t>(errors, *x, 1, 65535));
    }
    if (auto v = top.get("on_exit"))
        assign(config.on_exit,
               parse_choice<OnExit>(errors, *v, {{"keep", OnExit::keep}, {"detach", OnExit::detach}}));
}

// A health check as it applies at one level (defaults, a service, a backend), with where its
// `source` and `address` were written: the nearest layer that set them. The family check between a
// source and the address it checks needs the backends, so it runs after them, pointing back here.
struct CheckLayer {
    HealthCheck check;
    std::optional<Spot> source, address;
};

// What a copy of `check` builds, for Errors::build: the struct and the text it holds.
std::size_t built_size(const HealthCheck& c)
{
    return sizeof(HealthCheck) + c.method.size() + c.path.size() + c.host.size() + c.expect_body.size() +
           c.payload.size() + c.expect.size() + c.query_name.size() + c.query_type.size() + c.command.size() +
           c.user.name.size() + c.expect_status.size() * sizeof(StatusRange);
}

// Sources already reported as of the wrong family: one written in defaults may be inherited by
// many backends, but one error at the key is enough.
using ReportedSpots = std::set<std::pair<int, int>>;

void report_source_family(Errors& errors, ReportedSpots& reported, const CheckLayer& layer,
                          const Address& checked, const std::string& checked_path)
{
    const HealthCheck& c = layer.check;
    if (!c.source || !layer.source || c.source->family == checked.family) return;
    if (!reported.insert({layer.source->line, layer.source->column}).second) return;
    std::string family = checked.family == AF_INET ? "an IPv4 address" : "an IPv6 address";
    errors.add(*layer.source, "expected " + family + " like the checked address " + checked.text + " (" +
                                  checked_path + "), got \"" + c.source->text + "\"");
}

// Reads one healthcheck mapping on top of `parent` (defaults < service < backend): only the keys
// given are overridden, so a service that sets `path` keeps the default interval. A layer whose
// keys all read well is then checked as a whole; a problem already present in `parent` was
// reported there and is not repeated.
CheckLayer read_healthcheck(Errors& errors, const Value& value, const CheckLayer& parent, ReportedSpots& reported)
{
    Mapping m(errors, value,
              {"type", "interval", "timeout", "rise", "fall", "jitter", "start_up", "port", "address",
               "source", "via", "method", "path", "host", "expect_status", "expect_body", "tls_verify", "payload",
               "expect", "require_reply", "query_name", "query_type", "command", "user"});
    CheckLayer layer = parent;
    if (!errors.build(value.spot, built_size(parent.check))) return layer;
    HealthCheck& check = layer.check;
    std::size_t errors_before = errors.count();
    if (auto v = m.get("type")) assign(check.type, parse_check_type(errors, *v));
    if (auto v = m.get("interval")) assign(check.interval, parse_duration(errors, *v));
    if (auto v = m.get("timeout")) assign(check.timeout, parse_duration(errors, *v));
    if (auto v = m.get("rise")) assign(check.rise, parse_uint(errors, *v, 1u, 100u));
    if (auto v = m.get("fall")) assign(check.fall, parse_uint(errors, *v, 1u, 100u));
    if (auto v = m.get("jitter")) assign(check.jitter, parse_jitter(errors, *v));
    if (auto v = m.get("start_up")) assign(check.start_up, parse_bool(errors, *v));
    if (auto v = m.get("port")) assign(check.port, parse_uint<std::uint16_t>(errors, *v, 1, 65535));
    if (auto v = m.get("address"); v && assign(check.address, parse_address(errors, *v))) layer.address = v->spot;
    if (auto v = m.get("source"); v && assign(check.source, parse_address(errors, *v))) layer.source = v->spot;
    if (auto v = m.get("via")) assign(check.via, parse_check_via(errors, *v));
    if (auto v = m.get("method")) assign(check.method, parse_http_method(errors, *v));
    if (auto v = m.get("path")) assign(check.path, parse_http_path(errors, *v));
    if (auto v = m.get("host")) assign(check.host, parse_host(errors, *v));
    if (auto v = m.get("expect_status")) assign(check.expect_status, parse_status_ranges(errors, *v));
    if (auto v = m.get("expect_body")) assign(check.expect_body, parse_string(errors, *v));
    if (auto v = m.get("tls_verify")) assign(check.tls_verify, parse_bool(errors, *v));
    if (auto v = m.get("payload")) assign(check.payload, parse_string(errors, *v));
    if (auto v = m.get("expect")) assign(check.expect, parse_string(errors, *v));
    if (auto v = m.get("require_reply")) assign(check.require_reply, parse_bool(errors, *v));
    if (auto v = m.get("query_name")) assign(check.query_name, parse_dns_name(errors, *v));
    if (auto v = m.get("query_type")) assign(check.query_type, parse_query_type(errors, *v));
    if (auto v = m.get("command")) assign(check.command, parse_nonempty_string(errors, *v, "a command line"));
    if (auto v = m.get("user")) assign(check.user, parse_user(errors, *v));
    // A key that did not read left the parent's value: checks built on it would only add noise.
    if (!m.is_mapping() || errors.count() != errors_before) return layer;

    const HealthCheck& up = parent.check;
    // A check still running when the next one is due would overlap it.
    if (check.timeout > check.interval && !(up.timeout > up.interval)) {
        if (auto v = m.get("timeout"))
            errors.expected(*v, "a timeout at most the interval (" + duration_text(check.interval) + ")");
        else if (auto w = m.get("interval"))
            errors.expected(*w, "an interval at least the timeout (" + duration_text(check.timeout) + ")");
    }
    if (check.type == CheckType::exec && check.command.empty() &&
        !(up.type == CheckType::exec && up.command.empty()))
        errors.add(Spot{m.spot().line, m.spot().column, child_path(m.spot().path, "command")},
                   "missing required key \"command\" (needed by type exec)");
    if (check.address && layer.address)
        report_source_family(errors, reported, layer, *check.address, layer.address->path);
    // Through the tunnel a check goes to the VIP from the tunnel's source, and exec sends no packet.
    // Reported once, at the key of this mapping that makes the conflict (`via` or the other one).
    if (check.via == CheckVia::tunnel) {
        auto conflict = [&](bool now, bool before, const char* key, const std::string& message) {
            if (!now || (before && up.via == CheckVia::tunnel)) return;
            const Value* here = m.get(key);
            if (!here) here = m.get("via");
            if (here) errors.add(here->spot, message);
        };
        conflict(check.type == CheckType::exec, up.type == CheckType::exec, "type",
                 "via: tunnel needs a check that sends packets (tcp, http, https, udp or dns), not exec");
        conflict(check.address.has_value(), up.address.has_value(), "address",
                 "via: tunnel checks the VIP through the tunnel; it excludes healthcheck.address");
        conflict(check.source.has_value(), up.source.has_value(), "source",
                 "via: tunnel checks come from tunnel.source_v4/v6; it excludes healthcheck.source");
    }
    return layer;
}

// Key `quic` of a service: both fields required; the id must end within the connection ID.
std::optional<Quic> read_quic(Errors& errors, const Value& value)
{
    Mapping m(errors, value, {"server_id_offset", "server_id_bits"});
    if (!m.is_mapping()) return std::nullopt;
    Quic quic;
    const std::size_t errors_before = errors.count();
    const Value* offset = m.require("server_id_offset");
    const Value* bits = m.require("server_id_bits");
    if (offset) assign(quic.server_id_offset, parse_uint(errors, *offset, 0u, FULCRUM_QUIC_MAX_CID_LEN - 1u));
    if (bits) assign(quic.server_id_bits, parse_uint(errors, *bits, 1u, unsigned{FULCRUM_QUIC_MAX_ID_BITS}));
    if (errors.count() != errors_before || !offset || !bits) return std::nullopt;
    const unsigned end = quic.server_id_offset + (quic.server_id_bits + 7) / 8;
    if (end > FULCRUM_QUIC_MAX_CID_LEN) {
        errors.expected(*bits, "a server id that ends within the " + std::to_string(FULCRUM_QUIC_MAX_CID_LEN) +
                                   "-byte connection ID (server_id_offset " + std::to_string(quic.server_id_offset) +
                                   " + " + std::to_string((quic.server_id_bits + 7) / 8) + " bytes)");
        return std::nullopt;
    }
    return quic;
}

// `own_check` is set to the backend's check layer when it has a healthcheck mapping (most have
// none: then the service's applies, and is not copied for each backend).
// `id_bits`: the service's quic.server_id_bits; nullopt when the service has no `quic` key, 0
// when it has one that did not read (its server ids are then not checked: only noise).
Backend read_backend(Errors& errors, const Value& value, const CheckLayer& service_check, bool port_zero,
                     ReportedSpots& reported, std::optional<Spot>& address_spot, std::optional<CheckLayer>& own_check,
                     std::optional<unsigned> id_bits, std::optional<Spot>& server_id_spot)
{
    Mapping m(errors, value, {"address", "weight", "state", "server_id", "healthcheck"});
    Backend backend;
    backend.line = value.spot.line;
    // The backend, its spots and the service's check it is checked with (counted per backend
    // whether or not it is copied, and a check's bytes as when a backend held one inline, so the
    // bound stays where it was).
    if (!errors.build(value.spot, sizeof(Backend) + sizeof(HealthCheck) + sizeof(Spot) + value.spot.path.size() +
                                      built_size(service_check.check)))
        return backend;
    if (auto v = m.require("address"); v && assign(backend.address, parse_address(errors, *v)))
        address_spot = v->spot;
    if (auto v = m.get("weight")) assign(backend.weight, parse_uint<std::uint32_t>(errors, *v, 0, 65535));
    if (auto v = m.get("state"))
        assign(backend.state,
               parse_choice<BackendState>(
                   errors, *v, {{"active", BackendState::active}, {"drain", BackendState::drain}}));
    if (auto v = m.get("server_id")) {
        if (!id_bits)
            errors.add(v->spot, "server_id needs the service's quic settings (server ids route QUIC packets of a "
                                "UDP service)");
        else if (*id_bits > 0) {
            // 0 is "no server id" (a connection ID the balancer must not read as one).
            const std::uint32_t max = *id_bits >= 32 ? 0xffffffffu : (1u << *id_bits) - 1;
            if (assign(backend.server_id, parse_uint<std::uint32_t>(errors, *v, 1, max))) server_id_spot = v->spot;
        }
    }
    if (auto v = m.get("healthcheck")) {
        std::size_t errors_before = errors.count();
        own_check = read_healthcheck(errors, *v, service_check, reported);
        backend.healthcheck = std::make_shared<const HealthCheck>(own_check->check);
        // The service's own check was held to this already; only a type changed here is new.
        const HealthCheck& c = own_check->check;
        const HealthCheck& up = service_check.check;
        bool needs_port = c.type != CheckType::exec && !c.port;
        bool up_needs_port = up.type != CheckType::exec && !up.port;
        if (port_zero && needs_port && !up_needs_port && errors.count() == errors_before)
            errors.add(Spot{v->spot.line, v->spot.column, child_path(v->spot.path, "port")},
                       "missing required key \"port\" (needed when the service port is 0)");
    }
    return backend;
}

// `backends_read` counts the backends of all services read so far.
Service read_service(Errors& errors, const Value& value, const CheckLayer& defaults, ReportedSpots& reported,
                     ServiceSpots& spots, std::size_t& backends_read)
{
    Mapping m(errors, value,
              {"name", "vip", "port", "protocol", "table_size", "hash", "quic", "encap", "min_healthy", "healthcheck",
               "backends"});
    Service service;
    CheckLayer check = defaults;
    if (!errors.build(value.spot, sizeof(Service) + sizeof(ServiceSpots) + built_size(defaults.check))) return service;
    // Each spot is kept only for a valid value: the checks across services use these.
    auto keep = [](std::optional<Spot>& spot, const Value& v, bool valid) {
        if (valid) spot = v.spot;
    };
    if (auto v = m.require("name"))
        keep(spots.name, *v, assign(service.name, parse_service_name(errors, *v)));
    if (auto v = m.require("vip")) keep(spots.vip, *v, assign(service.vip, parse_address(errors, *v)));
    if (auto v = m.require("port"))
        keep(spots.port, *v, assign(service.port, parse_uint<std::uint16_t>(errors, *v, 0, 65535)));
    if (auto v = m.require("protocol"))
        keep(spots.protocol, *v,
             assign(service.protocol,
                    parse_choice<Protocol>(errors, *v, {{"tcp", Protocol::tcp}, {"udp", Protocol::udp}})));
    if (auto v = m.get("table_size")) assign(service.table_size, parse_table_size(errors, *v));
    if (auto v = m.get("hash")) assign(service.hash, parse_hash_policy(errors, *v));
    if (auto v = m.get("encap")) assign(service.encap, parse_encap(errors, *v));
    if (auto v = m.get("min_healthy")) assign(service.min_healthy, parse_min_healthy(errors, *v));
    // The width the backends' server ids are held to (read_backend): unset without `quic`, 0 if bad.
    std::optional<unsigned> id_bits;
    if (auto v = m.get("quic")) {
        service.quic = read_quic(errors, *v);
        id_bits = service.quic ? service.quic->server_id_bits : 0;
        if (service.quic && spots.protocol && service.protocol != Protocol::udp) {
            errors.add(v->spot, "quic needs protocol udp (QUIC runs over UDP), the service is " +
                                    to_string(service.protocol));
            service.quic.reset();
            id_bits = 0;
        }
    }

    std::size_t errors_before_check = errors.count();
    if (auto v = m.get("healthcheck")) check = read_healthcheck(errors, *v, defaults, reported);
    service.healthcheck = check.check;
    // A check that connects somewhere defaults to the service port; port 0 leaves it nowhere to go.
    bool port_zero = spots.port && service.port == 0;
    if (port_zero && !service.healthcheck.port && service.healthcheck.type != CheckType::exec &&
        errors.count() == errors_before_check)
        errors.add(*spots.port, "port 0 (every port) needs healthcheck.port for the health check");

    if (auto v = m.require("backends"))
        if (auto items = list_items(errors, *v, "a list of backends")) {
            service.backends.reserve(items->size());
            spots.backend_addresses.reserve(items->size());
            for (const Value& item : *items) {
                if (backends_read > kMaxBackends) break;  // reported by check_capacity
                ++backends_read;
                spots.backend_addresses.emplace_back();
                spots.backend_server_ids.emplace_back();
                std::optional<CheckLayer> own_check;
                service.backends.push_back(read_backend(errors, item, check, port_zero, reported,
                                                        spots.backend_addresses.back(), own_check, id_bits,
                                                        spots.backend_server_ids.back()));
                // Without healthcheck.address the check goes to the backend: its source must match.
                const CheckLayer& backend_check = own_check ? *own_check : check;
                const auto& address_spot = spots.backend_addresses.back();
                if (address_spot && !backend_check.check.address)
                    report_source_family(errors, reported, backend_check, service.backends.back().address,
                                         address_spot->path);
            }
        }
    return service;
}

Config read_config(Errors& errors, const Value& root, Spots& spots)
{
    Config config;
    Mapping top(errors, root,
                {"interfaces", "tunnel", "flows", "icmp", "bpf", "control", "metrics", "routes", "on_exit",
                 "defaults", "services"});
    if (auto v = top.require("interfaces")) read_interfaces(errors, *v, config, spots);
    if (auto v = top.get("tunnel")) read_tunnel(errors, *v, config.tunnel, spots);
    read_daemon_sections(errors, top, config, spots);
    // Defaults before services wherever they are written: services start from them.
    CheckLayer defaults;
    defaults.check.user = default_check_user();
    ReportedSpots reported;
    if (auto v = top.get("defaults")) {
        Mapping m(errors, *v, {"healthcheck"});
        if (auto h = m.get("healthcheck")) defaults = read_healthcheck(errors, *h, defaults, reported);
    }
    config.default_healthcheck = defaults.check;
    // `services` is required so a file that lost its services by mistake is not read as "none";
    // an explicit empty list is fine (a balancer being set up).
    std::size_t backends_read = 0;
    if (auto v = top.require("services"))
        if (auto items = list_items(errors, *v, "a list of services"))
            for (const Value& item : *items) {
                if (config.services.size() > kMaxServices) break;  // reported by check_capacity
                spots.services.emplace_back();
                spots.services.back().at = item.spot;
                config.services.push_back(
                    read_service(errors, item, defaults, reported, spots.services.back(), backends_read));
            }
    return config;
}

ParseResult finish(const Errors& errors, std::optional<Config> config)
{
    ParseResult result;
    result.errors = errors.sorted();
    if (result.errors.empty()) result.config = std::move(config);
    return result;
}

// The whole file in `out`; the errno of the failure, or 0.
int read_whole_file(const std::string& path, std::string& out)
{
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) return errno;
    char buffer[1 << 16];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) out.append(buffer, n);
    return std::ferror(file.get()) ? errno : 0;  // e.g. EISDIR: fopen accepts a directory, fread does not
}

}  // namespace

ParseResult parse_text(const std::string& text, const std::string& name)
{
    Errors errors(name);
    std::optional<Config> config;
    std::vector<Error> warnings;
    // yaml-cpp reports syntax errors by exception; nothing may escape this API (STYLE.md), and the
    // catch-all keeps even an unexpected failure a config error rather than a crashed daemon.
    try {
        std::optional<Tree> document = load_one_document(text, errors);
        if (!document) {
            // Reported: too large, more than one document, or unreadable (yaml_load.h).
        } else if (document->root().is_null()) {
            errors.add(Spot{}, "expected a mapping with interfaces and services, got an empty file");
        } else {
            Spots spots;
            config = read_config(errors, Value{document->root(), spot_of(document->root(), "")}, spots);
            config->file = name;
            check_consistency(*config, spots, errors);
            check_capacity(*config, spots, errors);
            if (spots.hash_seed && config->hash_seed == 0u)
                warnings.push_back(Error{name, spots.hash_seed->line, spots.hash_seed->column, spots.hash_seed->path,
                                         "warning: 0 is the well-known seed: anyone can craft flows that all "
                                         "land on one backend; set a random value (the same on every balancer "
                                         "of an ECMP group), e.g. from `od -An -N4 -tu4 /dev/urandom`"});
        }
    } catch (const YAML::Exception& e) {
        errors.add(spot_of(e.mark, ""), "invalid YAML: " + e.msg);
    } catch (const std::exception& e) {
        errors.add(Spot{}, std::string("cannot read the configuration: ") + e.what());
    }
    ParseResult result = finish(errors, std::move(config));
    result.warnings = std::move(warnings);
    return result;
}

ParseResult load_file(const std::string& path)
{
    std::string text;
    try {
        if (int err = read_whole_file(path, text); err != 0) {
            ParseResult result;
            result.errors.push_back(
                Error{path, 0, 0, "", std::string("cannot read the file: ") + std::strerror(err)});
            return result;
        }
    } catch (const std::exception& e) {  // std::bad_alloc on a huge file
        ParseResult result;
        result.errors.push_back(Error{path, 0, 0, "", std::string("cannot read the file: ") + e.what()});
        return result;
    }
    return parse_text(text, path);
}

std::optional<RunAs> lookup_user(const std::string& name)
{
    passwd pw{}, *found = nullptr;
    std::vector<char> buffer(16384);
    if (getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
    return RunAs{name, pw.pw_uid, pw.pw_gid};
}

RunAs default_check_user()
{
    for (const char* name : {"fulcrum", "nobody"})
        if (auto user = lookup_user(name)) return *user;
    return RunAs{};
}

std::string Error::to_string() const
{
    std::string out = file;
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
    if (!key_path.empty()) out += key_path + ": ";
    return out + message;
}

bool Address::operator==(const Address& o) const
{
    // Compare the address, not the text: 2001:db8::1 and 2001:db8:0::1 are one backend.
    std::size_t length = family == AF_INET ? 4 : 16;
    return family == o.family && std::memcmp(bytes, o.bytes, length) == 0;
}

std::string to_string(Protocol p)
{
    return p == Protocol::tcp ? "tcp" : "udp";
}

const char* to_string(HashPolicy h)
{
    switch (h) {
    case HashPolicy::five_tuple: return "5-tuple";
    case HashPolicy::src_ip: return "src-ip";
    case HashPolicy::src_ip_dst_port: return "src-ip-dst-port";
    case HashPolicy::dst_port: return "dst-port";
    }
    return "?";
}

const char* to_string(Encap e)
{
    return e == Encap::gue ? "gue" : "ipip";
}

const char* to_string(CheckVia v)
{
    return v == CheckVia::tunnel ? "tunnel" : "direct";
}

}  // namespace fulcrum::config
