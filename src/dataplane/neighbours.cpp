// Neighbour resolution: UDP nudges and an RTM_GETNEIGH dump on the netlink layer; see neighbours.h.
#include "dataplane/neighbours.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "dataplane/rtnl.h"
#include "netlink/netlink.h"
#include "util/address.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

using AddrKey = std::pair<std::uint8_t, std::string>;  // family, raw bytes

AddrKey key_of(std::uint8_t family, const void* bytes)
{
    std::size_t n = family == FULCRUM_AF_INET ? 4 : 16;
    return {family, std::string(static_cast<const char*>(bytes), n)};
}

// A UDP socket per family serves up to kNudgesPerSocket nudges: opening and closing one per
// backend was two more syscalls (and a socket's setup) for each of 100,000 backends at start.
// Not one for all: a nudge towards an unresolved neighbour waits in its ARP/ND queue, charged to
// the socket's send buffer (~200 KiB, some 270 of these datagrams), and a full buffer would refuse
// the nudges after it; 128 per socket stays well inside, as one per socket did.
class Nudger {
public:
    ~Nudger()
    {
        for (int fd : {v4_, v6_})
            if (fd >= 0)
                close(fd);
    }
    void nudge(const NeighbourTarget& t)
    {
        static constexpr unsigned kNudgesPerSocket = 128;
        const bool v4 = t.family == FULCRUM_AF_INET;
        int& fd = v4 ? v4_ : v6_;
        unsigned& used = v4 ? v4_used_ : v6_used_;
        if (fd >= 0 && used == kNudgesPerSocket) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            fd = socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            used = 0;
        }
        if (fd < 0)
            return;
        used++;
        if (v4) {
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
    }

private:
    int v4_ = -1, v6_ = -1;
    unsigned v4_used_ = 0, v6_used_ = 0;
};

// Addresses with a valid (usable by bpf_fib_lookup) neighbour entry, from one netlink dump; empty
// when the dump fails (the caller then waits and tries again until its deadline). A failure is
// logged, at most once a minute: otherwise every neighbour would just look unresolved.
std::set<AddrKey> valid_neighbours()
{
    static log::EveryMinute limit;
    std::set<AddrKey> valid;
    netlink::Socket socket;
    if (int e = netlink::Socket::open({}, &socket); e != 0) {
        if (limit.due())
            LOG_WARN("neighbours: cannot open a netlink socket: %s (logged at most once a minute)", std::strerror(e));
        return valid;
    }
    netlink::Message request(RTM_GETNEIGH, NLM_F_DUMP);
    request.fixed<ndmsg>()->ndm_family = AF_UNSPEC;
    const int e = socket.transact(request, [&](const nlmsghdr* m) {
        const auto* nd = netlink::fixed_of<ndmsg>(m);
        if (m->nlmsg_type != RTM_NEWNEIGH || !nd || !rtnl::neighbour_state_valid(nd->ndm_state) ||
            (nd->ndm_family != AF_INET && nd->ndm_family != AF_INET6))
            return;
        const std::uint8_t family = nd->ndm_family == AF_INET ? FULCRUM_AF_INET : FULCRUM_AF_INET6;
        std::span<const std::uint8_t> dst = netlink::Attributes(m, sizeof(ndmsg)).bytes(NDA_DST);
        if (dst.size() == (family == FULCRUM_AF_INET ? 4u : 16u))
            valid.insert(key_of(family, dst.data()));
    });
    // EINTR: the dump was interrupted by a change; the caller asks again.
    if (e != 0 && e != EINTR && limit.due())
        LOG_WARN("neighbours: cannot dump the neighbour table: %s (logged at most once a minute)", std::strerror(e));
    return valid;
}

