// fulcrum-flowtable-bench: cost and flood behaviour of four flow-table layouts (see README.md).
// Run by hand as root on an idle-ish machine; it reports, it does not assert.
//   fulcrum-flowtable-bench perf [CAPACITY] [RUNS]   hit / insert (full table) / miss, ns per op
//   fulcrum-flowtable-bench flood [CAPACITY]         survivors of 300 idle flows through a flood
//   fulcrum-flowtable-bench verify                   capacity per CPU, percpu lookup, memlock
#include "flowtable.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "abi.h"

namespace {

enum Layout { PERCPU_HASH, LRU_HASH, LRU_NO_COMMON, ARRAY_OF_LRU };
const char *const layout_names[] = {"a LRU_PERCPU_HASH", "b LRU_HASH", "c LRU_HASH+NO_COMMON_LRU",
                                    "d ARRAY_OF_MAPS[cpu] LRU_HASH"};
enum Op { OP_NONE, OP_HIT, OP_INSERT, OP_MISS, OP_FLOOD, OP_TOUCH, OP_ESTABLISH, OP_FILL };

int ncpus = libbpf_num_possible_cpus();

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::exit(1);
}

void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        die("sched_setaffinity %d: %s", cpu, std::strerror(errno));
    if (sched_getcpu() != cpu)
        die("still on cpu %d after pinning to %d", sched_getcpu(), cpu);
}

int quiet_print(enum libbpf_print_level, const char *, va_list) { return 0; }

// One loaded layout. For ARRAY_OF_LRU, per_cpu_capacity entries in each CPU's own LRU_HASH.
struct Table {
    Layout layout;
    flowtable_bpf *skel = nullptr;
    std::vector<int> inner;   // ARRAY_OF_LRU: one LRU_HASH per possible CPU

    Table(Layout l, unsigned capacity) : layout(l)
    {
        skel = flowtable_bpf__open();
        if (!skel)
            die("open failed");
        bpf_program__set_autoload(skel->progs.percpu_probe, false);
        if (l == ARRAY_OF_LRU) {
            unsigned per_cpu = capacity / ncpus;   // same total capacity as the others
            skel->rodata->use_outer = 1;
            bpf_map__set_max_entries(skel->maps.cpu_flows, ncpus);
            // Inner-map template: same type, sizes, flags and max_entries as the real ones.
            int tmpl = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, nullptr, sizeof(fulcrum_flow_key),
                                      sizeof(fulcrum_flow_value), per_cpu, nullptr);
            if (tmpl < 0 || bpf_map__set_inner_map_fd(skel->maps.cpu_flows, tmpl))
                die("inner map template: %s", std::strerror(errno));
            inner.push_back(tmpl);
        } else {
            bpf_map__set_max_entries(skel->maps.flows, capacity);
            if (l == PERCPU_HASH)
                bpf_map__set_type(skel->maps.flows, BPF_MAP_TYPE_LRU_PERCPU_HASH);
            if (l == LRU_NO_COMMON)
                bpf_map__set_map_flags(skel->maps.flows, BPF_F_NO_COMMON_LRU);
        }
        if (flowtable_bpf__load(skel))
            die("load failed (%s)", layout_names[l]);
        if (l == ARRAY_OF_LRU) {
            for (int cpu = 0; cpu < ncpus; cpu++) {
                int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, nullptr, sizeof(fulcrum_flow_key),
                                        sizeof(fulcrum_flow_value), capacity / ncpus, nullptr);
                if (fd < 0)
                    die("inner map: %s", std::strerror(errno));
                __u32 k = cpu;
                if (bpf_map_update_elem(bpf_map__fd(skel->maps.cpu_flows), &k, &fd, BPF_ANY))
                    die("outer update: %s", std::strerror(errno));
                inner.push_back(fd);
            }
            close(inner.front());
            inner.erase(inner.begin());
        }
    }
    ~Table()
    {
        for (int fd : inner)
            close(fd);
        flowtable_bpf__destroy(skel);
    }
    Table(const Table &) = delete;
    Table &operator=(const Table &) = delete;

    // The map that holds what CPU `cpu` inserted.
    int map_fd(int cpu) const
    {
        return layout == ARRAY_OF_LRU ? inner[cpu] : bpf_map__fd(skel->maps.flows);
    }

    // Runs `ops` operations of `op` per call, `repeat` calls; returns kernel ns per call.
    double run(Op op, unsigned ops, unsigned repeat)
    {
        static unsigned char pkt[64] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00};
        skel->bss->mode = op;
        skel->bss->nops = ops;
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof pkt,
                    .repeat = int(repeat));
        if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.flowtable_ops), &opts))
            die("test_run: %s", std::strerror(errno));
        if (opts.retval != XDP_DROP)
            die("retval %u (map lookup in outer failed?)", opts.retval);
        return opts.duration;
    }

    // Runs `total` operations of `op` in calls of at most 1M.
    void run_n(Op op, unsigned long total)
    {
        while (total) {
            unsigned n = total > (1u << 20) ? (1u << 20) : unsigned(total);
            run(op, n, 1);
            total -= n;
        }
    }
};

