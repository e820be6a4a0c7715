// `fulcrumctl lookup ... --quic-dcid HEX`: a QUIC destination connection ID as an operator writes
// it (hex digits, two per byte, e.g. from a packet capture) and as the request carries it (the
// word "quic-dcid=HEX" after lookup's positional arguments). Header-only: fulcrumctl checks it
// before it asks, fulcrumd parses it, by the same rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fulcrum::control {

inline constexpr std::string_view kQuicDcidWord = "quic-dcid=";
inline constexpr std::size_t kMaxQuicDcidBytes = 20;  // QUIC v1 (RFC 9000 17.2): 0..20 bytes

// The bytes of `hex` (1..20 of them, upper or lower case), or nullopt.
inline std::optional<std::vector<std::uint8_t>> parse_quic_dcid(std::string_view hex)
{
    auto digit = [](char c) -> int {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    if (hex.empty() || hex.size() % 2 != 0 || hex.size() > 2 * kMaxQuicDcidBytes)
        return std::nullopt;
    std::vector<std::uint8_t> bytes;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int high = digit(hex[i]), low = digit(hex[i + 1]);
        if (high < 0 || low < 0)
            return std::nullopt;
        bytes.push_back(static_cast<std::uint8_t>(high << 4 | low));
    }
    return bytes;
}

inline std::string quic_dcid_problem(std::string_view hex)
{
    return "--quic-dcid \"" + std::string(hex) + "\" is not a connection ID: 1.." + std::to_string(kMaxQuicDcidBytes) +
           " bytes in hex, two digits each (e.g. 5a0202a1a2a3a4a5)";
}

}  // namespace fulcrum::control
