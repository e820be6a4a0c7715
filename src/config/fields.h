// Parsers for single config values (integers, durations, addresses, names, paths, ...). Each one
// returns the typed value, or nothing after adding one "expected ..., got ..." error at the value.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_walk.h"

namespace fulcrum::config::detail {

// A scalar's text; `what` names what was expected when the value is a list, a mapping or empty.
std::optional<std::string> parse_text_value(Errors& errors, const Value& value, std::string_view what);

// A decimal integer in min..max (no sign, no hex: a config is read by people).
std::optional<std::uint64_t> parse_integer(Errors& errors, const Value& value, std::uint64_t min,
                                           std::uint64_t max);

template <class T>
std::optional<T> parse_uint(Errors& errors, const Value& value, T min, T max)
{
    if (auto n = parse_integer(errors, value, min, max)) return static_cast<T>(*n);
    return std::nullopt;
}

// A duration with a unit: 500ms, 2s, 1m, 1h; greater than 0 and at most 24h.
std::optional<std::chrono::milliseconds> parse_duration(Errors& errors, const Value& value);

// An IPv4 or IPv6 address; `family` AF_INET or AF_INET6 to accept only one, 0 for either.
std::optional<Address> parse_address(Errors& errors, const Value& value, int family = 0);

// One of a fixed set of words: "expected tcp or udp, got ...".
template <class E>
std::optional<E> parse_choice(Errors& errors, const Value& value,
                              std::initializer_list<std::pair<std::string_view, E>> choices)
{
    std::string what;
    std::size_t i = 0;
    for (const auto& choice : choices) {
        if (i > 0) what += (i + 1 == choices.size()) ? " or " : ", ";
        what += choice.first;
        ++i;
    }
    auto text = parse_text_value(errors, value, what);
    if (!text) return std::nullopt;
    for (const auto& [word, result] : choices)
        if (*text == word) return result;
    errors.expected(value, what);
    return std::nullopt;
}

// An existing user other than root (uid 0), looked up in the passwd database (getpwnam).
std::optional<RunAs> parse_user(Errors& errors, const Value& value);

// A service name: [a-z0-9_-]+, at most 64 characters (it becomes a metric label and a CLI word).
std::optional<std::string> parse_service_name(Errors& errors, const Value& value);

// A Linux interface name: 1..15 characters (IFNAMSIZ - 1), no '/', ':' or whitespace.
std::optional<std::string> parse_interface_name(Errors& errors, const Value& value);

// A path starting with "/" (the daemon may run from any directory).
std::optional<std::string> parse_absolute_path(Errors& errors, const Value& value);

// An HTTP path starting with "/".
std::optional<std::string> parse_http_path(Errors& errors, const Value& value);

// HOST:PORT with an IP address as HOST, IPv6 in brackets ([::1]:9470), port 1..65535.
std::optional<std::string> parse_listen_address(Errors& errors, const Value& value);

// A Maglev table size: a prime in 3..FULCRUM_MAX_TABLE_SIZE.
std::optional<std::uint32_t> parse_table_size(Errors& errors, const Value& value);

// A hash policy: 5-tuple, src-ip, src-ip-dst-port or dst-port (config.h HashPolicy).
std::optional<HashPolicy> parse_hash_policy(Errors& errors, const Value& value);

// An encapsulation: ipip or gue (config.h Encap).
std::optional<Encap> parse_encap(Errors& errors, const Value& value);

// A backend count (0..65535) or a percentage "1%".."100%".
std::optional<MinHealthy> parse_min_healthy(Errors& errors, const Value& value);

// HTTP statuses: one status 100..599 ("200"), a range "LO-HI" with LO <= HI ("200-299"), or a
// non-empty list mixing both. A single status becomes the range {s, s}.
std::optional<std::vector<StatusRange>> parse_status_ranges(Errors& errors, const Value& value);

// "true" or "false" (also True/TRUE/False/FALSE, YAML 1.2's core schema); not yes/no/on/off, which
// YAML 1.1 read as booleans and 1.2 reads as strings.
std::optional<bool> parse_bool(Errors& errors, const Value& value);

// Any scalar, as written ("" allowed): "expected a string" for a list, a mapping or nothing.
std::optional<std::string> parse_string(Errors& errors, const Value& value);

// A non-empty string (a command line).
std::optional<std::string> parse_nonempty_string(Errors& errors, const Value& value, std::string_view what);

// A fraction 0..0.5 ("0.1") or a percentage 0%..50% ("10%"), as a fraction.
std::optional<double> parse_jitter(Errors& errors, const Value& value);

// An HTTP method of a health check: GET, HEAD, POST or OPTIONS (upper case, as sent).
std::optional<std::string> parse_http_method(Errors& errors, const Value& value);

// A Host header: a host name or an IP address, optionally with :PORT ([v6]:PORT); no spaces. ""
// is accepted: the default (the checked address), so a service can undo a host set in defaults.
std::optional<std::string> parse_host(Errors& errors, const Value& value);

// A DNS name: labels of 1..63 characters (letters, digits, - or _), at most 253 characters in
// all, an optional final "."; "." alone is the root.
std::optional<std::string> parse_dns_name(Errors& errors, const Value& value);

// A DNS query type mnemonic, any case, returned in upper case: A, AAAA, CNAME, MX, NS, PTR, SOA,
// SRV or TXT.
std::optional<std::string> parse_query_type(Errors& errors, const Value& value);

// A duration as a config would write it: 1h, 2m, 3s or 500ms (the largest exact unit).
std::string duration_text(std::chrono::milliseconds d);

}  // namespace fulcrum::config::detail
