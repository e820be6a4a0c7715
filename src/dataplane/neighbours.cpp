// Neighbour resolution: UDP nudges and an rtnetlink RTM_GETNEIGH dump; see neighbours.h.
#include "dataplane/neighbours.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <thread>

namespace fulcrum::dataplane {
namespace {

// The kernel's NUD_VALID (include/net/neighbour.h, not in the uapi headers): the states in
// which bpf_fib_lookup uses an entry.
constexpr unsigned kNudValid =
    NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY;

using AddrKey = std::pair<std::uint8_t, std::string>;  // family, raw bytes

AddrKey key_of(std::uint8_t family, const void* bytes)
{
    std::size_t n = family == FULCRUM_AF_INET ? 4 : 16;
    return {family, std::string(static_cast<const char*>(bytes), n)};
}

void nudge(const NeighbourTarget& t)
{
    int fd = socket(t.family == FULCRUM_AF_INET ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (t.family == FULCRUM_AF_INET) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(9);
        std::memcpy(&sa.sin_addr, t.addr.w, 4);
        sendto(fd, "", 0, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    } else {
        sockaddr_in6 sa{};
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(9);
        std::memcpy(&sa.sin6_addr, t.addr.w, 16);
        sendto(fd, "", 0, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    }
    close(fd);
}

// Addresses with a valid (usable by bpf_fib_lookup) neighbour entry, from one netlink dump.
std::set<AddrKey> valid_neighbours()
{
    std::set<AddrKey> valid;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return valid;
    struct {
        nlmsghdr nh;
        ndmsg nd;
    } req{};
    req.nh.nlmsg_len = sizeof req;
    req.nh.nlmsg_type = RTM_GETNEIGH;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nd.ndm_family = AF_UNSPEC;
    if (send(fd, &req, sizeof req, 0) < 0) {
        close(fd);
        return valid;
    }
    alignas(nlmsghdr) char buf[32768];
    for (bool done = false; !done;) {
        ssize_t len = recv(fd, buf, sizeof buf, 0);
        if (len <= 0)
            break;
        for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<unsigned>(len));
             nh = NLMSG_NEXT(nh, len)) {
            if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) {
                done = true;
                break;
            }
            auto* nd = static_cast<ndmsg*>(NLMSG_DATA(nh));
            if (!(nd->ndm_state & kNudValid))
                continue;
            int attr_len = static_cast<int>(RTM_PAYLOAD(nh));
            for (auto* a = RTM_RTA(nd); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len))
                if (a->rta_type == NDA_DST)
                    valid.insert(key_of(nd->ndm_family == AF_INET ? FULCRUM_AF_INET : FULCRUM_AF_INET6,
                                        RTA_DATA(a)));
        }
    }
    close(fd);
    return valid;
}

}  // namespace

std::vector<std::string> resolve_neighbours(const std::vector<NeighbourTarget>& targets,
                                            std::chrono::milliseconds wait)
{
    for (const NeighbourTarget& t : targets)
        nudge(t);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    std::vector<NeighbourTarget> missing = targets;
    while (true) {
        std::set<AddrKey> valid = valid_neighbours();
        std::erase_if(missing, [&](const NeighbourTarget& t) { return valid.contains(key_of(t.family, t.addr.w)); });
        if (missing.empty() || std::chrono::steady_clock::now() >= deadline)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::vector<std::string> names;
    for (const NeighbourTarget& t : missing) {
        char text[INET6_ADDRSTRLEN] = "";
        inet_ntop(t.family == FULCRUM_AF_INET ? AF_INET : AF_INET6, t.addr.w, text, sizeof text);
        names.push_back(text);
    }
    return names;
}

}  // namespace fulcrum::dataplane
