// Maglev tables in the kernel (xdp/abi.h fulcrum_maglev_chunk): what fulcrumd writes reads back
// slot for slot, costs 4 bytes a slot plus at most one chunk, and the program picks the slot the
// hash names in every chunk, the last (partial) one included. Every prime is odd, so no table is
// a whole number of 16-slot chunks: each one here ends in a partial chunk.
#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "dataplane/maglev_map.h"
#include "flow_hash.h"
#include "maglev/maglev.h"
#include "services.h"

using namespace fulcrum;
using namespace fulcrum::test;

namespace {

// The descriptor of maglev_tables[service_id]'s inner map, opened through the program's map list.
int inner_map_fd(BalancerLab& lab, std::uint32_t service_id)
{
    std::uint32_t ids[64] = {};
    bpf_prog_info info{};
    info.nr_map_ids = 64;
    info.map_ids = reinterpret_cast<std::uint64_t>(ids);
    std::uint32_t len = sizeof info;
    REQUIRE(bpf_obj_get_info_by_fd(lab.program().program_fd(), &info, &len) == 0);
    for (std::uint32_t i = 0; i < info.nr_map_ids && i < 64; i++) {
        int fd = bpf_map_get_fd_by_id(ids[i]);
        REQUIRE(fd >= 0);
        bpf_map_info mi{};
        std::uint32_t mlen = sizeof mi;
        REQUIRE(bpf_obj_get_info_by_fd(fd, &mi, &mlen) == 0);
        if (std::string(mi.name) != "maglev_tables") {
            close(fd);
            continue;
        }
        std::uint32_t inner_id = 0;
        REQUIRE(bpf_map_lookup_elem(fd, &service_id, &inner_id) == 0);
        close(fd);
        int inner = bpf_map_get_fd_by_id(inner_id);
        REQUIRE(inner >= 0);
        return inner;
    }
    FAIL("the program has no map maglev_tables");
    return -1;
}

long fd_memlock(int fd)
{
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("memlock:", 0) == 0)
            return std::stol(line.substr(8));
    return -1;
}

// The first slot where two tables differ, or "equal": a failure names one slot, not a million.
std::string first_difference(const std::vector<std::uint32_t>& got, const std::vector<std::uint32_t>& want)
{
    if (got.size() != want.size())
        return std::to_string(got.size()) + " slots, not " + std::to_string(want.size());
    for (std::size_t i = 0; i < got.size(); i++)
        if (got[i] != want[i])
            return "slot " + std::to_string(i) + " holds " + std::to_string(got[i]) + ", not " + std::to_string(want[i]);
    return "equal";
}

std::vector<std::uint32_t> maglev_of(const std::vector<std::uint32_t>& ids, std::uint32_t size)
{
    std::vector<maglev::Backend> ring;
    for (std::uint32_t id : ids)
        ring.push_back({"backend-" + std::to_string(id), id, 100});
    auto built = maglev::build_table(ring, size, 7);
    REQUIRE(built.ok());
    return built.table;
}

}  // namespace

TEST_CASE("maglev tables: the kernel holds every slot of a prime table, 4 bytes a slot in chunks of 16",
          "[bpf][maglev]")
{
    BalancerLab lab;
    const long page = sysconf(_SC_PAGESIZE);
    // 2 and 13: one partial chunk; 17: a whole chunk and one slot; the default; the largest.
    for (std::uint32_t size : {2u, 13u, 17u, 4099u, 65537u, static_cast<std::uint32_t>(FULCRUM_MAX_TABLE_SIZE)}) {
        CAPTURE(size);
        REQUIRE(size % FULCRUM_MAGLEV_CHUNK_SLOTS != 0);
        // Backend ids up to the largest, so every bit of a slot is carried.
        std::vector<std::uint32_t> table = maglev_of({1, 2, 3, 1000, FULCRUM_MAX_BACKENDS - 1}, size);
        REQUIRE(lab.program().put_table(1, table).ok());

        Result<std::vector<std::uint32_t>> back = lab.program().read_table(1, size);
        REQUIRE(back.ok());
        CHECK(first_difference(*back, table) == "equal");

        // Structural, not timed: the values take 4 bytes a slot plus at most one chunk's padding
        // (counted at the kernel's stride, value_size rounded up to 8: a one-slot __u32 value
        // would take 8), and the kernel's charge adds only its header page and the rounding to
        // whole pages.
        int fd = inner_map_fd(lab, 1);
        bpf_map_info info{};
        std::uint32_t len = sizeof info;
        REQUIRE(bpf_obj_get_info_by_fd(fd, &info, &len) == 0);
        const long memlock = fd_memlock(fd);
        close(fd);
        CHECK(info.value_size == sizeof(fulcrum_maglev_chunk));
        CHECK((info.map_flags & BPF_F_MMAPABLE) != 0);
        const std::uint64_t stride = (info.value_size + 7) / 8 * 8;
        const std::uint64_t values = stride * info.max_entries;
        CHECK(values >= 4ull * size);
        CHECK(values <= 4ull * size + sizeof(fulcrum_maglev_chunk));
        CHECK(values == dataplane::maglev_table_value_bytes(size));
        INFO("fdinfo memlock " << memlock << " bytes for " << size << " slots");
        CHECK(memlock > 0);
        CHECK(static_cast<std::uint64_t>(memlock) <= (values + page - 1) / page * page + page);
    }

    // A new table of the same size replaces the old one whole.
    std::vector<std::uint32_t> other = maglev_of({4, 5}, 4099);
    REQUIRE(lab.program().put_table(1, other).ok());
    Result<std::vector<std::uint32_t>> back = lab.program().read_table(1, 4099);
    REQUIRE(back.ok());
    CHECK(first_difference(*back, other) == "equal");
}

