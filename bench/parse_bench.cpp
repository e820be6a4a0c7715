// fulcrum-reload-bench --parse (see parse_bench.h and bench/README.md).
#include "parse_bench.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "config/config.h"
#include "config/yaml_fast.h"
#include "config/yaml_load.h"
#include "yaml_tree_vs_node.h"

namespace fulcrum::bench {
namespace {

struct Times {
    std::vector<double> wall_ms, cpu_ms;
};

double thread_cpu_ms()
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void time_once(Times& t, const std::function<void()>& f)
{
    const double cpu0 = thread_cpu_ms();
    const auto wall0 = std::chrono::steady_clock::now();
    f();
    t.wall_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall0).count());
    t.cpu_ms.push_back(thread_cpu_ms() - cpu0);
}

double pick(std::vector<double> v, double q)  // q = 0 min, 0.5 median, 1 max
{
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int run_parse_bench(const ParseBenchOptions& o)
{
    using config::detail::Errors;
    using config::detail::Tree;
    // Both paths must give the same tree, or the figures compare different work.
    {
        auto fast = config::detail::fast_tree(o.text);
        Errors errors("generated.yaml");
        auto slow = config::detail::load_one_document_yaml_cpp(o.text, errors);
        if (!fast || !slow) {
            std::fprintf(stderr, "fulcrum-reload-bench --parse: the %s path did not read the generated config\n",
                         fast ? "yaml-cpp" : "fast");
            return 1;
        }
        const std::string d = test::tree_vs_tree(fast->tree.root(), slow->root());
        if (!d.empty()) {
            std::fprintf(stderr, "fulcrum-reload-bench --parse: the trees differ: %s\n", d.c_str());
            return 1;
        }
    }
    Times slow, fast, full;
    bool ok = true;
    // Interleaved run by run, so a busy machine slows every path alike.
    for (std::uint32_t i = 0; i < o.runs; ++i) {
        time_once(slow, [&] {
            Errors errors("generated.yaml");
            ok &= config::detail::load_one_document_yaml_cpp(o.text, errors).has_value();
        });
        time_once(fast, [&] { ok &= config::detail::fast_tree(o.text).has_value(); });
        time_once(full, [&] { ok &= config::parse_text(o.text, "generated.yaml").config.has_value(); });
    }
    if (!ok) {
        std::fprintf(stderr, "fulcrum-reload-bench --parse: a path failed on the generated config\n");
        return 1;
    }
    struct Row {
        const char* key;
        const char* name;
        const Times* t;
    };
    const Row rows[] = {{"yaml_cpp_tree", "tree via yaml-cpp's event parser (the fallback)", &slow},
                        {"fast_tree", "tree via the fast scanner (yaml_fast.h)", &fast},
                        {"parse_text", "config::parse_text today (fast tree + walk + validate)", &full}};
    const double speedup = pick(slow.cpu_ms, 0.5) / pick(fast.cpu_ms, 0.5);
    if (o.json) {
        std::printf("{\"services\": %u, \"backends\": %u, \"yaml_bytes\": %zu, \"runs\": %u", o.services, o.backends,
                    o.text.size(), o.runs);
        for (const Row& r : rows)
            std::printf(", \"%s\": {\"wall_ms_min\": %.2f, \"wall_ms_median\": %.2f, \"wall_ms_max\": %.2f, "
                        "\"cpu_ms_median\": %.2f}",
                        r.key, pick(r.t->wall_ms, 0), pick(r.t->wall_ms, 0.5), pick(r.t->wall_ms, 1),
                        pick(r.t->cpu_ms, 0.5));
        std::printf(", \"tree_cpu_speedup\": %.1f}\n", speedup);
        return 0;
    }
    std::printf("fulcrum-reload-bench --parse: %u services x %u backends, %.1f MB of YAML, %u runs each\n",
                o.services, o.backends, static_cast<double>(o.text.size()) / 1e6, o.runs);
    std::printf("  %-58s %9s %9s %9s %9s\n", "", "wall min", "median", "max", "cpu med");
    for (const Row& r : rows)
        std::printf("  %-58s %9.1f %9.1f %9.1f %9.1f\n", r.name, pick(r.t->wall_ms, 0), pick(r.t->wall_ms, 0.5),
                    pick(r.t->wall_ms, 1), pick(r.t->cpu_ms, 0.5));
    std::printf("  the fast scanner builds the same tree in 1/%.1f of yaml-cpp's CPU time (medians)\n", speedup);
    std::printf("  parse + validate before (yaml-cpp tree + the same walk) ~ %.0f ms CPU, today %.0f ms\n",
                pick(full.cpu_ms, 0.5) - pick(fast.cpu_ms, 0.5) + pick(slow.cpu_ms, 0.5), pick(full.cpu_ms, 0.5));
    return 0;
}

}  // namespace fulcrum::bench