fulcrum_flow_key make_key(__u32 tag, __u64 idx)
{
    fulcrum_flow_key k{};
    k.src.w[0] = htonl(0xc6120000 | (tag << 8));
    k.src.w[1] = __u32(idx);
    k.src.w[2] = __u32(idx >> 32);
    k.dst.w[0] = htonl(0xc6130001);
    k.sport = __u16(idx);
    k.dport = htons(80);
    k.proto = 6;
    k.family = FULCRUM_AF_INET;
    return k;
}

unsigned long count_entries(int fd)
{
    fulcrum_flow_key k, next;
    unsigned long n = 0;
    void *prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        n++;
        k = next;
        prev = &k;
    }
    return n;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string fmt_stat(const std::vector<double> &d)
{
    char b[64];
    std::snprintf(b, sizeof b, "%.0f [%.0f..%.0f]", median(d), *std::min_element(d.begin(), d.end()),
                  *std::max_element(d.begin(), d.end()));
    return b;
}

// One sample: ns per op of `op` above OP_NONE (the same loop building the same keys).
double sample(Table &t, Op op, unsigned ops, unsigned repeat)
{
    double base = t.run(OP_NONE, ops, repeat);
    return (t.run(op, ops, repeat) - base) / ops;
}

// The four layouts live side by side and are sampled in turn, round after round, so that load from
// other processes on this shared machine falls on all of them alike.
void perf(unsigned capacity, int runs)
{
    const unsigned ops = 256, repeat = 1000;   // 256k ops per sample
    const unsigned hit_keys = capacity / 2;    // fits one CPU's share in every layout
    const unsigned hot_keys = 256;             // cache-resident working set
    const Layout all[] = {PERCPU_HASH, LRU_HASH, LRU_NO_COMMON, ARRAY_OF_LRU};
    pin(0);
    std::vector<Table *> t;
    for (Layout l : all) {
        t.push_back(new Table(l, capacity));
        t.back()->skel->bss->ctr = 0;
        t.back()->run(OP_FILL, hit_keys, 1);
    }
    std::vector<double> hit[4], hot[4], ins[4], miss[4], floor[4];
    unsigned long found_hits[4] = {};
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < 4; i++) {
            t[i]->skel->bss->hit_mask = hit_keys - 1;
            t[i]->skel->bss->found = 0;
            hit[i].push_back(sample(*t[i], OP_HIT, ops, repeat));
            t[i]->skel->bss->hit_mask = hot_keys - 1;
            hot[i].push_back(sample(*t[i], OP_HIT, ops, repeat));
            found_hits[i] += t[i]->skel->bss->found;
            floor[i].push_back(t[i]->run(OP_NONE, ops, repeat) / ops);
        }
    // Full: every later insert evicts. CPU 1 fills its share too, so that (c)'s shared hash table
    // holds as many entries as (a) and (b) when misses are measured.
    for (int cpu : {1, 0}) {
        pin(cpu);
        for (int i = 0; i < 4; i++)
            t[i]->run_n(OP_INSERT, 2ul * capacity);
    }
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < 4; i++) {
            ins[i].push_back(sample(*t[i], OP_INSERT, ops, repeat));
            t[i]->skel->bss->found = 0;
            miss[i].push_back(sample(*t[i], OP_MISS, ops, repeat));
            if (t[i]->skel->bss->found)
                die("a miss key was found");
        }
    std::printf("perf: capacity %u, cpu 0, %d rounds; ns per op above the empty loop, median "
                "[min..max]\n", capacity, runs);
    std::printf("%-31s %-16s %-16s %-16s %-16s %s\n", "layout", ("hit(" + std::to_string(hit_keys) + ")").c_str(), "hit(256 keys)",
                "insert(full)", "miss(full)", "loop ns/op");
    for (int i = 0; i < 4; i++) {
        if (found_hits[i] != 2ul * runs * ops * repeat)
            die("%s: only %lu hits found", layout_names[all[i]], found_hits[i]);
        std::printf("%-31s %-16s %-16s %-16s %-16s %.0f\n", layout_names[all[i]],
                    fmt_stat(hit[i]).c_str(), fmt_stat(hot[i]).c_str(), fmt_stat(ins[i]).c_str(),
                    fmt_stat(miss[i]).c_str(), median(floor[i]));
        delete t[i];
    }
}

