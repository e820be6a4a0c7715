// The world the BPF table tests run in: a private network namespace (so bpf_fib_lookup sees a
// known set of routes and neighbours), the balancer loaded with a standard set of services, and
// BPF_PROG_TEST_RUN wrapped as "packet in -> verdict and packet out".
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abi.h"
#include "dataplane/balancer_program.h"
#include "packet.h"

namespace fulcrum::test {

// Addresses of the private namespace (LAB.md ranges). "main" is the interface packets arrive on.
inline constexpr Mac kBalancerMac{{0x02, 0, 0, 0, 0, 0x01}};   // main interface
inline constexpr Mac kRouterMac{{0x02, 0, 0, 0, 0, 0x02}};     // its peer: the client's router
inline constexpr Mac kOtherMac{{0x02, 0, 0, 0, 0, 0x03}};      // second interface
inline const std::string kTunnelV4 = "198.18.0.1", kTunnelV6 = "2001:db8:0:1::1";
inline const std::string kClientV4 = "198.18.50.7", kClientV6 = "2001:db8:50::7";
inline const std::string kOtherNetHost = "198.18.2.1", kOtherNetBackend = "198.18.2.11";
inline constexpr std::uint32_t kHashSeed = 0x5eed5eed;

// Enters a fresh network namespace for this process (once), with interfaces fl-main and
// fl-other, addresses, neighbours of the backends, forwarding on, and pins the process to
// CPU 0 so the per-CPU flow table is always the same one. Dies with the process.
void enter_lab_namespace();
int ifindex(const std::string& name);
Mac backend_mac(const std::string& address);  // the MAC of its neighbour entry

struct Verdict {
    int action = -1;
    Bytes out;
};

// One BPF_PROG_TEST_RUN of an XDP program on a frame, as received on interface ingress.
Verdict run_xdp(int program_fd, const Bytes& frame, int ingress_ifindex);

fulcrum_addr to_addr(const std::string& address);
std::uint8_t family_of(const std::string& address);

class BalancerLab {
public:
    explicit BalancerLab(std::uint64_t udp_idle_timeout_ns = 30'000'000'000ULL);

    Verdict run(const Bytes& frame, const std::string& ingress = "fl-main");
    // Per-CPU rate limits of the settings map (0 = no limit, the default here).
    void set_rates(std::uint32_t new_flows_per_second, std::uint32_t icmp_replies_per_second);

    // Configuration helpers (each checks the map write succeeded).
    void add_backend(std::uint32_t id, const std::string& address, std::uint32_t service_id,
                     fulcrum_backend_state state = FULCRUM_BACKEND_ACTIVE);
    void set_backend_state(std::uint32_t id, fulcrum_backend_state state);
    // hash_omit: the service's hash policy (abi.h FULCRUM_HASH_NO_*; 0 = the 5-tuple);
    // encap: its tunnel (enum fulcrum_encap).
    void add_service(std::uint32_t id, const std::string& vip, std::uint16_t port, std::uint8_t proto,
                     const std::vector<std::uint32_t>& table, std::uint32_t hash_omit = 0,
                     std::uint32_t encap = FULCRUM_ENCAP_IPIP);
    // The GUE port of the settings map (FULCRUM_GUE_DEFAULT_PORT unless set).
    void set_gue_port(std::uint16_t port);
    void set_table(std::uint32_t service_id, const std::vector<std::uint32_t>& table);
    // QUIC connection-ID routing of a service added before (abi.h fulcrum_service_value):
    // rewrites its entry with these fields (offset 0 = off).
    void set_quic(std::uint32_t service_id, std::uint8_t quic_id_offset, std::uint8_t quic_id_bits);

    // What the balancer must emit for a frame sent to backend_id: L2 to the backend's MAC from
    // ours (tag kept), outer header from our tunnel source, inner packet byte for byte.
    Bytes expected_encap(std::uint32_t backend_id, const Bytes& inner_ip, std::uint8_t tos,
                         std::optional<std::uint16_t> vlan = std::nullopt,
                         std::uint32_t flow_hash = 0, const std::string& source = "") const;
    // The backend the data plane must pick for a new flow, from the same hash (the service's
    // policy) and table.
    std::uint32_t maglev_pick(std::uint32_t service_id, const fulcrum_flow_key& key) const;
    // The same with the policy given (the fuzzer's model reads it from the services map).
    std::uint32_t maglev_pick(std::uint32_t service_id, const fulcrum_flow_key& key, std::uint32_t hash_omit) const;
    fulcrum_flow_key flow_key(const std::string& src, std::uint16_t sport, const std::string& dst,
                              std::uint16_t dport, std::uint8_t proto) const;

    dataplane::BalancerProgram& program() { return *program_; }

private:
    std::unique_ptr<dataplane::BalancerProgram> program_;
    fulcrum_settings settings_{};
    std::map<std::uint32_t, std::string> backend_address_;     // by id
    std::map<std::uint32_t, fulcrum_backend> backends_;        // by id
    std::vector<std::vector<std::uint32_t>> tables_;           // by service id
    std::map<std::uint32_t, std::uint32_t> hash_omit_;         // by service id
    std::map<std::string, std::uint32_t> vip_flags_;           // by VIP
    std::map<std::uint32_t, std::pair<fulcrum_service_key, fulcrum_service_value>> services_;  // by id
};

}  // namespace fulcrum::test
