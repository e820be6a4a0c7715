// The netlink layer on libmnl; see netlink.h.
#include "netlink/netlink.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fulcrum::netlink {
namespace {

// The kernel sends dump batches of up to 32 KiB (and at most a page more for one big message).
constexpr std::size_t kReceiveBuffer = 65536;

}  // namespace

Message::Message(std::uint16_t type, std::uint16_t flags)
{
    nlmsghdr* h = mnl_nlmsg_put_header(buffer_);
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
}

void Message::put(std::uint16_t type, const void* data, std::size_t length)
{
    // mnl_attr_put_check refuses (returns false) instead of writing past the buffer.
    (void)mnl_attr_put_check(header(), sizeof buffer_, type, length, data);
}

nlattr* Message::begin_nest(std::uint16_t type)
{
    return mnl_attr_nest_start_check(header(), sizeof buffer_, type);
}

void Message::end_nest(nlattr* nest)
{
    if (nest)
        mnl_attr_nest_end(header(), nest);
}

Attributes::Attributes(const nlmsghdr* message, std::size_t fixed_length)
{
    mnl_attr_parse(
        message, static_cast<unsigned>(fixed_length),
        [](const nlattr* attr, void* self) {
            static_cast<Attributes*>(self)->add(attr);
            return MNL_CB_OK;
        },
        this);
}

Attributes Attributes::nested(const nlattr* nest)
{
    Attributes out;
    mnl_attr_parse_nested(
        nest,
        [](const nlattr* attr, void* self) {
            static_cast<Attributes*>(self)->add(attr);
            return MNL_CB_OK;
        },
        &out);
    return out;
}

void Attributes::add(const nlattr* attr)
{
    std::uint16_t type = mnl_attr_get_type(attr);
    if (type >= table_.size())
        table_.resize(type + 1u, nullptr);
    table_[type] = attr;
}

std::span<const std::uint8_t> Attributes::bytes(std::uint16_t type) const
{
    const nlattr* a = get(type);
    if (!a)
        return {};
    return {static_cast<const std::uint8_t*>(mnl_attr_get_payload(a)), mnl_attr_get_payload_len(a)};
}

std::optional<std::uint32_t> Attributes::u32(std::uint16_t type) const
{
    std::span<const std::uint8_t> b = bytes(type);
    if (b.size() < sizeof(std::uint32_t))
        return std::nullopt;
    std::uint32_t v;
    std::memcpy(&v, b.data(), sizeof v);
    return v;
}

std::vector<std::uint16_t> Attributes::types() const
{
    std::vector<std::uint16_t> out;
    for (std::size_t t = 0; t < table_.size(); ++t)
        if (table_[t])
            out.push_back(static_cast<std::uint16_t>(t));
    return out;
}

Socket& Socket::operator=(Socket&& o) noexcept
{
    if (this != &o) {
        if (nl_)
            mnl_socket_close(nl_);
        nl_ = std::exchange(o.nl_, nullptr);
        seq_ = o.seq_;
        buffer_ = std::move(o.buffer_);
    }
    return *this;
}

Socket::~Socket()
{
    if (nl_)
        mnl_socket_close(nl_);
}

char* Socket::receive_buffer()
{
    if (!buffer_)
        buffer_.reset(new char[kReceiveBuffer]);
    return buffer_.get();
}

int Socket::fd() const
{
    return nl_ ? mnl_socket_get_fd(nl_) : -1;
}

