// Capabilities by raw syscalls: capset(2) and prctl(2) act on the calling thread only, so
// restrict_process() runs them in every other thread from a signal handler (the way glibc applies
// setuid() to all threads) and then reads each thread's sets back from /proc.
#include "util/capabilities.h"

#include <dirent.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>

namespace fulcrum::caps {
namespace {

constexpr const char* kNames[] = {
    "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid", "cap_kill",
    "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service",
    "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module",
    "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot",
    "cap_sys_nice", "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
    "cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
    "cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf", "cap_checkpoint_restore",
};

// The three sets of capset(2), version 3 (two 32-bit words each).
struct Data {
    __user_cap_data_struct words[2]{};
};

int capget_self(Data& d)
{
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capget, &h, d.words) == 0 ? 0 : errno;
}

int capset_self(const Data& d)
{
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capset, &h, d.words) == 0 ? 0 : errno;
}

Data make_data(Mask effective, Mask permitted, Mask inheritable)
{
    Data d;
    for (int i = 0; i < 2; ++i) {
        d.words[i].effective = static_cast<std::uint32_t>(effective >> (32 * i));
        d.words[i].permitted = static_cast<std::uint32_t>(permitted >> (32 * i));
        d.words[i].inheritable = static_cast<std::uint32_t>(inheritable >> (32 * i));
    }
    return d;
}

// What restrict_process() applies to each thread; written before any thread is signalled.
struct Plan {
    Data data;
    Mask keep_bounding = 0;
    int last_cap = 40;
};
Plan g_plan;
std::atomic<int> g_applied{0};
std::atomic<int> g_error{0};

