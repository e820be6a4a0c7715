// The two ways the bench runs an XDP program through BPF_PROG_TEST_RUN.
#pragma once

#include <cstdint>

#include "frames.h"
#include "util/status.h"

namespace fulcrum::bench {

// Live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES): the kernel feeds copies of `frame`, `batch` at
// a time, as if received on `ifindex`, and honours the verdicts (XDP_TX really transmits,
// XDP_PASS enters the stack). Timed with the wall clock around the call, so transmit and stack
// work count.
//
// Every such call also pays a fixed cost that has nothing to do with packets: here 0 to ~36 ms,
// almost all of it sleeping in the kernel's teardown of the call's page pool (RCU grace periods,
// tick-aligned, so it jumps in 4-8 ms steps). Over 2,000,000 packets that alone would add ~12 ns
// to every packet. So a figure is timed as two calls, `batch` packets (the fixed cost) and then
// `packets` packets, after an untimed one-batch call; the caller subtracts. Sends
// packets + 2 * batch frames in all.
struct LiveTimes {
    double fixed_ns = 0;  // wall clock of the `batch`-packet call
    double total_ns = 0;  // wall clock of the `packets`-packet call
};
Status time_live(int prog_fd, const Bytes& frame, int ifindex, std::uint32_t packets,
                 std::uint32_t batch, LiveTimes* out);

struct PlainRun {
    int verdict = -1;               // XDP_* returned by the program
    std::uint32_t duration_ns = 0;  // kernel's timer around the program run alone
    Bytes out;                      // the frame as the program left it
};

// Plain mode, one run (repeat 1, so the "packet not restored between runs" trap of LAB.md
// cannot bite): the verdict, and the kernel's own timing of that single program run.
Status run_plain(int prog_fd, const Bytes& frame, int ifindex, PlainRun* result);

}  // namespace fulcrum::bench