// Survivors of `est` idle flows (inserted on cpu 0) after 10*capacity distinct flood tuples, each
// sent k times (cycling through windows of `window` tuples), from flood_cpu; touch > 0: the
// established flows are looked up on cpu 0 once every `touch` flood packets.
void flood_case(Layout l, unsigned capacity, unsigned k, int flood_cpu, unsigned long touch)
{
    const unsigned est = 300;
    pin(0);
    Table t(l, capacity);
    t.skel->bss->est_keys = est;
    t.run(OP_ESTABLISH, est, 1);
    t.skel->bss->flood_window = capacity / 8;
    t.skel->bss->flood_repeat = k;
    unsigned long total = 10ul * capacity * k;
    unsigned long chunk = touch ? touch : total;
    for (unsigned long done = 0; done < total; done += chunk) {
        pin(flood_cpu);
        t.run_n(OP_FLOOD, std::min(chunk, total - done));
        if (touch) {
            pin(0);
            t.run(OP_TOUCH, est, 1);
        }
    }
    pin(0);
    // Survivors: still in the map CPU 0's packets use, with CPU 0's value set.
    std::vector<fulcrum_flow_value> val(ncpus);
    unsigned alive = 0;
    int fd = t.map_fd(0);
    for (unsigned i = 0; i < est; i++) {
        fulcrum_flow_key key = make_key(5, i);
        if (bpf_map_lookup_elem(fd, &key, val.data()) == 0 && val[0].backend_id)
            alive++;
    }
    std::printf("%-32s C=%-7u k=%u flood-cpu=%d touch=%-8lu survivors %3u/%u  (flood hits %llu, "
                "inserts %llu, entries cpu0-map %lu)\n", layout_names[l], capacity, k, flood_cpu,
                touch, alive, est, (unsigned long long)t.skel->bss->flood_hits,
                (unsigned long long)t.skel->bss->flood_inserts, count_entries(fd));
    std::fflush(stdout);
}

void flood(unsigned capacity)
{
    for (Layout l : {PERCPU_HASH, LRU_HASH, LRU_NO_COMMON, ARRAY_OF_LRU})
        for (int cpu : {0, 1})
            for (unsigned k : {1u, 4u}) {
                flood_case(l, capacity, k, cpu, 0);
                flood_case(l, capacity, k, cpu, capacity / 2);
                flood_case(l, capacity, k, cpu, capacity * 2);
            }
}

long memlock_of(int fd)
{
    std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("memlock:", 0) == 0)
            return std::stol(line.substr(8));
    return -1;
}

