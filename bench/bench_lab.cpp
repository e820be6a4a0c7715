// The bench's namespace and programs: see bench_lab.h.
#include "bench_lab.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>
#include <dirent.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>

#include "abi.h"
#include "floors.skel.h"
#include "maglev/maglev.h"

namespace fulcrum::bench {
namespace {

// Backends: id -> address on bench0's subnet, each with a permanent neighbour entry so
// bpf_fib_lookup succeeds and the balancer answers XDP_TX on the same interface.
// Both addresses end in 8.0 on purpose. Live-frames mode recycles pages without restoring their
// bytes, and encapsulation writes the outer IPv4 header over the original Ethernet header: on a
// recycled page the EtherType field holds the last two bytes of the backend address. With 0x0800
// there, the recycled frame is again the same IPv4 packet of the same flow (only the MACs, which
// the balancer never reads, differ), so every timed packet takes the hit path. See README.md.
const std::pair<std::uint32_t, std::string> kBackends[] = {{1, "198.18.8.0"}, {2, "198.19.8.0"}};
// The established-flow service's backends: the same hosts under their own ids (a backend id
// serves one service).
const std::pair<std::uint32_t, std::string> kEstablishedBackends[] = {{3, "198.18.8.0"}, {4, "198.19.8.0"}};
// The UDP services' backends, again the same two hosts under ids of their own.
const std::pair<std::uint32_t, std::string> kUdpIpipBackends[] = {{5, "198.18.8.0"}, {6, "198.19.8.0"}};
const std::pair<std::uint32_t, std::string> kUdpGueBackends[] = {{7, "198.18.8.0"}, {8, "198.19.8.0"}};
const std::pair<std::uint32_t, std::string> kQuicBackends[] = {{kQuicBackendId, kQuicBackendAddress}, {10, "198.19.8.0"}};

using BackendPair = std::pair<std::uint32_t, std::string>;
struct ServiceSpec {
    std::uint32_t id;
    const std::string& vip;
    std::uint16_t port;
    std::uint8_t proto;
    const BackendPair (&backends)[2];
    std::uint8_t encap = FULCRUM_ENCAP_IPIP;
    std::uint8_t quic_id_offset = 0, quic_id_bits = 0;
};
const ServiceSpec kServices[] = {
    {kServiceId, kVip, kServicePort, IPPROTO_TCP, kBackends},
    {kEstablishedServiceId, kEstablishedVip, kServicePort, IPPROTO_TCP, kEstablishedBackends},
    {kUdpIpipServiceId, kUdpVip, kUdpIpipPort, IPPROTO_UDP, kUdpIpipBackends},
    {kUdpGueServiceId, kUdpVip, kUdpGuePort, IPPROTO_UDP, kUdpGueBackends, FULCRUM_ENCAP_GUE},
    {kQuicServiceId, kUdpVip, kQuicPort, IPPROTO_UDP, kQuicBackends, FULCRUM_ENCAP_IPIP, kQuicIdOffset, kQuicIdBits},
};

// One MAC per host (198.18.8.0 is host 1, 198.19.8.0 host 2), whichever backend id names it.
Mac host_mac(const std::string& address)
{
    return Mac{0x02, 0xbe, 0, 0, 0, static_cast<std::uint8_t>(address == kBackends[0].second ? 1 : 2)};
}

Status sh(const std::string& command)
{
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
        return Status::failure("lab: command failed: " + command);
    return {};
}

Status write_sysctl(const std::string& path, const std::string& value)
{
    std::ofstream f(path);
    f << value;
    f.flush();
    if (!f)
        return Status::failure("lab: cannot write " + path);
    return {};
}

Status errno_failure(const std::string& what, int err)
{
    return Status::failure(what + ": " + std::strerror(err < 0 ? -err : err));
}

// libxdp's messages, and libbpf's while libxdp uses it, kept so a failed attach can show them.
// On success they stay quiet: the expected dispatcher failure on this kernel (LAB.md) would
// otherwise print a misleading "permission error ... ulimit -l" before every table.
std::string g_attach_log;
void keep_message(const char* format, va_list args)
{
    char line[512];
    std::vsnprintf(line, sizeof line, format, args);
    g_attach_log += line;
}
int keep_libxdp_message(libxdp_print_level level, const char* format, va_list args)
{
    if (level != LIBXDP_DEBUG)
        keep_message(format, args);
    return 0;
}
int keep_libbpf_message(libbpf_print_level level, const char* format, va_list args)
{
    if (level != LIBBPF_DEBUG)
        keep_message(format, args);
    return 0;
}

}  // namespace

Result<std::unique_ptr<BenchLab>> BenchLab::create()
{
    std::unique_ptr<BenchLab> lab(new BenchLab());
    for (Status (BenchLab::*step)() : {&BenchLab::build_namespace, &BenchLab::load_floors,
                                       &BenchLab::attach_peer, &BenchLab::load_balancer})
        if (Status s = (lab.get()->*step)(); !s.ok())
            return s;
    return lab;
}

BenchLab::~BenchLab()
{
    if (bench0_attached_)
        bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE, nullptr);
    // The namespace (and with it the veth and the attachment) goes away with the process; the
    // explicit detach keeps the teardown order obvious and leaves nothing for libxdp to clean.
    if (peer_program_) {
        xdp_program__detach(peer_program_, peer_ifindex_, XDP_MODE_NATIVE, 0);
        xdp_program__close(peer_program_);
    } else if (peer_by_libbpf_) {
        bpf_xdp_detach(peer_ifindex_, XDP_FLAGS_DRV_MODE, nullptr);
    }
    floors_bpf__destroy(floors_);
}

