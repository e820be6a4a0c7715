// The next-hop cache's rtnetlink queries, on the netlink layer (netlink/netlink.h): the kernel's
// answer for one route, one neighbour entry, one link, whether the policy-routing rules are the
// defaults, and a socket subscribed to the change notifications that can make a cached next hop
// wrong. Synchronous requests on a private socket (answers take microseconds); failures come back
// as a Result's Status, never as exceptions.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "abi.h"
#include "netlink/netlink.h"
#include "util/status.h"

namespace fulcrum::dataplane::rtnl {

// The kernel's NUD_VALID (include/net/neighbour.h, not in the uapi headers): the states in which
// bpf_fib_lookup uses a neighbour entry.
bool neighbour_state_valid(std::uint16_t state);

struct Route {
    std::uint8_t type = 0;           // RTN_*
    std::uint8_t src_len = 0;        // > 0: a source-specific (IPv6 subtree) route matched
    std::uint8_t tos = 0;
    std::uint32_t oif = 0;           // 0: none (multipath, or a nexthop object without compat info)
    std::optional<fulcrum_addr> gateway;
    bool multipath = false;          // RTA_MULTIPATH
    bool via = false;                // RTA_VIA (IPv4 route via an IPv6 gateway)
    bool encap = false;              // RTA_ENCAP (lightweight tunnel)
    std::uint32_t mtu_metric = 0;    // RTAX_MTU in RTA_METRICS: a route MTU or a PMTU exception
};

struct Neighbour {
    std::uint16_t state = 0;         // NUD_*
    std::optional<std::array<std::uint8_t, 6>> mac;  // NDA_LLADDR when it is 6 bytes
};

struct Link {
    std::string name;
    std::optional<std::array<std::uint8_t, 6>> mac;  // IFLA_ADDRESS when it is 6 bytes
    std::uint32_t mtu = 0;
};

// What of a link a cached next hop depends on: its flags (up, carrier), operational state, MTU,
// MAC address and master device (a VRF moves its routes).
struct LinkState {
    std::uint32_t flags = 0;  // ifi_flags
    std::uint8_t operstate = 0;
    std::uint32_t mtu = 0;
    std::optional<std::array<std::uint8_t, 6>> mac;
    std::uint32_t master = 0;
    bool operator==(const LinkState&) const = default;
};

// Requests on one private NETLINK_ROUTE socket (blocking, 1 s receive timeout).
class Client {
public:
    static Result<Client> open();

    // RTM_GETROUTE for dst (no RTA_IIF: an output lookup). fib_match: RTM_F_FIB_MATCH, the fib
    // entry itself (shows multipath and route metrics); otherwise the resolved route (shows a PMTU
    // exception in its metrics). src: RTA_SRC, only if given.
    Result<Route> route(std::uint8_t family, const fulcrum_addr& dst, const fulcrum_addr* src, bool fib_match);
    struct RouteQuestion {
        std::uint8_t family = 0;
        fulcrum_addr dst{};
        const fulcrum_addr* src = nullptr;
        bool fib_match = false;
    };
    // route() for each question, the same answers in the same order, asked in batches over the
    // one socket (netlink::Socket::ask_each) instead of one round trip each.
    std::vector<Result<Route>> routes(std::span<const RouteQuestion> questions);
    // RTM_GETNEIGH for (dst, ifindex); the failure "no entry" when there is none.
    Result<Neighbour> neighbour(std::uint8_t family, const fulcrum_addr& dst, std::uint32_t ifindex);
    Result<Link> link(std::uint32_t ifindex);
    // Every link's state, by ifindex (one RTM_GETLINK dump).
    Result<std::map<std::uint32_t, LinkState>> link_states();
    // True when the family's policy-routing rules are only the kernel's defaults (local, main,
    // default tables, no selectors), besides rules that only marked packets match (an unmarked
    // packet, as every one the data plane forwards, never meets them): then a route lookup does
    // not depend on the receiving interface, source or ports. A failure says which rule is not
    // (or why none could be read).
    Status default_rules_only(std::uint8_t family);

private:
    explicit Client(netlink::Socket s) : socket_(std::move(s)) {}
    // Sends the request and collects its answers (several for a dump). On failure the message is
    // the errno's text and errno is set.
    Status transact(netlink::Message& request, std::vector<std::vector<char>>* answers);
    netlink::Socket socket_;
};

// Change notifications that may change a next hop: neighbours, IPv4/IPv6 routes, rules, netconf
// (forwarding), links, nexthop objects. Non-blocking, large receive buffer.
Result<netlink::Socket> open_event_socket();

struct Event {
    enum class Kind { neighbour, link, other } kind = Kind::other;
    // neighbour events
    std::uint8_t family = 0;          // FULCRUM_AF_*
    fulcrum_addr addr{};
    std::uint32_t ifindex = 0;
    bool deleted = false;
    std::uint16_t state = 0;
    std::optional<std::array<std::uint8_t, 6>> mac;
    // link events (RTM_NEWLINK / RTM_DELLINK of family AF_UNSPEC): ifindex, deleted and this
    LinkState link;
};

// The links as last seen, to tell a link notification that changes nothing a next hop depends on
// (attaching an XDP program sends one: after fulcrumd's own attach at start, it had every one of
// 100,000 next hops resolved again, ~200,000 route questions) from one that may.
class LinkTracker {
public:
    void seed(std::map<std::uint32_t, LinkState> links) { links_ = std::move(links); }
    // Whether this link event may change a next hop: a link not seen before, a deleted one, or
    // any change of its LinkState. Records what it says.
    bool changes_something(const Event& e);

private:
    std::map<std::uint32_t, LinkState> links_;
};

// Reads every queued notification. Returns false when some were lost (ENOBUFS: the receive
// buffer overflowed), in which case the caller must assume anything changed.
bool read_events(netlink::Socket& socket, std::vector<Event>* out);

}  // namespace fulcrum::dataplane::rtnl
