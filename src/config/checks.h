// Checks across values (duplicates, address families, tunnel sources), run once the whole file
// has been read into a Config, pointing back at the values with the spots the walk kept.
#pragma once

#include <optional>
#include <vector>

#include "abi.h"
#include "config/config.h"
#include "config/yaml_walk.h"

namespace fulcrum::config::detail {

// What the data-plane maps hold (xdp/abi.h). Ids 0 mean "none" in the maps, so services and
// backends get 1..MAX-1. The walk stops reading a list one item past its limit: check_capacity
// reports that item, and nothing after it is built (YAML aliases could repeat it endlessly).
constexpr std::size_t kMaxServices = FULCRUM_MAX_SERVICES - 1;
constexpr std::size_t kMaxBackends = FULCRUM_MAX_BACKENDS - 1;
constexpr std::size_t kMaxInterfaces = FULCRUM_MAX_INTERFACES;

// Where the walk found the values these checks point at. A spot is empty when its value was
// missing or invalid: that was reported already, and a check built on it would only add noise.
struct ServiceSpots {
    Spot at;  // the service's item in the list
    std::optional<Spot> name, vip, port, protocol;
    std::vector<std::optional<Spot>> backend_addresses;  // parallel to Service::backends
    std::vector<std::optional<Spot>> backend_server_ids; // parallel to Service::backends (valid ids)
};

struct Spots {
    std::vector<std::optional<Spot>> interface_names;  // parallel to Config::interfaces
    Spot interfaces_at;                                // the interfaces list
    std::vector<ServiceSpots> services;                // parallel to Config::services
    bool source_v4_given = false;                      // the key is present, valid or not
    bool source_v6_given = false;
    std::optional<Spot> hash_seed;                     // bpf.hash_seed, when valid
};

void check_consistency(const Config& config, const Spots& spots, Errors& errors);
// What the data-plane maps can hold (config/limits.cpp): counts per map against xdp/abi.h.
void check_capacity(const Config& config, const Spots& spots, Errors& errors);

}  // namespace fulcrum::config::detail
