// exec: `/bin/sh -c command` as healthcheck.user (never root), in its own process group, from
// `/`, with stdin/stdout/stderr on /dev/null and no other descriptor, no capability, no_new_privs,
// and only PATH, FULCRUM_SERVICE, FULCRUM_ADDRESS and FULCRUM_PORT in its environment. Exit 0 = up.
//
// The child becomes the user before exec (caps::become_user: CAP_SETUID/CAP_SETGID come from the
// daemon's permitted set and leave with the uid). A step that fails before exec is reported
// through a close-on-exec pipe (EOF = exec happened). The exit is seen without blocking through a
// pidfd (readable once the shell has exited); the check then waits for the zombie without reaping
// it (waitid WNOWAIT), kills what is left of the process group (its id cannot be reused while the
// zombie exists), and reaps the shell. Killing another user's processes needs CAP_KILL: the
// daemon keeps it permitted and raises it around the kill only (kill_group).
// On the deadline: SIGKILL to the process group, `done` gets exec_failed "timeout: ..." at once,
// and a detached coroutine reaps the shell (no zombies). Exit 0 = up; else exec_failed with
// "exit N" / "killed by signal N (SIGX)" / "timeout: ..." / "cannot run the command as USER: ...".
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include <cerrno>
#include <cstring>

#include "health/check_common.h"
#include "util/capabilities.h"
#include "util/log.h"

namespace fulcrum::health::detail {

namespace {

std::string errno_text(const char* what, int err)
{
    return std::string(what) + ": " + std::strerror(err);
}

std::string status_text(int status)
{
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        std::string text = "killed by signal " + std::to_string(sig);
        if (const char* abbrev = sigabbrev_np(sig)) text += std::string(" (SIG") + abbrev + ")";
        return text;
    }
    return "wait status " + std::to_string(status);
}

// Why the child could not exec, written to the close-on-exec pipe: {step (index into kSteps), errno}.
using ChildError = int[2];
constexpr const char* kSteps[] = {"/dev/null as stdin/stdout/stderr", "closing descriptors", "changing user",
                                  "chdir /", "exec /bin/sh"};

// In the child, between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(int devnull, int error_pipe, uid_t uid, gid_t gid, char* const argv[],
                             char* const envp[])
{
    auto fail = [&error_pipe](int step, int err) {
        const ChildError e{step, err};
        (void)!write(error_pipe, e, sizeof e);
        _exit(126);
    };
    setpgid(0, 0);
    // Both out of 0..3 first, so the dup2s below cannot clobber them; the pipe stays close-on-exec.
    const int nul = fcntl(devnull, F_DUPFD, 10);
    const int ep = fcntl(error_pipe, F_DUPFD_CLOEXEC, 10);
    if (nul < 0 || ep < 0) _exit(126);
    error_pipe = ep;
    if (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0) fail(0, errno);
    if (dup2(ep, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) != 0) fail(1, errno);
    error_pipe = 3;
    // Nothing of the daemon leaks into the command (Asio's sockets are not close-on-exec): fd 3
    // (the error pipe) closes at exec, everything above it now.
    if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0) {
        struct rlimit rl {};
        rlim_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
        if (limit == RLIM_INFINITY || limit > (1 << 20)) limit = 1 << 20;
        for (int fd = 4; fd < static_cast<int>(limit); ++fd) close(fd);
    }
    if (int err = caps::become_user(uid, gid)) fail(2, err);
    if (chdir("/") != 0) fail(3, errno);
    // A command starts with default signal handling and nothing blocked, whatever the daemon does.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
    execve("/bin/sh", argv, envp);
    fail(4, errno);
    _exit(127);
}

// SIGKILL to the process group `pid`. The command runs as another user, so once fulcrumd has
// dropped its capabilities this needs CAP_KILL, raised from the permitted set for the call only.
// A failure would leave the command's processes running, so it is logged (at most once a minute).
void kill_group(pid_t pid)
{
    if (kill(-pid, SIGKILL) == 0 || errno != EPERM) return;
    static log::EveryMinute limit;
    if (!caps::raise(CAP_KILL)) {
        if (limit.due())
            LOG_WARN("health: cannot kill exec check process group %d: not permitted, and CAP_KILL cannot be "
                     "raised: %s (logged at most once a minute)", static_cast<int>(pid), std::strerror(errno));
        return;
    }
    const int killed = kill(-pid, SIGKILL) == 0 ? 0 : errno;
    if (!caps::lower(CAP_KILL))
        LOG_WARN("health: cannot lower CAP_KILL again after killing exec check process group %d: %s",
                 static_cast<int>(pid), std::strerror(errno));
    if (killed != 0 && killed != ESRCH && limit.due())
        LOG_WARN("health: cannot kill exec check process group %d with CAP_KILL: %s (logged at most once a minute)",
                 static_cast<int>(pid), std::strerror(killed));
}

