// exec: `/bin/sh -c command` in its own process group, stdin/stdout/stderr on /dev/null, with
// FULCRUM_SERVICE, FULCRUM_ADDRESS and FULCRUM_PORT in its environment. Exit 0 = up.
//
// The exit is seen without blocking: the child holds (as fd 3) the write end of a pipe whose read
// end the check watches with a stream_descriptor; EOF means the shell (and whatever it started
// that kept fd 3) is gone. The check then waits for the zombie without reaping it (waitid WNOWAIT,
// polled with a short backoff: EOF can precede the zombie by a moment), kills what is left of the
// process group (its id cannot be reused while the zombie exists), and reaps the shell.
// On the deadline: SIGKILL to the process group, `done` gets exec_failed "timeout: ..." at once,
// and a detached coroutine reaps the shell (no zombies). Exit 0 = up; else exec_failed with
// "exit N" / "killed by signal N (SIGX)" / "timeout: ...". Limitation: a background process that
// keeps fd 3 open holds the check until the deadline (`cmd 3>&- &` avoids it).
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "health/check_common.h"

extern char** environ;

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

// In the child, between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(int devnull, int pipe_write, char* const argv[], char* const envp[])
{
    setpgid(0, 0);
    // Move both out of 0..3 first, so the dup2s below cannot clobber them.
    const int nul = fcntl(devnull, F_DUPFD, 10);
    const int wr = fcntl(pipe_write, F_DUPFD, 10);
    if (nul < 0 || wr < 0) _exit(126);
    if (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0 || dup2(wr, 3) < 0) _exit(126);
    // Nothing else of the daemon leaks into the command (Asio's sockets are not close-on-exec).
    if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0) {
        struct rlimit rl {};
        rlim_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
        if (limit == RLIM_INFINITY || limit > 65536) limit = 65536;
        for (int fd = 4; fd < static_cast<int>(limit); ++fd) close(fd);
    }
    // A command starts with default signal handling and nothing blocked, whatever the daemon does.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
    execve("/bin/sh", argv, envp);
    _exit(127);
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

    // Everything the child needs is built before the fork.
    std::vector<std::string> env_strings;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view kv(*e);
        if (kv.rfind("FULCRUM_SERVICE=", 0) == 0 || kv.rfind("FULCRUM_ADDRESS=", 0) == 0 ||
            kv.rfind("FULCRUM_PORT=", 0) == 0)
            continue;
        env_strings.emplace_back(kv);
    }
    env_strings.push_back("FULCRUM_SERVICE=" + target.service);
    env_strings.push_back("FULCRUM_ADDRESS=" +
                          (target.address.family ? address_text(target.address) : std::string()));
    env_strings.push_back("FULCRUM_PORT=" + std::to_string(target.port));
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
    if (pid == 0) exec_child(devnull, fds[1], argv, envp.data());
    const int fork_errno = errno;
    close(fds[1]);
    close(devnull);
    if (pid < 0) {
        close(fds[0]);
        co_return Outcome{Failure::exec_failed, errno_text("fork", fork_errno)};
    }
    setpgid(pid, pid);  // also here, so that a kill(-pid) right away finds the group (EACCES after exec: fine)

    asio::posix::stream_descriptor watch(ex, fds[0]);
    asio::steady_timer poll(ex);
    Deadline dl(ex, check.timeout);
    dl.on_expire([&watch, &poll] {
        error_code ignored;
        watch.close(ignored);
        poll.cancel();
    });

    error_code ec;
    std::array<char, 64> sink;
    while (!ec) co_await watch.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));

    // EOF (or an error of the pipe): wait for the zombie, without reaping it yet.
    auto delay = std::chrono::milliseconds(1);
    while (!dl.expired()) {
        siginfo_t info{};
        if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR) continue;
            const int err = errno;  // ECHILD: reaped elsewhere (SIGCHLD ignored by the daemon?)
            kill(-pid, SIGKILL);
            co_return Outcome{Failure::exec_failed, errno_text("cannot get the exit status of the command: waitid", err)};
        }
        if (info.si_pid == pid) break;
        poll.expires_after(delay);
        co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        delay = std::min(delay * 2, std::chrono::milliseconds(50));
    }
    if (dl.expired()) {
        kill(-pid, SIGKILL);
        asio::co_spawn(ex, reap(pid), asio::detached);
        co_return Outcome{Failure::exec_failed, "timeout: the command was still running after " +
                                                    ms_text(check.timeout) + "; killed its process group"};
    }

    kill(-pid, SIGKILL);  // what the command left behind in its group
    int status = 0;
    pid_t reaped;
    while ((reaped = waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (reaped != pid) co_return Outcome{Failure::exec_failed, "cannot get the exit status of the command"};
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) co_return Outcome{Failure::none, "exit 0"};
    co_return Outcome{Failure::exec_failed, status_text(status)};
}

}  // namespace fulcrum::health::detail
