// pcapng blocks; see pcapng.h. Every block is: type, total length, body padded to 32 bits,
// options (code, length, value padded to 32 bits; ended by opt_endofopt), total length again.
#include "control/pcapng.h"

#include <cstring>

namespace fulcrum::pcapng {
namespace {

constexpr std::uint16_t kEndOfOptions = 0;
constexpr std::uint16_t kOptComment = 1;
constexpr std::uint16_t kShbUserAppl = 4;
constexpr std::uint16_t kIfName = 2;
constexpr std::uint16_t kIfTsresol = 9;

template <typename T>
void put(std::string& out, T value)
{
    char bytes[sizeof value];
    std::memcpy(bytes, &value, sizeof value);
    out.append(bytes, sizeof value);
}

void pad(std::string& out)
{
    out.append((4 - out.size() % 4) % 4, '\0');
}

void option(std::string& out, std::uint16_t code, std::string_view value)
{
    put(out, code);
    put(out, static_cast<std::uint16_t>(value.size()));
    out.append(value);
    pad(out);
}

// Wraps a body (already padded, options included) into a block of the given type.
std::string block(std::uint32_t type, std::string body)
{
    std::string out;
    const auto total = static_cast<std::uint32_t>(12 + body.size());
    put(out, type);
    put(out, total);
    out += body;
    put(out, total);
    return out;
}

void end_options(std::string& body)
{
    put(body, kEndOfOptions);
    put(body, std::uint16_t{0});
}

}  // namespace

std::string section_header(std::string_view application)
{
    std::string body;
    put(body, kByteOrderMagic);
    put(body, std::uint16_t{1});  // major version
    put(body, std::uint16_t{0});  // minor version
    put(body, std::int64_t{-1});  // section length: not known in advance (we stream)
    if (!application.empty())
        option(body, kShbUserAppl, application);
    end_options(body);
    return block(kSectionHeader, body);
}

std::string interface_description(std::uint16_t link_type, std::uint32_t snap_length, std::string_view name)
{
    std::string body;
    put(body, link_type);
    put(body, std::uint16_t{0});  // reserved
    put(body, snap_length);
    if (!name.empty())
        option(body, kIfName, name);
    option(body, kIfTsresol, std::string_view("\x09", 1));  // 10^-9 s
    end_options(body);
    return block(kInterfaceDescription, body);
}

std::string enhanced_packet(std::uint64_t timestamp_ns, std::uint32_t wire_length,
                            std::span<const std::uint8_t> data, std::string_view comment)
{
    std::string body;
    put(body, std::uint32_t{0});  // interface 0
    put(body, static_cast<std::uint32_t>(timestamp_ns >> 32));
    put(body, static_cast<std::uint32_t>(timestamp_ns & 0xffffffffu));
    put(body, static_cast<std::uint32_t>(data.size()));
    put(body, wire_length);
    body.append(reinterpret_cast<const char*>(data.data()), data.size());
    pad(body);
    if (!comment.empty()) {
        option(body, kOptComment, comment);
        end_options(body);
    }
    return block(kEnhancedPacket, body);
}

}  // namespace fulcrum::pcapng
