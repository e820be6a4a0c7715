// Config -> desired data-plane state.
#include "plan/desired.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <sys/random.h>

#include <cmath>
#include <random>
#include <cstring>

namespace fulcrum::plan {

fulcrum_addr to_fulcrum_addr(const config::Address& address)
{
    fulcrum_addr a{};
    std::memcpy(a.w, address.bytes, address.family == AF_INET ? 4 : 16);
    return a;
}

std::uint8_t to_fulcrum_family(const config::Address& address)
{
    return address.family == AF_INET ? FULCRUM_AF_INET : FULCRUM_AF_INET6;
}

static_assert(config::Tunnel{}.gue_port == FULCRUM_GUE_DEFAULT_PORT, "one default GUE port");

namespace {

// The low `bits` bits of a 32-bit word, in network order, as the "vary" mask of the settings.
__be32 low_bits_mask(unsigned bits)
{
    std::uint32_t mask = bits >= 32 ? 0xffffffffu : (1u << bits) - 1;
    return htonl(mask);
}

fulcrum_settings make_settings(const config::Config& config, std::uint32_t hash_seed)
{
    fulcrum_settings s{};
    const config::Tunnel& t = config.tunnel;
    if (t.source_v4)
        s.source_v4 = to_fulcrum_addr(*t.source_v4).w[0];
    if (t.source_v6)
        s.source_v6 = to_fulcrum_addr(*t.source_v6);
    s.source_v4_vary = low_bits_mask(t.source_v4_vary_bits);
    s.source_v6_vary = low_bits_mask(t.source_v6_vary_bits);
    if (t.source_v4_vary_bits || t.source_v6_vary_bits)
        s.flags |= FULCRUM_SETTING_VARY_SOURCE;
    s.hash_seed = hash_seed;
    s.new_flows_per_second = config.flows.new_per_second;
    s.icmp_replies_per_second = config.icmp.replies_per_second;
    s.gue_port = htons(t.gue_port);
    return s;
}

}  // namespace

SeedChoice choose_hash_seed(std::optional<std::uint32_t> configured, std::uint32_t pinned,
                            const std::function<std::uint32_t()>& random)
{
    if (configured)
        return {*configured, SeedSource::config};
    if (pinned != 0)
        return {pinned, SeedSource::pinned};
    // 0 would read as "no seed" at the next start; a source that keeps giving 0 is broken, and a
    // fixed odd constant is still better than 0 (and is visible in tests).
    for (int i = 0; i < 16; i++)
        if (std::uint32_t v = random(); v != 0)
            return {v, SeedSource::generated};
    return {0x9e3779b9u, SeedSource::generated};
}

const char* to_string(SeedSource source)
{
    switch (source) {
    case SeedSource::config: return "config";
    case SeedSource::pinned: return "pinned";
    case SeedSource::generated: return "generated";
    }
    return "?";
}

std::uint32_t random_seed()
{
    std::uint32_t v = 0;
    if (getrandom(&v, sizeof v, 0) == static_cast<ssize_t>(sizeof v))
        return v;
    std::random_device device;
    return static_cast<std::uint32_t>(device());
}

std::uint32_t hash_omit_of(config::HashPolicy policy)
{
    switch (policy) {
    case config::HashPolicy::five_tuple: return 0;
    case config::HashPolicy::src_ip: return FULCRUM_HASH_NO_SRC_PORT | FULCRUM_HASH_NO_DST_PORT;
    case config::HashPolicy::src_ip_dst_port: return FULCRUM_HASH_NO_SRC_PORT;
    case config::HashPolicy::dst_port: return FULCRUM_HASH_NO_SRC_ADDR | FULCRUM_HASH_NO_SRC_PORT;
    }
    return 0;
}

std::string encap_name(std::uint32_t encap)
{
    if (encap == FULCRUM_ENCAP_IPIP) return config::to_string(config::Encap::ipip);
    if (encap == FULCRUM_ENCAP_GUE) return config::to_string(config::Encap::gue);
    return "encap " + std::to_string(encap);  // not one the config can ask for (adopted state)
}

std::string hash_policy_name(std::uint32_t hash_omit)
{
    for (config::HashPolicy p : {config::HashPolicy::five_tuple, config::HashPolicy::src_ip,
                                 config::HashPolicy::src_ip_dst_port, config::HashPolicy::dst_port})
        if (hash_omit_of(p) == hash_omit)
            return config::to_string(p);
    return "omit " + std::to_string(hash_omit);  // not one the config can ask for (adopted state)
}

Desired make_desired(const config::Config& config, std::uint32_t hash_seed, const Overrides& overrides)
{
    Desired d;
    d.settings = make_settings(config, hash_seed);
    for (const config::Service& svc : config.services) {
        ServicePlan plan;
        plan.name = svc.name;
        plan.vip = address_text(to_fulcrum_addr(svc.vip), to_fulcrum_family(svc.vip));
        plan.key.vip = to_fulcrum_addr(svc.vip);
        plan.key.family = to_fulcrum_family(svc.vip);
        plan.key.port = htons(svc.port);
        plan.key.proto = svc.protocol == config::Protocol::tcp ? IPPROTO_TCP : IPPROTO_UDP;
        plan.table_size = svc.table_size;
        plan.hash_omit = hash_omit_of(svc.hash);
        if (svc.quic) {  // abi.h: the id's first byte in the UDP payload, after the header's first byte
            plan.quic_id_offset = static_cast<std::uint8_t>(1 + svc.quic->server_id_offset);
            plan.quic_id_bits = static_cast<std::uint8_t>(svc.quic->server_id_bits);
        }
        plan.encap = svc.encap == config::Encap::gue ? FULCRUM_ENCAP_GUE : FULCRUM_ENCAP_IPIP;
        for (const config::Backend& b : svc.backends) {
            BackendPlan bp;
            bp.addr = to_fulcrum_addr(b.address);
            bp.family = to_fulcrum_family(b.address);
            bp.address = address_text(bp.addr, bp.family);
            bp.weight = b.weight;
            bp.server_id = b.server_id;
            bp.drained = b.state == config::BackendState::drain || b.weight == 0 ||
                         overrides.drained.contains({svc.name, bp.address});
            bool down = overrides.down.contains({svc.name, bp.address});
            // Down wins over drain: draining keeps flows for a backend that can finish them; a
            // drained backend failing its checks would black-hole its clients (TCP entries never
            // expire), so its flows are re-hashed at once like any down backend's.
            bp.use = down ? BackendUse::down : bp.drained ? BackendUse::draining : BackendUse::active;
            plan.backends.push_back(bp);
        }
        // The panic threshold counts non-drained backends; drained ones never count, up or down.
        unsigned candidates = 0;
        for (const BackendPlan& bp : plan.backends)
            if (!bp.drained) {
                candidates++;
                plan.healthy += bp.use == BackendUse::active;
            }
        const config::MinHealthy& min = svc.min_healthy;
        plan.needed = min.is_fraction ? static_cast<unsigned>(std::ceil(min.value * candidates - 1e-9))
                                      : static_cast<unsigned>(min.value);
        plan.panic = candidates > 0 && plan.healthy < plan.needed;
        if (plan.panic)
            for (BackendPlan& bp : plan.backends)
                if (bp.use == BackendUse::down && !bp.drained)
                    bp.use = BackendUse::active;
        d.services.push_back(std::move(plan));
    }
    return d;
}

}  // namespace fulcrum::plan
