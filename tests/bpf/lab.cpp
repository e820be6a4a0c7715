// The BPF test lab: see lab.h.
#include "lab.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <net/if.h>
#include <sched.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "flow_hash.h"

namespace fulcrum::test {
namespace {

void sh(const std::string& command)
{
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
        throw std::runtime_error("lab setup failed: " + command);
}

void write_sysctl(const std::string& path, const std::string& value)
{
    std::ofstream f(path);
    f << value;
    if (!f)
        throw std::runtime_error("lab setup failed: cannot write " + path);
}

std::string mac_text(Mac m)
{
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3],
                  m.b[4], m.b[5]);
    return buf;
}

}  // namespace

Mac backend_mac(const std::string& address)
{
    Bytes a = addr_bytes(address);
    std::size_t n = a.size();
    return Mac{{0x02, 0xbe, a[n - 4], a[n - 3], a[n - 2], a[n - 1]}};
}

void enter_lab_namespace()
{
    static bool entered = false;
    if (entered)
        return;
    if (unshare(CLONE_NEWNET) != 0)
        throw std::runtime_error(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno));
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    sched_setaffinity(0, sizeof cpus, &cpus);

    sh("ip link set lo up");
    sh("ip link add fl-main address " + mac_text(kBalancerMac) + " type veth peer name fl-router address " +
       mac_text(kRouterMac));
    sh("ip link add fl-other address " + mac_text(kOtherMac) + " type veth peer name fl-other-peer");
    for (const char* dev : {"fl-main", "fl-router", "fl-other", "fl-other-peer"})
        sh(std::string("ip link set ") + dev + " up");
    sh("ip addr add " + kTunnelV4 + "/24 dev fl-main");
    sh("ip -6 addr add " + kTunnelV6 + "/64 dev fl-main nodad");
    sh("ip addr add " + kOtherNetHost + "/24 dev fl-other");
    // Clients are reached through the router on fl-main.
    sh("ip route add 198.18.50.0/24 via 198.18.0.254 dev fl-main");
    sh("ip neigh add 198.18.0.254 lladdr " + mac_text(kRouterMac) + " dev fl-main nud permanent");
    write_sysctl("/proc/sys/net/ipv4/conf/all/forwarding", "1");
    write_sysctl("/proc/sys/net/ipv4/conf/fl-main/forwarding", "1");
    write_sysctl("/proc/sys/net/ipv4/conf/fl-other/forwarding", "1");
    write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
    // Backend addresses with a neighbour entry (MAC derived from the address).
    for (const char* address : {"198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.21", "198.18.0.22",
                                "198.18.0.23", "2001:db8:0:1::11", "2001:db8:0:1::12", "2001:db8:0:1::13"})
        sh(std::string("ip neigh add ") + address + " lladdr " + mac_text(backend_mac(address)) +
           " dev fl-main nud permanent");
    sh("ip neigh add " + kOtherNetBackend + " lladdr " + mac_text(backend_mac(kOtherNetBackend)) +
       " dev fl-other nud permanent");
    entered = true;
}

int ifindex(const std::string& name)
{
    return static_cast<int>(if_nametoindex(name.c_str()));
}

fulcrum_addr to_addr(const std::string& address)
{
    fulcrum_addr a{};
    Bytes b = addr_bytes(address);
    std::memcpy(a.w, b.data(), b.size());
    return a;
}

std::uint8_t family_of(const std::string& address)
{
    return address.find(':') == std::string::npos ? FULCRUM_AF_INET : FULCRUM_AF_INET6;
}

BalancerLab::BalancerLab(std::uint64_t udp_idle_timeout_ns)
{
    enter_lab_namespace();
    dataplane::LoadOptions options;
    options.udp_idle_timeout_ns = udp_idle_timeout_ns;
    options.flow_capacity = 4096;
    auto program = dataplane::BalancerProgram::load(options);
    if (!program.ok())
        throw std::runtime_error(program.message());
    program_ = std::move(program).value();
    settings_.source_v4 = to_addr(kTunnelV4).w[0];
    settings_.source_v6 = to_addr(kTunnelV6);
    settings_.hash_seed = kHashSeed;
    settings_.gue_port = htons(FULCRUM_GUE_DEFAULT_PORT);
    REQUIRE(program_->set_settings(settings_).ok());
    REQUIRE(program_->put_tx_port(static_cast<std::uint32_t>(ifindex("fl-other"))).ok());
}

void BalancerLab::set_gue_port(std::uint16_t port)
{
    settings_.gue_port = htons(port);
    REQUIRE(program_->set_settings(settings_).ok());
}

void BalancerLab::set_rates(std::uint32_t new_flows_per_second, std::uint32_t icmp_replies_per_second)
{
    settings_.new_flows_per_second = new_flows_per_second;
    settings_.icmp_replies_per_second = icmp_replies_per_second;
    REQUIRE(program_->set_settings(settings_).ok());
}

Verdict BalancerLab::run(const Bytes& frame, const std::string& ingress)
{
    return run_xdp(program_->program_fd(), frame, ifindex(ingress));
}

