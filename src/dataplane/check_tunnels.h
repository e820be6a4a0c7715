// Health checks through the tunnel, the kernel side (README "Health checks through the tunnel"):
// the check-encap program and its map (xdp/check_encap.bpf.c), and the policy routing that hands
// it the packets of marked check sockets. For each family of VIPs checked this way:
//   ip rule add fwmark BASE/MASK lookup TABLE priority PRIORITY   (the numbers: xdp/check_tunnel.h)
//   ip rule add fwmark BASE/MASK unreachable priority PRIORITY+1  (when the route is gone)
//   ip route replace default dev IFACE table TABLE src SOURCE proto 201
//       encap bpf xmit fd PROGRAM headroom 48   (one route, written on two lines here)
// The map holds, per mark, the backend's tunnel as the balancer builds it for client packets.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "check_tunnel.h"
#include "config/config.h"
#include "netlink/netlink.h"
#include "util/status.h"

struct check_encap_bpf;

namespace fulcrum::dataplane {

// This fulcrumd's mark base and table (xdp/check_tunnel.h), from its first interface's index.
struct CheckNumbers {
    std::uint32_t mark_base = FULCRUM_CHECK_MARK_PREFIX;
    std::uint32_t table = FULCRUM_CHECK_TABLE_BASE;
};
CheckNumbers check_numbers(unsigned ifindex);

// What the kernel should hold for a config's checks through the tunnel.
struct CheckRouting {
    std::map<std::uint32_t, fulcrum_check_tunnel> tunnels;  // by the check sockets' mark
    // The inner source of the checks (the route's `src`, a local address of the balancer) for
    // each VIP family checked through the tunnel; unset: no VIP of that family is.
    std::optional<config::Address> source_v4, source_v6;
    bool empty() const { return tunnels.empty(); }
};

class CheckTunnels {
public:
    // Loads the program and its map (CAP_BPF, CAP_NET_ADMIN); routes go out by `interface`.
    // Removes a rule or route a previous fulcrumd left behind.
    static Result<std::unique_ptr<CheckTunnels>> load(std::string interface);
    ~CheckTunnels();  // removes the rules and routes (the program and map go with them)
    CheckTunnels(const CheckTunnels&) = delete;
    CheckTunnels& operator=(const CheckTunnels&) = delete;

    // Adds or updates everything `wanted` holds: its map entries, the rule and the route of each
    // family it uses. Removes nothing, so a reload installs the new file's needs first and the
    // running checks keep working if the reload fails. The error names what the kernel refused.
    Status install(const CheckRouting& wanted);
    // Removes what `wanted` lacks: map entries of other marks, the rule and route of a family it
    // does not use. Failures are logged (nothing depends on a leftover).
    void retire(const CheckRouting& wanted);
    // Puts back a rule or route the kernel removed (it deletes the route when the interface goes
    // down or the source address goes away; meanwhile the unreachable rule fails the checks).
    // Cheap (a few netlink requests): the daemon calls it every couple of seconds.
    Status refresh();
    const CheckNumbers& numbers() const { return numbers_; }

private:
    CheckTunnels(check_encap_bpf* skel, std::string interface, CheckNumbers numbers);
    Status install_family(int family, const config::Address& source);
    // Fails when another rule sends our mark base to another table (another fulcrumd).
    Status check_mark_is_ours(int family);
    Status add_rules(int family);
    // `replace`: NLM_F_REPLACE (install: the source may have changed) or NLM_F_EXCL (refresh).
    Status add_route(int family, const config::Address& source, std::uint16_t replace);
    void remove_family(int family);

    check_encap_bpf* skel_;
    std::string interface_;
    CheckNumbers numbers_;
    netlink::Socket socket_;
    std::map<std::uint32_t, fulcrum_check_tunnel> installed_;  // what the map holds
    std::optional<config::Address> sources_[2];  // the route's source per family installed (IPv4, IPv6)
};

}  // namespace fulcrum::dataplane
