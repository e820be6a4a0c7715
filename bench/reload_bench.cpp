// fulcrum-reload-bench: how long a reload of a large configuration takes (1,000 services x 100
// backends by default), phase by phase, on the real BPF maps and on the in-memory FakeMaps, next
// to floors measured in the same run (one Maglev build, one table write). It reports; it never
// asserts a target (see README.md, "fulcrum-reload-bench").
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/balancer_program.h"
#include "dataplane/maglev_map.h"
#include "maglev/maglev.h"
#include "plan/desired.h"
#include "plan/parallel.h"
#include "plan/reconciler.h"
#include "plan/tables.h"
#include "util/json.h"

#include "maglev_bench.h"
#include "parse_bench.h"

#include "fake_maps.h"  // tests/unit, through test_support_dep

namespace fulcrum::bench {
namespace {

// The flow-hash seed of the bench's configs when the file sets none (fulcrumd would pin a random one).
constexpr std::uint32_t kBenchSeed = 0x5eed;

// ---------------------------------------------------------------------------------------------
// Options, clocks, small helpers

struct Options {
    std::uint32_t services = 1000;
    std::uint32_t backends = 100;
    std::uint32_t reps = 3;
    std::vector<std::uint32_t> table_sizes{65537, 4099};
    std::uint32_t flow_capacity = 65536;
    bool fake_only = false;
    bool json = false;
    bool maglev = false;  // --maglev: only maglev::build_table against the original (bench/maglev_bench.cpp)
    bool parse = false;   // --parse: only the config's parse, fast scanner against yaml-cpp (bench/parse_bench.cpp)
    bool reps_given = false, table_sizes_given = false;
};

[[noreturn]] void die(const std::string& message)
{
    std::fprintf(stderr, "fulcrum-reload-bench: %s\n", message.c_str());
    std::exit(1);
}

void check(const Status& s, const std::string& what)
{
    if (!s.ok())
        die(what + ": " + s.message());
}

Options parse_options(int argc, char** argv)
{
    Options o;
    auto number = [&](int& i, long min, long max) -> std::uint32_t {
        if (i + 1 >= argc)
            die(std::string(argv[i]) + " needs a number");
        char* end = nullptr;
        long v = std::strtol(argv[++i], &end, 10);
        if (*end || v < min || v > max)
            die(std::string(argv[i - 1]) + " must be " + std::to_string(min) + ".." + std::to_string(max));
        return static_cast<std::uint32_t>(v);
    };
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--services"))
            o.services = number(i, 2, FULCRUM_MAX_SERVICES - 2);  // one more is added by a scenario
        else if (!std::strcmp(argv[i], "--backends"))
            o.backends = number(i, 2, 250);
        else if (!std::strcmp(argv[i], "--reps")) {
            o.reps = number(i, 1, 50);
            o.reps_given = true;
        } else if (!std::strcmp(argv[i], "--table-sizes")) {
            if (i + 1 >= argc)
                die("--table-sizes needs a list, e.g. 65537,4099");
            o.table_sizes.clear();
            o.table_sizes_given = true;
            std::string list = argv[++i];
            for (std::size_t at = 0; at <= list.size();) {
                std::size_t comma = list.find(',', at);
                if (comma == std::string::npos)
                    comma = list.size();
                std::string item = list.substr(at, comma - at);
                char* end = nullptr;
                unsigned long v = std::strtoul(item.c_str(), &end, 10);
                if (item.empty() || *end || v < 3 || v > FULCRUM_MAX_TABLE_SIZE || !maglev::is_prime(v))
                    die("--table-sizes: \"" + item + "\" is not a prime 3.." + std::to_string(FULCRUM_MAX_TABLE_SIZE));
                o.table_sizes.push_back(static_cast<std::uint32_t>(v));
                at = comma + 1;
            }
        } else if (!std::strcmp(argv[i], "--flow-capacity"))
            o.flow_capacity = number(i, 1024, 100'000'000);
        else if (!std::strcmp(argv[i], "--fake-only"))
            o.fake_only = true;
        else if (!std::strcmp(argv[i], "--json"))
            o.json = true;
        else if (!std::strcmp(argv[i], "--maglev"))
            o.maglev = true;
        else if (!std::strcmp(argv[i], "--parse"))
            o.parse = true;
        else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            std::printf(
                "usage: fulcrum-reload-bench [--services N] [--backends N] [--reps N]\n"
                "                            [--table-sizes P,P..] [--flow-capacity N] [--fake-only] [--json]\n"
                "       fulcrum-reload-bench --maglev [--reps N] [--table-sizes P,P..] [--json]\n"
                "       fulcrum-reload-bench --parse [--services N] [--backends N] [--reps N] [--json]\n"
                "  --services N       services in the generated config (default 1000)\n"
                "  --backends N       backends per service, 2..250 (default 100)\n"
                "  --reps N           repetitions per phase; the median is reported (default 3)\n"
                "  --table-sizes L    Maglev table sizes to run, primes (default 65537,4099)\n"
                "  --flow-capacity N  flow table of the loaded program (default 65536)\n"
                "  --fake-only        skip the real BPF maps (no root needed)\n"
                "  --json             one JSON object instead of the table\n"
                "  --maglev           only one maglev::build_table of 100 and 1000 backends, today's builder\n"
                "                     against the original, min and median of --reps runs (default 31),\n"
                "                     table sizes from --table-sizes (default 65537); no root needed\n"
                "  --parse            only the parse of the generated config: the fast YAML scanner against\n"
                "                     yaml-cpp's event parser and parse_text, --reps runs each (default 11)\n"
                "Needs root for the real maps: loads the balancer (not attached, not pinned).\n");
            std::exit(0);
        } else
            die(std::string("unknown option ") + argv[i] + " (try --help)");
    }
    // Backend ids are 1..FULCRUM_MAX_BACKENDS-1, and a scenario adds one more service.
    if (static_cast<std::uint64_t>(o.services + 1) * o.backends >= FULCRUM_MAX_BACKENDS)
        die("--services x --backends must stay below " + std::to_string(FULCRUM_MAX_BACKENDS) + " backends in all");
    return o;
}

double wall_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of this thread (user + system): on a shared machine, wall >> cpu means we were
// preempted, and the wall figure is not the cost.
double cpu_ms()
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

