// Parsers for single config values (see fields.h).
#include "config/fields.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "abi.h"  // FULCRUM_MAX_TABLE_SIZE: the data plane's limit is the config's limit
#include "maglev/maglev.h"

namespace fulcrum::config::detail {
namespace {

bool all_digits(std::string_view s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Decimal digits only, so "0x10", "+5", "1e3" and "-1" are rejected rather than half-read.
std::optional<std::uint64_t> to_integer(std::string_view s)
{
    std::uint64_t n = 0;
    if (!all_digits(s)) return std::nullopt;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return n;
}

std::string range_text(std::uint64_t min, std::uint64_t max)
{
    return std::to_string(min) + ".." + std::to_string(max);
}

std::optional<Address> to_address(const std::string& text, int family)
{
    Address a;
    a.text = text;
    if ((family == 0 || family == AF_INET) && inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
        a.family = AF_INET;
        return a;
    }
    if ((family == 0 || family == AF_INET6) && inet_pton(AF_INET6, text.c_str(), a.bytes) == 1) {
        a.family = AF_INET6;
        return a;
    }
    return std::nullopt;
}

// A scalar's text (in the tree), counted as built; `what()` names what was expected in the error
// for a list, a mapping or nothing (a function, so that no message is made for a valid value).
template <class What>
std::optional<std::string_view> scalar_of(Errors& errors, const Value& value, What what)
{
    if (!value.node.is_scalar()) {
        errors.expected(value, what());
        return std::nullopt;
    }
    if (!errors.build(value.spot, value.node.scalar().size())) return std::nullopt;
    return value.node.scalar();
}

}  // namespace

std::optional<std::string> parse_text_value(Errors& errors, const Value& value, std::string_view what)
{
    auto text = scalar_of(errors, value, [what] { return what; });
    if (!text) return std::nullopt;
    return std::string(*text);
}

std::optional<std::uint64_t> parse_integer(Errors& errors, const Value& value, std::uint64_t min,
                                           std::uint64_t max)
{
    // The message is built only for an error: this runs for every port and weight of the file.
    auto what = [&] { return "an integer " + range_text(min, max); };
    auto text = scalar_of(errors, value, what);
    if (!text) return std::nullopt;
    auto n = to_integer(*text);
    if (!n || *n < min || *n > max) {
        errors.expected(value, what());
        return std::nullopt;
    }
    return n;
}

std::optional<std::chrono::milliseconds> parse_duration(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat = "a duration like 500ms, 2s, 1m or 1h";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    std::string_view s = *text;
    std::size_t unit_at = s.find_first_not_of("0123456789");
    if (unit_at == std::string_view::npos && !s.empty()) {
        // "30" could mean seconds or milliseconds; guessing would silently change timing.
        errors.expected(value, "a duration with a unit (ms, s, m or h)");
        return std::nullopt;
    }
    std::string_view unit = s.substr(unit_at == std::string_view::npos ? s.size() : unit_at);
    static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
    const auto* found =
        std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& u) { return u.first == unit; });
    auto count = to_integer(s.substr(0, unit_at));
    if (found == std::end(kUnits) || !count) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    constexpr std::uint64_t kMaxMs = 24 * 3'600'000ULL;
    if (*count == 0 || *count > kMaxMs / found->second) {
        errors.expected(value, "a duration greater than 0 and at most 24h");
        return std::nullopt;
    }
    return std::chrono::milliseconds(*count * found->second);
}

std::optional<Address> parse_address(Errors& errors, const Value& value, int family)
{
    std::string_view what = family == AF_INET    ? "an IPv4 address"
                            : family == AF_INET6 ? "an IPv6 address"
                                                 : "an IPv4 or IPv6 address";
    auto text = parse_text_value(errors, value, what);
    if (!text) return std::nullopt;
    auto address = to_address(*text, family);
    if (!address) errors.expected(value, what);
    return address;
}

