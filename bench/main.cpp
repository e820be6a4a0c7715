// fulcrum-bench: per-packet cost of the balancer next to floor programs, all in one run, through
// BPF_PROG_TEST_RUN in live-frames mode. It reports; it never asserts a target (see README.md).
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "bench_lab.h"
#include "flood.h"
#include "live_frames.h"

namespace fulcrum::bench {
namespace {

constexpr int kRuns = 3;                          // runs per case; the median is reported
constexpr std::uint32_t kSamples = 20000;         // distinct frames per run of the program-time cases
constexpr int kUdpRuns = 7;                       // runs of each UDP program-time row (issue 9)
constexpr std::uint32_t kUdpSamples = 10000;      // frames per run of those rows
const std::string kClient = "198.18.50.7";        // the established flow of case 4
constexpr std::uint16_t kClientPort = 40000;
const std::string kFloodClient = "198.18.50.9";   // the established flow of the flood cases (service 2)
constexpr std::uint32_t kRefusingBudget = 8;      // new entries per second per CPU: 1 per 1/8 s window

struct Options {
    std::uint32_t packets = 2'000'000;
    std::uint32_t batch = 64;
    std::uint32_t flood_packets = 300'000;
    bool flood = true;
    bool json = false;
};

[[noreturn]] void die(const std::string& message)
{
    std::fprintf(stderr, "fulcrum-bench: %s\n", message.c_str());
    std::exit(1);
}

void check(const Status& s)
{
    if (!s.ok())
        die(s.message());
}

Options parse_options(int argc, char** argv)
{
    Options o;
    auto number = [&](int& i, long max) -> std::uint32_t {
        if (i + 1 >= argc)
            die(std::string(argv[i]) + " needs a number");
        char* end = nullptr;
        long v = std::strtol(argv[++i], &end, 10);
        if (*end || v < 1 || v > max)
            die(std::string(argv[i - 1]) + " must be 1.." + std::to_string(max));
        return static_cast<std::uint32_t>(v);
    };
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--packets"))
            o.packets = number(i, 1'000'000'000);  // repeat is an int in the kernel ABI
        else if (!std::strcmp(argv[i], "--batch"))
            o.batch = number(i, 256);              // the kernel's live-frames batch limit
        else if (!std::strcmp(argv[i], "--flood-packets"))
            o.flood_packets = number(i, 100'000'000);
        else if (!std::strcmp(argv[i], "--no-flood"))
            o.flood = false;
        else if (!std::strcmp(argv[i], "--json"))
            o.json = true;
        else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            std::printf("usage: fulcrum-bench [--packets N] [--batch N] [--flood-packets N] [--no-flood] [--json]\n"
                        "  --packets N        packets per timed live-frames run (default 2000000)\n"
                        "  --batch N          live-frames batch size, 1..256 (default 64)\n"
                        "  --flood-packets N  trafgen frames per trafgen case (default 300000)\n"
                        "  --no-flood         skip the trafgen cases (live new flows, flood)\n"
                        "  --json             one JSON object instead of the tables\n"
                        "Needs root: it builds a private network namespace and loads BPF programs.\n");
            std::exit(0);
        } else
            die(std::string("unknown option ") + argv[i] + " (try --help)");
    }
    if (o.packets <= o.batch)
        die("--packets must be larger than --batch (a run is timed against a one-batch call)");
    return o;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string kernel_version()
{
    utsname u{};
    uname(&u);
    return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

std::string first_line_of(const char* path, const char* prefix)
{
    std::ifstream f(path);
    for (std::string line; std::getline(f, line);)
        if (line.rfind(prefix, 0) == 0)
            return line;
    return "";
}

std::string cpu_model()
{
    std::string line = first_line_of("/proc/cpuinfo", "model name");
    return line.empty() ? "unknown" : line.substr(line.find(':') + 2);
}

const char* verdict_name(int v)
{
    switch (v) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    default: return "unknown";
    }
}

// One plain run before anything is timed: the figures must be of the intended path.
void expect_verdict(const char* what, int prog_fd, const Bytes& frame, int ifindex, int expected)
{
    PlainRun r;
    check(run_plain(prog_fd, frame, ifindex, &r));
    if (r.verdict != expected)
        die(std::string("verdict check: ") + what + " returned " + verdict_name(r.verdict) + ", expected " +
            verdict_name(expected) + "; not timing a path other than the one named");
}

struct Case {
    std::string key, label;
    std::vector<LiveTimes> times;  // raw wall-clock times of the live runs
    std::vector<double> runs;  // ns/packet, one per run
    double ns = 0;             // median of runs
    std::string path;          // how we know the timed packets took the named path
    bool drop_peer = false;    // timed with floor_drop on bench0-peer (else floor_pass)
};

// Checks, after a timed call, that the balancer's counters moved by exactly the packets sent.
// Returns "" when they did, else what went wrong.
using PathCheck = std::function<std::string(std::uint64_t sent)>;

struct LiveCase {
    Case* out;
    int prog_fd;
    Bytes frame;
    std::function<PathCheck()> arm;  // snapshots the counters before a call; empty for floors
    bool drop_peer = false;          // floor_drop on bench0-peer for this case, else floor_pass
};

// -- program time per packet: the kernel's bpf_stats around the program alone -------------------

// One row of the program-time table: ns per program run, per run of the bench (median shown),
// measured two ways: each of kSamples distinct frames run once through BPF_PROG_TEST_RUN, and
// frames received on bench0 from trafgen (the driver runs the program; XDP_TX transmits).
struct ProgRow {
    std::string key, label;
    std::vector<double> once;   // ns per run, test runs of distinct frames, one value per bench run
    double live = 0;            // ns per run on trafgen's frames (0: not measured)
    std::uint64_t live_runs = 0;
    std::string path;           // how we know the frames took this path
    double once_ns() const { return once.empty() ? 0 : median(once); }
};

// Runs each frame once (repeat 1, so nothing is reused and every frame is its own flow) and
// returns the program's mean run time from bpf_stats; *runs gets how many runs the kernel counted.
double time_once_each(int prog_fd, const std::vector<Bytes>& frames, int ifindex, int expected_verdict,
                      std::uint64_t* runs)
{
    ProgStats before, after;
    check(prog_stats(prog_fd, &before));
    for (const Bytes& f : frames) {
        PlainRun r;
        check(run_plain(prog_fd, f, ifindex, &r));
        if (r.verdict != expected_verdict)
            die(std::string("program-time sample returned ") + verdict_name(r.verdict) + ", expected " +
                verdict_name(expected_verdict));
    }
    check(prog_stats(prog_fd, &after));
    *runs = after.run_cnt - before.run_cnt;
    return *runs ? static_cast<double>(after.run_time_ns - before.run_time_ns) / *runs : 0;
}

// kSamples distinct frames of one kind: client address 198.18.5X.(run + 1), ports 1024 and up.
std::vector<Bytes> distinct_frames(int block, int run, bool syn)
{
    std::vector<Bytes> frames;
    frames.reserve(kSamples);
    for (std::uint32_t i = 0; i < kSamples; ++i)
        frames.push_back(BenchLab::service_frame("198.18." + std::to_string(52 + block) + "." + std::to_string(run + 1),
                                                 static_cast<std::uint16_t>(1024 + i), syn));
    return frames;
}

// What the balancer's counters did between two snapshots.
struct Moves {
    std::uint64_t forwarded = 0, created = 0, mid_stream = 0, refused = 0, est_forwarded = 0;
};
struct Snapshot {
    dataplane::ServiceCounters svc, est;
    std::uint64_t mid_stream = 0, refused = 0;
};
Snapshot snapshot(dataplane::BalancerProgram& b)
{
    return {b.service_counters(kServiceId), b.service_counters(kEstablishedServiceId),
            b.flow_event_count(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM), b.flow_event_count(FULCRUM_FLOW_NOT_RECORDED_BUDGET)};
}
Moves moves(dataplane::BalancerProgram& b, const Snapshot& s0)
{
    Snapshot s1 = snapshot(b);
    return {s1.svc.packets - s0.svc.packets, s1.svc.new_flows - s0.svc.new_flows, s1.mid_stream - s0.mid_stream,
            s1.refused - s0.refused, s1.est.packets - s0.est.packets};
}
std::string moves_text(const Moves& m)
{
    return std::to_string(m.forwarded) + " forwarded, " + std::to_string(m.created) + " first packets, " +
           std::to_string(m.refused) + " refused by the budget, " + std::to_string(m.mid_stream) + " mid-stream";
}

// -- the flood: trafgen into bench0, the balancer attached there -------------------------------

struct FloodRow {
    std::string budget;                 // "off (0)", "100000/s", ...
    double seconds = 0;
    std::uint64_t sent = 0, ring_drops = 0, runs = 0;
    double ns_per_run = 0;
    Moves moved;
};

// trafgen blocks (sent round robin, each with its own counters).
std::string established_block(const std::string& client, const std::string& vip)
{
    return "{ eth(da=" + mac_text(kBenchMac) + ", sa=" + mac_text(kRouterMac) + "), ipv4(sa=" + client + ", da=" + vip +
           ", ttl=64, df), tcp(sp=" + std::to_string(kClientPort) + ", dp=" + std::to_string(kServicePort) +
           ", ack, seq=1, aseq=1, win=512) }\n";
}
// Random sources inside 198.19.128.0/17 and random source ports: every frame a new flow, to the
// first service (the established flows are on the second).
std::string random_syn_block()
{
    return "{ eth(da=" + mac_text(kBenchMac) + ", sa=" + mac_text(kRouterMac) + "), ipv4(sa=198.19.128.0, "
           "sa[2]=drnd(128, 255), sa[3]=drnd(), da=" + kVip + ", ttl=64, df), tcp(sp=drnd(1024, 65535), dp=" +
           std::to_string(kServicePort) + ", syn, win=512) }\n";
}

// A figure of the table: a ratio of two same-run figures and, where the denominator is
// a floor (or the hit), the difference in ns: the program's own cost above it, which a ratio
// hides when both sides carry the same fixed cost (the peer's stack, LAB.md).
struct Ratio {
    std::string name;
    double value = 0, target = 0;  // target 0: none given
    std::string key;               // stable id for --json readers (bench/RESULTS.md)
    double above_ns = 0;           // numerator - denominator, ns per packet (or per run)
    bool has_above = false;
};
Ratio ratio(std::string key, std::string name, double num, double den, double target, bool with_above = true)
{
    return {std::move(name), den > 0 ? num / den : 0, target, std::move(key), num - den, with_above};
}

struct Report {
    std::string peer_attach, loadavg, priority;
    double fixed_ms = 0, fixed_min_ms = 0, fixed_max_ms = 0;
    double resolution_ns = 0;  // how far the per-call cost's spread can move a figure
    std::vector<const Case*> cases;
    std::vector<Ratio> ratios;
    std::vector<const ProgRow*> prog_rows;
    std::string prog_note, flood_note, napi;
    std::vector<FloodRow> flood;
};

void print_text(const Options& o, const Report& r)
{
    std::printf("Fulcrum per-packet cost: BPF_PROG_TEST_RUN, live frames (XDP_TX transmits, XDP_PASS enters the stack)\n");
    std::printf("kernel   %s\n", kernel_version().c_str());
    std::printf("cpu      %s, %ld online; bench pinned to CPU 0 at %s; loadavg at start %s\n",
                cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN), r.priority.c_str(), r.loadavg.c_str());
    std::printf("runs     %u packets per run, batch %u, %d runs per case interleaved, median shown\n", o.packets,
                o.batch, kRuns);
    std::printf("timing   wall clock; each call's fixed cost (%.1f ms median, %.1f..%.1f), timed with %u packets, is\n"
                "         taken out; its spread within a case can move a figure by up to %.1f ns/packet\n",
                r.fixed_ms, r.fixed_min_ms, r.fixed_max_ms, o.batch, r.resolution_ns);
    std::printf("peer     floor_pass on bench0-peer via %s; the \"drop peer\" cases put floor_drop there instead\n\n",
                r.peer_attach.c_str());
    std::printf("%-76s %9s  %s\n", "case", "ns/packet", "runs");
    for (const Case* c : r.cases) {
        std::string runs;
        for (double v : c->runs) {
            char b[24];
            std::snprintf(b, sizeof b, "%s%.1f", runs.empty() ? "" : " ", v);
            runs += b;
        }
        auto [lo, hi] = std::minmax_element(c->runs.begin(), c->runs.end());
        bool noisy = *lo > 0 && *hi / *lo > 1.2;  // runs more than 20% apart: other load interfered
        std::printf("%-76s %9.1f  %s%s\n", c->label.c_str(), c->ns, runs.c_str(), noisy ? "  (noisy)" : "");
        if (!c->path.empty())
            std::printf("    path: %s\n", c->path.c_str());
    }