Status BenchLab::build_namespace()
{
    if (unshare(CLONE_NEWNET) != 0)
        return errno_failure("lab: unshare(CLONE_NEWNET)", errno);
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    if (sched_setaffinity(0, sizeof cpus, &cpus) != 0)
        return errno_failure("lab: cannot pin to CPU 0", errno);

    std::vector<std::string> commands = {
        "ip link set lo up",
        "ip link add bench0 address " + mac_text(kBenchMac) + " type veth peer name bench0-peer address " +
            mac_text(kPeerMac),
        "ip link set bench0 up",
        "ip link set bench0-peer up",
        "ip addr add " + kTunnelSource + "/15 dev bench0",  // all of 198.18.0.0/15 on-link
        // Clients sit behind the router, as in production (keeps reverse-path checks happy).
        "ip route add 198.18.50.0/23 via 198.18.0.254 dev bench0",
        "ip neigh add 198.18.0.254 lladdr " + mac_text(kRouterMac) + " dev bench0 nud permanent",
        "ip route add blackhole " + kNonVip + "/32",
    };
    for (const auto& [id, address] : kBackends)
        commands.push_back("ip neigh add " + address + " lladdr " + mac_text(host_mac(address)) +
                           " dev bench0 nud permanent");
    for (const std::string& c : commands)
        if (Status s = sh(c); !s.ok())
            return s;
    // bpf_fib_lookup answers "forwarding disabled" unless the receiving interface forwards.
    for (const char* path : {"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv4/conf/bench0/forwarding"})
        if (Status s = write_sysctl(path, "1"); !s.ok())
            return s;
    ifindex_ = static_cast<int>(if_nametoindex("bench0"));
    peer_ifindex_ = static_cast<int>(if_nametoindex("bench0-peer"));
    if (!ifindex_ || !peer_ifindex_)
        return Status::failure("lab: the veth pair bench0/bench0-peer did not appear");
    return {};
}

Status BenchLab::load_floors()
{
    floors_ = floors_bpf__open_and_load();
    if (!floors_)
        return errno_failure("lab: cannot load the floor programs (floors.bpf.o)", errno);
    return {};
}

// XDP_TX into a veth is delivered only when the peer has an XDP program (LAB.md). libxdp first,
// as the daemon does; it falls back to a single program here (no dispatcher on this kernel), and
// if libxdp fails outright, libbpf's plain attach. Which one worked is reported in the header.
Status BenchLab::attach_peer()
{
    libxdp_set_print(keep_libxdp_message);
    libbpf_print_fn_t libbpf_printer = libbpf_set_print(keep_libbpf_message);
    struct RestorePrinter {
        libbpf_print_fn_t fn;
        ~RestorePrinter() { libbpf_set_print(fn); }
    } restore{libbpf_printer};
    int fd = dup(bpf_program__fd(floors_->progs.floor_pass));  // libxdp may close what it is given
    xdp_program* program = fd >= 0 ? xdp_program__from_fd(fd) : nullptr;
    int err = program ? static_cast<int>(libxdp_get_error(program)) : -EBADF;
    if (!err)
        err = xdp_program__attach(program, peer_ifindex_, XDP_MODE_NATIVE, 0);
    if (!err) {
        peer_program_ = program;
        xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(peer_ifindex_);
        bool legacy = !libxdp_get_error(mp) && mp && xdp_multiprog__is_legacy(mp);
        peer_attach_ = legacy ? "libxdp, native, single program (dispatcher unavailable)"
                              : "libxdp, native, through the multi-program dispatcher";
        if (mp && !libxdp_get_error(mp))
            xdp_multiprog__close(mp);
        return {};
    }
    if (program && !libxdp_get_error(program))
        xdp_program__close(program);
    std::string libxdp_error = std::strerror(-err);
    err = bpf_xdp_attach(peer_ifindex_, bpf_program__fd(floors_->progs.floor_pass), XDP_FLAGS_DRV_MODE, nullptr);
    if (err)
        return Status::failure("lab: cannot attach floor_pass to bench0-peer: libxdp: " + libxdp_error +
                               ", libbpf: " + std::strerror(-err) + "\n" + g_attach_log);
    peer_by_libbpf_ = true;
    peer_attach_ = "libbpf bpf_xdp_attach, native (libxdp failed: " + libxdp_error + ")";
    return {};
}

