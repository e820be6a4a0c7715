// BPF_PROG_TEST_RUN wrappers: see live_frames.h.
#include "live_frames.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>

namespace fulcrum::bench {
namespace {

Status errno_failure(const char* what)
{
    return Status::failure(std::string("BPF_PROG_TEST_RUN (") + what + "): " + std::strerror(errno));
}

xdp_md context(const Bytes& frame, int ifindex)
{
    xdp_md ctx{};
    ctx.data_end = static_cast<std::uint32_t>(frame.size());
    ctx.ingress_ifindex = static_cast<std::uint32_t>(ifindex);
    return ctx;
}

// One live-frames call; *elapsed_ns is its wall-clock time.
Status run_live(int prog_fd, const Bytes& frame, int ifindex, std::uint32_t packets,
                std::uint32_t batch, double* elapsed_ns)
{
    xdp_md ctx = context(frame, ifindex);
    // Live mode wants data_out and ctx_out NULL; `repeat` counts packets.
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<std::uint32_t>(frame.size());
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof ctx;
    opts.repeat = static_cast<int>(packets);
    opts.batch_size = batch;
    opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;

    // opts.duration is not usable here: it covers the program runs but not the transmit and
    // stack work done after each batch. The wall clock around the call covers it all.
    auto start = std::chrono::steady_clock::now();
    int err = bpf_prog_test_run_opts(prog_fd, &opts);
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (err != 0)
        return errno_failure("live frames");
    *elapsed_ns = std::chrono::duration<double, std::nano>(elapsed).count();
    return {};
}

}  // namespace

Status time_live(int prog_fd, const Bytes& frame, int ifindex, std::uint32_t packets,
                 std::uint32_t batch, LiveTimes* out)
{
    // The untimed call: what a call costs depends a little on the call before it (pages still
    // in flight, RCU state), so both timed calls follow a call of this same case. It also warms
    // caches, the page-pool path and the peer.
    double warm = 0;
    if (Status s = run_live(prog_fd, frame, ifindex, batch, batch, &warm); !s.ok())
        return s;
    if (Status s = run_live(prog_fd, frame, ifindex, batch, batch, &out->fixed_ns); !s.ok())
        return s;
    return run_live(prog_fd, frame, ifindex, packets, batch, &out->total_ns);
}

Status run_plain(int prog_fd, const Bytes& frame, int ifindex, PlainRun* result)
{
    xdp_md ctx = context(frame, ifindex);
    Bytes out(frame.size() + 256);  // room for the encapsulation header
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<std::uint32_t>(frame.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<std::uint32_t>(out.size());
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof ctx;
    opts.repeat = 1;
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
        return errno_failure("plain");
    result->verdict = static_cast<int>(opts.retval);
    result->duration_ns = opts.duration;
    out.resize(opts.data_size_out);
    result->out = std::move(out);
    return {};
}

}  // namespace fulcrum::bench
