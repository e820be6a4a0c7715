// fulcrum-bench: per-packet cost of the balancer next to floor programs, all in one run, through
// BPF_PROG_TEST_RUN in live-frames mode. It reports; it never asserts a target (see README.md).
#include <linux/bpf.h>
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
#include "live_frames.h"

namespace fulcrum::bench {
namespace {

constexpr int kRuns = 3;                          // runs per case; the median is reported
constexpr std::uint32_t kNewFlowSamples = 20000;  // distinct new flows per run of case 5
const std::string kClient = "198.18.50.7";        // the established flow of case 4
constexpr std::uint16_t kClientPort = 40000;

struct Options {
    std::uint32_t packets = 2'000'000;
    std::uint32_t batch = 64;
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
        else if (!std::strcmp(argv[i], "--json"))
            o.json = true;
        else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            std::printf("usage: fulcrum-bench [--packets N] [--batch N] [--json]\n"
                        "  --packets N  packets per timed run (default 2000000)\n"
                        "  --batch N    live-frames batch size, 1..256 (default 64)\n"
                        "  --json       one JSON object instead of the table\n"
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
};

// Checks, after a timed call, that the balancer's counters moved by exactly the packets sent.
// Returns "" when they did, else what went wrong.
using PathCheck = std::function<std::string(std::uint64_t sent)>;

struct LiveCase {
    Case* out;
    int prog_fd;
    Bytes frame;
    std::function<PathCheck()> arm;  // snapshots the counters before a call; empty for floors
};

struct NewFlowSample {
    double new_ns = 0, hit_ns = 0;  // medians of the kernel-timed program runs
};

// New flows cannot be timed in live mode: every packet of a call is the same packet, so only
// the first is new. Instead: distinct 5-tuples, one plain run each (repeat 1, so nothing is
// reused), each followed by a run of the established flow; the kernel's timer around the program
// gives both, without the syscall. Their difference is what the Maglev path adds to a hit.
NewFlowSample sample_new_flows(dataplane::BalancerProgram& balancer, int ifindex, int run,
                               const Bytes& established, std::string* problem)
{
    std::vector<double> new_ns, hit_ns;
    dataplane::ServiceCounters before = balancer.service_counters(kServiceId);
    for (std::uint32_t i = 0; i < kNewFlowSamples; ++i) {
        Bytes frame = BenchLab::service_frame("198.18.51." + std::to_string(run + 1),
                                              static_cast<std::uint16_t>(1024 + i), true);
        PlainRun r;
        check(run_plain(balancer.program_fd(), frame, ifindex, &r));
        if (r.verdict != XDP_TX)
            die(std::string("new flow returned ") + verdict_name(r.verdict) + ", expected XDP_TX");
        new_ns.push_back(r.duration_ns);
        check(run_plain(balancer.program_fd(), established, ifindex, &r));
        hit_ns.push_back(r.duration_ns);
    }
    std::uint64_t created = balancer.service_counters(kServiceId).new_flows - before.new_flows;
    if (created != kNewFlowSamples)
        *problem = std::to_string(created) + " of " + std::to_string(kNewFlowSamples) +
                   " sampled packets created a flow (expected all; the established flow none)";
    return {median(new_ns), median(hit_ns)};
}

struct Ratio {
    std::string name;
    double value = 0, target = 0;  // target 0: none given
};

struct Report {
    std::string peer_attach, loadavg, priority;
    double fixed_ms = 0, fixed_min_ms = 0, fixed_max_ms = 0;
    double resolution_ns = 0;  // how far the per-call cost's spread can move a figure
    std::vector<const Case*> cases;
    std::vector<Ratio> ratios;
    std::string new_flow_method;
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
    std::printf("peer     floor_pass on bench0-peer via %s\n\n", r.peer_attach.c_str());
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
    std::printf("\n%s\n\n", r.new_flow_method.c_str());
    for (const Ratio& q : r.ratios) {
        if (q.target > 0)
            std::printf("%-36s %5.2f   target <= %.2f: %s\n", q.name.c_str(), q.value, q.target,
                        q.value <= q.target ? "met" : "not met");
        else
            std::printf("%-36s %5.2f   (no target)\n", q.name.c_str(), q.value);
    }
}

std::string json_string(const std::string& s)
{
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += static_cast<unsigned char>(c) >= 0x20 ? c : ' ';  // the method text has line breaks
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
        std::printf("%s{\"key\":%s,\"label\":%s,\"ns_per_packet\":%.2f,\"runs\":[", i ? "," : "",
                    json_string(c->key).c_str(), json_string(c->label).c_str(), c->ns);
        for (std::size_t j = 0; j < c->runs.size(); ++j)
            std::printf("%s%.2f", j ? "," : "", c->runs[j]);
        std::printf("],\"path\":%s}", json_string(c->path).c_str());
    }
    std::printf("],\"new_flow_method\":%s,\"ratios\":[", json_string(r.new_flow_method).c_str());
    for (std::size_t i = 0; i < r.ratios.size(); ++i) {
        const Ratio& q = r.ratios[i];
        std::printf("%s{\"name\":%s,\"value\":%.3f,", i ? "," : "", json_string(q.name).c_str(), q.value);
        if (q.target > 0)
            std::printf("\"target\":%.2f,\"met\":%s}", q.target, q.value <= q.target ? "true" : "false");
        else
            std::printf("\"target\":null,\"met\":null}");
    }
    std::printf("]}\n");
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
    Status error;
    std::unique_ptr<BenchLab> lab = BenchLab::create(&error);
    if (!lab)
        die(error.message());
    report.peer_attach = lab->peer_attach();
    dataplane::BalancerProgram& balancer = lab->balancer();
    const int ifindex = lab->ifindex();
    const int balancer_fd = balancer.program_fd();