int BenchLab::floor_drop_fd() const { return bpf_program__fd(floors_->progs.floor_drop); }
int BenchLab::floor_pass_fd() const { return bpf_program__fd(floors_->progs.floor_pass); }
int BenchLab::floor_tx_fd() const { return bpf_program__fd(floors_->progs.floor_tx); }

Status BenchLab::load_balancer()
{
    dataplane::LoadOptions options;  // production defaults: flow table size, UDP timeout
    auto loaded = dataplane::BalancerProgram::load(options);
    if (!loaded.ok())
        return loaded.status();
    balancer_ = std::move(loaded).value();
    Status s;

    settings_.source_v4 = ipv4(kTunnelSource);
    settings_.hash_seed = 0x5eed5eed;
    settings_.gue_port = htons(kGuePort);  // as the daemon writes tunnel.gue_port
    if (s = balancer_->set_settings(settings_); !s.ok())
        return s;

    fulcrum_vip_key last_vip{};
    for (const ServiceSpec& spec : kServices) {
        std::vector<maglev::Backend> members;
        for (const auto& [id, address] : spec.backends) {
            fulcrum_backend b{};
            b.addr.w[0] = ipv4(address);
            b.family = FULCRUM_AF_INET;
            b.state = FULCRUM_BACKEND_ACTIVE;
            b.service_id = static_cast<std::uint16_t>(spec.id);  // hits count only for its own service
            if (s = balancer_->put_backend(id, b); !s.ok())
                return s;
            members.push_back({address, id, 1});
        }
        // A production-sized table (the default prime), built by the daemon's own Maglev code.
        maglev::TableResult table = maglev::build_table(members, FULCRUM_DEFAULT_TABLE_SIZE);
        if (!table.ok())
            return Status::failure("lab: Maglev table: " + table.error);
        if (s = balancer_->put_table(spec.id, table.table); !s.ok())
            return s;

        fulcrum_vip_key vk{};
        vk.addr.w[0] = ipv4(spec.vip);
        vk.family = FULCRUM_AF_INET;
        if (std::memcmp(&vk, &last_vip, sizeof vk) != 0)  // the UDP services share one VIP
            if (s = balancer_->put_vip(vk, fulcrum_vip_value{}); !s.ok())
                return s;
        last_vip = vk;
        fulcrum_service_key sk{};
        sk.vip = vk.addr;
        sk.family = FULCRUM_AF_INET;
        sk.port = htons(spec.port);
        sk.proto = spec.proto;
        fulcrum_service_value sv{};
        sv.id = spec.id;
        sv.table_size = FULCRUM_DEFAULT_TABLE_SIZE;
        sv.encap = spec.encap;
        sv.quic_id_offset = spec.quic_id_offset;
        sv.quic_id_bits = spec.quic_id_bits;
        if (s = balancer_->put_service(sk, sv); !s.ok())
            return s;
    }
    // The QUIC service's first backend has a server id, as `server_id` in the config gives it.
    return balancer_->put_quic_id(fulcrum_quic_key{kQuicServiceId, kQuicServerId}, kQuicBackendId);
}

Status BenchLab::set_new_flow_budget(std::uint32_t per_second)
{
    settings_.new_flows_per_second = per_second;
    return balancer_->set_settings(settings_);
}