TEST_CASE("maglev tables: a table read back in another size or with padding that is not 0 is refused",
          "[bpf][maglev]")
{
    BalancerLab lab;
    std::vector<std::uint32_t> table(251, 9);
    Result<int> fd = dataplane::create_maglev_table("t_pad", table, "the test table");
    REQUIRE(fd.ok());
    CHECK(dataplane::read_maglev_table(*fd, 251, "the test table").ok());
    // 241 slots need the same 16 chunks as 251: only the padding check can tell them apart.
    Result<std::vector<std::uint32_t>> shorter = dataplane::read_maglev_table(*fd, 241, "the test table");
    REQUIRE_FALSE(shorter.ok());
    CHECK(shorter.message() == "bpf: the test table: padding slot 241 past its 241 slots holds 9, not 0");
    Result<std::vector<std::uint32_t>> larger = dataplane::read_maglev_table(*fd, 257, "the test table");
    REQUIRE_FALSE(larger.ok());
    CHECK(larger.message().starts_with("bpf: the test table is not a table of 257 slots in chunks of 16"));

    // A nonzero word in the last chunk's padding (slot 255 of 256) is found.
    const std::size_t bytes = dataplane::maglev_table_value_bytes(251);
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    REQUIRE(mem != MAP_FAILED);
    static_cast<std::uint32_t*>(mem)[255] = 1;
    munmap(mem, bytes);
    Result<std::vector<std::uint32_t>> dirty = dataplane::read_maglev_table(*fd, 251, "the test table");
    REQUIRE_FALSE(dirty.ok());
    CHECK(dirty.message() == "bpf: the test table: padding slot 255 past its 251 slots holds 1, not 0");
    close(*fd);

    CHECK(lab.program().read_table(42, 251).message() ==
          "bpf: the maglev table of service 42 is not held (none swapped in or adopted)");
}

TEST_CASE("maglev tables: new flows land on the slot their hash names, in every chunk and the last partial one",
          "[bpf][maglev]")
{
    BalancerLab lab;
    standard_services(lab);
    // Service 11 on its own port of kVip4Multi: 3 backends (the addresses of service 9's, new
    // ids) over 4099 slots = 256 whole chunks and one of 3 slots.
    const std::uint32_t size = 4099, last_chunk = size / FULCRUM_MAGLEV_CHUNK_SLOTS;
    lab.add_backend(21, "198.18.0.21", 11);
    lab.add_backend(22, "198.18.0.22", 11);
    lab.add_backend(23, "198.18.0.23", 11);
    const std::vector<std::uint32_t> table = maglev_of({21, 22, 23}, size);
    lab.add_service(11, kVip4Multi, 8080, kTcp, table);

    // Flows chosen by their slot: 400 in order of source port, and every source port up to 65535
    // whose slot is in the last chunk or at either edge of a chunk (entries 0 and 15).
    std::vector<std::uint16_t> ports;
    int last = 0, edges = 0;
    for (std::uint32_t sport = 1024; sport <= 65535; sport++) {
        fulcrum_flow_key key = lab.flow_key(kClientV4, static_cast<std::uint16_t>(sport), kVip4Multi, 8080, kTcp);
        const std::uint32_t slot = fulcrum_flow_hash(&key, kHashSeed) % size;
        const std::uint32_t entry = slot % FULCRUM_MAGLEV_CHUNK_SLOTS;
        const bool in_last = slot / FULCRUM_MAGLEV_CHUNK_SLOTS == last_chunk;
        const bool edge = (entry == 0 || entry == FULCRUM_MAGLEV_CHUNK_SLOTS - 1) && edges < 200;
        if (sport < 1024 + 400 || in_last || edge) {
            ports.push_back(static_cast<std::uint16_t>(sport));
            last += in_last;
            edges += edge;
        }
    }
    REQUIRE(last >= 10);  // ~3/4099 of 64512 ports
    REQUIRE(edges == 200);

    std::map<std::uint32_t, int> per_backend;
    for (std::uint16_t sport : ports) {
        CAPTURE(sport);
        const std::uint32_t want = lab.maglev_pick(11, lab.flow_key(kClientV4, sport, kVip4Multi, 8080, kTcp));
        Bytes inner = ipv4(V4{.src = kClientV4, .dst = kVip4Multi, .proto = kTcp}, tcp(sport, 8080));
        Verdict v = lab.run(ethernet(kBalancerMac, kRouterMac, kEthIPv4, inner));
        REQUIRE(v.action == XDP_TX);
        REQUIRE(hex(v.out) == hex(lab.expected_encap(want, inner, 0)));
        per_backend[want]++;
    }
    CHECK(per_backend.size() == 3);
}
