// dns: one query over UDP (random 16-bit id, RD set, QNAME/QTYPE/QCLASS IN) to address:port. Only
// a response with that id and QR=1 counts (others are ignored until the timeout). RCODE NOERROR =
// up, even with no answer; another RCODE, a truncated (TC) or malformed response, or a response
// to another question = dns_error.
#include <algorithm>
#include <cctype>
#include <random>

#include "health/check_common.h"

namespace fulcrum::health::detail {

namespace {

struct QType {
    const char* name;
    std::uint16_t value;
};
constexpr QType kQTypes[] = {
    {"A", 1},       {"NS", 2},       {"CNAME", 5},  {"SOA", 6},     {"PTR", 12},   {"HINFO", 13},
    {"MX", 15},     {"TXT", 16},     {"RP", 17},    {"AAAA", 28},   {"LOC", 29},   {"SRV", 33},
    {"NAPTR", 35},  {"CERT", 37},    {"DNAME", 39}, {"DS", 43},     {"SSHFP", 44}, {"RRSIG", 46},
    {"NSEC", 47},   {"DNSKEY", 48},  {"NSEC3", 50}, {"TLSA", 52},   {"CDS", 59},   {"CDNSKEY", 60},
    {"SVCB", 64},   {"HTTPS", 65},   {"ANY", 255},  {"CAA", 257},
};

std::uint16_t random_id()
{
    thread_local std::mt19937 gen{std::random_device{}()};
    return static_cast<std::uint16_t>(std::uniform_int_distribution<unsigned>(0, 0xffff)(gen));
}

// The QNAME of `name` ("." or "" = the root; a trailing dot is optional), or an error message.
std::optional<std::string> encode_name(const std::string& name, std::vector<std::uint8_t>& out)
{
    if (name.empty() || name == ".") {
        out.push_back(0);
        return std::nullopt;
    }
    std::string_view rest(name);
    if (rest.back() == '.') rest.remove_suffix(1);
    std::size_t total = 1;
    while (true) {
        const auto dot = rest.find('.');
        const auto label = rest.substr(0, dot);
        if (label.empty()) return "empty label in \"" + name + "\"";
        if (label.size() > 63) return "label longer than 63 bytes in \"" + name + "\"";
        total += label.size() + 1;
        out.push_back(static_cast<std::uint8_t>(label.size()));
        out.insert(out.end(), label.begin(), label.end());
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
    }
    if (total > 255) return "name longer than 255 bytes: \"" + name + "\"";
    out.push_back(0);
    return std::nullopt;
}

std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

// Skips the (possibly compressed) name at `pos`; false when it runs out of the message.
bool skip_name(const std::uint8_t* msg, std::size_t size, std::size_t& pos)
{
    while (pos < size) {
        const std::uint8_t len = msg[pos];
        if (len == 0) {
            pos += 1;
            return true;
        }
        if ((len & 0xc0) == 0xc0) {
            if (pos + 2 > size) return false;
            pos += 2;
            return true;
        }
        if ((len & 0xc0) != 0) return false;  // 0x40 / 0x80: reserved label types
        pos += 1 + len;
    }
    return false;
}

bool same_name(const std::uint8_t* a, const std::uint8_t* b, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i)
        if (std::tolower(a[i]) != std::tolower(b[i])) return false;
    return true;
}

struct Verdict {
    bool ignore = false;  // not the answer to our query: keep waiting
    Outcome outcome;
};

Verdict judge(const std::uint8_t* msg, std::size_t size, std::uint16_t id, const std::vector<std::uint8_t>& query,
              const std::string& asked)
{
    if (size < 2 || get16(msg) != id) return {true, {}};
    if (size < 12) return {false, {Failure::dns_error, "malformed response (" + std::to_string(size) + " bytes)"}};
    const std::uint16_t flags = get16(msg + 2);
    if (!(flags & 0x8000)) return {true, {}};  // QR=0: a query, not a response
    if (flags & 0x0200) return {false, {Failure::dns_error, "truncated response (TC set) for " + asked}};
    const unsigned rcode = flags & 0x000f;
    const unsigned qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8), ar = get16(msg + 10);

