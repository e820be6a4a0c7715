// pcapng blocks (the format tcpdump, Wireshark and Scapy read: IETF draft-ietf-opsawg-pcapng) for
// `fulcrumctl capture`: a file is one section header, one interface description, then one
// enhanced packet block per frame, each with an opt_comment (README "Packet capture" says what
// the comment holds). Each function returns the block's bytes in this host's byte order, which
// the section header's byte-order magic declares. Used by fulcrumctl, which does not link
// libfulcrum: plain C++, no other dependency.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace fulcrum::pcapng {

inline constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A;
inline constexpr std::uint32_t kInterfaceDescription = 1;
inline constexpr std::uint32_t kEnhancedPacket = 6;
inline constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
inline constexpr std::uint16_t kLinkEthernet = 1;  // LINKTYPE_ETHERNET

// Section header: version 1.0, section length unknown (-1), shb_userappl = application.
std::string section_header(std::string_view application);

// Interface 0 of the section: link type, snap length, if_name, and if_tsresol = 9 (timestamps
// in nanoseconds, as packet() writes them).
std::string interface_description(std::uint16_t link_type, std::uint32_t snap_length, std::string_view name);

// A frame of interface 0: its timestamp (ns since the epoch), its length on the wire, the bytes
// kept of it (at most wire_length; data.size() is the captured length) and a comment ("" for
// none).
std::string enhanced_packet(std::uint64_t timestamp_ns, std::uint32_t wire_length,
                            std::span<const std::uint8_t> data, std::string_view comment);

}  // namespace fulcrum::pcapng