void verify()
{
    std::printf("possible CPUs: %d\n", ncpus);
    // How many entries one CPU can hold, then both.
    const unsigned cap = 4096;
    for (Layout l : {PERCPU_HASH, LRU_HASH, LRU_NO_COMMON, ARRAY_OF_LRU}) {
        Table t(l, cap);
        pin(0);
        t.skel->bss->ctr = 0;
        t.run(OP_FILL, 2 * cap, 1);
        unsigned long one = count_entries(t.map_fd(0));
        pin(1);
        t.run(OP_FILL, 2 * cap, 1);
        unsigned long both = count_entries(t.map_fd(0)) +
                             (l == ARRAY_OF_LRU ? count_entries(t.map_fd(1)) : 0);
        std::printf("%-32s max_entries %u: after 8192 inserts on cpu0 holds %lu; after 8192 more "
                    "on cpu1 holds %lu\n", layout_names[l], cap, one, both);
    }
    // A flow inserted on CPU 0, looked up from CPU 1 (an RSS change moves flows between CPUs).
    for (Layout l : {PERCPU_HASH, LRU_HASH, LRU_NO_COMMON, ARRAY_OF_LRU}) {
        Table t(l, cap);
        pin(0);
        t.skel->bss->ctr = 0;
        t.run(OP_FILL, 256, 1);
        pin(1);
        t.skel->bss->hit_mask = 255;
        t.skel->bss->found = 0;
        t.run(OP_HIT, 256, 1);
        std::printf("%-32s flows inserted on cpu0 and found (with a value) from cpu1: %llu/256\n",
                    layout_names[l], (unsigned long long)t.skel->bss->found);
    }
    pin(0);
    // bpf_map_lookup_percpu_elem accepted by the verifier?
    libbpf_set_print(quiet_print);
    for (Layout l : {PERCPU_HASH, LRU_HASH, LRU_NO_COMMON}) {
        flowtable_bpf *s = flowtable_bpf__open();
        bpf_program__set_autoload(s->progs.flowtable_ops, false);
        bpf_map__set_max_entries(s->maps.flows, 1024);
        if (l == PERCPU_HASH)
            bpf_map__set_type(s->maps.flows, BPF_MAP_TYPE_LRU_PERCPU_HASH);
        if (l == LRU_NO_COMMON)
            bpf_map__set_map_flags(s->maps.flows, BPF_F_NO_COMMON_LRU);
        int err = flowtable_bpf__load(s);
        std::printf("%-32s bpf_map_lookup_percpu_elem: %s\n", layout_names[l],
                    err ? "rejected by the verifier" : "accepted");
        flowtable_bpf__destroy(s);
    }
    libbpf_set_print(nullptr);
    // Kernel memory (memlock as the kernel reports it) at 1M entries.
    const unsigned big = 1u << 20;
    for (Layout l : {PERCPU_HASH, LRU_HASH, LRU_NO_COMMON, ARRAY_OF_LRU}) {
        Table t(l, big);
        long mem = 0;
        if (l == ARRAY_OF_LRU) {
            for (int fd : t.inner)
                mem += memlock_of(fd);
            mem += memlock_of(bpf_map__fd(t.skel->maps.cpu_flows));
        } else {
            mem = memlock_of(bpf_map__fd(t.skel->maps.flows));
        }
        std::printf("%-32s 1M entries total: memlock %ld bytes = %.1f bytes/entry\n",
                    layout_names[l], mem, double(mem) / big);
    }
}

}  // namespace

int main(int argc, char **argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::string what = argc > 1 ? argv[1] : "perf";
    unsigned capacity = argc > 2 ? std::strtoul(argv[2], nullptr, 0) : 65536;
    int runs = argc > 3 ? std::atoi(argv[3]) : 7;
    if (ncpus < 2)
        die("needs 2 possible CPUs");
    if (what == "perf")
        perf(capacity, runs);
    else if (what == "flood")
        flood(capacity);
    else if (what == "verify")
        verify();
    else
        die("usage: %s perf|flood|verify [CAPACITY] [RUNS]", argv[0]);
    return 0;
}
