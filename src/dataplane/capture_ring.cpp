// Packet capture, the daemon's side; see capture_ring.h.
#include "dataplane/capture_ring.h"

#include <bpf/libbpf.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

namespace fulcrum::dataplane {
namespace {

// The program reads the block concurrently: the filter must be in place before `on` is seen set,
// and `on` is one aligned word written at once.
void store_on(fulcrum_capture_control* control, std::uint32_t value)
{
    std::atomic_ref<__u32>(control->on).store(value, std::memory_order_release);
}

}  // namespace

Result<std::unique_ptr<CaptureRing>> CaptureRing::open(int ring_fd, fulcrum_capture_control* control)
{
    if (!control)
        return Status::failure("capture: the balancer's control block is not mapped (.bss)");
    if (ring_fd < 0)
        return Status::failure("capture: the balancer has no ring buffer capture_ring");
    std::unique_ptr<CaptureRing> self(new CaptureRing(ring_fd, control));
    store_on(control, 0);
    return self;
}

CaptureRing::~CaptureRing()
{
    store_on(control_, 0);
    unmap();
}

void CaptureRing::unmap()
{
    ring_buffer__free(ring_);  // null-safe
    ring_ = nullptr;
}

Status CaptureRing::start(const CaptureFilter& filter)
{
    store_on(control_, 0);
    if (!ring_) {
        ring_ = ring_buffer__new(ring_fd_, &CaptureRing::on_record, this, nullptr);
        if (!ring_)
            return Status::failure(std::string("capture: cannot map the ring buffer capture_ring: ") +
                                   std::strerror(errno));
    }
    std::deque<fulcrum_capture_record> stale;
    std::uint64_t ignored = 0;
    if (Status s = drain(&stale, 0, &ignored); !s.ok())
        return s;
    control_->service_id = filter.service_id;
    control_->vip = filter.vip;
    control_->vip_family = filter.vip_family;
    store_on(control_, 1);
    return {};
}

void CaptureRing::stop()
{
    store_on(control_, 0);
    unmap();
}

bool CaptureRing::running() const { return std::atomic_ref<__u32>(control_->on).load() != 0; }

int CaptureRing::on_record(void* self, void* data, std::size_t size)
{
    auto* ring = static_cast<CaptureRing*>(self);
    if (size < sizeof(fulcrum_capture_record) || ring->out_->size() >= ring->limit_) {
        ++*ring->dropped_;
        return 0;
    }
    fulcrum_capture_record record;
    std::memcpy(&record, data, sizeof record);
    if (record.cap_len > FULCRUM_CAPTURE_SNAP)
        record.cap_len = FULCRUM_CAPTURE_SNAP;
    ring->out_->push_back(record);
    return 0;
}

Status CaptureRing::drain(std::deque<fulcrum_capture_record>* out, std::size_t limit, std::uint64_t* dropped)
{
    if (!ring_)
        return {};
    out_ = out;
    limit_ = limit;
    dropped_ = dropped;
    const int n = ring_buffer__consume(ring_);
    out_ = nullptr;
    if (n < 0)
        return Status::failure(std::string("capture: cannot read the ring buffer: ") + std::strerror(-n));
    return {};
}

std::uint64_t CaptureRing::lost_in_kernel() const
{
    return std::atomic_ref<__u64>(control_->lost).load(std::memory_order_relaxed);
}

}  // namespace fulcrum::dataplane
