// trafgen runs and bpf_stats: see flood.h.
#include "flood.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fulcrum::bench {
namespace {

// /proc/net/dev of our network namespace: tx packets and tx drops of `dev`.
bool dev_tx(const std::string& dev, std::uint64_t* packets, std::uint64_t* dropped)
{
    std::ifstream f("/proc/net/dev");
    for (std::string line; std::getline(f, line);) {
        std::size_t colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        std::string name = line.substr(0, colon);
        name.erase(0, name.find_first_not_of(' '));
        if (name != dev)
            continue;
        std::istringstream in(line.substr(colon + 1));
        std::uint64_t v[16] = {};
        for (auto& x : v)
            in >> x;
        *packets = v[9];   // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets ...
        *dropped = v[11];
        return true;
    }
    return false;
}

// Packets bench0-peer's qdisc dropped so far (tc -s qdisc: "dropped N").
std::uint64_t qdisc_drops()
{
    FILE* p = popen("tc -s qdisc show dev bench0-peer 2>/dev/null", "r");
    if (!p)
        return 0;
    std::string text;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p))
        text += buf;
    pclose(p);
    std::size_t at = text.find("dropped ");
    return at == std::string::npos ? 0 : std::strtoull(text.c_str() + at + 8, nullptr, 10);
}

}  // namespace

Status prog_stats(int prog_fd, ProgStats* out)
{
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
        return Status::failure(std::string("bpf_obj_get_info_by_fd: ") + std::strerror(errno));
    out->run_cnt = info.run_cnt;
    out->run_time_ns = info.run_time_ns;
    return {};
}

BpfStats::BpfStats()
{
    fd_ = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (fd_ < 0)
        error_ = std::string("bpf_enable_stats(BPF_STATS_RUN_TIME): ") + std::strerror(errno);
}

BpfStats::~BpfStats()
{
    if (fd_ >= 0)
        close(fd_);
}

std::string find_trafgen()
{
    for (const char* path : {"/usr/sbin/trafgen", "/usr/bin/trafgen", "/sbin/trafgen"})
        if (access(path, X_OK) == 0)
            return path;
    return "";
}

Status run_trafgen(const std::string& trafgen, const std::string& config, std::uint64_t packets,
                   int max_seconds, TrafgenRun* out)
{
    char path[] = "/tmp/fulcrum-bench-trafgen-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return Status::failure(std::string("trafgen: mkstemp: ") + std::strerror(errno));
    if (write(fd, config.data(), config.size()) != static_cast<ssize_t>(config.size())) {
        close(fd);
        unlink(path);
        return Status::failure("trafgen: cannot write its configuration");
    }
    close(fd);
    std::uint64_t tx0 = 0, drop0 = 0, tx1 = 0, drop1 = 0;
    dev_tx("bench0-peer", &tx0, &drop0);
    std::uint64_t qdrop0 = 0;
    // --no-sock-mem: leave the machine's socket memory settings alone; --notouch-irq: veth has no IRQ;
    // -q: through the qdisc. A veth whose peer's XDP ring is full stops its queue (backpressure);
    // trafgen's default qdisc bypass then gets EAGAIN and gives up, while a pfifo on bench0-peer
    // queues and drops like a NIC's full ring.
    if (std::system("tc qdisc replace dev bench0-peer root pfifo limit 1024 >/dev/null 2>&1") != 0) {
        unlink(path);
        return Status::failure("trafgen: cannot put a pfifo qdisc on bench0-peer (tc)");
    }
    qdrop0 = qdisc_drops();
    std::string command = "timeout " + std::to_string(max_seconds) + " " + trafgen +
                          " -o bench0-peer -P 1 -q -t 0 --no-sock-mem --notouch-irq -i " + path + " -n " +
                          std::to_string(packets) + " 2>&1";
    auto start = std::chrono::steady_clock::now();
    FILE* p = popen(command.c_str(), "r");
    if (!p) {
        unlink(path);
        return Status::failure("trafgen: popen failed");
    }
    std::string text;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p))
        text += buf;
    int status = pclose(p);
    out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    unlink(path);
    dev_tx("bench0-peer", &tx1, &drop1);
    out->peer_tx = tx1 - tx0;
    out->ring_drops = drop1 - drop0;
    out->output.clear();
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        line.erase(0, line.find_first_not_of(" \t"));
        if (line.find("packets outgoing") != std::string::npos || line.find("usec on CPU") != std::string::npos)
            out->output += (out->output.empty() ? "" : "; ") + line;
    }
    if (status != 0)
        return Status::failure("trafgen failed (status " + std::to_string(status) + "): " + text);
    out->ring_drops += qdisc_drops() - qdrop0;
    return {};
}

}  // namespace fulcrum::bench
