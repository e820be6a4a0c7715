// The standard services the balancer's BPF tests run against (packet tables and the fuzzer):
// VIPs, services, backends and Maglev tables, written into a fresh BalancerLab.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lab.h"

namespace fulcrum::test {

inline const std::string kVip4 = "198.18.100.1", kVip4Port0 = "198.18.100.2", kVip4Empty = "198.18.100.3",
                         kVip4NoNeigh = "198.18.100.4", kVip4NoRoute = "198.18.100.5",
                         kVip4Other = "198.18.100.6", kVip4Multi = "198.18.100.7", kVip6 = "2001:db8:100::1";

// A Maglev table of `size` slots all naming `backend`.
std::vector<std::uint32_t> fill(std::uint32_t backend, std::size_t size = 7);

// The services every table runs against (ids are the services' and backends' map keys).
void standard_services(BalancerLab& lab);

}  // namespace fulcrum::test
