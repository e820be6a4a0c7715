// tcp checks without a socket per check: a SYN sent from one raw socket per family, the answer
// read back from the same socket. A SYN-ACK passes (our kernel has no socket for it and answers
// RST, so the backend drops the half-open connection: no accept, no FIN, no TIME_WAIT); an RST
// is `refused`; an ICMP error is classified as connect(2) would (unreachable, refused); nothing
// within the timeout is `timeout`. The SYN is retransmitted as the kernel does (after 1 s, then 2 s,
// 4 s, ...) while the timeout allows. Same results and details as the connect check (check_tcp.cpp).
//
// Cost: SYNs started in one event-loop turn go out in one sendmmsg per family, answers come back
// by recvmmsg; no allocation per check once the tables have grown. Opening needs CAP_NET_RAW (the
// daemon opens it before dropping capabilities; the sockets keep working without it).
//
// Source ports: a few ports per family are reserved by binding plain TCP sockets to them (never
// listening), so no other socket of this host gets them and the kernel answers every SYN-ACK to
// them with an RST; checks rotate over them so two checks of one backend rarely share a 4-tuple.
// The source address is the kernel's choice for the target (asked once per target with a
// connected UDP socket and asked again after a failed check), or `source`, which is tried with
// bind(2) like the connect check on a target's first check and after each failure.
#pragma once

#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "health/check.h"
#include "util/status.h"

namespace fulcrum::health {

class SynProber {
public:
    // Opens the raw sockets and reserves the source ports. Fails without CAP_NET_RAW.
    static fulcrum::Result<std::unique_ptr<SynProber>> open(boost::asio::io_context& io);
    ~SynProber();
    SynProber(const SynProber&) = delete;
    SynProber& operator=(const SynProber&) = delete;

    // One tcp check of `target` (check.timeout, check.source); `done` runs later on io, exactly once.
    void probe(const config::HealthCheck& check, const Target& target, Done done);

    std::size_t in_flight() const { return in_flight_; }
    std::uint64_t syns_sent() const { return syns_sent_; }

private:
    struct Family;
    struct Probe;
    struct Timer {
        std::chrono::steady_clock::time_point at;
        std::uint32_t slot, seq;
        bool operator>(const Timer& o) const { return at > o.at; }
    };

    explicit SynProber(boost::asio::io_context& io);
    void send(std::uint32_t slot);
    void flush();
    void flush(Family& f);
    void wait_readable(Family& f);
    void drain(Family& f);
    void drain_errors(Family& f);
    void answer(Family& f, const std::uint8_t* tcp, std::size_t len, const std::uint8_t* from);
    void arm_timer();
    void on_timer();
    void finish(std::uint32_t slot, Failure failure, std::string detail);
    Probe* find(std::uint32_t ack_minus_one, int family, const std::uint8_t* peer, std::uint16_t peer_port,
                std::uint16_t our_port);

    boost::asio::io_context& io_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // handlers check it: they may outlive us
    std::unique_ptr<Family> v4_, v6_;
    std::vector<Probe> probes_;         // by slot; a slot's number is in its SYN's sequence number
    std::vector<std::uint32_t> free_;   // free slots
    std::vector<Timer> timers_;         // min-heap of retransmits and deadlines (stale ones skipped)
    boost::asio::steady_timer timer_;
    std::chrono::steady_clock::time_point timer_at_{};
    bool timer_armed_ = false;
    bool flush_posted_ = false;
    std::uint32_t secret_;              // XORed into sequence numbers: not guessable off-path
    std::uint64_t rng_;
    std::size_t in_flight_ = 0;
    std::uint64_t syns_sent_ = 0;
    // Source address per IPv4 target (the kernel's choice), asked again after a failure.
    std::unordered_map<std::uint32_t, std::uint32_t> source_v4_;
};

}  // namespace fulcrum::health