Verdict run_xdp(int program_fd, const Bytes& frame, int ingress_ifindex)
{
    Verdict v;
    v.out.resize(frame.size() + 512);
    xdp_md ctx{};
    ctx.data_end = static_cast<std::uint32_t>(frame.size());
    ctx.ingress_ifindex = static_cast<std::uint32_t>(ingress_ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_out = v.out.data(), .data_size_in = static_cast<std::uint32_t>(frame.size()),
                .data_size_out = static_cast<std::uint32_t>(v.out.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof ctx, .repeat = 1);
    int err = bpf_prog_test_run_opts(program_fd, &opts);
    if (err != 0)
        throw std::runtime_error(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(errno));
    v.action = static_cast<int>(opts.retval);
    v.out.resize(opts.data_size_out);
    return v;
}

void BalancerLab::add_backend(std::uint32_t id, const std::string& address, std::uint32_t service_id,
                              fulcrum_backend_state state)
{
    fulcrum_backend b{};
    b.service_id = static_cast<std::uint16_t>(service_id);
    b.addr = to_addr(address);
    b.family = family_of(address);
    b.state = static_cast<std::uint8_t>(state);
    REQUIRE(program_->put_backend(id, b).ok());
    backends_[id] = b;
    backend_address_[id] = address;
}

void BalancerLab::set_backend_state(std::uint32_t id, fulcrum_backend_state state)
{
    add_backend(id, backend_address_.at(id), backends_.at(id).service_id, state);
}

void BalancerLab::add_service(std::uint32_t id, const std::string& vip, std::uint16_t port,
                              std::uint8_t proto, const std::vector<std::uint32_t>& table,
                              std::uint32_t hash_omit, std::uint32_t encap)
{
    fulcrum_vip_key vk{};
    vk.addr = to_addr(vip);
    vk.family = family_of(vip);
    fulcrum_vip_value vv{};
    // Keep the port-0 flags other services of the same VIP set.
    std::uint32_t& flags = vip_flags_[vip];
    if (port == 0)
        flags |= proto == kTcp ? FULCRUM_VIP_PORT0_TCP : FULCRUM_VIP_PORT0_UDP;
    for (std::uint32_t backend : table)
        if (backend != 0)
            flags |= FULCRUM_VIP_SERVING;  // echo is answered for this VIP
    vv.flags = flags;
    REQUIRE(program_->put_vip(vk, vv).ok());

    fulcrum_service_key sk{};
    sk.vip = vk.addr;
    sk.family = vk.family;
    sk.port = htons(port);
    sk.proto = proto;
    fulcrum_service_value sv{};
    sv.id = id;
    sv.table_size = static_cast<std::uint32_t>(table.size());
    sv.hash_omit = hash_omit;
    sv.encap = encap;
    hash_omit_[id] = hash_omit;
    set_table(id, table);
    REQUIRE(program_->put_service(sk, sv).ok());
    services_[id] = {sk, sv};
}

void BalancerLab::set_quic(std::uint32_t service_id, std::uint8_t quic_id_offset, std::uint8_t quic_id_bits)
{
    auto& [key, value] = services_.at(service_id);
    value.quic_id_offset = quic_id_offset;
    value.quic_id_bits = quic_id_bits;
    REQUIRE(program_->put_service(key, value).ok());
}

void BalancerLab::set_table(std::uint32_t service_id, const std::vector<std::uint32_t>& table)
{
    REQUIRE(program_->put_table(service_id, table).ok());
    if (tables_.size() <= service_id)
        tables_.resize(service_id + 1);
    tables_[service_id] = table;
}

Bytes BalancerLab::expected_encap(std::uint32_t backend_id, const Bytes& inner_ip, std::uint8_t tos,
                                  std::optional<std::uint16_t> vlan, std::uint32_t flow_hash,
                                  const std::string& source) const
{
    const std::string& backend = backend_address_.at(backend_id);
    bool inner_v4 = (inner_ip.at(0) >> 4) == 4;
    Mac src = backend == kOtherNetBackend ? kOtherMac : kBalancerMac;
    if (family_of(backend) == FULCRUM_AF_INET) {
        V4 outer{.src = source.empty() ? kTunnelV4 : source, .dst = backend, .proto = kIpip, .tos = tos, .ttl = 64, .id = 0,
                 .flags_frag = 0x4000, .options = {}};
        return ethernet(backend_mac(backend), src, kEthIPv4, ipv4(outer, inner_ip), vlan);
    }
    V6 outer{.src = source.empty() ? kTunnelV6 : source, .dst = backend, .next = inner_v4 ? kIpip : kIpv6, .traffic_class = tos,
             .flow_label = flow_hash & 0xfffff, .hop_limit = 64};
    return ethernet(backend_mac(backend), src, kEthIPv6, ipv6(outer, inner_ip), vlan);
}

fulcrum_flow_key BalancerLab::flow_key(const std::string& src, std::uint16_t sport,
                                       const std::string& dst, std::uint16_t dport,
                                       std::uint8_t proto) const
{
    fulcrum_flow_key k{};
    k.src = to_addr(src);
    k.dst = to_addr(dst);
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = proto;
    k.family = family_of(src);
    return k;
}

std::uint32_t BalancerLab::maglev_pick(std::uint32_t service_id, const fulcrum_flow_key& key) const
{
    auto omit = hash_omit_.find(service_id);
    return maglev_pick(service_id, key, omit == hash_omit_.end() ? 0 : omit->second);
}

std::uint32_t BalancerLab::maglev_pick(std::uint32_t service_id, const fulcrum_flow_key& key,
                                       std::uint32_t hash_omit) const
{
    const auto& table = tables_.at(service_id);
    const std::uint32_t hash = fulcrum_slot_hash(&key, kHashSeed, hash_omit, fulcrum_flow_hash(&key, kHashSeed));
    return table.at(hash % table.size());
}

}  // namespace fulcrum::test