    std::printf("\nProgram time per packet, ns (kernel bpf_stats: run_time_ns / run_cnt, the program alone)\n");
    std::printf("%-62s %13s %13s\n", "", "once/frame", "live trafgen");
    std::printf("%-62s %13s %13s\n", "", "(test run)", "(bench0 RX)");
    for (const ProgRow* p : r.prog_rows) {
        char live[32] = "-";
        if (p->live_runs)
            std::snprintf(live, sizeof live, "%.1f", p->live);
        std::string runs;
        for (double v : p->once) {
            char b[24];
            std::snprintf(b, sizeof b, "%s%.1f", runs.empty() ? "" : " ", v);
            runs += b;
        }
        std::printf("%-62s %13.1f %13s   (runs %s)\n", p->label.c_str(), p->once_ns(), live, runs.c_str());
        if (!p->path.empty())
            std::printf("    path: %s\n", p->path.c_str());
    }
    std::printf("%s\n", r.prog_note.c_str());

    if (!r.flood.empty()) {
        std::printf("\nFlood: %s\n", r.flood_note.c_str());
        std::printf("%-10s %7s %10s %10s %10s %9s %12s %12s %10s %9s\n", "budget", "seconds", "sent/s", "processed/s",
                    "ring drops", "ns/run", "established", "first pkts", "refused", "recorded");
        std::printf("%-10s %7s %10s %10s %10s %9s %12s %12s %10s %9s\n", "", "", "", "", "", "", "fwd/s", "", "", "");
        for (const FloodRow& f : r.flood)
            std::printf("%-10s %7.2f %10.0f %10.0f %10llu %9.1f %12.0f %12llu %10llu %9llu\n", f.budget.c_str(), f.seconds,
                        f.sent / f.seconds, f.runs / f.seconds, static_cast<unsigned long long>(f.ring_drops), f.ns_per_run,
                        f.moved.est_forwarded / f.seconds, static_cast<unsigned long long>(f.moved.created),
                        static_cast<unsigned long long>(f.moved.refused),
                        static_cast<unsigned long long>(f.moved.created - f.moved.refused));
    } else if (!r.flood_note.empty()) {
        std::printf("\nFlood: %s\n", r.flood_note.c_str());
    }
    std::printf("\n%-62s %6s %10s\n", "figure", "ratio", "above, ns");
    for (const Ratio& q : r.ratios) {
        char above[24] = "";
        if (q.has_above)
            std::snprintf(above, sizeof above, "%+.1f", q.above_ns);
        if (q.target > 0)
            std::printf("%-62s %6.2f %10s   target <= %.2f: %s\n", q.name.c_str(), q.value, above, q.target,
                        q.value <= q.target ? "met" : "not met");
        else
            std::printf("%-62s %6.2f %10s   (no target)\n", q.name.c_str(), q.value, above);
    }
}

std::string json_string(const std::string& s)
{
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += static_cast<unsigned char>(c) >= 0x20 ? c : ' ';  // the notes have line breaks
    }
    return out + "\"";
}

