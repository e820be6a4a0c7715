// VIP host routes over the netlink layer (netlink/netlink.h): list, add and delete /32 and /128
// routes of one routing protocol number in one kernel table. Blocking calls on a NETLINK_ROUTE
// socket (the kernel answers at once); every failure is returned as an errno, never thrown.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "netlink/netlink.h"

namespace fulcrum::routes {

// A host route's destination: an IPv4 (/32) or IPv6 (/128) address in network byte order.
struct HostRoute {
    int family = 0;                      // AF_INET or AF_INET6
    std::array<std::uint8_t, 16> addr{}; // IPv4 in addr[0..3], the rest zero
    auto operator<=>(const HostRoute&) const = default;
    std::string text() const;            // inet_ntop form
};

class Rtnetlink {
public:
    Rtnetlink() = default;
    Rtnetlink(const Rtnetlink&) = delete;
    Rtnetlink& operator=(const Rtnetlink&) = delete;

    // Every host route of `protocol` in `table` (both families), in *out. 0 or an errno.
    int list(std::uint32_t table, std::uint8_t protocol, std::vector<HostRoute>* out);
    // `ip route add ADDR/32 dev lo table TABLE proto PROTOCOL` (type unicast; /128 for IPv6),
    // never replacing a route that is there: EEXIST then. 0 or an errno.
    int add(std::uint32_t table, std::uint8_t protocol, const HostRoute& route);
    // Deletes that route, only if it has `protocol`. A route already gone is success. 0 or an errno.
    int remove(std::uint32_t table, std::uint8_t protocol, const HostRoute& route);

private:
    int open_socket();
    int dump(int family, std::uint32_t table, std::uint8_t protocol, std::vector<HostRoute>* out);
    netlink::Socket socket_;
};

}  // namespace fulcrum::routes
