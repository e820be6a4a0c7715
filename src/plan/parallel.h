// Independent jobs on every CPU the process may run on: the Maglev table builds of a plan, and
// an apply's table builds and writes.
#pragma once

#include <cstddef>
#include <functional>

namespace fulcrum::plan {

// CPUs this process may run on (its affinity mask, e.g. systemd's CPUAffinity=), at least 1.
std::size_t usable_cpus();

// Runs job(0) .. job(count - 1), each once, on up to usable_cpus() threads (the caller's among
// them): each thread takes the next job until none is left. A job that returns false stops the
// jobs not yet started. Returns once every started job has ended.
void run_parallel(std::size_t count, const std::function<bool(std::size_t)>& job);

}  // namespace fulcrum::plan