void print_json(const Options& o, const Report& r)
{
    std::printf("{\"kernel\":%s,\"cpu\":%s,\"loadavg\":%s,\"packets\":%u,\"batch\":%u,\"runs_per_case\":%d,"
                "\"priority\":%s,\"fixed_call_ms\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
                "\"resolution_ns\":%.2f,\"peer_attach\":%s,\"cases\":[",
                json_string(kernel_version()).c_str(), json_string(cpu_model()).c_str(),
                json_string(r.loadavg).c_str(), o.packets, o.batch, kRuns, json_string(r.priority).c_str(),
                r.fixed_ms, r.fixed_min_ms, r.fixed_max_ms, r.resolution_ns, json_string(r.peer_attach).c_str());
    for (std::size_t i = 0; i < r.cases.size(); ++i) {
        const Case* c = r.cases[i];
        std::printf("%s{\"key\":%s,\"label\":%s,\"peer\":%s,\"ns_per_packet\":%.2f,\"runs\":[", i ? "," : "",
                    json_string(c->key).c_str(), json_string(c->label).c_str(),
                    json_string(c->drop_peer ? "floor_drop" : "floor_pass").c_str(), c->ns);
        for (std::size_t j = 0; j < c->runs.size(); ++j)
            std::printf("%s%.2f", j ? "," : "", c->runs[j]);
        std::printf("],\"path\":%s}", json_string(c->path).c_str());
    }
    std::printf("],\"program_time\":[");
    for (std::size_t i = 0; i < r.prog_rows.size(); ++i) {
        const ProgRow* p = r.prog_rows[i];
        std::printf("%s{\"key\":%s,\"label\":%s,\"once_ns\":%.2f,\"once_runs\":[", i ? "," : "",
                    json_string(p->key).c_str(), json_string(p->label).c_str(), p->once_ns());
        for (std::size_t j = 0; j < p->once.size(); ++j)
            std::printf("%s%.2f", j ? "," : "", p->once[j]);
        std::printf("],\"live_ns\":");
        if (p->live_runs)
            std::printf("%.2f", p->live);
        else
            std::printf("null");
        std::printf(",\"live_runs\":%llu,\"path\":%s}", static_cast<unsigned long long>(p->live_runs),
                    json_string(p->path).c_str());
    }
    std::printf("],\"program_time_note\":%s,\"flood_note\":%s,\"flood\":[", json_string(r.prog_note).c_str(),
                json_string(r.flood_note).c_str());
    for (std::size_t i = 0; i < r.flood.size(); ++i) {
        const FloodRow& f = r.flood[i];
        std::printf("%s{\"budget\":%s,\"seconds\":%.3f,\"sent\":%llu,\"program_runs\":%llu,\"ring_drops\":%llu,"
                    "\"ns_per_run\":%.2f,\"established_forwarded\":%llu,\"established_forwarded_per_second\":%.0f,"
                    "\"first_packets\":%llu,\"refused\":%llu,\"mid_stream\":%llu}",
                    i ? "," : "", json_string(f.budget).c_str(), f.seconds, static_cast<unsigned long long>(f.sent),
                    static_cast<unsigned long long>(f.runs), static_cast<unsigned long long>(f.ring_drops), f.ns_per_run,
                    static_cast<unsigned long long>(f.moved.est_forwarded), f.moved.est_forwarded / f.seconds,
                    static_cast<unsigned long long>(f.moved.created), static_cast<unsigned long long>(f.moved.refused),
                    static_cast<unsigned long long>(f.moved.mid_stream));
    }
    std::printf("],\"ratios\":[");
    for (std::size_t i = 0; i < r.ratios.size(); ++i) {
        const Ratio& q = r.ratios[i];
        std::printf("%s{\"name\":%s,\"key\":%s,\"value\":%.3f,\"above_ns\":", i ? "," : "",
                    json_string(q.name).c_str(), json_string(q.key).c_str(), q.value);
        if (q.has_above)
            std::printf("%.2f,", q.above_ns);
        else
            std::printf("null,");
        if (q.target > 0)
            std::printf("\"target\":%.2f,\"met\":%s}", q.target, q.value <= q.target ? "true" : "false");
        else
            std::printf("\"target\":null,\"met\":null}");
    }
    std::printf("]}\n");
}

