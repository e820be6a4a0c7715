// The daemon's side of packet capture (xdp/capture.h): turns the balancer's capture on and off
// through its control block (the program's .bss, mapped by the skeleton) and drains the records
// of its ring buffer. One capture at a time; the daemon's event loop is its only user.
// The ring is mapped only while a capture runs: its 4 MiB of data pages are mapped twice (the
// ring wraps by a second mapping), so keeping it mapped would add 8 MiB to fulcrumd's RSS for a
// tool used now and then. The kernel memory itself exists from the program's load either way.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>

#include "abi.h"
#include "capture_abi.h"
#include "util/status.h"

struct ring_buffer;

namespace fulcrum::dataplane {

struct CaptureFilter {
    std::uint32_t service_id = 0;  // 0: any service (and packets of none)
    fulcrum_addr vip{};
    std::uint8_t vip_family = 0;   // 0: any destination
};

class CaptureRing {
public:
    // ring_fd: the program's capture_ring map; control: its .bss capture_control (both live as
    // long as the program, which outlives this object). Capture starts off, the ring unmapped.
    static Result<std::unique_ptr<CaptureRing>> open(int ring_fd, fulcrum_capture_control* control);
    ~CaptureRing();  // capture off
    CaptureRing(const CaptureRing&) = delete;
    CaptureRing& operator=(const CaptureRing&) = delete;

    // Maps the ring, discards records left from an earlier capture, sets the filter, then turns
    // capture on.
    Status start(const CaptureFilter& filter);
    // Turns capture off and unmaps the ring; records still in it are discarded by the next start.
    void stop();
    bool running() const;
    bool mapped() const { return ring_ != nullptr; }

    // Moves the ring's records to the end of out, keeping at most `limit` there; the records
    // beyond are counted in *dropped. A failure means the ring could not be read. Between a stop
    // and the next start (ring unmapped) there is nothing to read.
    Status drain(std::deque<fulcrum_capture_record>* out, std::size_t limit, std::uint64_t* dropped);
    // Records the program had no room for in the ring since it was loaded (it never resets).
    std::uint64_t lost_in_kernel() const;

private:
    CaptureRing(int ring_fd, fulcrum_capture_control* control) : ring_fd_(ring_fd), control_(control) {}
    static int on_record(void* self, void* data, std::size_t size);
    void unmap();

    int ring_fd_;
    ring_buffer* ring_ = nullptr;  // null while no capture runs
    fulcrum_capture_control* control_;
    // drain()'s destination while ring_buffer__consume runs
    std::deque<fulcrum_capture_record>* out_ = nullptr;
    std::size_t limit_ = 0;
    std::uint64_t* dropped_ = nullptr;
};

}  // namespace fulcrum::dataplane