    const Bytes service = BenchLab::service_frame(kClient, kClientPort);
    const Bytes non_service = BenchLab::non_service_frame();

    // Verdicts first. The SYN opens the service packet's flow and the service packet's plain run
    // (an ACK) confirms it, so every timed packet of case 4 is a hit in the table of confirmed flows.
    expect_verdict("balancer, opening SYN", balancer_fd, BenchLab::service_frame(kClient, kClientPort, true),
                   ifindex, XDP_TX);
    expect_verdict("floor_drop", lab->floor_drop_fd(), non_service, ifindex, XDP_DROP);
    expect_verdict("floor_pass", lab->floor_pass_fd(), non_service, ifindex, XDP_PASS);
    expect_verdict("floor_tx", lab->floor_tx_fd(), service, ifindex, XDP_TX);
    expect_verdict("balancer, service packet", balancer_fd, service, ifindex, XDP_TX);
    expect_verdict("balancer, new flow", balancer_fd, BenchLab::service_frame("198.18.51.250", 1, true),
                   ifindex, XDP_TX);
    expect_verdict("balancer, non-service packet", balancer_fd, non_service, ifindex, XDP_PASS);

    Case drop{"floor_drop", "1 floor: XDP_DROP (floor_drop)", {}, {}, 0, ""};
    Case pass{"floor_pass", "2 floor: empty XDP_PASS (floor_pass), into the stack", {}, {}, 0, ""};
    Case tx{"floor_tx", "3 floor: MAC+address swap, XDP_TX (floor_tx)", {}, {}, 0, ""};
    Case hit{"service_hit", "4 balancer: service packet, flow-table hit -> IPv4-in-IPv4, XDP_TX", {}, {}, 0, ""};
    Case hit_cached{"service_hit_nexthop_cache",
                    "4b the same, next hop from fulcrumd's cache instead of bpf_fib_lookup", {}, {}, 0, ""};
    Case fresh{"new_flow", "5 balancer: new flow (Maglev + flow insert) -> XDP_TX [estimate, below]", {}, {}, 0, ""};
    Case other{"non_service", "6 balancer: non-service packet (not a VIP) -> XDP_PASS", {}, {}, 0, ""};