long peak_rss_kb()
{
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

long current_rss_kb()
{
    std::ifstream in("/proc/self/statm");
    long pages = 0, resident = 0;
    in >> pages >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long meminfo_kb(const std::string& field)
{
    std::ifstream in("/proc/meminfo");
    std::string name;
    long value = 0;
    std::string unit;
    while (in >> name >> value) {
        std::getline(in, unit);
        if (name == field + ":")
            return value;
    }
    return -1;
}

std::string loadavg()
{
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

// "memlock:" of an fd's fdinfo: what the kernel charges for a map.
long fd_memlock(int fd)
{
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("memlock:", 0) == 0)
            return std::strtol(line.c_str() + 8, nullptr, 10);
    return -1;
}

std::string fmt(const char* f, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// ---------------------------------------------------------------------------------------------
// The MapWriter in between: counts and times every write, so a phase splits into our computation
// (Maglev builds, diffing: total - in writer) and the writes (real maps: syscalls; fake: copies).

enum Kind { kSettings, kPutVip, kDeleteVip, kPutService, kDeleteService, kPutBackend, kPutTable, kDeleteTable,
            kQuicId, kKinds };
const char* const kKindNames[kKinds] = {"set_settings", "put_vip", "delete_vip", "put_service", "delete_service",
                                        "put_backend", "put_table", "delete_table", "quic_id"};

struct WriteStats {
    std::array<std::uint64_t, kKinds> calls{};
    std::array<double, kKinds> ms{};
    std::uint64_t total_calls() const
    {
        std::uint64_t n = 0;
        for (auto c : calls)
            n += c;
        return n;
    }
    double total_ms() const
    {
        double t = 0;
        for (auto m : ms)
            t += m;
        return t;
    }
    std::string summary() const
    {
        std::string s;
        for (int k = 0; k < kKinds; ++k)
            if (calls[k]) {
                if (!s.empty())
                    s += ", ";
                s += std::to_string(calls[k]) + " " + kKindNames[k];
            }
        return s.empty() ? "none" : s;
    }
};

class TimedWriter final : public dataplane::MapWriter {
public:
    explicit TimedWriter(dataplane::MapWriter& inner) : inner_(inner) {}
    WriteStats stats;

    void begin() override { inner_.begin(); }
    void commit() override { inner_.commit(); }
    Status rollback() override { return inner_.rollback(); }
    // Creating and filling a table moved here from put_table (aside, before the live writes): its
    // time counts with put_table's, its calls do not (one table, one put_table).
    Status prepare_table(std::uint32_t id, std::span<const std::uint32_t> t) override
    {
        return timed(kPutTable, [&] { return inner_.prepare_table(id, t); }, false);
    }

    Status set_settings(const fulcrum_settings& s) override
    {
        return timed(kSettings, [&] { return inner_.set_settings(s); });
    }
    Status put_vip(const fulcrum_vip_key& k, const fulcrum_vip_value& v) override
    {
        return timed(kPutVip, [&] { return inner_.put_vip(k, v); });
    }
    Status delete_vip(const fulcrum_vip_key& k) override
    {
        return timed(kDeleteVip, [&] { return inner_.delete_vip(k); });
    }
    Status put_service(const fulcrum_service_key& k, const fulcrum_service_value& v) override
    {
        return timed(kPutService, [&] { return inner_.put_service(k, v); });
    }
    Status delete_service(const fulcrum_service_key& k) override
    {
        return timed(kDeleteService, [&] { return inner_.delete_service(k); });
    }
    Status put_backend(std::uint32_t id, const fulcrum_backend& b) override
    {
        return timed(kPutBackend, [&] { return inner_.put_backend(id, b); });
    }
    Status put_quic_id(const fulcrum_quic_key& k, std::uint32_t backend_id) override
    {
        return timed(kQuicId, [&] { return inner_.put_quic_id(k, backend_id); });
    }
    Status delete_quic_id(const fulcrum_quic_key& k) override
    {
        return timed(kQuicId, [&] { return inner_.delete_quic_id(k); });
    }
    Status put_table(std::uint32_t id, std::span<const std::uint32_t> t) override
    {
        return timed(kPutTable, [&] { return inner_.put_table(id, t); });
    }
    Status put_tables(std::span<const std::uint32_t> ids) override
    {
        Status s = timed(kPutTable, [&] { return inner_.put_tables(ids); });
        if (!ids.empty())
            stats.calls[kPutTable] += ids.size() - 1;  // counted per table, as put_table
        return s;
    }
    Status delete_table(std::uint32_t id) override
    {
        return timed(kDeleteTable, [&] { return inner_.delete_table(id); });
    }

private:
    template <typename F>
    Status timed(Kind kind, F f, bool count = true)
    {
        auto t0 = std::chrono::steady_clock::now();
        Status s = f();
        stats.ms[kind] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        stats.calls[kind] += count;
        return s;
    }
    dataplane::MapWriter& inner_;
};

// ---------------------------------------------------------------------------------------------
// Measurements

struct Sample {
    double wall = 0, cpu = 0;
    WriteStats writes;
};

struct Phase {
    std::string name;
    std::string maps;  // "", "fake" or "real"
    std::vector<Sample> samples;
    std::string note;
    double wall() const
    {
        std::vector<double> v;
        for (const auto& s : samples)
            v.push_back(s.wall);
        return median(v);
    }
    double cpu() const
    {
        std::vector<double> v;
        for (const auto& s : samples)
            v.push_back(s.cpu);
        return median(v);
    }
    double in_writer() const
    {
        std::vector<double> v;
        for (const auto& s : samples)
            v.push_back(s.writes.total_ms());
        return median(v);
    }
    double min() const
    {
        double m = samples.empty() ? 0 : samples[0].wall;
        for (const auto& s : samples)
            m = std::min(m, s.wall);
        return m;
    }
    double max() const
    {
        double m = 0;
        for (const auto& s : samples)
            m = std::max(m, s.wall);
        return m;
    }
    bool noisy() const { return samples.size() > 1 && min() > 0 && max() > 1.2 * min(); }
    const WriteStats* writes() const { return samples.empty() ? nullptr : &samples.back().writes; }
};

template <typename F>
Sample measure(TimedWriter* writer, F f)
{
    if (writer)
        writer->stats = {};
    Sample s;
    double c0 = cpu_ms(), w0 = wall_ms();
    f();
    s.wall = wall_ms() - w0;
    s.cpu = cpu_ms() - c0;
    if (writer)
        s.writes = writer->stats;
    return s;
}

// ---------------------------------------------------------------------------------------------
// The generated configuration

std::string vip_of(std::uint32_t service)  // 198.19.0.1 ..: in 198.18.0.0/15
{
    return "198.19." + std::to_string(service / 200) + "." + std::to_string(service % 200 + 1);
}

std::string backend_of(std::uint32_t service, std::uint32_t backend)  // 10.s.s.b, unique
{
    return "10." + std::to_string(service / 256) + "." + std::to_string(service % 256) + "." +
           std::to_string(backend + 1);
}

std::string service_yaml(std::uint32_t s, std::uint32_t backends, std::uint32_t table_size)
{
    std::string y;
    y += "  - name: svc" + std::to_string(s) + "\n";
    y += "    vip: " + vip_of(s) + "\n";
    y += "    port: 80\n";
    y += "    protocol: tcp\n";
    y += "    table_size: " + std::to_string(table_size) + "\n";
    y += "    backends:\n";
    for (std::uint32_t b = 0; b < backends; ++b) {
        y += "      - address: " + backend_of(s, b) + "\n";
        y += "        weight: 100\n";
    }
    return y;
}

std::string config_yaml(const Options& o, std::uint32_t table_size, std::uint32_t services)
{
    std::string y =
        "# generated by fulcrum-reload-bench\n"
        "interfaces:\n"
        "  - name: eth0\n"
        "tunnel:\n"
        "  source_v4: 10.255.0.1\n"
        "flows:\n"
        "  capacity: " + std::to_string(o.flow_capacity) + "\n"
        "services:\n";
    for (std::uint32_t s = 0; s < services; ++s)
        y += service_yaml(s, o.backends, table_size);
    return y;
}

plan::Desired desired_of(const std::string& text, const std::string& name)
{
    config::ParseResult r = config::parse_text(text, name);
    if (!r.config)
        die("the generated config does not parse: " + (r.errors.empty() ? std::string("?") : r.errors[0].to_string()));
    return plan::make_desired(*r.config, r.config->hash_seed.value_or(kBenchSeed));
}

// The scenarios of a reload after the first apply; `apply` is timed, `revert` (back to the full
// desired state) is not.
struct Scenario {
    std::string name;
    plan::Desired changed;
};

std::vector<Scenario> scenarios(const plan::Desired& base, const plan::ServicePlan& extra)
{
    const std::size_t mid = base.services.size() / 2;
    std::vector<Scenario> out;
    out.push_back({"no-change reload", base});
    {
        plan::Desired d = base;
        auto& b = d.services[mid].backends[d.services[mid].backends.size() / 2];
        b.weight = b.weight == 150 ? 100 : 150;
        out.push_back({"one backend's weight changed", std::move(d)});
    }
    {
        plan::Desired d = base;
        auto& bs = d.services[mid].backends;
        bs.erase(bs.begin() + static_cast<long>(bs.size() / 2));
        out.push_back({"one backend removed", std::move(d)});
    }
    {
        plan::Desired d = base;
        d.services.push_back(extra);
        out.push_back({"one service added", std::move(d)});
    }
    {
        plan::Desired d = base;
        d.services.erase(d.services.begin() + static_cast<long>(mid));
        out.push_back({"one service removed", std::move(d)});
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Floors

struct Floors {
    std::uint32_t table_size = 0;
    double build_ms = 0;         // one maglev::build_table of `backends` backends
    double table_write_ms = 0;   // dataplane::create_maglev_table: create + mmap + one copy + munmap
    double table_close_ms = 0;
    long table_memlock = 0;      // bytes the kernel charges for one table (fdinfo memlock)
    double build_cpu_ms = 0, table_write_cpu_ms = 0;
    // The layout before ABI 2, for comparison in the same run: one __u32 per array entry (the
    // kernel stores it in 8 bytes), filled by create + one bpf_map_update_batch of every slot.
    double u32_array_write_ms = 0, u32_array_write_cpu_ms = 0;
    long u32_array_memlock = 0;
    // The chunked layout without BPF_F_MMAPABLE (no header page; filled by one update_batch of
    // every chunk): the alternative to mmap, measured for the choice.
    double chunk_batch_write_ms = 0;
    long chunk_batch_memlock = 0;
    int reps = 0;
    double table_floor_ms() const { return table_write_ms + table_close_ms; }
};

std::vector<maglev::Backend> ring_of(std::uint32_t service, std::uint32_t backends)
{
    std::vector<maglev::Backend> ring;
    for (std::uint32_t b = 0; b < backends; ++b)
        ring.push_back({backend_of(service, b), b + 1, 100});
    return ring;
}

Floors measure_floors(const Options& o, std::uint32_t table_size, bool real)
{
    Floors f;
    f.table_size = table_size;
    f.reps = table_size > 100'000 ? 9 : 21;
    auto ring = ring_of(0, o.backends);
    std::vector<double> build, write, close_ms, build_cpu, write_cpu, old, old_cpu, chunked;
    std::vector<std::uint32_t> keys(table_size), table;
    for (std::uint32_t i = 0; i < table_size; ++i)
        keys[i] = i;
    const std::uint32_t chunks = FULCRUM_MAGLEV_CHUNKS(table_size);
    std::vector<std::uint32_t> padded;
    for (int r = 0; r < f.reps; ++r) {
        double c0 = cpu_ms(), t0 = wall_ms();
        auto result = maglev::build_table(ring, table_size, 0);
        build.push_back(wall_ms() - t0);
        build_cpu.push_back(cpu_ms() - c0);
        if (!result.ok())
            die("maglev floor: " + result.error);
        table = std::move(result.table);
        if (!real)
            continue;
        // The daemon's table write (BalancerProgram::make_table), alone.
        c0 = cpu_ms();
        t0 = wall_ms();
        Result<int> made = dataplane::create_maglev_table("rb_floor", table, "the floor table");
        double t1 = wall_ms();
        write_cpu.push_back(cpu_ms() - c0);
        if (!made.ok())
            die("floor: " + made.message());
        if (r == 0) {
            f.table_memlock = fd_memlock(*made);
            Result<std::vector<std::uint32_t>> back = dataplane::read_maglev_table(*made, table_size, "the floor table");
            if (!back.ok() || *back != table)
                die("floor: the table reads back wrong: " + (back.ok() ? std::string("other slots") : back.message()));
        }
        double t2 = wall_ms();
        close(*made);
        close_ms.push_back(wall_ms() - t2);
        write.push_back(t1 - t0);

        // The layout before ABI 2: a __u32 per entry, filled by one update_batch of every slot.
        LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
        c0 = cpu_ms();
        t0 = wall_ms();
        int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rb_u32_array", 4, 4, table_size, &opts);
        if (fd < 0)
            die(std::string("floor: bpf_map_create: ") + std::strerror(errno));
        std::uint32_t count = table_size;
        if (bpf_map_update_batch(fd, keys.data(), table.data(), &count, nullptr) != 0)
            die(std::string("floor: bpf_map_update_batch: ") + std::strerror(errno));
        old.push_back(wall_ms() - t0);
        old_cpu.push_back(cpu_ms() - c0);
        if (r == 0)
            f.u32_array_memlock = fd_memlock(fd);
        close(fd);

        // Chunks, not mmap-able: create + one update_batch of every chunk.
        padded.assign(static_cast<std::size_t>(chunks) * FULCRUM_MAGLEV_CHUNK_SLOTS, 0);
        std::copy(table.begin(), table.end(), padded.begin());
        t0 = wall_ms();
        fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rb_chunks", 4, sizeof(fulcrum_maglev_chunk), chunks, &opts);
        if (fd < 0)
            die(std::string("floor: bpf_map_create (chunks): ") + std::strerror(errno));
        count = chunks;
        if (bpf_map_update_batch(fd, keys.data(), padded.data(), &count, nullptr) != 0)
            die(std::string("floor: bpf_map_update_batch (chunks): ") + std::strerror(errno));
        chunked.push_back(wall_ms() - t0);
        if (r == 0)
            f.chunk_batch_memlock = fd_memlock(fd);
        close(fd);
    }
    f.build_ms = median(build);
    f.build_cpu_ms = median(build_cpu);
    f.table_write_ms = median(write);
    f.table_write_cpu_ms = median(write_cpu);
    f.table_close_ms = median(close_ms);
    f.u32_array_write_ms = median(old);
    f.u32_array_write_cpu_ms = median(old_cpu);
    f.chunk_batch_write_ms = median(chunked);
    return f;
}

// What put_backend costs per backend on real maps (two bpf_map_update_elem: the next-hop
// invalidation, then the backend), against one bpf_map_update_batch per map: evidence for
// batching the first apply's backends.
struct BackendFloor {
    std::uint32_t count = 0;
    double elem_ms = 0;   // count x (update nexthop + update backend), one syscall each
    double batch_ms = 0;  // one batch into each of the two arrays
};

BackendFloor measure_backend_floor(std::uint32_t count)
{
    BackendFloor f;
    f.count = count;
    int backends = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rb_backends", 4, sizeof(fulcrum_backend), FULCRUM_MAX_BACKENDS, nullptr);
    int nexthops = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rb_nexthops", 4, sizeof(fulcrum_nexthop), FULCRUM_MAX_BACKENDS, nullptr);
    if (backends < 0 || nexthops < 0)
        die(std::string("backend floor: bpf_map_create: ") + std::strerror(errno));
    std::vector<std::uint32_t> keys(count);
    std::vector<fulcrum_backend> values(count);
    std::vector<fulcrum_nexthop> none(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        keys[i] = i + 1;
        values[i].family = FULCRUM_AF_INET;
        values[i].state = FULCRUM_BACKEND_ACTIVE;
        values[i].service_id = static_cast<std::uint16_t>(i / 100 + 1);
    }
    std::vector<double> elem, batch;
    for (int r = 0; r < 3; ++r) {
        double t0 = wall_ms();
        for (std::uint32_t i = 0; i < count; ++i)
            if (bpf_map_update_elem(nexthops, &keys[i], &none[i], BPF_ANY) != 0 ||
                bpf_map_update_elem(backends, &keys[i], &values[i], BPF_ANY) != 0)
                die(std::string("backend floor: bpf_map_update_elem: ") + std::strerror(errno));
        elem.push_back(wall_ms() - t0);
        t0 = wall_ms();
        std::uint32_t n1 = count, n2 = count;
        if (bpf_map_update_batch(nexthops, keys.data(), none.data(), &n1, nullptr) != 0 ||
            bpf_map_update_batch(backends, keys.data(), values.data(), &n2, nullptr) != 0)
            die(std::string("backend floor: bpf_map_update_batch: ") + std::strerror(errno));
        batch.push_back(wall_ms() - t0);
    }
    close(backends);
    close(nexthops);
    f.elem_ms = median(elem);
    f.batch_ms = median(batch);
    return f;
}

// The swap of a table into maglev_tables (ARRAY_OF_MAPS): the kernel waits for an RCU grace
// period (synchronize_rcu) after every update of a map-in-map, so the cost is mostly sleeping.
// Measured one update per call, and as one bpf_map_update_batch of `count` tables (one wait).
struct OuterFloor {
    std::uint32_t count = 0;
    double single_ms = 0;  // median of one bpf_map_update_elem into an empty slot
    double single_cpu_ms = 0;
    double batch_ms = -1;  // one bpf_map_update_batch of `count` inner maps; -1 if refused
    std::string batch_error;
};

OuterFloor measure_outer_floor(std::uint32_t count)
{
    OuterFloor f;
    f.count = count;
    LIBBPF_OPTS(bpf_map_create_opts, inner_opts, .map_flags = BPF_F_INNER_MAP);
    int tmpl = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rb_tmpl", 4, 4, 3, &inner_opts);
    if (tmpl < 0)
        die(std::string("outer floor: bpf_map_create: ") + std::strerror(errno));
    LIBBPF_OPTS(bpf_map_create_opts, outer_opts, .inner_map_fd = static_cast<__u32>(tmpl));
    int single = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "rb_outer1", 4, 4, count, &outer_opts);
    int batch = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "rb_outer2", 4, 4, count, &outer_opts);
    if (single < 0 || batch < 0)
        die(std::string("outer floor: bpf_map_create(ARRAY_OF_MAPS): ") + std::strerror(errno));
    std::vector<int> inner;
    std::vector<std::uint32_t> keys;
    for (std::uint32_t i = 0; i < count; ++i) {
        int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rb_inner", 4, 4, 3, &inner_opts);
        if (fd < 0)
            die(std::string("outer floor: bpf_map_create: ") + std::strerror(errno));
        inner.push_back(fd);
        keys.push_back(i);
    }
    std::vector<double> wall, cpu;
    for (std::uint32_t i = 0; i < std::min<std::uint32_t>(count, 15); ++i) {
        double c0 = cpu_ms(), t0 = wall_ms();
        if (bpf_map_update_elem(single, &keys[i], &inner[i], BPF_ANY) != 0)
            die(std::string("outer floor: bpf_map_update_elem: ") + std::strerror(errno));
        wall.push_back(wall_ms() - t0);
        cpu.push_back(cpu_ms() - c0);
    }
    f.single_ms = median(wall);
    f.single_cpu_ms = median(cpu);
    std::uint32_t n = count;
    double t0 = wall_ms();
    if (bpf_map_update_batch(batch, keys.data(), inner.data(), &n, nullptr) == 0 && n == count)
        f.batch_ms = wall_ms() - t0;
    else
        f.batch_error = std::string(std::strerror(errno)) + " (" + std::to_string(n) + " of " + std::to_string(count) + " done)";
    for (int fd : inner)
        close(fd);
    close(single);
    close(batch);
    close(tmpl);
    return f;
}

// ---------------------------------------------------------------------------------------------
// One table size: parse, make_desired, and the applies on fake and real maps

constexpr long kUnknown = -(1L << 62);

struct SizeRun {
    std::uint32_t table_size = 0;
    std::size_t yaml_bytes = 0;
    Floors floors;
    std::vector<Phase> phases;
    std::vector<std::string> problems;  // unexpected write counts, fake/real disagreements
    long mem_available_drop_kb = kUnknown;  // MemAvailable before load - after first apply (noisy)
    long expected_table_bytes = 0;      // services x memlock of one table
    const Phase* find(const std::string& name, const std::string& maps) const
    {
        for (const auto& p : phases)
            if (p.name == name && p.maps == maps)
                return &p;
        return nullptr;
    }
};

struct RssMark {
    std::string after;
    long peak_kb, current_kb;
};
std::vector<RssMark> g_rss;
void mark_rss(const std::string& after) { g_rss.push_back({after, peak_rss_kb(), current_rss_kb()}); }

std::vector<plan::Desired*> desireds_of(plan::Desired& base, std::vector<Scenario>& scen)
{
    std::vector<plan::Desired*> out{&base};
    for (Scenario& s : scen)
        out.push_back(&s.changed);
    return out;
}

// An apply as the daemon makes one: the tables (from the cache), then the reconciler.
Status planned_apply(plan::TableCache& tables, plan::Reconciler& reconciler, plan::Desired& desired)
{
    if (Status s = tables.build(desired); !s.ok())
        return s;
    return reconciler.apply(desired);
}

void run_applies(const Options& o, SizeRun& run, plan::Desired& base, std::vector<Scenario>& scen, bool real)
{
    const std::string maps = real ? "real" : "fake";
    Phase load{"load program + maps", maps, {}, "BalancerProgram::load, flow_capacity " + std::to_string(o.flow_capacity)};
    Phase first{"first apply", maps, {}, ""};
    Phase destroy{"free program + maps", maps, {}, "destructor; the kernel frees maps asynchronously"};
    std::vector<Phase> changes;
    for (const auto& s : scen)
        changes.push_back({s.name, maps, {}, ""});

    for (std::uint32_t rep = 0; rep < o.reps; ++rep) {
        std::unique_ptr<dataplane::BalancerProgram> program;
        std::unique_ptr<test::FakeMaps> fake;
        long avail_before = meminfo_kb("MemAvailable");
        if (real) {
            Status err;
            dataplane::LoadOptions lo;
            lo.flow_capacity = o.flow_capacity;
            load.samples.push_back(measure(nullptr, [&] {
                auto loaded = dataplane::BalancerProgram::load(lo);
                if (loaded.ok())
                    program = std::move(loaded).value();
                else
                    err = loaded.status();
            }));
            if (!program)
                die("cannot load the balancer (root needed; or --fake-only): " + err.message());
        } else {
            fake = std::make_unique<test::FakeMaps>();
        }
        dataplane::MapWriter& inner = real ? static_cast<dataplane::MapWriter&>(*program) : *fake;
        TimedWriter writer(inner);
        auto reconciler = std::make_unique<plan::Reconciler>(writer);
        // A fresh cache builds every table in the first apply; the tables of the previous
        // repetition are let go first, as a daemon holds one set (RSS is measured below).
        plan::TableCache tables;
        for (plan::Desired* d : desireds_of(base, scen))
            for (plan::ServicePlan& s : d->services)
                s.table.reset();
        first.samples.push_back(
            measure(&writer, [&] { check(planned_apply(tables, *reconciler, base), maps + " first apply"); }));
        if (fake)
            fake->log.clear();  // the fake's write log is not what is measured
        if (rep == 0) {
            mark_rss("first apply (" + maps + ", table " + std::to_string(run.table_size) + ")");
            if (real)
                run.mem_available_drop_kb = avail_before - meminfo_kb("MemAvailable");
        }
        for (std::size_t i = 0; i < scen.size(); ++i) {
            changes[i].samples.push_back(
                measure(&writer, [&] { check(planned_apply(tables, *reconciler, scen[i].changed), maps + " " + scen[i].name); }));
            check(planned_apply(tables, *reconciler, base), maps + " revert of " + scen[i].name);  // untimed
            if (fake)
                fake->log.clear();
        }
        reconciler.reset();
        if (real)
            destroy.samples.push_back(measure(nullptr, [&] { program.reset(); }));
        fake.reset();
    }
    if (real)
        run.phases.push_back(std::move(load));
    run.phases.push_back(std::move(first));
    for (auto& c : changes)
        run.phases.push_back(std::move(c));
    if (real)
        run.phases.push_back(std::move(destroy));
}

// The write counts each scenario must show, whatever the maps: a check that the phase did what
// its name says (e.g. a no-change reload writes nothing).
void check_writes(const Options& o, SizeRun& run)
{
    const std::uint64_t S = o.services, B = o.backends;
    struct Expect {
        const char* name;
        std::uint64_t tables, backends, total;
    };
    // first apply: settings + S vips + S services + S tables + S*B backends
    const Expect expect[] = {
        {"first apply", S, S * B, 1 + S + S + S + S * B},
        {"no-change reload", 0, 0, 0},
        {"one backend's weight changed", 1, 0, 1},
        {"one backend removed", 1, 1, 2},
        {"one service added", 1, B, 1 + 1 + 1 + B},  // vip, service, table, backends
        {"one service removed", 0, B, 1 + 1 + 1 + B},  // delete vip/service/table, free backends
    };
    for (const Phase& p : run.phases) {
        for (const Expect& e : expect) {
            if (p.name != e.name)
                continue;
            for (const Sample& s : p.samples) {
                const WriteStats& w = s.writes;
                if (w.calls[kPutTable] != e.tables || w.calls[kPutBackend] != e.backends || w.total_calls() != e.total) {
                    run.problems.push_back(p.maps + " " + p.name + ": UNEXPECTED writes (" + w.summary() + "), expected " +
                                           std::to_string(e.total) + " writes with " + std::to_string(e.tables) +
                                           " tables and " + std::to_string(e.backends) + " backends");
                    break;
                }
            }
        }
    }
}

// Runs f with this thread allowed on every online CPU (the bench pins itself to CPU 0; threads
// f starts inherit the wider mask), then pins it back. Returns the number of CPUs f had.
template <typename F>
int with_all_cpus(F f)
{
    cpu_set_t pinned, all;
    if (sched_getaffinity(0, sizeof pinned, &pinned) != 0) {
        f();
        return 1;
    }
    CPU_ZERO(&all);
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < online && c < CPU_SETSIZE; c++)
        CPU_SET(static_cast<int>(c), &all);
    (void)sched_setaffinity(0, sizeof all, &all);
    cpu_set_t now;
    const int cpus = sched_getaffinity(0, sizeof now, &now) == 0 ? CPU_COUNT(&now) : 1;
    f();
    (void)sched_setaffinity(0, sizeof pinned, &pinned);
    return cpus;
}

// Every table of the config from a cold cache (a start): TableCache::build keeps only the
// recipes, and the apply builds each table where it writes it, one thread per CPU it may use
// (Reconciler::prepare_tables); measured here as that build (plan::run_parallel over slots_of),
// without the writes, once pinned (1 CPU) and once on all CPUs.
void run_cold_tables(const Options& o, SizeRun& run, const plan::Desired& base)
{
    auto sample = [&](Phase& phase) {
        plan::Desired d = base;
        plan::TableCache cache;
        phase.samples.push_back(measure(nullptr, [&] {
            check(cache.build(d), "cold table build");
            plan::run_parallel(d.services.size(), [&](std::size_t i) {
                return !plan::slots_of(*d.services[i].table).empty() || d.services[i].table_size == 0;
            });
        }));
    };
    Phase one{"tables, cold cache, 1 CPU", "", {}, "the cold start's table builds pinned to CPU 0"};
    for (std::uint32_t rep = 0; rep < o.reps; ++rep)
        sample(one);
    Phase all{"tables, cold cache, all CPUs", "", {}, ""};
    const int cpus = with_all_cpus([&] {
        for (std::uint32_t rep = 0; rep < o.reps; ++rep)
            sample(all);
    });
    all.note = "the cold start's table builds on " + std::to_string(cpus) + " CPUs; cpu = this thread's share only";
    run.phases.push_back(std::move(one));
    run.phases.push_back(std::move(all));
}

SizeRun run_size(const Options& o, std::uint32_t table_size)
{
    SizeRun run;
    run.table_size = table_size;
    run.floors = measure_floors(o, table_size, !o.fake_only);
    run.expected_table_bytes = run.floors.table_memlock * static_cast<long>(o.services);

    const std::string text = config_yaml(o, table_size, o.services);
    run.yaml_bytes = text.size();
    const std::string name = "generated-" + std::to_string(table_size) + ".yaml";

    Phase yaml{"YAML::Load alone (floor)", "", {}, "yaml-cpp tree, no validation"};
    Phase parse{"parse + validate", "", {}, "config::parse_text"};
    Phase desired{"make_desired", "", {}, ""};
    std::optional<config::Config> config;
    plan::Desired base;
    for (std::uint32_t rep = 0; rep < o.reps; ++rep) {
        yaml.samples.push_back(measure(nullptr, [&] { YAML::Node n = YAML::Load(text); }));
        config::ParseResult r;
        parse.samples.push_back(measure(nullptr, [&] { r = config::parse_text(text, name); }));
        if (!r.config)
            die("the generated config does not parse: " + (r.errors.empty() ? std::string("?") : r.errors[0].to_string()));
        config = std::move(r.config);
        if (rep == 0)
            mark_rss("parse (table " + std::to_string(table_size) + ")");
        desired.samples.push_back(measure(nullptr, [&] { base = plan::make_desired(*config, config->hash_seed.value_or(kBenchSeed)); }));
    }
    run.phases.push_back(std::move(yaml));
    run.phases.push_back(std::move(parse));
    run.phases.push_back(std::move(desired));
    config.reset();
    run_cold_tables(o, run, base);

    // The service a scenario adds: the next one of the same shape, through the same path.
    const std::string extra_text = config_yaml(o, table_size, 0) + service_yaml(o.services, o.backends, table_size);
    plan::Desired extra = desired_of(extra_text, "extra.yaml");
    std::vector<Scenario> scen = scenarios(base, extra.services.at(0));

    run_applies(o, run, base, scen, false);
    if (!o.fake_only)
        run_applies(o, run, base, scen, true);
    check_writes(o, run);
    return run;
}

// ---------------------------------------------------------------------------------------------
// Output

struct Report {
    Options options;
    std::string kernel, load_start, load_end;
    std::vector<SizeRun> runs;
    BackendFloor backend_floor;
    OuterFloor outer_floor;
    bool real = true;
    double total_s = 0;
};

// "first apply = 1.23 x (1000 table builds + 1000 table writes)" and friends.
struct Ratio {
    std::string text;
    std::string key;
    double value = 0;
};

std::vector<Ratio> ratios(const Report& rep, const SizeRun& run)
{
    std::vector<Ratio> out;
    const double S = rep.options.services;
    const Floors& f = run.floors;
    const double builds = S * f.build_ms;
    const double writes = S * f.table_floor_ms();
    const std::string sv = std::to_string(rep.options.services);
    auto add = [&](const std::string& text, const std::string& key, double v) { out.push_back({text, key, v}); };
    if (const Phase* p = run.find("parse + validate", ""))
        if (const Phase* y = run.find("YAML::Load alone (floor)", ""))
            add("parse + validate = " + fmt("%.2f", p->wall() / y->wall()) + " x YAML::Load alone",
                "parse_over_yaml_load", p->wall() / y->wall());
    if (const Phase* p = run.find("first apply", "fake"))
        add("first apply (fake) = " + fmt("%.2f", p->wall() / builds) + " x (" + sv + " table builds)",
            "first_apply_fake_over_builds", p->wall() / builds);
    if (rep.real)
        if (const Phase* p = run.find("first apply", "real")) {
            add("first apply (real) = " + fmt("%.2f", p->wall() / (builds + writes)) + " x (" + sv +
                    " table builds + " + sv + " table writes)",
                "first_apply_real_over_floor", p->wall() / (builds + writes));
            const WriteStats* w = p->writes();
            double in_writer = p->in_writer();
            add("first apply (real): in map writes " + fmt("%.0f", in_writer) + " ms = " +
                    fmt("%.0f", 100 * in_writer / p->wall()) + "% of it; our computation " +
                    fmt("%.0f", p->wall() - in_writer) + " ms = " + fmt("%.2f", (p->wall() - in_writer) / builds) +
                    " x (" + sv + " table builds)",
                "first_apply_real_writer_share", in_writer / p->wall());
            if (w && w->calls[kPutTable])
                add("  put_table: " + fmt("%.3f", w->ms[kPutTable] / static_cast<double>(w->calls[kPutTable])) +
                        " ms each = " +
                        fmt("%.2f", w->ms[kPutTable] / static_cast<double>(w->calls[kPutTable]) /
                                        f.table_floor_ms()) +
                        " x one table write floor",
                    "put_table_over_floor",
                    w->ms[kPutTable] / static_cast<double>(w->calls[kPutTable]) /
                        f.table_floor_ms());
            if (w && w->calls[kPutBackend])
                add("  put_backend: " + fmt("%.2f", 1000 * w->ms[kPutBackend] / static_cast<double>(w->calls[kPutBackend])) +
                        " us each, " + fmt("%.0f", w->ms[kPutBackend]) + " ms for " +
                        std::to_string(w->calls[kPutBackend]) + " (2 syscalls each)",
                    "put_backend_us", 1000 * w->ms[kPutBackend] / static_cast<double>(w->calls[kPutBackend]));
        }
    if (const Phase* p = run.find("no-change reload", rep.real ? "real" : "fake"))
        add("no-change reload = " + fmt("%.1f", p->wall() / f.build_ms) + " x one table build (writes: " +
                std::to_string(p->writes() ? p->writes()->total_calls() : 0) + ")",
            "no_change_over_one_build", p->wall() / f.build_ms);
    if (rep.real)
        if (const Phase* p = run.find("one backend's weight changed", "real"))
            add("one weight change (real) = " +
                    fmt("%.2f", p->wall() / (f.build_ms + f.table_floor_ms())) +
                    " x (1 table build + 1 table write)",
                "weight_change_over_floor",
                p->wall() / (f.build_ms + f.table_floor_ms()));
    return out;
}

void print_table(const Report& rep)
{
    const Options& o = rep.options;
    std::printf("fulcrum-reload-bench: reload cost of %u services x %u backends (IPv4), median of %u\n", o.services,
                o.backends, o.reps);
    std::printf("kernel %s, %ld CPUs online, load average at start %s, at end %s\n", rep.kernel.c_str(),
                sysconf(_SC_NPROCESSORS_ONLN), rep.load_start.c_str(), rep.load_end.c_str());
    std::printf("pinned to CPU 0 at nice -20 when allowed; 'cpu' = this thread's CPU time (wall >> cpu: preempted)\n");
    for (const SizeRun& run : rep.runs) {
        const Floors& f = run.floors;
        std::printf("\n== table_size %u (config %.1f MB of YAML) ==\n", run.table_size,
                    static_cast<double>(run.yaml_bytes) / 1e6);
        std::printf("floors (median of %d):\n", f.reps);
        std::printf("  one maglev::build_table, %u backends x %u: %.3f ms (cpu %.3f)  (x %u = %.0f ms)\n", o.backends,
                    run.table_size, f.build_ms, f.build_cpu_ms, o.services, f.build_ms * o.services);
        if (rep.real) {
            double w = f.table_floor_ms();
            std::printf("  one table write (create + mmap + one copy + munmap) %.3f (cpu %.3f) + close %.3f = %.3f ms  (x %u = %.0f ms)\n",
                        f.table_write_ms, f.table_write_cpu_ms, f.table_close_ms, w, o.services, w * o.services);
            std::printf("    (the layout before ABI 2, a __u32 per entry: create + update_batch(%u) = %.3f ms, cpu %.3f)\n",
                        run.table_size, f.u32_array_write_ms, f.u32_array_write_cpu_ms);
            std::printf("  kernel memory of one table (fdinfo memlock) %ld bytes = %.3f bytes/slot; x %u = %.0f MB\n",
                        f.table_memlock, static_cast<double>(f.table_memlock) / run.table_size, o.services,
                        static_cast<double>(run.expected_table_bytes) / 1e6);
            std::printf("    (the layout before ABI 2: %ld bytes = %.3f bytes/slot)\n", f.u32_array_memlock,
                        static_cast<double>(f.u32_array_memlock) / run.table_size);
            std::printf("  alternative: chunks without BPF_F_MMAPABLE, create + update_batch(%u chunks) = %.3f ms, "
                        "%ld bytes = %.3f bytes/slot\n",
                        FULCRUM_MAGLEV_CHUNKS(run.table_size), f.chunk_batch_write_ms, f.chunk_batch_memlock,
                        static_cast<double>(f.chunk_batch_memlock) / run.table_size);
        }
        std::printf("%-30s %-5s %10s %19s %10s %11s  %s\n", "phase", "maps", "median ms", "min..max ms", "cpu ms",
                    "in-writer", "writes");
        for (const Phase& p : run.phases) {
            std::string range = fmt("%.1f", p.min()) + ".." + fmt("%.1f", p.max());
            std::string writes = p.writes() ? p.writes()->summary() : p.note;
            std::string inw = p.writes() ? fmt("%.1f", p.in_writer()) : "";
            std::printf("%-30s %-5s %10.1f %19s %10.1f %11s  %s%s\n", p.name.c_str(), p.maps.c_str(), p.wall(),
                        range.c_str(), p.cpu(), inw.c_str(), writes.c_str(), p.noisy() ? " (noisy)" : "");
        }
        if (run.mem_available_drop_kb != kUnknown)
            std::printf("MemAvailable drop over load + first apply (real, shared machine: indicative): %.0f MB\n",
                        static_cast<double>(run.mem_available_drop_kb) / 1024);
        std::printf("ratios:\n");
        for (const Ratio& r : ratios(rep, run))
            std::printf("  %s\n", r.text.c_str());
        const Phase* parse = run.find("parse + validate", "");
        const Phase* desired = run.find("make_desired", "");
        const Phase* weight = run.find("one backend's weight changed", rep.real ? "real" : "fake");
        const Phase* first = run.find("first apply", rep.real ? "real" : "fake");
        if (parse && desired && weight && first) {
            std::printf("  a reload end to end (parse + make_desired + apply): start %.0f ms, one weight change %.0f ms\n",
                        parse->wall() + desired->wall() + first->wall(), parse->wall() + desired->wall() + weight->wall());
        }
        for (const std::string& problem : run.problems)
            std::printf("  %s\n", problem.c_str());
    }
    if (rep.real) {
        const BackendFloor& b = rep.backend_floor;
        std::printf("\nbackend writes, %u backends into arrays the size of backends/nexthops (median of 3):\n", b.count);
        std::printf("  2 x bpf_map_update_elem each (what put_backend does): %8.1f ms (%.2f us per backend)\n",
                    b.elem_ms, 1000 * b.elem_ms / b.count);
        std::printf("  1 x bpf_map_update_batch per map:                    %8.1f ms (saves %.1f ms)\n", b.batch_ms,
                    b.elem_ms - b.batch_ms);
        const OuterFloor& of = rep.outer_floor;
        std::printf("table swaps into an ARRAY_OF_MAPS like maglev_tables (the kernel runs synchronize_rcu per update):\n");
        std::printf("  1 x bpf_map_update_elem (median of %u):             %8.3f ms wall, %.3f ms cpu (x %u = %.0f ms)\n",
                    std::min<std::uint32_t>(of.count, 15), of.single_ms, of.single_cpu_ms, of.count,
                    of.single_ms * of.count);
        if (of.batch_ms >= 0)
            std::printf("  1 x bpf_map_update_batch of %u tables:              %8.3f ms (saves %.0f ms)\n", of.count,
                        of.batch_ms, of.single_ms * of.count - of.batch_ms);
        else
            std::printf("  bpf_map_update_batch of %u tables: refused: %s\n", of.count, of.batch_error.c_str());
    }
    std::printf("\npeak RSS (getrusage ru_maxrss) %.0f MB; by phase (peak / current after it):\n",
                static_cast<double>(peak_rss_kb()) / 1024);
    for (const RssMark& m : g_rss)
        std::printf("  after %-42s %6.0f MB / %6.0f MB\n", m.after.c_str(), static_cast<double>(m.peak_kb) / 1024,
                    static_cast<double>(m.current_kb) / 1024);
    std::printf("run time %.1f s\n", rep.total_s);
}

void print_json(const Report& rep)
{
    const Options& o = rep.options;
    JsonWriter j;
    j.begin_object();
    j.field("bench", "fulcrum-reload-bench");
    j.field("services", o.services).field("backends_per_service", o.backends).field("reps", o.reps);
    j.field("kernel", rep.kernel).field("load_start", rep.load_start).field("load_end", rep.load_end);
    j.field("real_maps", rep.real);
    j.key("table_sizes").begin_array();
    for (const SizeRun& run : rep.runs) {
        const Floors& f = run.floors;
        j.begin_object();
        j.field("table_size", run.table_size).field("yaml_bytes", run.yaml_bytes);
        j.key("floors").begin_object();
        j.field("maglev_build_ms", f.build_ms).field("maglev_build_cpu_ms", f.build_cpu_ms);
        j.field("table_write_ms", f.table_write_ms).field("table_write_cpu_ms", f.table_write_cpu_ms);
        j.field("table_close_ms", f.table_close_ms).field("table_memlock_bytes", f.table_memlock);
        j.field("u32_array_write_ms", f.u32_array_write_ms).field("u32_array_write_cpu_ms", f.u32_array_write_cpu_ms);
        j.field("u32_array_memlock_bytes", f.u32_array_memlock);
        j.field("chunk_batch_write_ms", f.chunk_batch_write_ms).field("chunk_batch_memlock_bytes", f.chunk_batch_memlock);
        j.field("reps", f.reps);
        j.end_object();
        j.field("expected_table_memory_bytes", run.expected_table_bytes);
        j.field("mem_available_drop_kb", run.mem_available_drop_kb);
        j.key("phases").begin_array();
        for (const Phase& p : run.phases) {
            j.begin_object();
            j.field("name", p.name).field("maps", p.maps);
            j.field("median_ms", p.wall()).field("min_ms", p.min()).field("max_ms", p.max());
            j.field("cpu_ms", p.cpu()).field("noisy", p.noisy());
            j.key("samples_ms").begin_array();
            for (const Sample& s : p.samples)
                j.value(s.wall);
            j.end_array();
            if (const WriteStats* w = p.writes()) {
                j.field("in_writer_ms", p.in_writer());
                j.key("writes").begin_object();
                for (int k = 0; k < kKinds; ++k)
                    if (w->calls[k])
                        j.key(kKindNames[k]).begin_object().field("calls", w->calls[k]).field("ms", w->ms[k]).end_object();
                j.end_object();
            }
            j.end_object();
        }
        j.end_array();
        j.key("ratios").begin_object();
        for (const Ratio& r : ratios(rep, run))
            j.field(r.key, r.value);
        j.end_object();
        j.key("problems").begin_array();
        for (const std::string& problem : run.problems)
            j.value(problem);
        j.end_array();
        j.end_object();
    }
    j.end_array();
    if (rep.real) {
        j.key("backend_writes").begin_object();
        j.field("count", rep.backend_floor.count).field("update_elem_ms", rep.backend_floor.elem_ms);
        j.field("update_batch_ms", rep.backend_floor.batch_ms);
        j.end_object();
        j.key("table_swaps").begin_object();
        j.field("count", rep.outer_floor.count).field("update_elem_ms", rep.outer_floor.single_ms);
        j.field("update_elem_cpu_ms", rep.outer_floor.single_cpu_ms);
        j.field("update_batch_ms", rep.outer_floor.batch_ms).field("batch_error", rep.outer_floor.batch_error);
        j.end_object();
    }
    j.field("peak_rss_kb", peak_rss_kb());
    j.key("rss_by_phase").begin_array();
    for (const RssMark& m : g_rss)
        j.begin_object().field("after", m.after).field("peak_kb", m.peak_kb).field("current_kb", m.current_kb).end_object();
    j.end_array();
    j.field("run_s", rep.total_s);
    j.end_object();
    std::printf("%s\n", j.str().c_str());
}

int run(int argc, char** argv)
{
    Report rep;
    rep.options = parse_options(argc, argv);
    const Options& o = rep.options;
    rep.real = !o.fake_only;
    utsname u{};
    uname(&u);
    rep.kernel = u.release;
    rep.load_start = loadavg();
    double t0 = wall_ms();

    // Same CPU and priority as fulcrum-bench; best effort (without root the real maps fail anyway).
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
    (void)setpriority(PRIO_PROCESS, 0, -20);
    libbpf_set_print(nullptr);  // failures are reported with errno below

    if (o.maglev) {
        MaglevBenchOptions m;
        if (o.table_sizes_given)
            m.table_sizes = o.table_sizes;
        if (o.reps_given)
            m.runs = o.reps;
        m.json = o.json;
        return run_maglev_bench(m);
    }
    if (o.parse) {
        ParseBenchOptions p;
        p.text = config_yaml(o, 65537, o.services);
        p.services = o.services;
        p.backends = o.backends;
        if (o.reps_given)
            p.runs = o.reps;
        p.json = o.json;
        return run_parse_bench(p);
    }

    if (rep.real) {
        // Will the tables fit? Measured per table (memlock), for the largest size asked for; the
        // old and new tables of a reload coexist only one service at a time.
        std::uint32_t largest = *std::max_element(o.table_sizes.begin(), o.table_sizes.end());
        std::vector<std::uint32_t> zeros(largest);
        Result<int> probe = dataplane::create_maglev_table("rb_probe", zeros, "a probe table");
        if (!probe.ok())
            die("cannot create a BPF array (root needed; or --fake-only): " + probe.message());
        const long need_kb = fd_memlock(*probe) / 1024 * static_cast<long>(o.services);
        close(*probe);
        const long avail_kb = meminfo_kb("MemAvailable");
        // Tables on the real maps, plus the process (two copies of every table: the reconciler's
        // applied state and the vector being written).
        if (avail_kb >= 0 && avail_kb < 3 * need_kb)
            die("not enough memory: " + std::to_string(o.services) + " tables of " + std::to_string(largest) +
                " need ~" + std::to_string(need_kb / 1024) + " MB in the kernel (+ about twice that in this process), MemAvailable " +
                std::to_string(avail_kb / 1024) + " MB");
        rep.backend_floor = measure_backend_floor(o.services * o.backends);
        rep.outer_floor = measure_outer_floor(o.services);
    }
    for (std::uint32_t size : o.table_sizes)
        rep.runs.push_back(run_size(o, size));
    rep.load_end = loadavg();
    rep.total_s = (wall_ms() - t0) / 1000;
    if (o.json)
        print_json(rep);
    else
        print_table(rep);
    return 0;
}

}  // namespace
}  // namespace fulcrum::bench

int main(int argc, char** argv) { return fulcrum::bench::run(argc, argv); }
