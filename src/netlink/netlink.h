// The one netlink layer (libmnl): a NETLINK_ROUTE socket, requests and dumps with their answers,
// notifications, and the attributes of a received message. The rtnetlink users build on it:
// dataplane/rtnl (the next-hop cache's route, neighbour, link and rule queries, and its change
// notifications), routes/rtnetlink (VIP host routes) and dataplane/neighbours (ARP/ND entries).
// Failures come back as an errno (0 = success), as the kernel reports them; never as exceptions.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace fulcrum::netlink {

// A request being built: header (type, NLM_F_REQUEST | flags), the family's fixed header, then
// attributes. Big enough for every request we send (a few addresses and numbers).
class Message {
public:
    Message(std::uint16_t type, std::uint16_t flags);
    Message(const Message&) = delete;  // fixed() hands out pointers into the buffer
    Message& operator=(const Message&) = delete;
    // Appends the fixed header (rtmsg, ndmsg, ifinfomsg, fib_rule_hdr, ...), zeroed; once, first.
    template <typename Fixed>
    Fixed* fixed()
    {
        return static_cast<Fixed*>(mnl_nlmsg_put_extra_header(header(), sizeof(Fixed)));
    }
    void put(std::uint16_t type, const void* data, std::size_t length);
    void put_u32(std::uint16_t type, std::uint32_t value) { put(type, &value, sizeof value); }
    // A nested attribute: the attributes put between begin_nest and end_nest go inside it.
    nlattr* begin_nest(std::uint16_t type);
    void end_nest(nlattr* nest);
    nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_); }

private:
    alignas(nlmsghdr) char buffer_[512] = {};
};

// The attributes of one received message after its fixed header, by type (the last one wins, as
// in the kernel); nested attributes through nested().
class Attributes {
public:
    Attributes(const nlmsghdr* message, std::size_t fixed_length);
    static Attributes nested(const nlattr* nest);

    const nlattr* get(std::uint16_t type) const { return type < table_.size() ? table_[type] : nullptr; }
    bool has(std::uint16_t type) const { return get(type) != nullptr; }
    // The payload when the attribute is there; empty otherwise.
    std::span<const std::uint8_t> bytes(std::uint16_t type) const;
    // A u32 attribute with at least 4 bytes of payload.
    std::optional<std::uint32_t> u32(std::uint16_t type) const;
    // Every attribute type present (for "anything else is a selector" checks).
    std::vector<std::uint16_t> types() const;

private:
    Attributes() = default;
    void add(const nlattr* attr);
    std::vector<const nlattr*> table_;
};

// The fixed header of a received message, or nullptr when the message is too short for it.
template <typename Fixed>
const Fixed* fixed_of(const nlmsghdr* message)
{
    if (message->nlmsg_len < mnl_nlmsg_size(sizeof(Fixed)))
        return nullptr;
    return static_cast<const Fixed*>(mnl_nlmsg_get_payload(message));
}

struct Options {
    bool nonblocking = false;
    int receive_timeout_ms = 0;            // blocking sockets: 0 = wait forever
    bool strict_dumps = false;             // NETLINK_GET_STRICT_CHK: the kernel filters dumps
    std::vector<unsigned> groups;          // RTNLGRP_* to receive notifications of
    int receive_buffer = 0;                // bytes (SO_RCVBUFFORCE, else SO_RCVBUF); 0: default
};

// One NETLINK_ROUTE socket (RAII, move-only).
class Socket {
public:
    Socket() = default;
    Socket(Socket&& o) noexcept
        : nl_(std::exchange(o.nl_, nullptr)), seq_(o.seq_), buffer_(std::move(o.buffer_)) {}
    Socket& operator=(Socket&& o) noexcept;
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket();

    // 0 or an errno; *out is the open socket.
    static int open(const Options& options, Socket* out);
    explicit operator bool() const { return nl_ != nullptr; }
    int fd() const;

    // Sends the request and hands every answer carrying its sequence number to on_answer (one for
    // a get, many for a dump), until the kernel's ACK, NLMSG_DONE or error. 0 or the kernel's
    // errno (also a dump's, from NLMSG_DONE); EINTR when a dump was interrupted by a concurrent
    // change (NLM_F_DUMP_INTR: its answers may be inconsistent, ask again). Answers to an earlier
    // request that timed out are skipped.
    int transact(Message& request, const std::function<void(const nlmsghdr*)>& on_answer);
    // Many single-answer requests (gets: neither NLM_F_DUMP nor NLM_F_ACK) in few round trips:
    // kBatch of them go out in one send, the kernel answers each while it handles that send, and
    // the answers come back in one recvmmsg. At start-up a next hop is two route questions for
    // each of 100,000 backends: four syscalls each one by one, two per kBatch this way.
    // on_answer(i, m) gets request i's answer; the result holds, per request, 0 (answered) or an
    // errno: the kernel's refusal, EMSGSIZE when the answer did not fit its slot of the receive
    // buffer (ask that one with transact), or the receive's error (EAGAIN: the timeout passed).
    static constexpr std::size_t kBatch = 32;
    std::vector<int> ask_each(std::span<Message* const> requests,
                              const std::function<void(std::size_t, const nlmsghdr*)>& on_answer);

    // Notifications: reads every queued message into on_message without blocking. Returns false
    // when some were lost (ENOBUFS: the receive buffer overflowed; the caller must assume
    // anything changed), true otherwise.
    bool read_notifications(const std::function<void(const nlmsghdr*)>& on_message);

private:
    char* receive_buffer();

    mnl_socket* nl_ = nullptr;
    std::uint32_t seq_ = 0;
    // One receive buffer for the socket's life (64 KiB, not zeroed): a route question per
    // backend is hundreds of thousands of transactions at start, and allocating and zeroing a
    // buffer for each was a fifth of their cost. Neither call above is re-entered from its callback.
    std::unique_ptr<char[]> buffer_;
};

}  // namespace fulcrum::netlink