    // The whole message must parse; the question, when echoed, must be ours.
    std::size_t pos = 12;
    for (unsigned i = 0; i < qd; ++i) {
        const std::size_t start = pos;
        if (!skip_name(msg, size, pos) || pos + 4 > size)
            return {false, {Failure::dns_error, "malformed response: question section runs past its end"}};
        pos += 4;
        const std::size_t qlen = pos - start;
        const std::size_t ours = query.size() - 12;
        if (qd == 1 && (qlen != ours || !same_name(msg + start, query.data() + 12, ours - 4) ||
                        !std::equal(msg + pos - 4, msg + pos, query.end() - 4)))
            return {false, {Failure::dns_error, "response to another question than " + asked}};
    }
    for (unsigned i = 0; i < an + ns + ar; ++i) {
        if (!skip_name(msg, size, pos) || pos + 10 > size)
            return {false, {Failure::dns_error, "malformed response: record " + std::to_string(i + 1) + " runs past its end"}};
        pos += 10 + get16(msg + pos + 8);
        if (pos > size)
            return {false, {Failure::dns_error, "malformed response: record " + std::to_string(i + 1) + " runs past its end"}};
    }
    if (rcode != 0) return {false, {Failure::dns_error, dns_rcode_name(rcode) + " for " + asked}};
    return {false, {Failure::none, "NOERROR for " + asked + ", " + std::to_string(an) + (an == 1 ? " answer" : " answers")}};
}

}  // namespace

std::optional<std::uint16_t> dns_qtype(const std::string& mnemonic)
{
    std::string upper = mnemonic;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& t : kQTypes)
        if (upper == t.name) return t.value;
    if (upper.size() > 4 && upper.size() <= 9 && upper.rfind("TYPE", 0) == 0 &&
        std::all_of(upper.begin() + 4, upper.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        const unsigned long v = std::stoul(upper.substr(4));
        if (v <= 0xffff) return static_cast<std::uint16_t>(v);
    }
    return std::nullopt;
}

std::string dns_rcode_name(unsigned rcode)
{
    static const char* const kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
                                         "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"};
    if (rcode < std::size(kNames)) return kNames[rcode];
    return "RCODE " + std::to_string(rcode);
}

asio::awaitable<Outcome> check_dns(config::HealthCheck check, Target target)
{
    using asio::ip::udp;
    const auto qtype = dns_qtype(check.query_type);
    if (!qtype) co_return Outcome{Failure::other, "unknown DNS query type \"" + check.query_type + "\""};
    std::string type_text = check.query_type;
    for (char& c : type_text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string asked = (check.query_name.empty() ? "." : check.query_name) + " " + type_text;

    const std::uint16_t id = random_id();
    std::vector<std::uint8_t> query = {
        static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id), 0x01, 0x00,  // id, RD
        0, 1, 0, 0, 0, 0, 0, 0,                                                      // QD=1
    };
    if (auto bad = encode_name(check.query_name, query)) co_return Outcome{Failure::other, "bad DNS query name: " + *bad};
    query.insert(query.end(), {static_cast<std::uint8_t>(*qtype >> 8), static_cast<std::uint8_t>(*qtype), 0, 1});

    auto ex = co_await asio::this_coro::executor;
    const udp::endpoint ep(to_asio(target.address), target.port);
    const std::string peer = endpoint_text(ep.address(), target.port);
    udp::socket sock(ex);
    if (auto failed = open_and_bind(sock, ep.protocol(), check, target)) co_return *failed;
    error_code ec;
    sock.connect(ep, ec);
    if (ec) co_return socket_error(ec, "connect to " + peer);
    Deadline dl(ex, check.timeout);
    dl.on_expire([&sock] {
        error_code ignored;
        sock.close(ignored);
    });

    co_await sock.async_send(asio::buffer(query), asio::redirect_error(asio::use_awaitable, ec));
    if (dl.expired()) co_return timed_out(dl, "sending the DNS query to " + peer);
    if (ec) co_return socket_error(ec, "send to " + peer);

    std::vector<std::uint8_t> reply(65536);
    while (true) {
        const std::size_t n =
            co_await sock.async_receive(asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
        if (dl.expired()) co_return timed_out(dl, "waiting for the DNS answer from " + peer);
        if (ec == asio::error::connection_refused)
            co_return Outcome{Failure::refused, "port unreachable: " + peer + " refused the DNS query (ICMP)"};
        if (ec) co_return socket_error(ec, "receive from " + peer);
        auto verdict = judge(reply.data(), n, id, query, asked);
        if (!verdict.ignore) co_return verdict.outcome;
    }
}

}  // namespace fulcrum::health::detail