// Establishes a flow the way a TCP client does: its SYN (a new_flows entry), then its ACK
// (promoted to flows). From then on its ACKs are flow-table hits.
void establish(dataplane::BalancerProgram& balancer, int ifindex, const std::string& client, const std::string& vip,
               const char* what)
{
    expect_verdict((std::string(what) + ", SYN").c_str(), balancer.program_fd(),
                   BenchLab::service_frame(client, kClientPort, true, vip), ifindex, XDP_TX);
    expect_verdict((std::string(what) + ", first ACK").c_str(), balancer.program_fd(),
                   BenchLab::service_frame(client, kClientPort, false, vip), ifindex, XDP_TX);
}

// What a UDP service's datagram must become (checked on the program's output once, before timing).
struct UdpPath {
    const char* what;
    std::uint16_t dport;
    bool gue;                   // outer IPv4 + UDP to kGuePort, else IP-in-IP
    std::string backend;        // the outer destination it must have, "" for either host
};

// Sends kClient's datagram to `p.dport` twice: the first is a new flow (new_flows), the second
// promotes it (flows), so from then on its datagrams are flow-table hits; and checks that the
// output is the encapsulation the row is named after. A QUIC short header with a known server id
// is routed by the id every time, with no flow state.
void establish_udp(dataplane::BalancerProgram& balancer, int ifindex, const UdpPath& p)
{
    const Bytes frame = BenchLab::udp_frame(kClient, kClientPort, p.dport);
    for (int i = 0; i < 2; ++i) {
        PlainRun r;
        check(run_plain(balancer.program_fd(), frame, ifindex, &r));
        if (r.verdict != XDP_TX)
            die(std::string("verdict check: ") + p.what + " returned " + verdict_name(r.verdict) + ", expected XDP_TX");
        // Ethernet, outer IPv4 (protocol at 9, destination at 16), then UDP (destination port at 2)
        // and the inner IPv4 packet, or the inner packet directly.
        const std::size_t outer = 14, inner = outer + 20 + (p.gue ? 8 : 0);
        const std::uint32_t backend = p.backend.empty() ? 0 : ipv4(p.backend);
        std::string problem;
        if (r.out.size() != frame.size() + (inner - 14) || r.out[12] != 0x08 || r.out[13] != 0x00)
            problem = "not an IPv4 frame of the encapsulated size";
        else if (r.out[outer + 9] != (p.gue ? IPPROTO_UDP : IPPROTO_IPIP))
            problem = std::string("outer protocol ") + std::to_string(r.out[outer + 9]) + ", expected " +
                      (p.gue ? "UDP (GUE)" : "IPIP");
        else if (p.gue && (r.out[outer + 20 + 2] << 8 | r.out[outer + 20 + 3]) != kGuePort)
            problem = "GUE's UDP destination port is not " + std::to_string(kGuePort);
        else if (!std::equal(frame.begin() + 14, frame.end(), r.out.begin() + static_cast<std::ptrdiff_t>(inner)))
            problem = "the inner packet is not the datagram sent";
        else if (backend && std::memcmp(&r.out[outer + 16], &backend, 4) != 0)
            problem = "the outer destination is not " + p.backend;
        if (!problem.empty())
            die(std::string("encapsulation check: ") + p.what + ": " + problem);
    }
}

