// The world the bench runs in: a private network namespace with one veth pair, the floor programs,
// floor_pass attached to the peer (so XDP_TX into the veth is delivered, LAB.md), and the balancer
// loaded with TCP and UDP services over two IPv4 hosts that have permanent neighbour entries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/balancer_program.h"
#include "frames.h"
#include "util/status.h"

struct floors_bpf;
struct xdp_program;

namespace fulcrum::bench {

// Addresses (LAB.md ranges). Frames arrive on "bench0" from a router whose MAC no interface has,
// so whatever is sent back or to a backend is dropped by the peer's stack as "other host", at the
// same point for the balancer and for floor_tx.
inline constexpr Mac kBenchMac{0x02, 0, 0, 0, 0xbe, 0x01};    // bench0, the balancer's interface
inline constexpr Mac kPeerMac{0x02, 0, 0, 0, 0xbe, 0x02};     // bench0-peer, floor_pass attached
inline constexpr Mac kRouterMac{0x02, 0, 0, 0, 0xbe, 0x99};   // the clients' router (nobody's)
inline const std::string kTunnelSource = "198.18.0.1";        // bench0's address, outer source
inline const std::string kVip = "198.18.100.1";
inline constexpr std::uint16_t kServicePort = 80;
inline constexpr std::uint32_t kServiceId = 1;
// Not a VIP, and blackholed: XDP_PASS packets are dropped by the stack right after routing,
// the same way for the balancer and for floor_pass, with no ICMP reply to muddy the figure.
inline const std::string kNonVip = "198.18.99.1";
// A second service, for the flood case: established flows go to it while the flood goes to the
// first one, so its counters count only the established packets. Both share the flow tables and
// the per-CPU new-flow budget, as every service does.
inline const std::string kEstablishedVip = "198.18.100.2";
inline constexpr std::uint32_t kEstablishedServiceId = 2;
// Three UDP services on one more VIP, one per encapsulation path of issue 9, for the program-time
// rows that compare them: IP-in-IP (the baseline), GUE (outer IPv4 + UDP to kGuePort), and QUIC
// connection-ID routing (IP-in-IP; a short header's server id names the backend).
inline const std::string kUdpVip = "198.18.100.3";
inline constexpr std::uint16_t kUdpIpipPort = 4430, kUdpGuePort = 4431, kQuicPort = 4432;
inline constexpr std::uint32_t kUdpIpipServiceId = 3, kUdpGueServiceId = 4, kQuicServiceId = 5;
inline constexpr std::uint16_t kGuePort = FULCRUM_GUE_DEFAULT_PORT;  // settings.gue_port
// quic: {server_id_offset: 0, server_id_bits: 16}: the first two DCID bytes; kQuicServerId is the
// id of the QUIC service's first backend (kQuicBackendId, 198.18.8.0).
inline constexpr std::uint8_t kQuicIdOffset = 1, kQuicIdBits = 16;  // abi.h: 1 + the DCID offset
inline constexpr std::uint32_t kQuicServerId = 0x0101, kQuicBackendId = 9;
inline const std::string kQuicBackendAddress = "198.18.8.0";

class BenchLab {
public:
    // Enters a fresh network namespace (for the rest of the process), pins it to CPU 0 (one
    // per-CPU flow table, one CPU for the veth's NAPI too), builds the veth pair and loads the
    // programs. On failure returns nullptr and sets *error.
    static Result<std::unique_ptr<BenchLab>> create();
    ~BenchLab();
    BenchLab(const BenchLab&) = delete;
    BenchLab& operator=(const BenchLab&) = delete;

    int ifindex() const { return ifindex_; }
    // How floor_pass got onto the peer, e.g. "libxdp, single program (no dispatcher)".
    const std::string& peer_attach() const { return peer_attach_; }

    int floor_drop_fd() const;
    int floor_pass_fd() const;
    int floor_tx_fd() const;
    dataplane::BalancerProgram& balancer() { return *balancer_; }
    // Fills (on) or invalidates (off) the backends' next-hop cache entries, as fulcrumd does
    // from netlink: on = the hot path skips bpf_fib_lookup; off = it does the fib lookup.
    Status use_nexthop_cache(bool on);

    // A client packet to the service, from `client` port `sport` (TCP ACK; a SYN if `syn`).
    static Bytes service_frame(const std::string& client, std::uint16_t sport, bool syn = false,
                               const std::string& vip = kVip);
    // Sets settings.new_flows_per_second (the per-CPU new-flow budget; 0 = no limit).
    Status set_new_flow_budget(std::uint32_t per_second);
    // Attaches `prog_fd` to bench0 in native mode (libbpf, replacing what is there), or detaches
    // with -1: for the trafgen cases, whose frames arrive on bench0 from bench0-peer.
    Status attach_to_bench0(int prog_fd);
    // Threaded NAPI on bench0 with its kthread pinned to `cpu` (trafgen pins itself to CPU 0):
    // returns how it went, for the header.
    std::string thread_bench0_napi(int cpu);
    // Puts floor_drop (drop) or floor_pass (!drop) on bench0-peer, replacing the other in place
    // (libbpf's attach on top of libxdp's single-program attach; the destructor's detach takes
    // whichever is there). With floor_drop the peer's stack does no work for what bench0 sends, so
    // a program's cost above floor_tx is not hidden by the same stack cost on both sides (LAB.md).
    Status use_drop_peer(bool drop);
    bool drop_peer() const { return drop_peer_; }
    // A TCP packet to an address that is not a VIP.
    static Bytes non_service_frame();
    // A UDP datagram from `client` port `sport` to kUdpVip:`dport`. Its payload is a QUIC short
    // header (first byte 0x41, an 8-byte DCID starting with kQuicServerId, 23 bytes more) for
    // every port alike, so the three UDP services see the same bytes and differ only in config.
    static Bytes udp_frame(const std::string& client, std::uint16_t sport, std::uint16_t dport);

private:
    BenchLab() = default;
    Status build_namespace();
    Status load_floors();
    Status attach_peer();
    Status load_balancer();

    int ifindex_ = 0, peer_ifindex_ = 0;
    floors_bpf* floors_ = nullptr;
    xdp_program* peer_program_ = nullptr;  // libxdp handle, when libxdp attached it
    bool peer_by_libbpf_ = false;          // attached with bpf_xdp_attach instead
    bool bench0_attached_ = false;
    bool drop_peer_ = false;               // floor_drop on the peer instead of floor_pass
    fulcrum_settings settings_{};
    std::string peer_attach_;
    std::unique_ptr<dataplane::BalancerProgram> balancer_;
};

}  // namespace fulcrum::bench
