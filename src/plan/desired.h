// The desired state of the data plane, derived from a validated config, the health checks' verdicts
// and operator overrides: pure data, no ids. make_desired makes it, TableCache::build adds the
// Maglev tables (plan/tables.h), and the reconciler turns it into map writes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <string>
#include <vector>

#include "abi.h"
#include "config/config.h"
#include "util/address.h"

namespace fulcrum::plan {

struct SlotTable;  // plan/tables.h

enum class BackendUse {
    active,    // in the Maglev table with its weight
    draining,  // out of the table; existing flows stay (config state: drain, weight 0, fulcrumctl)
    down,      // out of the table; existing flows re-hashed at once (failing health checks, also
               // when drained: a drained backend that is down cannot finish its flows)
};

struct BackendPlan {
    std::string address;  // canonical text; the backend's identity within its service
    fulcrum_addr addr{};
    std::uint8_t family = 0;
    std::uint32_t weight = 0;
    BackendUse use = BackendUse::active;
    bool drained = false;  // config state drain, weight 0 or fulcrumctl drain (whatever its use)
    std::uint32_t server_id = 0;  // QUIC server id (quic_ids entry), 0 = none
    bool operator==(const BackendPlan&) const = default;
};

struct ServicePlan {
    std::string name;
    fulcrum_service_key key{};
    std::string vip;      // canonical text, for labels and messages
    std::uint32_t table_size = FULCRUM_DEFAULT_TABLE_SIZE;
    std::uint32_t hash_omit = 0;  // abi.h FULCRUM_HASH_NO_*: the service's hash policy
    // QUIC connection-ID routing (abi.h fulcrum_service_value): 0 = off.
    std::uint8_t quic_id_offset = 0, quic_id_bits = 0;
    std::uint32_t encap = FULCRUM_ENCAP_IPIP;  // abi.h enum fulcrum_encap
    std::vector<BackendPlan> backends;  // in file order
    unsigned healthy = 0;  // non-drained backends whose health is up
    unsigned needed = 0;   // min_healthy as a count of this service's non-drained backends
    // Fewer healthy than needed: every non-drained backend is used, down or not, rather than
    // sending the service's traffic nowhere (the panic threshold).
    bool panic = false;
    // The Maglev table of the active backends, filled by TableCache::build (plan/tables.h);
    // shared with the cache and the applied state, never copied.
    std::shared_ptr<const SlotTable> table;
};

struct Desired {
    fulcrum_settings settings{};
    std::vector<ServicePlan> services;  // in file order
};

// Runtime decisions layered over the file: operator drains (fulcrumctl drain, kept across
// reloads until undrained) and the backends whose health checks fail.
struct Overrides {
    std::set<std::pair<std::string, std::string>> drained;  // (service, canonical backend address)
    std::set<std::pair<std::string, std::string>> down;     // failing health checks
};

// A hash policy as the data plane holds it (fulcrum_service_value.hash_omit: the fields of the
// flow left out of the Maglev hash), and back to its config word (an unknown value: "omit N").
std::uint32_t hash_omit_of(config::HashPolicy policy);
std::string hash_policy_name(std::uint32_t hash_omit);
// An encapsulation as the data plane holds it (fulcrum_service_value.encap) by its config word.
std::string encap_name(std::uint32_t encap);

// `hash_seed` is the seed in force (choose_hash_seed below), not necessarily the file's.
Desired make_desired(const config::Config& config, std::uint32_t hash_seed, const Overrides& overrides = {});

// The flow-hash seed (flow hash and Maglev permutations). Public knowledge of the seed lets anyone
// craft tuples that all land on one backend, so a balancer never runs with a guessable one unless
// the file says so:
//   - bpf.hash_seed in the file wins (every balancer of an ECMP group must share one);
//   - else the seed pinned with the maps by an earlier fulcrumd (a restart keeps every flow's
//     backend); a pinned 0 is not kept: it is what a fresh map holds, and the public default of
//     older versions;
//   - else a new random one, never 0.
enum class SeedSource { config, pinned, generated };
struct SeedChoice {
    std::uint32_t seed = 0;
    SeedSource source = SeedSource::config;
};
SeedChoice choose_hash_seed(std::optional<std::uint32_t> configured, std::uint32_t pinned,
                            const std::function<std::uint32_t()>& random);
const char* to_string(SeedSource source);  // "config" | "pinned" | "generated"
// 32 random bits from getrandom(2) (std::random_device if it fails).
std::uint32_t random_seed();

fulcrum_addr to_fulcrum_addr(const config::Address& address);
// Canonical text of an address (inet_ntop): the identity of a backend within its service.
using fulcrum::address_text;
std::uint8_t to_fulcrum_family(const config::Address& address);

}  // namespace fulcrum::plan
