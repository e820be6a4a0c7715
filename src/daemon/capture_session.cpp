// `fulcrumctl capture` in the daemon; see capture_session.h.
#include "daemon/capture_session.h"

#include <linux/bpf.h>
#include <net/if.h>

#include <cstdio>
#include <ctime>

#include "control/protocol.h"
#include "dataplane/reasons.h"
#include "util/log.h"

namespace fulcrum::daemon {
namespace {

using control::Response;

const char* verdict_name(std::uint8_t verdict)
{
    switch (verdict) {
        case XDP_DROP: return "drop";
        case XDP_PASS: return "pass";
        case XDP_TX: return "tx";
        case XDP_REDIRECT: return "redirect";
        default: return "aborted";
    }
}

std::uint64_t clock_ns(clockid_t clock)
{
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

CaptureSession::CaptureSession(boost::asio::io_context& io, std::unique_ptr<dataplane::CaptureRing> ring,
                               ServiceName names)
    : io_(io), ring_(std::move(ring)), names_(std::move(names)), lease_timer_(io), poll_timer_(io)
{
}

CaptureSession::~CaptureSession() { ring_->stop(); }

Response CaptureSession::start(const dataplane::CaptureFilter& filter, const std::string& what)
{
    if (!id_.empty())
        return {control::kFailed, "a capture is already running (" + what_ +
                                      "); one at a time: stop it, or wait for it to end\n"};
    buffer_.clear();
    dropped_ = records_ = 0;
    lost_at_start_ = ring_->lost_in_kernel();
    if (Status s = ring_->start(filter); !s.ok()) {
        ring_->stop();
        return {control::kFailed, s.message() + "\n"};
    }
    id_ = std::to_string(next_id_++);
    what_ = what;
    arm_lease();
    LOG_INFO("capture %s: started (%s)", id_.c_str(), what_.c_str());
    return {control::kOk, "capture " + id_ + " snap " + std::to_string(FULCRUM_CAPTURE_SNAP) + "\n"};
}

void CaptureSession::end(const std::string& why)
{
    ring_->stop();
    lease_timer_.cancel();
    poll_timer_.cancel();
    const std::uint64_t lost = ring_->lost_in_kernel() - lost_at_start_ + dropped_;
    LOG_INFO("capture %s: ended (%s): %llu records given, %llu lost", id_.c_str(), why.c_str(),
             static_cast<unsigned long long>(records_), static_cast<unsigned long long>(lost));
    last_end_ = "capture " + id_ + " ended: " + why;
    id_.clear();
    buffer_.clear();
    if (pending_) {
        auto reply = std::move(pending_);
        pending_ = nullptr;
        reply({control::kFailed, last_end_ + "\n"});
    }
}

void CaptureSession::arm_lease()
{
    lease_timer_.expires_after(kLease);
    lease_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || id_.empty() || pending_)
            return;
        end("no read for " + std::to_string(kLease.count() / 1000) + " s: the client went away");
    });
}

Response CaptureSession::stop(const std::string& id)
{
    if (id_.empty() || id != id_)
        return {control::kFailed, "no capture " + id + " running\n"};
    end("stopped by the client");
    return {control::kOk, last_end_ + "\n"};
}

void CaptureSession::read(const std::string& id, control::Server::Reply reply)
{
    if (id_.empty() || id != id_) {
        const std::string why = !id_.empty() || last_end_.empty() ? "no capture " + id + " running" : last_end_;
        return reply({control::kFailed, why + "\n"});
    }
    if (pending_)  // one read at a time: an overlapping one gets what there is
        return reply(take(kMaxPerRead));
    lease_timer_.cancel();
    pending_ = std::move(reply);
    pending_until_ = std::chrono::steady_clock::now() + kReadWait;
    poll();
}

void CaptureSession::poll()
{
    if (Status s = ring_->drain(&buffer_, kMaxBuffered, &dropped_); !s.ok()) {
        LOG_WARN("%s", s.message().c_str());
        return end(s.message());
    }
    if (buffer_.empty() && std::chrono::steady_clock::now() < pending_until_) {
        poll_timer_.expires_after(kPollInterval);
        poll_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec && pending_)
                poll();
        });
        return;
    }
    auto reply = std::move(pending_);
    pending_ = nullptr;
    arm_lease();
    reply(take(kMaxPerRead));
}

std::string CaptureSession::interface_name(std::uint32_t ifindex)
{
    auto it = interfaces_.find(ifindex);
    if (it != interfaces_.end())
        return it->second;
    char name[IF_NAMESIZE] = "";
    std::string text = if_indextoname(ifindex, name) ? name : "if" + std::to_string(ifindex);
    return interfaces_[ifindex] = text;
}

Response CaptureSession::take(std::size_t most)
{
    // bpf_ktime_get_ns is CLOCK_MONOTONIC; the file wants time since the epoch.
    const std::uint64_t offset = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
    const std::size_t n = std::min(most, buffer_.size());
    const std::uint64_t lost = ring_->lost_in_kernel() - lost_at_start_ + dropped_;
    std::string body = "records " + std::to_string(n) + " lost " + std::to_string(lost) + "\n";
    static const char kHex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < n; i++) {
        const fulcrum_capture_record& r = buffer_.front();
        std::string reason = "-";
        if (r.reason != FULCRUM_CAPTURE_NO_REASON && r.reason < FULCRUM_REASON_COUNT)
            reason = dataplane::reason_name(static_cast<fulcrum_reason>(r.reason));
        std::string service = r.service_id ? names_(r.service_id) : "";
        char head[256];
        std::snprintf(head, sizeof head, "%llu %s %s %s %s %s %u ",
                      static_cast<unsigned long long>(r.ktime_ns + offset),
                      r.stage == FULCRUM_CAPTURE_OUT ? "after" : "before", verdict_name(r.verdict), reason.c_str(),
                      service.empty() ? "-" : service.c_str(), interface_name(r.ifindex).c_str(), r.wire_len);
        body += head;
        for (std::uint32_t b = 0; b < r.cap_len && b < FULCRUM_CAPTURE_SNAP; b++) {
            body += kHex[r.data[b] >> 4];
            body += kHex[r.data[b] & 15];
        }
        body += '\n';
        buffer_.pop_front();
    }
    records_ += n;
    return {control::kOk, body};
}

}  // namespace fulcrum::daemon
