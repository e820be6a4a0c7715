// fulcrum-reload-bench --maglev: times maglev::build_table against the original builder kept as
// the reference (tests/unit/maglev_reference.h), alternating the two run by run so that a busy
// machine slows both alike, and checks every table is bit-identical to the reference's.
#include "maglev_bench.h"

#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "maglev/maglev.h"
#include "maglev_reference.h"  // tests/unit, through test_support_dep
#include "util/json.h"

namespace fulcrum::bench {
namespace {

// The target of issue 10: one table of 65537 slots for 1000 backends within 1 ms.
constexpr std::uint32_t kTargetSize = 65537, kTargetBackends = 1000;
constexpr double kTargetMs = 1.0;

enum class Weights { kEqual, kMixed, kHeavy };
constexpr Weights kAllWeights[] = {Weights::kEqual, Weights::kMixed, Weights::kHeavy};

const char* weights_name(Weights w)
{
    switch (w) {
        case Weights::kEqual: return "equal (100)";
        case Weights::kMixed: return "mixed (1..200)";
        case Weights::kHeavy: return "one 65535, rest 1";
    }
    return "?";
}

// Backends 10.x.y.z:80 in key order's opposite, so the builder's sort has work to do.
std::vector<maglev::Backend> make_ring(std::uint32_t n, Weights weights)
{
    std::vector<maglev::Backend> ring;
    for (std::uint32_t b = n; b-- > 0;) {
        std::uint32_t w = 100;
        if (weights == Weights::kMixed)
            w = 1 + (b * 37) % 200;
        else if (weights == Weights::kHeavy)
            w = b == 0 ? maglev::kMaxWeight : 1;
        ring.push_back({"10." + std::to_string(b / 65536) + "." + std::to_string(b / 256 % 256) + "." +
                            std::to_string(b % 256) + ":80",
                        b + 1, w});
    }
    return ring;
}

double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_ms()
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

struct Times {
    std::vector<double> wall, cpu;
    double min() const { return *std::min_element(wall.begin(), wall.end()); }
    double median() const
    {
        std::vector<double> v = wall;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }
    double min_cpu() const { return *std::min_element(cpu.begin(), cpu.end()); }
};

struct Case {
    std::uint32_t size, backends;
    Weights weights;
    Times reference, fast;
    bool identical = true;
};

template <typename Build>
maglev::TableResult timed(Times& t, Build&& build)
{
    const double c0 = thread_cpu_ms(), t0 = now_ms();
    maglev::TableResult r = build();
    t.wall.push_back(now_ms() - t0);
    t.cpu.push_back(thread_cpu_ms() - c0);
    return r;
}

std::string file_line(const char* path, const char* prefix)
{
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(prefix, 0) == 0)
            return line;
    return "";
}

}  // namespace

int run_maglev_bench(const MaglevBenchOptions& o)
{
    std::vector<Case> cases;
    for (std::uint32_t size : o.table_sizes)
        for (std::uint32_t n : o.backend_counts)
            for (Weights w : kAllWeights) {
                Case c{size, n, w, {}, {}};
                const auto ring = make_ring(n, w);
                for (std::uint32_t r = 0; r < o.runs; ++r) {
                    const auto want = timed(c.reference, [&] { return maglev::reference::build_table(ring, size, r); });
                    const auto got = timed(c.fast, [&] { return maglev::build_table(ring, size, r); });
                    c.identical = c.identical && want.ok() && got.error == want.error && got.table == want.table;
                }
                cases.push_back(std::move(c));
            }

    utsname u{};
    uname(&u);
    std::string cpu = file_line("/proc/cpuinfo", "model name");
    cpu = cpu.substr(std::min(cpu.size(), cpu.find(':') + 2));
    std::string load;
    std::getline(std::ifstream("/proc/loadavg"), load);
    bool all_identical = true;
    for (const Case& c : cases)
        all_identical = all_identical && c.identical;

    if (o.json) {
        JsonWriter j;
        j.begin_object().field("bench", "fulcrum-reload-bench --maglev").field("kernel", u.release);
        j.field("cpus", sysconf(_SC_NPROCESSORS_ONLN)).field("cpu", cpu).field("loadavg", load).field("runs", o.runs);
        j.key("cases").begin_array();
        for (const Case& c : cases) {
            j.begin_object().field("table_size", c.size).field("backends", c.backends);
            j.field("weights", weights_name(c.weights)).field("identical", c.identical);
            j.field("reference_min_ms", c.reference.min()).field("reference_median_ms", c.reference.median());
            j.field("min_ms", c.fast.min()).field("median_ms", c.fast.median()).field("min_cpu_ms", c.fast.min_cpu());
            j.field("speedup_min", c.reference.min() / c.fast.min());
            if (c.size == kTargetSize && c.backends == kTargetBackends)
                j.field("target_ms", kTargetMs).field("met", c.fast.min() <= kTargetMs);
            j.end_object();
        }
        j.end_array().field("identical", all_identical).end_object();
        std::printf("%s\n", j.str().c_str());
        return all_identical ? 0 : 1;
    }

    std::printf("fulcrum-reload-bench --maglev: one maglev::build_table, min and median of %u runs (seeds 0..%u),\n"
                "the original builder (reference) and today's alternating run by run\n",
                o.runs, o.runs - 1);
    std::printf("kernel %s, %ld CPUs online, %s, load average %s\n", u.release, sysconf(_SC_NPROCESSORS_ONLN),
                cpu.c_str(), load.c_str());
    std::printf("%7s %8s  %-18s %21s %21s %9s %8s  %s\n", "slots", "backends", "weights", "reference min/med ms",
                "today min/med ms", "cpu min", "speedup", "");
    for (const Case& c : cases) {
        std::string verdict = c.identical ? "identical" : "TABLES DIFFER";
        if (c.size == kTargetSize && c.backends == kTargetBackends)
            verdict += c.fast.min() <= kTargetMs ? ", target <= 1 ms: met" : ", target <= 1 ms: not met";
        std::printf("%7u %8u  %-18s %10.3f /%9.3f %10.3f /%9.3f %9.3f %7.1fx  %s\n", c.size, c.backends,
                    weights_name(c.weights), c.reference.min(), c.reference.median(), c.fast.min(), c.fast.median(),
                    c.fast.min_cpu(), c.reference.min() / c.fast.min(), verdict.c_str());
    }
    if (!all_identical)
        std::printf("a table differs from the reference's: today's builder is wrong (tests/unit/test_maglev_pinned.cpp)\n");
    return all_identical ? 0 : 1;
}

}  // namespace fulcrum::bench
