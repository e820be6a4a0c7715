// What fulcrumd keeps once it is up (README, "Security"). Start-up needs root's full set: loading
// and pinning the program (CAP_BPF, CAP_PERFMON or CAP_SYS_ADMIN), adopting pinned and attached
// objects by id (BPF_*_GET_FD_BY_ID: CAP_SYS_ADMIN), mounting bpffs (CAP_SYS_ADMIN), attaching
// (CAP_NET_ADMIN). After it, the event loop only needs what the comments below name, found by
// dropping each one and running the system tests that exercise it.
#include <linux/capability.h>

#include "daemon/daemon_impl.h"
#include "util/capabilities.h"
#include "util/log.h"

namespace fulcrum::daemon {
namespace {

using caps::bit;

// Effective for the life of the daemon:
//   CAP_BPF        a reload or health change builds new Maglev tables as new inner maps (BPF_MAP_CREATE)
//   CAP_NET_ADMIN  VIP routes for BGP (RTM_NEWROUTE/DELROUTE), detaching at exit (on_exit: detach),
//                  checks through the tunnel (their ip rules and routes, SO_MARK on their sockets)
// Not CAP_SYS_ADMIN: what start-up opened by id (adopted Maglev tables, the attached programs to
// detach at exit) stays open, and every table swapped in later is held from its creation
// (dataplane/live_tables.h), so nothing after start opens a BPF object by id.
constexpr caps::Mask kEffective = bit(CAP_BPF) | bit(CAP_NET_ADMIN);
// Permitted only, raised where used:
//   CAP_SETUID, CAP_SETGID  in an exec check's child, to become healthcheck.user (they leave with uid 0)
//   CAP_KILL                around kill(): an exec check left running is another user's process group
constexpr caps::Mask kPermittedOnly = bit(CAP_SETUID) | bit(CAP_SETGID) | bit(CAP_KILL);

}  // namespace

Status Daemon::drop_privileges()
{
    // A drop-in that took one of these out of the unit's bounding set: keep what there is, and say so.
    auto now = caps::read_status("/proc/thread-self/status");
    if (!now)
        return Status::failure("caps: cannot read /proc/thread-self/status");
    const caps::Mask wanted = kEffective | kPermittedOnly;
    if (caps::Mask missing = wanted & ~now->permitted)
        LOG_WARN("caps: fulcrumd was started without %s; %s", caps::names(missing).c_str(),
                 missing & kEffective ? "reloads, routes or detaching may fail"
                                      : "exec health checks may fail to start or to be stopped");
    const caps::Mask effective = kEffective & now->permitted;
    const caps::Mask permitted = wanted & now->permitted;
    if (Status s = caps::restrict_process(effective, permitted); !s.ok())
        return s;
    LOG_INFO("caps: every thread now holds only %s (permitted: %s, raised only where used), bounding set "
             "the same, no_new_privs set",
             caps::names(effective).c_str(), caps::names(permitted & ~effective).c_str());
    return {};
}

}  // namespace fulcrum::daemon
