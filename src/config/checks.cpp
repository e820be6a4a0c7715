// Checks across values of a config (see checks.h).
#include "config/checks.h"

#include <sys/socket.h>

#include <map>
#include <string>

namespace fulcrum::config::detail {
namespace {

// An address as a map key: equal keys exactly when Address::operator== holds.
std::string key_of(const Address& a)
{
    std::size_t length = a.family == AF_INET ? 4 : 16;
    return std::string(1, static_cast<char>(a.family)) + std::string(reinterpret_cast<const char*>(a.bytes), length);
}

std::string first_at(const Spot& first)
{
    return " (first at line " + std::to_string(first.line) + ")";
}

// Interface names and service names are identities: two of the same would fight over one thing.
void check_unique_names(const Config& config, const Spots& spots, Errors& errors)
{
    for (std::size_t i = 0; i < config.interfaces.size(); ++i) {
        if (!spots.interface_names[i]) continue;
        for (std::size_t j = 0; j < i; ++j)
            if (spots.interface_names[j] && config.interfaces[j].name == config.interfaces[i].name) {
                errors.add(*spots.interface_names[i], "duplicate interface \"" + config.interfaces[i].name +
                                                          "\"" + first_at(*spots.interface_names[j]));
                break;
            }
    }
    for (std::size_t i = 0; i < config.services.size(); ++i) {
        if (!spots.services[i].name) continue;
        for (std::size_t j = 0; j < i; ++j)
            if (spots.services[j].name && config.services[j].name == config.services[i].name) {
                errors.add(*spots.services[i].name, "duplicate service name \"" + config.services[i].name +
                                                        "\"" + first_at(*spots.services[j].name));
                break;
            }
    }
}

// The data plane keys services by (vip, port, protocol): a second service with the same key
// would silently replace the first.
void check_unique_service_keys(const Config& config, const Spots& spots, Errors& errors)
{
    auto complete = [&](std::size_t i) {
        const ServiceSpots& s = spots.services[i];
        return s.vip && s.port && s.protocol;
    };
    for (std::size_t i = 0; i < config.services.size(); ++i) {
        if (!complete(i)) continue;
        const Service& b = config.services[i];
        for (std::size_t j = 0; j < i; ++j) {
            const Service& a = config.services[j];
            if (!complete(j) || !(a.vip == b.vip) || a.port != b.port || a.protocol != b.protocol) continue;
            std::string other =
                spots.services[j].name ? "service \"" + a.name + "\"" : "services[" + std::to_string(j) + "]";
            errors.add(*spots.services[i].vip, "vip " + b.vip.text + " port " + std::to_string(b.port) + " " +
                                                   to_string(b.protocol) + " is already used by " + other +
                                                   first_at(*spots.services[j].vip));
            break;
        }
    }
}

void check_backends(const Config& config, const Spots& spots, Errors& errors)
{
    for (std::size_t i = 0; i < config.services.size(); ++i) {
        const Service& service = config.services[i];
        const ServiceSpots& where = spots.services[i];
        std::map<std::string, std::size_t> first_with;  // address (family and bytes) -> backend index
        std::map<std::uint32_t, std::size_t> first_with_id;  // QUIC server id -> backend index
        for (std::size_t k = 0; k < service.backends.size(); ++k) {
            // Two backends with one server id: packets naming it could go to either.
            if (k < where.backend_server_ids.size() && where.backend_server_ids[k]) {
                auto [first, inserted] = first_with_id.try_emplace(service.backends[k].server_id, k);
                if (!inserted)
                    errors.add(*where.backend_server_ids[k],
                               "duplicate server_id " + std::to_string(service.backends[k].server_id) +
                                   first_at(*where.backend_server_ids[first->second]));
            }
            if (!where.backend_addresses[k]) continue;
            const Address& address = service.backends[k].address;
            // The data plane has no IPv6-in-IPv4 encapsulation (IPv4-in-IPv6 is fine).
            if (where.vip && service.vip.family == AF_INET6 && address.family == AF_INET) {
                errors.add(*where.backend_addresses[k],
                           "expected an IPv6 backend for the IPv6 vip " + service.vip.text +
                               " (IPv6 in IPv4 is not supported), got \"" + address.text + "\"");
                continue;
            }
            // The first backend with this address, by value (a map: a service may have 100,000s).
            auto [first, inserted] = first_with.try_emplace(key_of(address), k);
            if (!inserted)
                errors.add(*where.backend_addresses[k],
                           "duplicate backend " + address.text + first_at(*where.backend_addresses[first->second]));
        }
    }
}

// A tunnel's outer source has the backend's family; the first backend that needs a missing source
// is the one reported, since fixing the tunnel section fixes them all.
void check_tunnel_sources(const Config& config, const Spots& spots, Errors& errors)
{
    bool need_v4 = !spots.source_v4_given, need_v6 = !spots.source_v6_given;
    for (std::size_t i = 0; i < config.services.size(); ++i) {
        const Service& service = config.services[i];
        for (std::size_t k = 0; k < service.backends.size(); ++k) {
            const auto& where = spots.services[i].backend_addresses[k];
            if (!where) continue;
            int family = service.backends[k].address.family;
            if (family == AF_INET && need_v4) {
                errors.add(
                    *where,
                    "an IPv4 backend needs tunnel.source_v4 (the outer source address), which is not set");
                need_v4 = false;
            } else if (family == AF_INET6 && need_v6) {
                errors.add(
                    *where,
                    "an IPv6 backend needs tunnel.source_v6 (the outer source address), which is not set");
                need_v6 = false;
            }
        }
    }
}

// A check through the tunnel leaves from the tunnel source of the VIP's family (the inner source,
// to which the backend answers); that of the backend's family is the outer one (above).
void check_tunnel_check_sources(const Config& config, const Spots& spots, Errors& errors)
{
    for (std::size_t i = 0; i < config.services.size(); ++i) {
        const Service& service = config.services[i];
        const auto& vip = spots.services[i].vip;
        if (!vip) continue;
        bool via_tunnel = service.healthcheck.via == CheckVia::tunnel;
        for (const Backend& b : service.backends)
            via_tunnel = via_tunnel || (b.healthcheck && b.healthcheck->via == CheckVia::tunnel);
        if (!via_tunnel) continue;
        const bool v4 = service.vip.family == AF_INET;
        if (v4 ? spots.source_v4_given : spots.source_v6_given) continue;
        errors.add(*vip, std::string("health checks through the tunnel (via: tunnel) to this ") +
                             (v4 ? "IPv4 VIP need tunnel.source_v4" : "IPv6 VIP need tunnel.source_v6") +
                             " (their source address), which is not set");
    }
}

}  // namespace

void check_consistency(const Config& config, const Spots& spots, Errors& errors)
{
    check_unique_names(config, spots, errors);
    check_tunnel_check_sources(config, spots, errors);
    check_unique_service_keys(config, spots, errors);
    check_backends(config, spots, errors);
    check_tunnel_sources(config, spots, errors);
}

}  // namespace fulcrum::config::detail