int run(const Options& o)
{
    Report report;
    {
        std::ifstream f("/proc/loadavg");
        std::string one, five, fifteen;
        f >> one >> five >> fifteen;
        report.loadavg = one + " " + five + " " + fifteen;
    }
    // The machine is shared (2 cores): at nice -20 other tasks that land on our CPU get a small
    // share of it while we measure, instead of an equal one. Reported, not required.
    report.priority = setpriority(PRIO_PROCESS, 0, -20) == 0 ? "nice -20" : "default priority (setpriority failed)";
    Result<std::unique_ptr<BenchLab>> created = BenchLab::create();
    if (!created.ok())
        die(created.message());
    std::unique_ptr<BenchLab> lab = std::move(created).value();
    report.peer_attach = lab->peer_attach();
    dataplane::BalancerProgram& balancer = lab->balancer();
    const int ifindex = lab->ifindex();
    const int balancer_fd = balancer.program_fd();

    const Bytes service = BenchLab::service_frame(kClient, kClientPort);
    const Bytes non_service = BenchLab::non_service_frame();

    // Verdicts first. The established flow of case 4 is opened as a client opens it, SYN then
    // ACK, so it sits in the flow table and every timed packet of case 4 is a hit. (An ACK of a
    // flow the balancer never saw open is balanced by Maglev and never recorded: timing only ACKs
    // would time that path instead, which the mid-stream counter would show.)
    expect_verdict("floor_drop", lab->floor_drop_fd(), non_service, ifindex, XDP_DROP);
    expect_verdict("floor_pass", lab->floor_pass_fd(), non_service, ifindex, XDP_PASS);
    expect_verdict("floor_tx", lab->floor_tx_fd(), service, ifindex, XDP_TX);
    establish(balancer, ifindex, kClient, kVip, "balancer, established flow");
    expect_verdict("balancer, service packet", balancer_fd, service, ifindex, XDP_TX);
    expect_verdict("balancer, new flow", balancer_fd, BenchLab::service_frame("198.18.51.250", 1, true), ifindex,
                   XDP_TX);
    expect_verdict("balancer, non-service packet", balancer_fd, non_service, ifindex, XDP_PASS);
    // The UDP services of the issue-9 rows (program time): plain IP-in-IP, GUE, QUIC by server id.
    const UdpPath udp_paths[] = {
        {"balancer, UDP datagram of an IP-in-IP service", kUdpIpipPort, false, ""},
        {"balancer, UDP datagram of a GUE service", kUdpGuePort, true, ""},
        {"balancer, QUIC short header with a known server id", kQuicPort, false, kQuicBackendAddress},
    };
    for (const UdpPath& p : udp_paths)
        establish_udp(balancer, ifindex, p);

    Case drop{"floor_drop", "1 floor: XDP_DROP (floor_drop)", {}, {}, 0, ""};
    Case pass{"floor_pass", "2 floor: empty XDP_PASS (floor_pass), into the stack", {}, {}, 0, ""};
    Case tx{"floor_tx", "3 floor: MAC+address swap, XDP_TX (floor_tx)", {}, {}, 0, ""};
    Case hit{"service_hit", "4 balancer: service packet, flow-table hit -> IPv4-in-IPv4, XDP_TX", {}, {}, 0, ""};
    Case hit_cached{"service_hit_nexthop_cache",
                    "4b the same, next hop from fulcrumd's cache instead of bpf_fib_lookup", {}, {}, 0, ""};
    Case other{"non_service", "6 balancer: non-service packet (not a VIP) -> XDP_PASS", {}, {}, 0, ""};
    // The same transmit cases with floor_drop on the peer: what bench0 sends costs the peer no
    // stack work, so the balancer's own cost above floor_tx shows (LAB.md "Floors depend on the peer").
    Case tx_d{"floor_tx_drop_peer", "3d floor_tx, floor_drop on the peer", {}, {}, 0, "", true};
    Case hit_d{"service_hit_drop_peer", "4d service hit (bpf_fib_lookup), floor_drop on the peer", {}, {}, 0, "", true};
    Case hit_cached_d{"service_hit_nexthop_cache_drop_peer", "4bd service hit (next-hop cache), floor_drop on the peer",
                      {}, {}, 0, "", true};

    // The balancer's counters say which path each timed packet took; a figure is only reported
    // as valid if all of them took the named one (see README: live frames reuse pages).
    auto service_hits = [&]() -> PathCheck {
        Snapshot before = snapshot(balancer);
        return [&balancer, before](std::uint64_t sent) -> std::string {
            Moves m = moves(balancer, before);
            if (m.forwarded == sent && m.created == 0 && m.mid_stream == 0 && m.refused == 0)
                return "";
            return "of " + std::to_string(sent) + " packets: " + moves_text(m);
        };
    };
    auto not_vip = [&]() -> PathCheck {
        std::uint64_t before = balancer.reason_counters(FULCRUM_PASS_NOT_VIP).packets;
        return [&balancer, before](std::uint64_t sent) -> std::string {
            std::uint64_t passed = balancer.reason_counters(FULCRUM_PASS_NOT_VIP).packets - before;
            if (passed == sent)
                return "";
            return std::to_string(passed) + " of " + std::to_string(sent) + " packets passed as not-a-VIP";
        };
    };
    // Cases 4 and 4b differ only in the next-hop cache, switched as the case is armed; the
    // other cases run with it off (as when fulcrumd could not resolve a backend).
    auto with_cache = [&](bool on, std::function<PathCheck()> then) {
        return [&lab, on, then]() -> PathCheck {
            check(lab->use_nexthop_cache(on));
            return then ? then() : nullptr;
        };
    };
    std::vector<LiveCase> live = {
        {&drop, lab->floor_drop_fd(), non_service, with_cache(false, nullptr)},
        {&pass, lab->floor_pass_fd(), non_service, nullptr},
        {&tx, lab->floor_tx_fd(), service, nullptr},
        {&hit, balancer_fd, service, with_cache(false, service_hits)},
        {&hit_cached, balancer_fd, service, with_cache(true, service_hits)},
        {&other, balancer_fd, non_service, with_cache(false, not_vip)},
        {&tx_d, lab->floor_tx_fd(), service, nullptr, true},
        {&hit_d, balancer_fd, service, with_cache(false, service_hits), true},
        {&hit_cached_d, balancer_fd, service, with_cache(true, service_hits), true},
    };

    std::vector<std::string> wrong_path;
    // Runs are interleaved (every case, then again) so slow drift spreads over all cases.
    for (int run = 0; run < kRuns; ++run) {
        std::string when = ", run " + std::to_string(run + 1) + ": ";
        for (LiveCase& c : live) {
            check(lab->use_drop_peer(c.drop_peer));
            PathCheck verify = c.arm ? c.arm() : nullptr;
            LiveTimes t;
            check(time_live(c.prog_fd, c.frame, ifindex, o.packets, o.batch, &t));
            c.out->times.push_back(t);
            if (std::string problem = verify ? verify(std::uint64_t{o.packets} + 2 * o.batch) : ""; !problem.empty()) {
                wrong_path.push_back(c.out->label + when + problem);
                c.out->path = "WRONG PATH" + when + problem;
            }
        }
    }

    // Per case, the fixed cost taken out of each run is the median of its runs' one-batch calls:
    // the sleep in it jumps in tick steps, and a median is steadier than each run's own sample.
    std::vector<double> fixed_ms;
    for (LiveCase& c : live) {
        std::vector<double> fixed;
        for (const LiveTimes& t : c.out->times)
            fixed.push_back(t.fixed_ns);
        double fixed_ns = median(fixed);
        auto [lo, hi] = std::minmax_element(fixed.begin(), fixed.end());
        report.resolution_ns = std::max(report.resolution_ns, (*hi - *lo) / (o.packets - o.batch));
        for (double f : fixed)
            fixed_ms.push_back(f / 1e6);
        for (const LiveTimes& t : c.out->times)
            c.out->runs.push_back((t.total_ns - fixed_ns) / (o.packets - o.batch));
        c.out->ns = median(c.out->runs);
        if (c.arm && c.out->path.empty())
            c.out->path = "ok: the balancer's counters saw every timed packet take this path";
    }
    report.fixed_ms = median(fixed_ms);
    report.fixed_min_ms = *std::min_element(fixed_ms.begin(), fixed_ms.end());
    report.fixed_max_ms = *std::max_element(fixed_ms.begin(), fixed_ms.end());
    check(lab->use_drop_peer(false));  // the rest runs with floor_pass on the peer, as before
    report.cases = {&drop, &pass, &tx, &hit, &hit_cached, &other, &tx_d, &hit_d, &hit_cached_d};

    // -- program time per packet: every frame of the new-flow rows a distinct flow -------------
    ProgRow p_floor{"floor_tx", "floor_tx: MAC+address swap, XDP_TX", {}, 0, 0, ""};
    ProgRow p_hit{"hit", "balancer: flow-table hit (established flow's ACK)", {}, 0, 0, ""};
    ProgRow p_new{"new_flow", "balancer: new flow (SYN: two misses, Maglev, new_flows insert)", {}, 0, 0, ""};
    ProgRow p_refused{"new_flow_refused", "balancer: new flow refused by the budget (no insert)", {}, 0, 0, ""};
    ProgRow p_mid{"mid_stream", "balancer: mid-stream ACK of an unknown flow (Maglev, no insert)", {}, 0, 0, ""};
    // Issue 9: a UDP flow-table hit of an IP-in-IP service (the baseline), the same of a GUE
    // service, and a QUIC short header routed by its server id (no flow table), same-size frames.
    ProgRow p_udp{"udp_hit", "balancer: UDP flow-table hit, IP-in-IP (baseline)", {}, 0, 0, ""};
    ProgRow p_gue{"udp_hit_gue", "balancer: UDP flow-table hit, GUE service (outer IPv4 + UDP)", {}, 0, 0, ""};
    ProgRow p_quic{"quic_by_server_id", "balancer: QUIC short header, known server id (quic_ids)", {}, 0, 0, ""};
    check(lab->use_nexthop_cache(false));  // as in case 4: the next hop from bpf_fib_lookup
    {
        BpfStats stats;
        if (!stats.ok())
            die(stats.error());
        std::vector<Bytes> same_hit(kSamples, service), same_floor(kSamples, service);
        std::vector<Bytes> udp_frames[3];
        for (int i = 0; i < 3; ++i)
            udp_frames[i].assign(kUdpSamples, BenchLab::udp_frame(kClient, kClientPort, udp_paths[i].dport));
        // arm() snapshots the counters before a run; what it returns says what went wrong after.
        auto sample = [&](ProgRow& row, int prog_fd, const std::vector<Bytes>& frames, int run,
                          const std::function<PathCheck()>& arm) {
            PathCheck verify = arm ? arm() : nullptr;
            std::uint64_t runs = 0;
            double ns = time_once_each(prog_fd, frames, ifindex, XDP_TX, &runs);
            std::string problem = runs != frames.size() ? "the kernel counted " + std::to_string(runs) + " runs of " +
                                                              std::to_string(frames.size())
                                                        : verify ? verify(frames.size()) : "";
            if (!problem.empty()) {
                wrong_path.push_back(row.label + ", run " + std::to_string(run + 1) + ": " + problem);
                row.path = "WRONG PATH, run " + std::to_string(run + 1) + ": " + problem;
            }
            row.once.push_back(ns);
        };
        auto moved = [&](std::function<bool(const Moves&)> ok) -> std::function<PathCheck()> {
            return [&balancer, ok]() -> PathCheck {
                Snapshot s0 = snapshot(balancer);
                return [&balancer, ok, s0](std::uint64_t) -> std::string {
                    Moves m = moves(balancer, s0);
                    return ok(m) ? "" : moves_text(m);
                };
            };
        };
        auto exactly = [&](std::uint64_t fwd, std::uint64_t created, std::uint64_t refused, std::uint64_t mid) {
            return moved([=](const Moves& m) {
                return m.forwarded == fwd && m.created == created && m.refused == refused && m.mid_stream == mid;
            });
        };
        // A UDP row: every frame forwarded by its own service, none a first packet, none refused
        // or mid-stream; routed by the QUIC server id exactly when the row says so.
        auto udp_forwarded = [&](std::uint32_t service_id, bool by_quic_id) -> std::function<PathCheck()> {
            return [&balancer, service_id, by_quic_id]() -> PathCheck {
                Snapshot s0 = snapshot(balancer);
                dataplane::ServiceCounters c0 = balancer.service_counters(service_id);
                std::uint64_t r0 = balancer.quic_event_count(FULCRUM_QUIC_ROUTED_BY_ID);
                return [&balancer, service_id, by_quic_id, s0, c0, r0](std::uint64_t sent) -> std::string {
                    Moves m = moves(balancer, s0);
                    dataplane::ServiceCounters c1 = balancer.service_counters(service_id);
                    std::uint64_t fwd = c1.packets - c0.packets, created = c1.new_flows - c0.new_flows,
                                  routed = balancer.quic_event_count(FULCRUM_QUIC_ROUTED_BY_ID) - r0;
                    if (fwd == sent && created == 0 && m.refused == 0 && m.mid_stream == 0 &&
                        routed == (by_quic_id ? sent : 0))
                        return "";
                    return std::to_string(fwd) + " forwarded, " + std::to_string(created) + " first packets, " +
                           std::to_string(routed) + " routed by QUIC server id, " + std::to_string(m.refused) +
                           " refused by the budget, " + std::to_string(m.mid_stream) + " mid-stream";
                };
            };
        };
        // The UDP flows were opened at the start; the live cases since may have outlasted the UDP
        // idle timeout, so open them again (a no-op when they are still there).
        for (const UdpPath& p : udp_paths)
            establish_udp(balancer, ifindex, p);
        for (int run = 0; run < kRuns; ++run) {
            std::vector<Bytes> syns = distinct_frames(0, run, true), refused = distinct_frames(1, run, true),
                               acks = distinct_frames(2, run, false);
            sample(p_floor, lab->floor_tx_fd(), same_floor, run, nullptr);
            sample(p_hit, balancer_fd, same_hit, run, exactly(kSamples, 0, 0, 0));
            sample(p_new, balancer_fd, syns, run, exactly(kSamples, kSamples, 0, 0));
            check(lab->set_new_flow_budget(kRefusingBudget));
            // (each 1/8 s window still allows its one entry)
            sample(p_refused, balancer_fd, refused, run, moved([](const Moves& m) {
                return m.forwarded == kSamples && m.created == kSamples && m.refused + 64 >= kSamples &&
                       m.mid_stream == 0;
            }));
            check(lab->set_new_flow_budget(0));
            sample(p_mid, balancer_fd, acks, run, exactly(kSamples, 0, 0, kSamples));
        }
        // The UDP rows compare with each other, by a few percent of a hit: more runs than the
        // rows above (shorter ones: about 30 ms each), in an order that rotates every run, so
        // drift in the machine's load falls on all three alike.
        ProgRow* udp_rows[] = {&p_udp, &p_gue, &p_quic};
        const std::function<PathCheck()> udp_checks[] = {udp_forwarded(kUdpIpipServiceId, false),
                                                         udp_forwarded(kUdpGueServiceId, false),
                                                         udp_forwarded(kQuicServiceId, true)};
        for (int run = 0; run < kUdpRuns; ++run)
            for (int k = 0; k < 3; ++k) {
                int i = (run + k) % 3;
                sample(*udp_rows[i], balancer_fd, udp_frames[i], run, udp_checks[i]);
            }
    }
    for (ProgRow* p : {&p_floor, &p_hit, &p_new, &p_refused, &p_mid, &p_udp, &p_gue, &p_quic})
        if (p->path.empty())
            p->path = p == &p_floor ? "" : "ok (test runs): the balancer's counters saw every frame take this path";

    // -- live: trafgen's frames received on bench0 --------------------------------------------
    std::string trafgen = o.flood ? find_trafgen() : "";
    if (!o.flood) {
        report.flood_note = "skipped (--no-flood)";
    } else if (trafgen.empty()) {
        report.flood_note = "skipped: trafgen not found (Debian package netsniff-ng; ./run installs it)";
    } else {
        establish(balancer, ifindex, kFloodClient, kEstablishedVip, "balancer, flood case's established flow");
        BpfStats stats;
        if (!stats.ok())
            die(stats.error());
        const std::uint64_t n = o.flood_packets;
        const int limit = 120;
        auto live_run = [&](int prog_fd, const std::string& config, TrafgenRun* t, ProgStats* ran, Snapshot* s0) {
            ProgStats a, b;
            *s0 = snapshot(balancer);
            check(prog_stats(prog_fd, &a));
            check(run_trafgen(trafgen, config, n, limit, t));
            usleep(200000);  // the last frames in bench0's ring
            check(prog_stats(prog_fd, &b));
            ran->run_cnt = b.run_cnt - a.run_cnt;
            ran->run_time_ns = b.run_time_ns - a.run_time_ns;
        };
        auto per_run = [](const ProgStats& s) { return s.run_cnt ? double(s.run_time_ns) / s.run_cnt : 0.0; };
        // Live program time: the floor, a hit, new flows, refused new flows, mid-stream ACKs.
        check(lab->attach_to_bench0(lab->floor_tx_fd()));
        // bench0's NAPI exists once a program is attached; replacing the program keeps it.
        report.napi = lab->thread_bench0_napi(1);
        {
            TrafgenRun t;
            ProgStats ran;
            Snapshot s0;
            live_run(lab->floor_tx_fd(), random_syn_block(), &t, &ran, &s0);
            p_floor.live = per_run(ran);
            p_floor.live_runs = ran.run_cnt;
        }
        check(lab->attach_to_bench0(balancer_fd));
        struct LiveSpec {
            ProgRow* row;
            std::string config;
            std::uint32_t budget;
        };
        // Mid-stream ACKs from 198.19.0.0/17, apart from the SYNs' 198.19.128.0/17: an ACK that
        // chanced on a tuple a SYN had opened would confirm it instead.
        std::string mid_block = "{ eth(da=" + mac_text(kBenchMac) + ", sa=" + mac_text(kRouterMac) +
                                "), ipv4(sa=198.19.0.0, sa[2]=drnd(0, 127), sa[3]=drnd(), da=" + kVip +
                                ", ttl=64, df), tcp(sp=drnd(1024, 65535), dp=" + std::to_string(kServicePort) +
                                ", ack, seq=1, aseq=1, win=512) }\n";
        for (const LiveSpec& spec : {LiveSpec{&p_hit, established_block(kFloodClient, kEstablishedVip), 0},
                                     LiveSpec{&p_new, random_syn_block(), 0},
                                     LiveSpec{&p_refused, random_syn_block(), kRefusingBudget},
                                     LiveSpec{&p_mid, mid_block, 0}}) {
            check(lab->set_new_flow_budget(spec.budget));
            TrafgenRun t;
            ProgStats ran;
            Snapshot s0;
            live_run(balancer_fd, spec.config, &t, &ran, &s0);
            check(lab->set_new_flow_budget(0));
            Moves m = moves(balancer, s0);
            spec.row->live = per_run(ran);
            spec.row->live_runs = ran.run_cnt;
            // Random tuples may repeat (a few in a million); the counts must match within that.
            std::uint64_t fwd = spec.row == &p_hit ? m.est_forwarded : m.forwarded;
            bool ok = fwd + 16 >= ran.run_cnt && fwd <= ran.run_cnt;
            if (spec.row == &p_hit)
                ok = ok && m.created == 0 && m.mid_stream == 0;
            if (spec.row == &p_new)
                ok = ok && m.created * 1.001 + 16 >= ran.run_cnt && m.refused == 0;
            if (spec.row == &p_refused)
                ok = ok && m.refused + 16 + 8 * (t.seconds + 1) >= ran.run_cnt;
            if (spec.row == &p_mid)
                ok = ok && m.mid_stream + 16 >= ran.run_cnt && m.created == 0;
            std::string text = std::to_string(ran.run_cnt) + " frames ran the program (" + std::to_string(t.peer_tx) +
                               " sent, " + std::to_string(t.ring_drops) + " dropped at bench0's ring): " +
                               (spec.row == &p_hit ? std::to_string(m.est_forwarded) + " established forwarded, " : "") +
                               moves_text(m);
            spec.row->path += std::string(spec.row->path.empty() ? "" : "\n    path: ") + (ok ? "ok (live): " : "WRONG PATH (live): ") + text;
            if (!ok)
                wrong_path.push_back(spec.row->label + " (live): " + text);
        }

        // The flood: established packets next to random-source SYNs, budget off and on.
        std::string mix = established_block(kFloodClient, kEstablishedVip);
        for (int i = 0; i < 3; ++i)
            mix += random_syn_block();
        for (std::uint32_t budget : {0u, 100000u, 1000u}) {
            check(lab->set_new_flow_budget(budget));
            FloodRow row;
            row.budget = budget ? std::to_string(budget) + "/s" : "off (0)";
            TrafgenRun t;
            ProgStats ran;
            Snapshot s0;
            live_run(balancer_fd, mix, &t, &ran, &s0);
            row.seconds = t.seconds;
            row.sent = t.peer_tx;
            row.ring_drops = t.ring_drops;
            row.runs = ran.run_cnt;
            row.ns_per_run = per_run(ran);
            row.moved = moves(balancer, s0);
            report.flood.push_back(row);
        }
        check(lab->set_new_flow_budget(0));
        check(lab->attach_to_bench0(-1));
        char note[900];
        std::snprintf(note, sizeof note,
                      "trafgen (one process, CPU 0, sendto through a pfifo) sends %llu frames per row into bench0-peer: 1 ACK of an\n"
                      "established flow (to a second service) for every 3 SYNs from random sources in 198.19.128.0/17\n"
                      "with random ports; the balancer runs on bench0 in native mode, %s.\n"
                      "sent/s: what trafgen sent; processed/s: program runs per second; ring drops: frames dropped in front\n"
                      "of bench0's XDP ring (bench0-peer's pfifo or the veth: the balancer's CPU was busy); established fwd/s:\n"
                      "established packets forwarded per second; first pkts / refused / recorded: new-flow entries tried, refused\n"
                      "by the per-CPU budget, made. Budget per CPU per second (1/8 of it per 1/8 s window).",
                      static_cast<unsigned long long>(n), report.napi.c_str());
        report.flood_note = note;
    }
    report.prog_rows = {&p_floor, &p_hit, &p_new, &p_refused, &p_mid, &p_udp, &p_gue, &p_quic};
    char note[1200];
    std::snprintf(note, sizeof note,
                  "once/frame: %u frames per run, each run once by BPF_PROG_TEST_RUN (repeat 1: a new-flow frame is a\n"
                  "new flow every time); the kernel's bpf_stats time the program alone (no syscall, no transmit),\n"
                  "%d runs, median shown. live trafgen: frames received on bench0 (balancer attached, native),\n"
                  "every new-flow frame from a random source; the same bpf_stats. Both include bpf_stats' own two\n"
                  "clock reads per run, for every row alike. The new-flow table is the production default\n"
                  "(%u entries, split per CPU), so the live new-flow rows evict once it is full.\n"
                  "The three UDP rows (issue 9) send one 74-byte datagram (a QUIC short header whose DCID carries\n"
                  "server id 0x%04x) to three UDP services of one VIP: IP-in-IP, GUE, and QUIC-routed; once/frame\n"
                  "only, %d runs of %u frames each, in an order that rotates every run.",
                  kSamples, kRuns, dataplane::new_flows_capacity(FULCRUM_DEFAULT_FLOWS), kQuicServerId, kUdpRuns,
                  kUdpSamples);
    report.prog_note = note;

    // Targets from issue 10's table: a hit within 1.5x floor_tx with floor_drop on the peer and
    // 1.25x with floor_pass (whose stack cost is on both sides), a new flow within 2x a hit, a
    // non-service packet within 1.05x an empty XDP_PASS.
    report.ratios = {
        ratio("hit_fib_vs_floor_tx_pass_peer", "service hit / XDP_TX floor (bpf_fib_lookup)", hit.ns, tx.ns, 1.25),
        ratio("hit_cache_vs_floor_tx_pass_peer", "service hit / XDP_TX floor (next-hop cache)", hit_cached.ns, tx.ns, 1.25),
        ratio("hit_fib_vs_floor_tx_drop_peer", "drop peer: service hit / XDP_TX floor (bpf_fib_lookup)", hit_d.ns,
              tx_d.ns, 1.5),
        ratio("hit_cache_vs_floor_tx_drop_peer", "drop peer: service hit / XDP_TX floor (next-hop cache)",
              hit_cached_d.ns, tx_d.ns, 1.5),
        ratio("non_service_vs_floor_pass", "non-service / empty XDP_PASS floor", other.ns, pass.ns, 1.05),
        ratio("prog_once_hit_vs_floor_tx", "program time, once/frame: hit / floor_tx", p_hit.once_ns(),
              p_floor.once_ns(), 0),
        ratio("prog_once_new_vs_floor_tx", "program time, once/frame: new flow / floor_tx", p_new.once_ns(),
              p_floor.once_ns(), 0),
        ratio("prog_once_new_vs_hit", "program time, once/frame: new flow / hit", p_new.once_ns(), p_hit.once_ns(), 2),
        ratio("prog_once_refused_vs_hit", "program time, once/frame: refused new flow / hit", p_refused.once_ns(),
              p_hit.once_ns(), 0),
        // Issue 9: a GUE service's hit and a QUIC packet routed by its server id, against a UDP
        // hit of an IP-in-IP service measured in the same runs. Informational: no target given.
        ratio("prog_once_udp_gue_vs_udp_ipip", "program time, once/frame: GUE UDP hit / IP-in-IP UDP hit",
              p_gue.once_ns(), p_udp.once_ns(), 0),
        ratio("prog_once_quic_vs_udp_ipip", "program time, once/frame: QUIC by server id / IP-in-IP UDP hit",
              p_quic.once_ns(), p_udp.once_ns(), 0),
    };
    if (p_new.live_runs && p_hit.live_runs && p_floor.live_runs) {
        report.ratios.push_back(ratio("prog_live_hit_vs_floor_tx", "program time, live: hit / floor_tx", p_hit.live,
                                      p_floor.live, 0));
        report.ratios.push_back(ratio("prog_live_new_vs_floor_tx", "program time, live: new flow / floor_tx",
                                      p_new.live, p_floor.live, 0));
        report.ratios.push_back(ratio("prog_live_new_vs_hit", "program time, live: new flow / hit", p_new.live,
                                      p_hit.live, 2));
        report.ratios.push_back(ratio("prog_live_refused_vs_hit", "program time, live: refused new flow / hit",
                                      p_refused.live, p_hit.live, 0));
    }
    if (report.flood.size() == 3 && report.flood[0].moved.est_forwarded) {
        auto fwd = [](const FloodRow& f) { return f.moved.est_forwarded / f.seconds; };
        report.ratios.push_back(ratio("flood_fwd_budget_100000_vs_off", "flood: established fwd/s, budget 100000 / off",
                                      fwd(report.flood[1]), fwd(report.flood[0]), 0, false));
        report.ratios.push_back(ratio("flood_fwd_budget_1000_vs_off", "flood: established fwd/s, budget 1000 / off",
                                      fwd(report.flood[2]), fwd(report.flood[0]), 0, false));
    }
    if (o.json)
        print_json(o, report);
    else
        print_text(o, report);

    // Missed targets are reported, not failed; figures of the wrong path are a failure to run.
    if (!wrong_path.empty()) {
        for (const std::string& w : wrong_path)
            std::fprintf(stderr, "fulcrum-bench: path check failed: %s\n", w.c_str());
        std::fprintf(stderr, "fulcrum-bench: the figures marked WRONG PATH are not of the path they name\n");
        return 1;
    }
    return 0;
}

}  // namespace
}  // namespace fulcrum::bench

int main(int argc, char** argv)
{
    return fulcrum::bench::run(fulcrum::bench::parse_options(argc, argv));
}
