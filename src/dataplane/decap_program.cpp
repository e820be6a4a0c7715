// Loading the decap skeleton and writing its maps.
#include "dataplane/decap_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
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

}  // namespace fulcrum::dataplane
