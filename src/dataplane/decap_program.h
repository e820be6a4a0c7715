// The backend-side decap BPF program (xdp/decap.bpf.c), loaded through its skeleton, and its
// maps: the host's local addresses, the balancers' tunnel-source prefixes, the counters.
#pragma once

#include <cstdint>
#include <memory>

#include "abi.h"
#include "dataplane/balancer_program.h"
#include "util/status.h"

struct decap_bpf;  // generated skeleton (build/xdp/decap.skel.h)

namespace fulcrum::dataplane {

class DecapProgram {
public:
    // gue_port: the UDP port of GUE tunnels decap strips (host order); 0 strips none.
    static Result<std::unique_ptr<DecapProgram>> load(std::uint16_t gue_port = FULCRUM_GUE_DEFAULT_PORT);
    ~DecapProgram();
    DecapProgram(const DecapProgram&) = delete;
    DecapProgram& operator=(const DecapProgram&) = delete;

    int program_fd() const;
    // The maps' fds, for pinning and writing them (fulcrum-decap); owned by the skeleton.
    int local_map_fd() const;
    int sources_map_fd() const;
    int stats_map_fd() const;
    Status add_local_address(const fulcrum_decap_key& key);
    Status remove_local_address(const fulcrum_decap_key& key);
    Status add_source(const fulcrum_decap_source_key& key);
    Result<PacketCounters> counters(fulcrum_decap_reason reason) const;

private:
    explicit DecapProgram(decap_bpf* skel);
    decap_bpf* skel_;
};

// One reason's counters summed over the CPUs, from a decap_stats map (ours, or the one
// fulcrum-decap pinned).
Result<PacketCounters> read_decap_counters(int stats_map_fd, fulcrum_decap_reason reason);

// The GUE port (host order; 0: GUE off) a loaded decap program strips, read back from the kernel's
// copy of its .rodata, so `fulcrum-decap status` shows what the program attached by an earlier
// `attach --gue-port` really does rather than what some option says.
Result<std::uint16_t> read_decap_gue_port(int program_fd);

}  // namespace fulcrum::dataplane
