// `fulcrumctl capture` in the daemon: one capture at a time, driven by three control requests
// (protocol.h keeps one request and one answer per connection, so a capture is a lease the client
// keeps renewing, the way `top` asks for frames):
//   capture start [service NAME | vip ADDR]  -> "capture ID snap N"
//   capture read ID   -> waits up to kReadWait for records, then "records N lost M" and N lines
//                        "TIME_NS STAGE VERDICT REASON SERVICE INTERFACE WIRE_LEN HEX"
//   capture stop ID
// A capture whose client has not read for kLease is stopped (the client went away or hung), so
// the data plane never captures for nobody. README "Packet capture" documents the file written.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "control/server.h"
#include "dataplane/capture_ring.h"

namespace fulcrum::daemon {

class CaptureSession {
public:
    static constexpr std::chrono::milliseconds kReadWait{1000};     // a read with nothing to give
    static constexpr std::chrono::milliseconds kPollInterval{50};   // ring polls while a read waits
    static constexpr std::chrono::milliseconds kLease{5000};        // no read for this long: stop
    static constexpr std::size_t kMaxPerRead = 256;                 // records in one answer
    static constexpr std::size_t kMaxBuffered = 8192;               // held between reads

    using ServiceName = std::function<std::string(std::uint32_t id)>;  // "" when unknown
    CaptureSession(boost::asio::io_context& io, std::unique_ptr<dataplane::CaptureRing> ring, ServiceName names);
    ~CaptureSession();  // capture off
    CaptureSession(const CaptureSession&) = delete;
    CaptureSession& operator=(const CaptureSession&) = delete;

    // what: the filter in words, for the log ("service web", "vip 198.18.0.10", "everything").
    control::Response start(const dataplane::CaptureFilter& filter, const std::string& what);
    void read(const std::string& id, control::Server::Reply reply);
    control::Response stop(const std::string& id);

private:
    void end(const std::string& why);  // capture off, pending read answered
    void arm_lease();
    void poll();                      // the pending read: answer it or wait a little more
    control::Response take(std::size_t most);  // the read's answer from buffer_
    std::string interface_name(std::uint32_t ifindex);

    boost::asio::io_context& io_;
    std::unique_ptr<dataplane::CaptureRing> ring_;
    ServiceName names_;
    boost::asio::steady_timer lease_timer_;
    boost::asio::steady_timer poll_timer_;
    std::uint64_t next_id_ = 1;
    std::string id_;                 // the running capture's, "" when none runs
    std::string what_;
    std::string last_end_;           // why the last capture ended (a late read is told)
    std::deque<fulcrum_capture_record> buffer_;
    std::uint64_t dropped_ = 0;      // records beyond kMaxBuffered
    std::uint64_t lost_at_start_ = 0;  // the program's lost counter when this capture started
    std::uint64_t records_ = 0;
    control::Server::Reply pending_;  // the read waiting for records
    std::chrono::steady_clock::time_point pending_until_;
    std::map<std::uint32_t, std::string> interfaces_;
};

}  // namespace fulcrum::daemon
