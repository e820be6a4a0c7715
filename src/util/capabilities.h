// Linux capabilities, by raw syscalls (capget/capset, prctl): fulcrumd gives up what it no longer
// needs once it is up (every thread: the kernel keeps capabilities per thread), raises a kept one
// around its use, and an exec check's child becomes an unprivileged user before it runs a command.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "util/status.h"

namespace fulcrum::caps {

using Mask = std::uint64_t;  // bit N = capability N (numbers of <linux/capability.h>)
constexpr Mask bit(int cap) { return Mask{1} << cap; }

// One thread's sets as the kernel reports them in /proc/PID/task/TID/status.
struct Sets {
    Mask inheritable = 0, permitted = 0, effective = 0, bounding = 0, ambient = 0;
    bool no_new_privs = false;
    bool operator==(const Sets&) const = default;
};
std::optional<Sets> read_status(const std::string& status_path);

// Every thread of this process ends with `effective` effective, `permitted` (a superset) permitted
// and in the bounding set, nothing inheritable or ambient, and no_new_privs set; then each thread
// is checked from /proc/self/task. Shrinking the bounding set needs CAP_SETPCAP (dropped with the
// rest). Call it from the thread that will fork children (they inherit that thread's sets).
Status restrict_process(Mask effective, Mask permitted);

// The calling thread only: puts a permitted capability into, or takes it out of, the effective
// set. False (errno set) on failure: raise() when `cap` is not permitted.
bool raise(int cap);
bool lower(int cap);

// In a fresh child between fork and exec (async-signal-safe): supplementary groups = {gid}, all
// gids then all uids set to gid/uid (CAP_SETGID/CAP_SETUID are raised from the permitted set
// first), every capability set emptied, no_new_privs set. Returns 0 or the errno of the failed step.
int become_user(uid_t uid, gid_t gid);

// "cap_bpf cap_net_admin" (lower case, as capabilities(7) and systemd write them).
std::string names(Mask m);

}  // namespace fulcrum::caps