// Async-signal-safe: only syscalls. The bounding set goes first: dropping from it needs
// CAP_SETPCAP in the effective set, which the capset at the end removes.
int apply_plan() noexcept
{
    for (int cap = 0; cap <= g_plan.last_cap; ++cap) {
        if (g_plan.keep_bounding & bit(cap)) continue;
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return errno;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    return capset_self(g_plan.data);
}

void on_signal(int)
{
    const int saved = errno;
    if (int err = apply_plan()) g_error.store(err);
    g_applied.fetch_add(1);
    errno = saved;
}

int last_cap()
{
    std::ifstream f("/proc/sys/kernel/cap_last_cap");
    int n = 0;
    if (f >> n && n > 0 && n < 64) return n;
    return CAP_LAST_CAP;
}

// This process's threads; a failure is the errno of opendir.
Result<std::vector<pid_t>> thread_ids()
{
    std::vector<pid_t> out;
    DIR* d = opendir("/proc/self/task");
    if (!d) return Status::failure(std::strerror(errno));
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
    closedir(d);
    return out;
}

std::optional<Mask> hex_mask(const std::string& text)
{
    try {
        std::size_t used = 0;
        Mask m = std::stoull(text, &used, 16);
        if (used == text.size()) return m;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

}  // namespace

std::optional<Sets> read_status(const std::string& status_path)
{
    std::ifstream f(status_path);
    if (!f) return std::nullopt;
    Sets s;
    int found = 0;
    std::string key, value;
    while (f >> key && std::getline(f >> std::ws, value)) {
        Mask* target = key == "CapInh:"   ? &s.inheritable
                       : key == "CapPrm:" ? &s.permitted
                       : key == "CapEff:" ? &s.effective
                       : key == "CapBnd:" ? &s.bounding
                       : key == "CapAmb:" ? &s.ambient
                                          : nullptr;
        if (target) {
            auto m = hex_mask(value);
            if (!m) return std::nullopt;
            *target = *m;
            ++found;
        } else if (key == "NoNewPrivs:") {
            s.no_new_privs = value == "1";
            ++found;
        }
    }
    if (found != 6) return std::nullopt;
    return s;
}

Status restrict_process(Mask effective, Mask permitted)
{
    permitted |= effective;
    g_plan.data = make_data(effective, permitted, 0);
    g_plan.keep_bounding = permitted;
    g_plan.last_cap = last_cap();
    g_error.store(0);

    // A real-time signal no library here uses; its handler applies the plan in the thread it lands on.
    const int sig = SIGRTMIN + 5;
    struct sigaction act {}, old {};
    act.sa_handler = on_signal;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0)
        return Status::failure(std::string("caps: sigaction: ") + std::strerror(errno));
    const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
    std::set<pid_t> done{self};
    std::string failure;
    // Threads made while this runs inherit the sets of the thread that made them: repeat until a
    // listing shows none left (a handful of rounds at most; 10 bounds it).
    for (int round = 0; round < 10 && failure.empty(); ++round) {
        bool any = false;
        Result<std::vector<pid_t>> threads = thread_ids();
        if (!threads.ok()) {
            failure = "cannot list this process's threads (/proc/self/task): " + threads.message();
            break;
        }
        for (pid_t tid : *threads) {
            if (done.contains(tid)) continue;
            any = true;
            const int before = g_applied.load();
            if (syscall(SYS_tgkill, getpid(), tid, sig) != 0) {
                if (errno != ESRCH) failure = "tgkill " + std::to_string(tid) + ": " + std::strerror(errno);
                done.insert(tid);  // ESRCH: the thread has ended
                continue;
            }
            // Up to 2 s for the thread to run its handler (it may be in a syscall or descheduled).
            bool ran = false;
            for (int i = 0; i < 2000 && !(ran = g_applied.load() != before); ++i) {
                timespec ms{0, 1'000'000};
                nanosleep(&ms, nullptr);
            }
            if (!ran) failure = "thread " + std::to_string(tid) + " did not run the handler within 2 s (signal blocked?)";
            done.insert(tid);
        }
        if (!any) break;
    }
    sigaction(sig, &old, nullptr);
    if (!failure.empty()) return Status::failure("caps: " + failure);
    if (int err = g_error.load()) return Status::failure(std::string("caps: in another thread: ") + std::strerror(err));
    if (int err = apply_plan())
        return Status::failure(std::string("caps: cannot drop capabilities (CAP_SETPCAP needed for the bounding set): ") +
                               std::strerror(err));

    // The check must not pass because it could not look.
    const Sets want{0, permitted, effective, permitted, 0, true};
    Result<std::vector<pid_t>> threads = thread_ids();
    if (!threads.ok())
        return Status::failure("caps: cannot list this process's threads (/proc/self/task) to check the drop: " +
                               threads.message());
    for (pid_t tid : *threads) {
        const std::string dir = "/proc/self/task/" + std::to_string(tid);
        auto got = read_status(dir + "/status");
        if (!got && access(dir.c_str(), F_OK) == 0)  // (a thread that has ended since is fine)
            return Status::failure("caps: cannot read " + dir + "/status to check the drop");
        if (got && !(*got == want))
            return Status::failure("caps: thread " + std::to_string(tid) + " kept capabilities: effective " +
                                   names(got->effective) + "; permitted " + names(got->permitted) +
                                   "; bounding " + names(got->bounding));
    }
    return {};
}

bool raise(int cap)
{
    Data d;
    if (int err = capget_self(d)) {
        errno = err;
        return false;
    }
    d.words[cap / 32].effective |= 1u << (cap % 32);
    if (int err = capset_self(d)) {
        errno = err;
        return false;
    }
    return true;
}

bool lower(int cap)
{
    Data d;
    if (int err = capget_self(d)) {
        errno = err;
        return false;
    }
    d.words[cap / 32].effective &= ~(1u << (cap % 32));
    if (int err = capset_self(d)) {
        errno = err;
        return false;
    }
    return true;
}

int become_user(uid_t uid, gid_t gid)
{
    // -1 means "leave unchanged" to setresuid/setresgid: the child would stay root.
    if (uid == static_cast<uid_t>(-1) || gid == static_cast<gid_t>(-1)) return EINVAL;
    Data d;
    if (int err = capget_self(d)) return err;
    for (int cap : {CAP_SETUID, CAP_SETGID}) d.words[0].effective |= d.words[0].permitted & (1u << cap);
    if (int err = capset_self(d)) return err;
    if (syscall(SYS_setgroups, 1, &gid) != 0) return errno;
    if (syscall(SYS_setresgid, gid, gid, gid) != 0) return errno;
    if (syscall(SYS_setresuid, uid, uid, uid) != 0) return errno;
    uid_t r = 0, e = 0, saved = 0;
    if (syscall(SYS_getresuid, &r, &e, &saved) != 0 || r != uid || e != uid || saved != uid) return EPERM;
    // Leaving uid 0 for good already empties the permitted, effective and ambient sets; explicit,
    // so that no path (uid 0 asked for, SECBIT_KEEP_CAPS) keeps any.
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
    if (int err = capset_self(make_data(0, 0, 0))) return err;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    return 0;
}

std::string names(Mask m)
{
    std::string out;
    for (int cap = 0; cap < 64; ++cap) {
        if (!(m & bit(cap))) continue;
        if (!out.empty()) out += ' ';
        out += cap < static_cast<int>(std::size(kNames)) ? kNames[cap] : "cap_" + std::to_string(cap);
    }
    return out.empty() ? "(none)" : out;
}

}  // namespace fulcrum::caps
