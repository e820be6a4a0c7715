// Real frames into the bench's veth from trafgen (netsniff-ng), for the cases that need many
// distinct flows per timed run or a flood next to established traffic, and the kernel's own
// per-program run-time statistics (bpf_stats) that time the program on those frames.
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace fulcrum::bench {

// Cumulative run count and run time of a program (bpf_prog_info run_cnt / run_time_ns), kept by
// the kernel while statistics are enabled (BpfStats). The kernel times exactly the program run
// (sched_clock before and after), on whatever path ran it: BPF_PROG_TEST_RUN or a driver.
struct ProgStats {
    std::uint64_t run_cnt = 0, run_time_ns = 0;
};
Status prog_stats(int prog_fd, ProgStats* out);

// Enables BPF_STATS_RUN_TIME for as long as it lives (bpf_enable_stats; system-wide, so every
// program on the machine pays two clock reads per run meanwhile).
class BpfStats {
public:
    BpfStats();
    ~BpfStats();
    bool ok() const { return fd_ >= 0; }
    const std::string& error() const { return error_; }

private:
    int fd_ = -1;
    std::string error_;
};

// The trafgen binary, or "" when netsniff-ng is not installed.
std::string find_trafgen();

struct TrafgenRun {
    double seconds = 0;          // wall clock of the trafgen process
    std::uint64_t peer_tx = 0;   // frames bench0-peer sent (trafgen's, into bench0)
    std::uint64_t ring_drops = 0;  // frames dropped in front of bench0's XDP ring: by bench0-peer's
                                   // pfifo (queue stopped while the ring is full) or by the veth
    std::string output;          // trafgen's own summary lines
};
// Runs `trafgen -o bench0-peer -P 1 -q -i CONFIG -n packets` (one process; trafgen pins it to CPU 0)
// through a pfifo qdisc on bench0-peer, bounded by `timeout max_seconds`. Fails if trafgen fails.
Status run_trafgen(const std::string& trafgen, const std::string& config, std::uint64_t packets,
                   int max_seconds, TrafgenRun* out);

}  // namespace fulcrum::bench