std::optional<std::string> parse_service_name(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat = "a name of 1 to 64 characters a-z, 0-9, _ or -";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    bool ok = !text->empty() && text->size() <= 64 && std::all_of(text->begin(), text->end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    if (!ok) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    return text;
}

std::optional<std::string> parse_interface_name(Errors& errors, const Value& value)
{
    // The kernel's own rule (dev_valid_name): IFNAMSIZ - 1 characters, no '/', ':' or whitespace.
    constexpr std::string_view kWhat = "an interface name of 1 to 15 characters without '/', ':' or spaces";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    bool ok = !text->empty() && text->size() <= 15 && *text != "." && *text != ".." &&
              std::none_of(text->begin(), text->end(),
                           [](unsigned char c) { return c == '/' || c == ':' || std::isspace(c); });
    if (!ok) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    return text;
}

namespace {

// Text starting with '/'; `what` names it in the error (a file path or an HTTP path).
std::optional<std::string> parse_slash_path(Errors& errors, const Value& value, const char* what)
{
    auto text = parse_text_value(errors, value, what);
    if (!text) return std::nullopt;
    if (text->empty() || text->front() != '/') {
        errors.expected(value, what);
        return std::nullopt;
    }
    return text;
}

}  // namespace

std::optional<std::string> parse_absolute_path(Errors& errors, const Value& value)
{
    return parse_slash_path(errors, value, "an absolute path");
}

std::optional<std::string> parse_http_path(Errors& errors, const Value& value)
{
    return parse_slash_path(errors, value, "a path starting with /");
}

std::optional<std::string> parse_listen_address(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat =
        "HOST:PORT with an IP address as HOST ([ADDRESS]:PORT for IPv6) and PORT 1..65535";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    std::string_view s = *text;
    std::size_t colon = s.rfind(':');
    bool ok = colon != std::string_view::npos;
    if (ok) {
        std::string_view host = s.substr(0, colon);
        auto port = to_integer(s.substr(colon + 1));
        // An IPv6 host must be bracketed, or "::1:80" would be ambiguous.
        bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
        ok = port && *port >= 1 && *port <= 65535 &&
             (bracketed ? to_address(std::string(host.substr(1, host.size() - 2)), AF_INET6).has_value()
                        : to_address(std::string(host), AF_INET).has_value());
    }
    if (!ok) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    return text;
}

std::optional<HashPolicy> parse_hash_policy(Errors& errors, const Value& value)
{
    // The words are the ones to_string(HashPolicy) prints (fulcrumctl, diff, status).
    return parse_choice<HashPolicy>(errors, value,
                                    {{to_string(HashPolicy::five_tuple), HashPolicy::five_tuple},
                                     {to_string(HashPolicy::src_ip), HashPolicy::src_ip},
                                     {to_string(HashPolicy::src_ip_dst_port), HashPolicy::src_ip_dst_port},
                                     {to_string(HashPolicy::dst_port), HashPolicy::dst_port}});
}

std::optional<Encap> parse_encap(Errors& errors, const Value& value)
{
    return parse_choice<Encap>(errors, value,
                               {{to_string(Encap::ipip), Encap::ipip}, {to_string(Encap::gue), Encap::gue}});
}

std::optional<std::uint32_t> parse_table_size(Errors& errors, const Value& value)
{
    // Maglev needs a prime size so every backend's permutation visits every slot.
    const std::string what = "a prime number 3.." + std::to_string(FULCRUM_MAX_TABLE_SIZE) + " (e.g. 65537)";
    auto text = parse_text_value(errors, value, what);
    if (!text) return std::nullopt;
    auto n = to_integer(*text);
    if (!n || *n < 3 || *n > FULCRUM_MAX_TABLE_SIZE || !maglev::is_prime(*n)) {
        errors.expected(value, what);
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(*n);
}

std::optional<MinHealthy> parse_min_healthy(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat = "a count 0..65535 or a percentage 1%..100%";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    std::string_view s = *text;
    bool percent = !s.empty() && s.back() == '%';
    auto n = to_integer(percent ? s.substr(0, s.size() - 1) : s);
    if (!n || (percent && (*n < 1 || *n > 100)) || (!percent && *n > 65535)) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    if (percent) return MinHealthy{true, static_cast<double>(*n) / 100};
    return MinHealthy{false, static_cast<double>(*n)};
}

namespace {

constexpr std::string_view kStatusOrRange = "an HTTP status 100..599 or a range like \"200-299\"";

// One item of expect_status: "200" or "200-299".
std::optional<StatusRange> parse_status_item(Errors& errors, const Value& value)
{
    auto text = parse_text_value(errors, value, kStatusOrRange);
    if (!text) return std::nullopt;
    std::string_view s = *text;
    // A number alone keeps the plain integer message ("expected an integer 100..599, got \"700\"").
    if (all_digits(s)) {
        auto status = parse_uint<unsigned>(errors, value, 100, 599);
        if (!status) return std::nullopt;
        return StatusRange{*status, *status};
    }
    std::size_t dash = s.find('-');
    auto lo = dash == std::string_view::npos ? std::nullopt : to_integer(s.substr(0, dash));
    auto hi = dash == std::string_view::npos ? std::nullopt : to_integer(s.substr(dash + 1));
    if (!lo || !hi) {
        errors.expected(value, kStatusOrRange);
        return std::nullopt;
    }
    if (*lo < 100 || *hi > 599 || *lo > 599 || *hi < 100) {
        errors.expected(value, "a range of HTTP statuses within 100..599");
        return std::nullopt;
    }
    if (*lo > *hi) {
        errors.expected(value, "a range LO-HI with LO <= HI");
        return std::nullopt;
    }
    return StatusRange{static_cast<unsigned>(*lo), static_cast<unsigned>(*hi)};
}

bool is_label_char(unsigned char c)
{
    return std::isalnum(c) || c == '-' || c == '_';
}

// Labels of 1..63 label characters, at most 253 characters without the final dot.
bool is_dns_name(std::string_view s, bool allow_root)
{
    if (s == ".") return allow_root;
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    if (s.empty() || s.size() > 253) return false;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = s.find('.', start);
        std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
        if (label.empty() || label.size() > 63 ||
            !std::all_of(label.begin(), label.end(), [](unsigned char c) { return is_label_char(c); }))
            return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

// A decimal number with an optional fraction ("0", "0.25", "10.5"): no sign, no exponent.
std::optional<double> to_decimal(std::string_view s)
{
    std::size_t dot = s.find('.');
    std::string_view whole = s.substr(0, dot);
    std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
    if (!all_digits(whole) || (dot != std::string_view::npos && !all_digits(fraction))) return std::nullopt;
    double d = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return d;
}

}  // namespace

std::optional<std::vector<StatusRange>> parse_status_ranges(Errors& errors, const Value& value)
{
    if (value.node.is_scalar()) {
        auto range = parse_status_item(errors, value);
        if (!range) return std::nullopt;
        return std::vector<StatusRange>{*range};
    }
    if (!value.node.is_sequence()) {
        errors.expected(value, "an HTTP status 100..599, a range like \"200-299\" or a list of them");
        return std::nullopt;
    }
    auto items = list_items(errors, value, "a list of HTTP statuses");
    if (!items) return std::nullopt;
    if (items->empty()) {
        errors.expected(value, "at least one HTTP status or range");
        return std::nullopt;
    }
    std::vector<StatusRange> ranges;
    bool ok = true;
    for (const Value& item : *items) {
        auto range = parse_status_item(errors, item);
        if (range) ranges.push_back(*range);
        ok = ok && range;
    }
    if (!ok) return std::nullopt;
    return ranges;
}

std::optional<bool> parse_bool(Errors& errors, const Value& value)
{
    auto text = parse_text_value(errors, value, "true or false");
    if (!text) return std::nullopt;
    if (*text == "true" || *text == "True" || *text == "TRUE") return true;
    if (*text == "false" || *text == "False" || *text == "FALSE") return false;
    errors.expected(value, "true or false");
    return std::nullopt;
}

std::optional<std::string> parse_string(Errors& errors, const Value& value)
{
    return parse_text_value(errors, value, "a string");
}

std::optional<std::string> parse_nonempty_string(Errors& errors, const Value& value, std::string_view what)
{
    auto text = parse_text_value(errors, value, what);
    if (text && text->empty()) {
        errors.expected(value, what);
        return std::nullopt;
    }
    return text;
}

std::optional<double> parse_jitter(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat = "a fraction 0..0.5 or a percentage 0%..50%";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    std::string_view s = *text;
    bool percent = !s.empty() && s.back() == '%';
    auto n = to_decimal(percent ? s.substr(0, s.size() - 1) : s);
    if (n && percent) *n /= 100;
    if (!n || *n > 0.5) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    return n;
}

std::optional<std::string> parse_http_method(Errors& errors, const Value& value)
{
    return parse_choice<std::string>(
        errors, value, {{"GET", "GET"}, {"HEAD", "HEAD"}, {"POST", "POST"}, {"OPTIONS", "OPTIONS"}});
}

std::optional<std::string> parse_host(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat = "a host name or an IP address, optionally with :PORT ([ADDRESS]:PORT for IPv6)";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    std::string_view s = *text;
    auto port_ok = [](std::string_view p) {
        auto n = to_integer(p);
        return n && *n >= 1 && *n <= 65535;
    };
    bool ok = false;
    if (s.empty()) {
        ok = true;  // the default (the checked address), so a layer can undo an inherited host
    } else if (to_address(std::string(s), 0)) {
        ok = true;  // an address alone, IPv6 unbracketed included
    } else if (!s.empty() && s.front() == '[') {
        std::size_t close = s.find(']');
        ok = close != std::string_view::npos &&
             to_address(std::string(s.substr(1, close - 1)), AF_INET6).has_value() &&
             (close + 1 == s.size() || (s[close + 1] == ':' && port_ok(s.substr(close + 2))));
    } else {
        std::size_t colon = s.find(':');
        std::string_view name = s.substr(0, colon);
        // An IPv4 address is also a valid DNS name by these rules, so NAME covers both.
        ok = is_dns_name(name, false) && (colon == std::string_view::npos || port_ok(s.substr(colon + 1)));
    }
    if (!ok) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    return text;
}

std::optional<std::string> parse_dns_name(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat =
        "a DNS name of at most 253 characters in labels of 1 to 63 letters, digits, - or _ (\".\" for the root)";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    if (!is_dns_name(*text, true)) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    return text;
}

std::optional<std::string> parse_query_type(Errors& errors, const Value& value)
{
    static constexpr std::string_view kTypes[] = {"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"};
    constexpr std::string_view kWhat = "A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    std::string upper = *text;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (std::find(std::begin(kTypes), std::end(kTypes), upper) == std::end(kTypes)) {
        errors.expected(value, kWhat);
        return std::nullopt;
    }
    return upper;
}

std::optional<RunAs> parse_user(Errors& errors, const Value& value)
{
    constexpr std::string_view kWhat = "the name of an existing user other than root";
    auto text = parse_text_value(errors, value, kWhat);
    if (!text) return std::nullopt;
    auto user = lookup_user(*text);
    if (!user) {
        errors.expected(value, "the name of an existing user (no such user in the passwd database)");
        return std::nullopt;
    }
    if (user->uid == 0) {
        errors.expected(value, "a user other than root (uid 0): exec checks never run with root's rights");
        return std::nullopt;
    }
    return user;
}

std::string duration_text(std::chrono::milliseconds d)
{
    auto ms = static_cast<std::uint64_t>(d.count());
    if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

}  // namespace fulcrum::config::detail