Status BenchLab::use_drop_peer(bool drop)
{
    if (drop == drop_peer_)
        return {};
    int fd = drop ? floor_drop_fd() : floor_pass_fd();
    if (int err = bpf_xdp_attach(peer_ifindex_, fd, XDP_FLAGS_DRV_MODE, nullptr))
        return errno_failure(std::string("lab: cannot put ") + (drop ? "floor_drop" : "floor_pass") +
                                 " on bench0-peer (native)",
                             err);
    drop_peer_ = drop;
    return {};
}

Status BenchLab::attach_to_bench0(int prog_fd)
{
    int err = prog_fd < 0 ? bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE, nullptr)
                          : bpf_xdp_attach(ifindex_, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
    if (err)
        return errno_failure(prog_fd < 0 ? "lab: detach from bench0" : "lab: attach to bench0 (native)", err);
    bench0_attached_ = prog_fd >= 0;
    return {};
}

namespace {

// napi/* kernel threads: pid -> name.
std::map<int, std::string> napi_threads()
{
    std::map<int, std::string> out;
    if (DIR* d = opendir("/proc")) {
        while (dirent* e = readdir(d)) {
            int pid = std::atoi(e->d_name);
            if (pid <= 0)
                continue;
            std::ifstream f(std::string("/proc/") + e->d_name + "/comm");
            std::string comm;
            if (std::getline(f, comm) && comm.rfind("napi/", 0) == 0)
                out[pid] = comm;
        }
        closedir(d);
    }
    return out;
}

}  // namespace

std::string BenchLab::thread_bench0_napi(int cpu)
{
    // /sys shows the namespace of whoever mounted it: mount a fresh sysfs in a private mount
    // namespace of a child (which shares our network namespace) to reach bench0's "threaded".
    std::map<int, std::string> before = napi_threads();
    if (std::system("unshare -m sh -c 'mount -t sysfs sysfs /sys && echo 1 > /sys/class/net/bench0/threaded' "
                    ">/dev/null 2>&1") != 0)
        return "threaded NAPI not available (bench0's NAPI runs where the sender runs)";
    std::string pinned;
    for (int attempt = 0; attempt < 100 && pinned.empty(); ++attempt) {
        for (const auto& [pid, comm] : napi_threads()) {
            if (before.count(pid) || comm.rfind("napi/bench0", 0) != 0)
                continue;
            cpu_set_t cpus;
            CPU_ZERO(&cpus);
            CPU_SET(cpu, &cpus);
            if (sched_setaffinity(pid, sizeof cpus, &cpus) == 0)
                pinned += (pinned.empty() ? "" : ", ") + comm;
        }
        if (pinned.empty())
            usleep(20000);
    }
    if (pinned.empty())
        return "threaded NAPI on, but its kthread was not found to pin";
    return "threaded NAPI (" + pinned + ") pinned to CPU " + std::to_string(cpu);
}

Bytes BenchLab::service_frame(const std::string& client, std::uint16_t sport, bool syn, const std::string& vip)
{
    return tcp_frame({kBenchMac, kRouterMac, client, vip, sport, kServicePort,
                      static_cast<std::uint8_t>(syn ? 0x02 : 0x10)});
}

Bytes BenchLab::non_service_frame()
{
    return tcp_frame({kBenchMac, kRouterMac, "198.18.50.7", kNonVip, 40000, kServicePort});
}

Bytes BenchLab::udp_frame(const std::string& client, std::uint16_t sport, std::uint16_t dport)
{
    Bytes quic_short_header = {0x41, kQuicServerId >> 8, kQuicServerId & 0xff, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    for (int i = 0; i < 23; ++i)  // "protected payload"
        quic_short_header.push_back(static_cast<std::uint8_t>(i * 7));
    return fulcrum::bench::udp_frame({kBenchMac, kRouterMac, client, kUdpVip, sport, dport, quic_short_header});
}

Status BenchLab::use_nexthop_cache(bool on)
{
    for (const ServiceSpec& spec : kServices)
        for (const auto& [id, address] : spec.backends) {
            if (!on) {
                if (Status s = balancer_->invalidate_nexthop(id); !s.ok())
                    return s;
                continue;
            }
            fulcrum_nexthop nh{};
            Mac dmac = host_mac(address), smac = kBenchMac;
            std::memcpy(nh.dmac, dmac.data(), 6);
            std::memcpy(nh.smac, smac.data(), 6);
            nh.ifindex = static_cast<std::uint32_t>(ifindex_);
            nh.mtu = 1500;
            nh.valid = 1;
            if (Status s = balancer_->put_nexthop(id, nh); !s.ok())
                return s;
        }
    return {};
}

}  // namespace fulcrum::bench