    // The balancer's counters say which path each timed packet took; a figure is only reported
    // as valid if all of them took the named one (see README: live frames reuse pages).
    auto service_hits = [&]() -> PathCheck {
        dataplane::ServiceCounters before = balancer.service_counters(kServiceId);
        std::uint64_t unrecorded_before = balancer.flow_event_count(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM);
        return [&balancer, before, unrecorded_before](std::uint64_t sent) -> std::string {
            dataplane::ServiceCounters now = balancer.service_counters(kServiceId);
            std::uint64_t fwd = now.packets - before.packets, created = now.new_flows - before.new_flows;
            // A packet balanced without an entry (mid-stream) would also create nothing.
            std::uint64_t unrecorded =
                balancer.flow_event_count(FULCRUM_FLOW_NOT_RECORDED_MID_STREAM) - unrecorded_before;
            if (fwd == sent && created == 0 && unrecorded == 0)
                return "";
            return std::to_string(fwd) + " of " + std::to_string(sent) + " packets forwarded, " +
                   std::to_string(created) + " created a flow, " + std::to_string(unrecorded) +
                   " found no flow-table entry";
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
    };

    std::vector<std::string> wrong_path;
    std::vector<NewFlowSample> new_flows;
    // Runs are interleaved (every case, then again) so slow drift spreads over all cases.
    for (int run = 0; run < kRuns; ++run) {
        std::string when = ", run " + std::to_string(run + 1) + ": ";
        for (LiveCase& c : live) {
            PathCheck verify = c.arm ? c.arm() : nullptr;
            LiveTimes t;
            check(time_live(c.prog_fd, c.frame, ifindex, o.packets, o.batch, &t));
            c.out->times.push_back(t);
            if (std::string problem = verify ? verify(std::uint64_t{o.packets} + 2 * o.batch) : ""; !problem.empty()) {
                wrong_path.push_back(c.out->label + when + problem);
                c.out->path = "WRONG PATH" + when + problem;
            }
        }
        std::string problem;
        new_flows.push_back(sample_new_flows(balancer, ifindex, run, service, &problem));
        if (!problem.empty()) {
            wrong_path.push_back(fresh.label + when + problem);
            fresh.path = "WRONG PATH" + when + problem;
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
    // Case 5 per run: that run's live hit plus what a new flow's program run adds to a hit's.
    std::vector<double> extra, new_med, hit_med;
    for (int run = 0; run < kRuns; ++run) {
        extra.push_back(new_flows[run].new_ns - new_flows[run].hit_ns);
        new_med.push_back(new_flows[run].new_ns);
        hit_med.push_back(new_flows[run].hit_ns);
        fresh.runs.push_back(hit.runs[run] + extra.back());
    }
    fresh.ns = median(fresh.runs);
    if (fresh.path.empty())
        fresh.path = "ok: the balancer's counters saw every sampled packet create a flow";
    char method[640];
    std::snprintf(method, sizeof method,
                  "new flow = case 4 (live hit) + Maglev-path extra %.1f ns. The extra: median kernel-timed\n"
                  "program run of %u distinct new flows (%.1f ns) minus that of the established flow (%.1f ns),\n"
                  "interleaved, plain mode, repeat 1, per run; medians over runs. Not a live-frames figure.",
                  median(extra), kNewFlowSamples, median(new_med), median(hit_med));
    report.new_flow_method = method;
    report.fixed_ms = median(fixed_ms);
    report.fixed_min_ms = *std::min_element(fixed_ms.begin(), fixed_ms.end());
    report.fixed_max_ms = *std::max_element(fixed_ms.begin(), fixed_ms.end());
    report.cases = {&drop, &pass, &tx, &hit, &hit_cached, &fresh, &other};
    report.ratios = {
        {"service hit / XDP_TX floor (bpf_fib_lookup)", hit.ns / tx.ns, 1.5},
        {"service hit / XDP_TX floor (next-hop cache)", hit_cached.ns / tx.ns, 1.5},
        {"non-service / empty XDP_PASS floor", other.ns / pass.ns, 1.05},
        {"new flow / XDP_TX floor", fresh.ns / tx.ns, 0},
    };
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
