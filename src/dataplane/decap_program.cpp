// Loading the decap skeleton and writing its maps.
#include "dataplane/decap_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "decap.skel.h"

namespace fulcrum::dataplane {

// The layouts BPF and C++ share (xdp/abi.h).
static_assert(sizeof(fulcrum_decap_key) == 20);
static_assert(sizeof(fulcrum_decap_source_key) == 24);
static_assert(offsetof(fulcrum_decap_source_key, family) == 4);
static_assert(offsetof(fulcrum_decap_source_key, addr) == 8);

DecapProgram::DecapProgram(decap_bpf* skel) : skel_(skel) {}
DecapProgram::~DecapProgram() { decap_bpf::destroy(skel_); }

Result<std::unique_ptr<DecapProgram>> DecapProgram::load(std::uint16_t gue_port)
{
    decap_bpf* skel = decap_bpf::open();
    if (!skel)
        return Status::failure(std::string("bpf: cannot open the decap program: ") + std::strerror(errno));
    skel->rodata->gue_port = htons(gue_port);
    if (decap_bpf::load(skel) != 0) {
        int err = errno;
        decap_bpf::destroy(skel);
        return Status::failure(std::string("bpf: cannot load the decap program: ") + std::strerror(err));
    }
    return std::unique_ptr<DecapProgram>(new DecapProgram(skel));
}

int DecapProgram::program_fd() const { return bpf_program__fd(skel_->progs.decap); }
int DecapProgram::local_map_fd() const { return bpf_map__fd(skel_->maps.decap_local); }
int DecapProgram::sources_map_fd() const { return bpf_map__fd(skel_->maps.decap_sources); }
int DecapProgram::stats_map_fd() const { return bpf_map__fd(skel_->maps.decap_stats); }

Status DecapProgram::add_local_address(const fulcrum_decap_key& key)
{
    std::uint32_t one = 1;
    if (bpf_map_update_elem(local_map_fd(), &key, &one, BPF_ANY) != 0)
        return Status::failure(std::string("bpf: cannot add a local address to decap_local: ") +
                               std::strerror(errno));
    return {};
}

Status DecapProgram::remove_local_address(const fulcrum_decap_key& key)
{
    if (bpf_map_delete_elem(local_map_fd(), &key) != 0 && errno != ENOENT)
        return Status::failure(std::string("bpf: cannot remove a local address from decap_local: ") +
                               std::strerror(errno));
    return {};
}

Status DecapProgram::add_source(const fulcrum_decap_source_key& key)
{
    std::uint32_t one = 1;
    if (bpf_map_update_elem(sources_map_fd(), &key, &one, BPF_ANY) != 0)
        return Status::failure(std::string("bpf: cannot add a tunnel source to decap_sources: ") +
                               std::strerror(errno));
    return {};
}

Result<PacketCounters> DecapProgram::counters(fulcrum_decap_reason reason) const
{
    return read_decap_counters(stats_map_fd(), reason);
}

Result<PacketCounters> read_decap_counters(int stats_map_fd, fulcrum_decap_reason reason)
{
    PacketCounters sum;
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0)
        return Status::failure(std::string("bpf: cannot count possible CPUs: ") + std::strerror(-cpus));
    std::vector<fulcrum_reason_stats> values(static_cast<std::size_t>(cpus));
    std::uint32_t key = reason;
    if (bpf_map_lookup_elem(stats_map_fd, &key, values.data()) != 0)
        return Status::failure(std::string("bpf: cannot read decap_stats: ") + std::strerror(errno));
    for (const auto& v : values) {
        sum.packets += v.packets;
        sum.bytes += v.bytes;
    }
    return sum;
}

Result<std::uint16_t> read_decap_gue_port(int program_fd)
{
    // The skeleton's layout of .rodata: the same struct the loader wrote gue_port into.
    using Rodata = std::remove_pointer_t<decltype(decap_bpf::rodata)>;
    std::uint32_t ids[16] = {};
    bpf_prog_info info{};
    info.nr_map_ids = sizeof ids / sizeof ids[0];
    info.map_ids = reinterpret_cast<std::uint64_t>(ids);
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(program_fd, &info, &len) != 0)
        return Status::failure(std::string("bpf: cannot list the decap program's maps: ") + std::strerror(errno));
    const std::uint32_t count = std::min<std::uint32_t>(info.nr_map_ids, sizeof ids / sizeof ids[0]);
    for (std::uint32_t i = 0; i < count; ++i) {
        int fd = bpf_map_get_fd_by_id(ids[i]);
        if (fd < 0)
            return Status::failure("bpf: cannot open the decap program's map id " + std::to_string(ids[i]) + ": " +
                                   std::strerror(errno));
        bpf_map_info map{};
        std::uint32_t map_len = sizeof map;
        // libbpf names it after the object, cut to fit: "decap_bp.rodata". It holds the section
        // (constants the compiler put there too), gue_port where the skeleton's struct has it.
        const bool is_rodata = bpf_obj_get_info_by_fd(fd, &map, &map_len) == 0 &&
                               std::string_view(map.name).ends_with(".rodata") &&
                               map.value_size >= offsetof(Rodata, gue_port) + sizeof(Rodata::gue_port);
        std::vector<unsigned char> value(is_rodata ? map.value_size : 0);
        std::uint32_t key = 0;
        const bool read = is_rodata && bpf_map_lookup_elem(fd, &key, value.data()) == 0;
        const int err = errno;
        close(fd);
        if (is_rodata && !read)
            return Status::failure(std::string("bpf: cannot read the decap program's .rodata: ") + std::strerror(err));
        if (read) {
            std::uint16_t port_be = 0;
            std::memcpy(&port_be, value.data() + offsetof(Rodata, gue_port), sizeof port_be);
            return static_cast<std::uint16_t>(ntohs(port_be));
        }
    }
    return Status::failure("bpf: the decap program has no .rodata with a GUE port (attached by a fulcrum-decap "
                           "without GUE? attach again)");
}

}  // namespace fulcrum::dataplane
