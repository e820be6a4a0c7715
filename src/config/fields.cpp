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

}  // namespace

std::optional<std::string> parse_text_value(Errors& errors, const Value& value, std::string_view what)
{
    if (!value.node.IsScalar()) {
        errors.expected(value, what);
        return std::nullopt;
    }
    return value.node.Scalar();
}

std::optional<std::uint64_t> parse_integer(Errors& errors, const Value& value, std::uint64_t min,
                                           std::uint64_t max)
{
    std::string what = "an integer " + range_text(min, max);
    auto text = parse_text_value(errors, value, what);
    if (!text) return std::nullopt;
    auto n = to_integer(*text);
    if (!n || *n < min || *n > max) {
        errors.expected(value, what);
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

std::optional<std::string> parse_absolute_path(Errors& errors, const Value& value)
{
    auto text = parse_text_value(errors, value, "an absolute path");
    if (!text) return std::nullopt;
    if (text->empty() || text->front() != '/') {
        errors.expected(value, "an absolute path");
        return std::nullopt;
    }
    return text;
}

std::optional<std::string> parse_http_path(Errors& errors, const Value& value)
{
    auto text = parse_text_value(errors, value, "a path starting with /");
    if (!text) return std::nullopt;
    if (text->empty() || text->front() != '/') {
        errors.expected(value, "a path starting with /");
        return std::nullopt;
    }
    return text;
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

std::optional<std::vector<unsigned>> parse_status_list(Errors& errors, const Value& value)
{
    if (!value.node.IsSequence()) {
        if (!value.node.IsScalar()) {
            errors.expected(value, "an HTTP status 100..599 or a list of them");
            return std::nullopt;
        }
        auto status = parse_uint<unsigned>(errors, value, 100, 599);
        if (!status) return std::nullopt;
        return std::vector<unsigned>{*status};
    }
    auto items = list_items(errors, value, "a list of HTTP statuses");
    if (!items) return std::nullopt;
    if (items->empty()) {
        errors.expected(value, "at least one HTTP status 100..599");
        return std::nullopt;
    }
    std::vector<unsigned> statuses;
    bool ok = true;
    for (const Value& item : *items) {
        auto status = parse_uint<unsigned>(errors, item, 100, 599);
        if (status) statuses.push_back(*status);
        ok = ok && status;
    }
    if (!ok) return std::nullopt;
    return statuses;
}

}  // namespace fulcrum::config::detail