// The next hop of each target: its route's gateway, or the target itself when on-link or when
// no route is found (one RTM_GETROUTE each, asked in batches on one socket). A backend behind a
// gateway never gets an entry of its own; its gateway's is the one bpf_fib_lookup and the next-hop
// cache need, so that is what to nudge and wait for, once per gateway.
std::vector<NeighbourTarget> next_hops_of(const std::vector<NeighbourTarget>& targets)
{
    std::vector<NeighbourTarget> out = targets;
    if (targets.empty())
        return out;
    Result<rtnl::Client> client = rtnl::Client::open();
    if (!client.ok())
        return out;  // each target waited for itself, as without routes
    constexpr std::size_t kChunk = 1024;  // answers held at a time
    std::vector<rtnl::Client::RouteQuestion> questions;
    for (std::size_t first = 0; first < out.size(); first += kChunk) {
        const std::size_t end = std::min(out.size(), first + kChunk);
        questions.clear();
        for (std::size_t i = first; i < end; i++)
            questions.push_back({out[i].family, out[i].addr, nullptr, false});
        std::vector<Result<rtnl::Route>> routes = client->routes(questions);
        for (std::size_t i = first; i < end; i++)
            if (const Result<rtnl::Route>& r = routes[i - first]; r.ok() && r->gateway && !r->via)
                out[i].addr = *r->gateway;
    }
    return out;
}

}  // namespace

void nudge_neighbours(const std::vector<NeighbourTarget>& targets)
{
    Nudger nudger;
    for (const NeighbourTarget& t : targets)
        nudger.nudge(t);
}

void NeighbourWaiter::start(std::vector<NeighbourTarget> targets, std::chrono::milliseconds wait, Done done)
{
    deadline_ = std::chrono::steady_clock::now() + wait;
    done_ = std::move(done);
    // Targets with a valid entry now are done; the others wait for their next hop's entry, and
    // each distinct next hop is nudged once (100,000 backends behind one router: one nudge).
    if (!targets.empty()) {
        std::set<AddrKey> valid = valid_neighbours();
        std::erase_if(targets, [&](const NeighbourTarget& t) { return valid.contains(key_of(t.family, t.addr.w)); });
    }
    std::vector<NeighbourTarget> hops = next_hops_of(targets);
    missing_.clear();
    std::set<AddrKey> nudged;
    std::vector<NeighbourTarget> nudges;
    for (std::size_t i = 0; i < targets.size(); i++) {
        missing_.push_back({targets[i], hops[i]});
        if (nudged.insert(key_of(hops[i].family, hops[i].addr.w)).second)
            nudges.push_back(hops[i]);
    }
    nudge_neighbours(nudges);
    poll();
}

// One dump (a few netlink messages per neighbour entry: quick, so it runs on the loop itself);
// then either done or another 20 ms on the timer.
void NeighbourWaiter::poll()
{
    std::set<AddrKey> valid = missing_.empty() ? std::set<AddrKey>{} : valid_neighbours();
    std::erase_if(missing_,
                  [&](const Waiting& w) { return valid.contains(key_of(w.next_hop.family, w.next_hop.addr.w)); });
    if (!missing_.empty() && std::chrono::steady_clock::now() < deadline_) {
        timer_.expires_after(std::chrono::milliseconds(20));
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec)  // aborted: the waiter is gone (shut-down); `this` must not be touched
                poll();
        });
        return;
    }
    std::vector<std::string> names;
    for (const Waiting& w : missing_)
        names.push_back(address_text(w.target.addr, w.target.family));
    missing_.clear();
    Done done = std::move(done_);
    done_ = nullptr;
    done(std::move(names));
}

std::vector<std::string> resolve_neighbours(const std::vector<NeighbourTarget>& targets,
                                            std::chrono::milliseconds wait)
{
    boost::asio::io_context io;
    NeighbourWaiter waiter(io);
    std::vector<std::string> missing;
    waiter.start(targets, wait, [&](std::vector<std::string> m) { missing = std::move(m); });
    io.run();
    return missing;
}

}  // namespace fulcrum::dataplane