int Socket::open(const Options& options, Socket* out)
{
    Socket s;
    s.nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | (options.nonblocking ? SOCK_NONBLOCK : 0));
    if (!s.nl_)
        return errno;
    if (mnl_socket_bind(s.nl_, 0, MNL_SOCKET_AUTOPID) != 0)
        return errno;
    int fd = s.fd();
    if (options.receive_timeout_ms > 0) {
        timeval tv{options.receive_timeout_ms / 1000, (options.receive_timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    if (options.receive_buffer > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &options.receive_buffer, sizeof options.receive_buffer) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer, sizeof options.receive_buffer);
    int one = 1;
    // Error messages from the kernel with the offending attribute; older kernels ignore it.
    (void)mnl_socket_setsockopt(s.nl_, NETLINK_EXT_ACK, &one, sizeof one);
    // Let the kernel filter dumps by the request's fields (4.20+); users filter again anyway.
    if (options.strict_dumps)
        (void)mnl_socket_setsockopt(s.nl_, NETLINK_GET_STRICT_CHK, &one, sizeof one);
    for (unsigned group : options.groups)
        if (mnl_socket_setsockopt(s.nl_, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
            return errno;
    *out = std::move(s);
    return 0;
}

int Socket::transact(Message& request, const std::function<void(const nlmsghdr*)>& on_answer)
{
    nlmsghdr* h = request.header();
    const std::uint32_t seq = ++seq_;
    h->nlmsg_seq = seq;
    const bool many = h->nlmsg_flags & (NLM_F_DUMP | NLM_F_ACK);  // ends with DONE or an ACK
    if (mnl_socket_sendto(nl_, h, h->nlmsg_len) < 0)
        return errno;
    char* buffer = receive_buffer();
    bool interrupted = false;
    while (true) {
        ssize_t n = mnl_socket_recvfrom(nl_, buffer, kReceiveBuffer);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;  // EAGAIN: the receive timeout passed
        }
        int left = static_cast<int>(n);
        for (auto* m = reinterpret_cast<const nlmsghdr*>(buffer); mnl_nlmsg_ok(m, left);
             m = mnl_nlmsg_next(m, &left)) {
            if (m->nlmsg_seq != seq)
                continue;  // a late answer to an earlier request that timed out
            if (m->nlmsg_flags & NLM_F_DUMP_INTR)
                interrupted = true;
            if (m->nlmsg_type == NLMSG_ERROR) {
                const auto* e = fixed_of<nlmsgerr>(m);
                if (!e)
                    return EPROTO;
                if (e->error != 0)
                    return -e->error;
                return interrupted ? EINTR : 0;  // the ACK
            }
            if (m->nlmsg_type == NLMSG_DONE) {
                // A dump's error travels in NLMSG_DONE's payload.
                int status = 0;
                if (m->nlmsg_len >= mnl_nlmsg_size(sizeof status))
                    std::memcpy(&status, mnl_nlmsg_get_payload(m), sizeof status);
                if (status < 0)
                    return -status;
                return interrupted ? EINTR : 0;
            }
            if (m->nlmsg_type == NLMSG_NOOP || m->nlmsg_type == NLMSG_OVERRUN)
                continue;
            on_answer(m);
            if (!many)
                return 0;
        }
    }
}

std::vector<int> Socket::ask_each(std::span<Message* const> requests,
                                  const std::function<void(std::size_t, const nlmsghdr*)>& on_answer)
{
    std::vector<int> status(requests.size(), EAGAIN);
    // Each answer of a batch lands in its own slot of the receive buffer (one recvmmsg datagram
    // each); a route or neighbour answer is a few hundred bytes.
    constexpr std::size_t kSlot = kReceiveBuffer / kBatch;
    char* buffer = receive_buffer();
    std::vector<char> out;
    for (std::size_t first = 0; first < requests.size(); first += kBatch) {
        const std::size_t count = std::min(kBatch, requests.size() - first);
        const std::uint32_t first_seq = seq_ + 1;
        out.clear();
        for (std::size_t i = 0; i < count; i++) {
            nlmsghdr* h = requests[first + i]->header();
            h->nlmsg_seq = ++seq_;
            const char* p = reinterpret_cast<const char*>(h);
            out.insert(out.end(), p, p + h->nlmsg_len);
            out.resize(out.size() + (NLMSG_ALIGN(h->nlmsg_len) - h->nlmsg_len), 0);  // kernel walks aligned
        }
        if (mnl_socket_sendto(nl_, out.data(), out.size()) < 0) {
            const int e = errno;
            for (std::size_t i = 0; i < count; i++)
                status[first + i] = e;
            continue;
        }
        std::size_t waiting = count;
        while (waiting > 0) {
            mmsghdr messages[kBatch] = {};
            iovec slots[kBatch];
            for (std::size_t i = 0; i < waiting; i++) {
                slots[i] = {buffer + i * kSlot, kSlot};
                messages[i].msg_hdr.msg_iov = &slots[i];
                messages[i].msg_hdr.msg_iovlen = 1;
            }
            // Blocks (up to the socket's receive timeout) for the first answer, then takes what is queued.
            const int got = recvmmsg(fd(), messages, static_cast<unsigned>(waiting), MSG_WAITFORONE, nullptr);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                const int e = errno;
                for (std::size_t i = 0; i < count; i++)
                    if (status[first + i] == EAGAIN)
                        status[first + i] = e;
                break;
            }
            for (int d = 0; d < got; d++) {
                const auto* m = reinterpret_cast<const nlmsghdr*>(buffer + d * kSlot);
                if (messages[d].msg_len < sizeof(nlmsghdr))
                    continue;
                const std::uint32_t index = m->nlmsg_seq - first_seq;
                if (index >= count || status[first + index] != EAGAIN)
                    continue;  // a late answer to an earlier request that timed out
                waiting--;
                int& s = status[first + index];
                const bool truncated = messages[d].msg_hdr.msg_flags & MSG_TRUNC;
                if (truncated || !mnl_nlmsg_ok(m, static_cast<int>(messages[d].msg_len))) {
                    s = truncated ? EMSGSIZE : EPROTO;
                } else if (m->nlmsg_type == NLMSG_ERROR) {
                    const auto* e = fixed_of<nlmsgerr>(m);
                    s = !e ? EPROTO : e->error != 0 ? -e->error : EPROTO;  // a get answers, never ACKs
                } else {
                    s = 0;
                    on_answer(first + index, m);
                }
            }
        }
    }
    return status;
}

bool Socket::read_notifications(const std::function<void(const nlmsghdr*)>& on_message)
{
    bool complete = true;
    char* buffer = receive_buffer();
    while (true) {
        ssize_t n = recv(fd(), buffer, kReceiveBuffer, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS) {  // overflowed: notifications were dropped; keep draining
                complete = false;
                continue;
            }
            return complete;  // EAGAIN: drained
        }
        if (n == 0)
            return complete;
        int left = static_cast<int>(n);
        for (auto* m = reinterpret_cast<const nlmsghdr*>(buffer); mnl_nlmsg_ok(m, left);
             m = mnl_nlmsg_next(m, &left))
            on_message(m);
    }
}

}  // namespace fulcrum::netlink
