// The pcapng blocks fulcrumctl capture writes (src/control/pcapng.h), checked field by field
// against the format (draft-ietf-opsawg-pcapng): block framing, the section header's magic and
// version, the interface's link type, snap length and nanosecond resolution, and a packet's
// timestamp halves, lengths, padding and comment. The system test reads whole files with
// tcpdump and Scapy (tests/system/test_fulcrumctl_capture.py).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "control/pcapng.h"

namespace {

std::uint32_t u32(const std::string& b, std::size_t at)
{
    std::uint32_t v;
    REQUIRE(at + 4 <= b.size());
    std::memcpy(&v, b.data() + at, 4);
    return v;
}

std::uint16_t u16(const std::string& b, std::size_t at)
{
    std::uint16_t v;
    REQUIRE(at + 2 <= b.size());
    std::memcpy(&v, b.data() + at, 2);
    return v;
}

// Every block: a multiple of 4 bytes, its length at the start (after the type) and at the end.
void check_framing(const std::string& block, std::uint32_t type)
{
    REQUIRE(block.size() % 4 == 0);
    CHECK(u32(block, 0) == type);
    CHECK(u32(block, 4) == block.size());
    CHECK(u32(block, block.size() - 4) == block.size());
}

}  // namespace

TEST_CASE("pcapng: section header", "[pcapng]")
{
    const std::string b = fulcrum::pcapng::section_header("fulcrumctl capture");
    check_framing(b, 0x0A0D0D0A);
    CHECK(u32(b, 8) == 0x1A2B3C4D);  // byte-order magic, in our order
    CHECK(u16(b, 12) == 1);
    CHECK(u16(b, 14) == 0);
    std::int64_t length;
    std::memcpy(&length, b.data() + 16, 8);
    CHECK(length == -1);
    // shb_userappl (4), 18 bytes padded to 20, then opt_endofopt
    CHECK(u16(b, 24) == 4);
    CHECK(u16(b, 26) == 18);
    CHECK(b.substr(28, 18) == "fulcrumctl capture");
    CHECK(b.substr(46, 2) == std::string(2, '\0'));
    CHECK(u32(b, 48) == 0);
    CHECK(b.size() == 56);
}

TEST_CASE("pcapng: interface description with nanosecond timestamps", "[pcapng]")
{
    const std::string b = fulcrum::pcapng::interface_description(fulcrum::pcapng::kLinkEthernet, 256, "fulcrum");
    check_framing(b, 1);
    CHECK(u16(b, 8) == 1);   // LINKTYPE_ETHERNET
    CHECK(u16(b, 10) == 0);
    CHECK(u32(b, 12) == 256);
    CHECK(u16(b, 16) == 2);  // if_name
    CHECK(u16(b, 18) == 7);
    CHECK(b.substr(20, 7) == "fulcrum");
    CHECK(u16(b, 28) == 9);  // if_tsresol: one byte, 9 = 10^-9 s
    CHECK(u16(b, 30) == 1);
    CHECK(static_cast<unsigned char>(b[32]) == 9);
    CHECK(u32(b, 36) == 0);  // opt_endofopt
    CHECK(b.size() == 44);
}

TEST_CASE("pcapng: enhanced packet block", "[pcapng]")
{
    const std::vector<std::uint8_t> frame = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const std::uint64_t ts = 0x0001020304050607ULL;

    SECTION("timestamp halves, lengths, data padded to 32 bits, the comment")
    {
        const std::string b = fulcrum::pcapng::enhanced_packet(ts, 1500, frame, "stage=after verdict=tx");
        check_framing(b, 6);
        CHECK(u32(b, 8) == 0);  // interface 0
        CHECK(u32(b, 12) == 0x00010203);
        CHECK(u32(b, 16) == 0x04050607);
        CHECK(u32(b, 20) == frame.size());
        CHECK(u32(b, 24) == 1500);
        CHECK(std::memcmp(b.data() + 28, frame.data(), frame.size()) == 0);
        CHECK(b[28 + 15] == '\0');  // one pad byte: 15 -> 16
        CHECK(u16(b, 44) == 1);     // opt_comment
        CHECK(u16(b, 46) == 22);
        CHECK(b.substr(48, 22) == "stage=after verdict=tx");
        CHECK(b.substr(70, 2) == std::string(2, '\0'));
        CHECK(u32(b, 72) == 0);  // opt_endofopt
        CHECK(b.size() == 80);
    }
    SECTION("no comment: no options at all")
    {
        const std::string b = fulcrum::pcapng::enhanced_packet(ts, 15, frame, "");
        check_framing(b, 6);
        CHECK(b.size() == 28 + 16 + 4);
    }
    SECTION("an empty frame")
    {
        const std::string b = fulcrum::pcapng::enhanced_packet(ts, 60, {}, "");
        check_framing(b, 6);
        CHECK(u32(b, 20) == 0);
        CHECK(u32(b, 24) == 60);
        CHECK(b.size() == 32);
    }
}
