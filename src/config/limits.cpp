// What the maps can hold (xdp/abi.h): a file that asks for more is refused by --check and by a
// reload, at the first item that does not fit, instead of failing half-way through the map
// writes. The limits are the maps' own sizes (and the id ranges the daemon hands out).
#include <string>
#include <vector>

#include "abi.h"
#include "config/checks.h"

namespace fulcrum::config::detail {

// Every VIP has a service, so the service limit keeps the VIPs within the vips map too.
static_assert(FULCRUM_MAX_VIPS >= FULCRUM_MAX_SERVICES - 1, "config/limits.cpp: add a check of distinct VIPs");

void check_capacity(const Config& config, const Spots& spots, Errors& errors)
{
    if (config.interfaces.size() > kMaxInterfaces) {
        const auto& where = spots.interface_names[kMaxInterfaces];
        errors.add(where ? *where : spots.interfaces_at,
                   "interface " + std::to_string(kMaxInterfaces + 1) + " is one too many: the balancer redirects to at "
                   "most " + std::to_string(kMaxInterfaces) + " interfaces (tx_ports map, FULCRUM_MAX_INTERFACES)");
    }
    if (config.services.size() > kMaxServices)
        errors.add(spots.services[kMaxServices].at,
                   "service " + std::to_string(kMaxServices + 1) + " is one too many: the data plane holds at most " +
                       std::to_string(kMaxServices) + " services (services and maglev_tables maps, ids 1.." +
                       std::to_string(kMaxServices) + ")");
    std::size_t backends = 0;
    bool backends_reported = false;
    for (std::size_t i = 0; i < config.services.size(); ++i) {
        const Service& service = config.services[i];
        const ServiceSpots& where = spots.services[i];
        for (std::size_t k = 0; k < service.backends.size() && !backends_reported; ++k) {
            if (++backends <= kMaxBackends)
                continue;
            const auto& at = where.backend_addresses[k];
            errors.add(at ? *at : where.at,
                       "backend " + std::to_string(kMaxBackends + 1) + " (counted over all services) is one too "
                       "many: the data plane holds at most " + std::to_string(kMaxBackends) +
                       " backends (backends map, ids 1.." + std::to_string(kMaxBackends) + ")");
            backends_reported = true;
        }
    }
}

}  // namespace fulcrum::config::detail