// Reaps `pid` in the background (after a SIGKILL); polls with a backoff up to 1 s.
asio::awaitable<void> reap(pid_t pid)
{
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto delay = std::chrono::milliseconds(1);
    while (true) {
        int status = 0;
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) co_return;
        timer.expires_after(delay);
        error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        delay = std::min(delay * 2, std::chrono::milliseconds(1000));
    }
}

}  // namespace

asio::awaitable<Outcome> check_exec(config::HealthCheck check, Target target)
{
    if (check.command.empty()) co_return Outcome{Failure::exec_failed, "no command to run"};
    auto ex = co_await asio::this_coro::executor;

    // Everything the child needs is built before the fork. The environment is built from nothing:
    // the daemon's own (NOTIFY_SOCKET, credentials of the service manager, ...) is not the command's.
    std::vector<std::string> env_strings{
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "FULCRUM_SERVICE=" + target.service,
        "FULCRUM_ADDRESS=" + (target.address.family ? address_text(target.address) : std::string()),
        "FULCRUM_PORT=" + std::to_string(target.port),
    };
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string arg0 = "sh", arg1 = "-c", arg2 = check.command;
    char* const argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) co_return Outcome{Failure::exec_failed, errno_text("pipe", errno)};
    const int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        const int err = errno;
        close(fds[0]);
        close(fds[1]);
        co_return Outcome{Failure::exec_failed, errno_text("open /dev/null", err)};
    }
    const pid_t pid = fork();
    if (pid == 0) exec_child(devnull, fds[1], check.user.uid, check.user.gid, argv, envp.data());
    const int fork_errno = errno;
    close(fds[1]);
    close(devnull);
    if (pid < 0) {
        close(fds[0]);
        co_return Outcome{Failure::exec_failed, errno_text("fork", fork_errno)};
    }
    setpgid(pid, pid);  // also here, so that a kill(-pid) right away finds the group (EACCES after exec: fine)
    const int error_pipe = fds[0];
    // The pidfd is readable once the shell has exited; the child's own descendants do not delay it.
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
        const int err = errno;
        kill_group(pid);
        asio::co_spawn(ex, reap(pid), asio::detached);
        close(error_pipe);
        co_return Outcome{Failure::exec_failed, errno_text("pidfd_open", err)};
    }

    asio::posix::stream_descriptor watch(ex, pidfd);
    asio::steady_timer poll(ex);
    Deadline dl(ex, check.timeout);
    dl.on_expire([&watch, &poll] {
        error_code ignored;
        watch.close(ignored);
        poll.cancel();
    });

    error_code ec;
    co_await watch.async_wait(asio::posix::stream_descriptor::wait_read, asio::redirect_error(asio::use_awaitable, ec));

    // The shell has exited (or the deadline closed the pidfd): wait for the zombie, without reaping it yet.
    auto delay = std::chrono::milliseconds(1);
    while (!dl.expired()) {
        siginfo_t info{};
        if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR) continue;
            const int err = errno;  // ECHILD: reaped elsewhere (SIGCHLD ignored by the daemon?)
            kill_group(pid);
            close(error_pipe);
            co_return Outcome{Failure::exec_failed, errno_text("cannot get the exit status of the command: waitid", err)};
        }
        if (info.si_pid == pid) break;
        poll.expires_after(delay);
        co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        delay = std::min(delay * 2, std::chrono::milliseconds(50));
    }
    if (dl.expired()) {
        kill_group(pid);
        asio::co_spawn(ex, reap(pid), asio::detached);
        close(error_pipe);
        co_return Outcome{Failure::exec_failed, "timeout: the command was still running after " +
                                                    ms_text(check.timeout) + "; killed its process group"};
    }

    kill_group(pid);  // what the command left behind in its group
    int status = 0;
    pid_t reaped;
    while ((reaped = waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
    }
    // The child has exited, so every write end of the pipe is closed: this read cannot block.
    ChildError child_error{-1, 0};
    const ssize_t n = read(error_pipe, child_error, sizeof child_error);
    close(error_pipe);
    if (n == static_cast<ssize_t>(sizeof child_error) && child_error[0] >= 0 &&
        child_error[0] < static_cast<int>(std::size(kSteps)))
        co_return Outcome{Failure::exec_failed, "cannot run the command as " + check.user.name + " (uid " +
                                                    std::to_string(check.user.uid) + "): " + kSteps[child_error[0]] +
                                                    ": " + std::strerror(child_error[1])};
    if (reaped != pid) co_return Outcome{Failure::exec_failed, "cannot get the exit status of the command"};
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) co_return Outcome{Failure::none, "exit 0"};
    co_return Outcome{Failure::exec_failed, status_text(status)};
}

}  // namespace fulcrum::health::detail
