// Jobs on every usable CPU; see parallel.h.
#include "plan/parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace fulcrum::plan {

std::size_t usable_cpus()
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    return static_cast<std::size_t>(std::max(1, CPU_COUNT(&set)));
}

void run_parallel(std::size_t count, const std::function<bool(std::size_t)>& job)
{
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stopped{false};
    auto work = [&] {
        for (std::size_t i = next++; i < count && !stopped; i = next++)
            if (!job(i))
                stopped = true;
    };
    const std::size_t helpers = count > 1 ? std::min(count, usable_cpus()) - 1 : 0;
    std::vector<std::jthread> threads;
    for (std::size_t t = 0; t < helpers; t++)
        threads.emplace_back(work);
    work();
}  // threads joined

}  // namespace fulcrum::plan
