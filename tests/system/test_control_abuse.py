#!/usr/bin/python3
"""The control socket under abuse (issue 13 point 7): a real fulcrumd in a small lab.

(a) 500 clients connect to the control socket and say nothing (20 of them send half a line):
    the first 64 (the session limit) get a session, the other 436 are answered at once with
    "5 ... busy" and closed; `fulcrumctl status` run right after still succeeds within 5 s
    (it retries a busy answer); every held session is closed by its 3 s deadline (between 2.5
    and 6 s after connecting, without an answer); fulcrumd's CPU time (utime + stime from
    /proc/PID/stat) grows by less than 1 s over the 10 s; the refusals and deadlines give at most
    two log lines each; status --json counts them.
(b) EMFILE: fulcrumd's RLIMIT_NOFILE is lowered with prlimit to its open fds + 8, and 100 clients
    connect: accept() fails with EMFILE; over 5 s fulcrumd uses less than 0.5 s of CPU (no busy
    loop) and logs the failure once; once the clients go away it accepts again (logged once),
    `fulcrumctl status` succeeds within 5 s and counts the failed accepts (at most 10 a second).
"""
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.10"
CLIENTS = 500
PARTIAL = 20
LIMIT = 64        # control::kMaxSessions
DEADLINE = 3.0    # control::kRequestTimeout
TICKS = os.sysconf("SC_CLK_TCK")
# Health checks every 500 ms that take 100 failures to go down: the EMFILE part (checks fail for
# want of a socket) must not turn into a reconfiguration.
HEALTH = "defaults:\n  healthcheck: {type: tcp, interval: 500ms, timeout: 300ms, rise: 1, fall: 100}\n"


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def daemon_pid(lab):
    pid = lab.daemon.pid  # nsenter --net execs fulcrumd in place
    comm = open(f"/proc/{pid}/comm").read().strip()
    if comm != "fulcrumd":
        raise TestFailure(f"pid {pid} is {comm!r}, not fulcrumd")
    return pid


def ctl(lab, *args, timeout=30):
    t = time.time()
    r = subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args], capture_output=True, text=True,
                       timeout=timeout)
    return r, time.time() - t


def log_count(lab, pattern):
    return len(re.findall(pattern, open(lab.daemon_log).read()))


def part_a(lab, pid):
    path = f"{lab.workdir}/fulcrumd.sock"
    step(f"(a) {CLIENTS} idle clients ({PARTIAL} of them send half a line), then fulcrumctl status")
    cpu0, t0 = cpu_seconds(pid), time.time()
    sel = selectors.DefaultSelector()
    clients = []
    for i in range(CLIENTS):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        give_up = time.time() + 5
        while True:  # a unix socket's backlog is full until fulcrumd accepts: EAGAIN, try again
            try:
                s.connect(path)
                break
            except BlockingIOError:
                if time.time() > give_up:
                    raise TestFailure(f"client {i}: fulcrumd did not accept for 5 s")
                time.sleep(0.001)
        if i < PARTIAL:
            s.sendall(b"text sta")
        s.setblocking(False)
        c = {"i": i, "sock": s, "at": time.time(), "data": b"", "closed": None}
        clients.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    connected = time.time()
    print(f"    ({CLIENTS} connected in {connected - t0:.2f}s)", flush=True)
    status = subprocess.Popen([fl.CTL, "-s", path, "status"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    status_done = None
    open_left = CLIENTS
    while time.time() < t0 + 10 and (open_left or status_done is None):
        for key, _ in sel.select(timeout=0.05):
            c = key.data
            try:
                chunk = c["sock"].recv(4096)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                c["data"] += chunk
                continue
            c["closed"] = time.time()
            sel.unregister(c["sock"])
            c["sock"].close()
            open_left -= 1
        if status_done is None and status.poll() is not None:
            status_done = time.time()
    remaining = t0 + 10 - time.time()
    if remaining > 0:
        time.sleep(remaining)
    cpu = cpu_seconds(pid) - cpu0
    for c in clients:
        if c["closed"] is None:
            c["sock"].close()
    if status_done is None:
        status.kill()
    out, err = status.communicate()

    check(status_done is not None and status.returncode == 0 and "service web" in out,
          f"fulcrumctl status, started right after the {CLIENTS} connections, succeeded in "
          f"{(status_done or time.time()) - connected:.2f}s", f"exit {status.returncode}: {out}{err}")
    check(status_done - connected < 5.0, "within 5 s")
    busy = [c for c in clients if c["data"].startswith(b"5\nfulcrumd is busy")]
    held = [c for c in clients if not c["data"]]
    other = [c for c in clients if c["data"] and c not in busy]
    check(not other, "every answer was the busy line or nothing", str([c["data"][:80] for c in other[:3]]))
    check(len(held) <= LIMIT and len(busy) >= CLIENTS - LIMIT,
          f"{len(busy)} clients were refused at once with the busy line, {len(held)} held a session "
          f"(limit {LIMIT})")
    busy_delay = max(c["closed"] - c["at"] for c in busy)
    check(busy_delay < 1.0, f"each refused client was closed within {busy_delay:.2f}s of connecting")
    check(all(c["closed"] is not None for c in held), "every held session was closed by the daemon",
          str([c["i"] for c in held if c["closed"] is None][:10]))
    lives = sorted(c["closed"] - c["at"] for c in held)
    check(DEADLINE - 0.5 <= lives[0] and lives[-1] <= DEADLINE * 2,
          f"held sessions (silent and half-line alike) closed by the {DEADLINE:.0f}s deadline: after "
          f"{lives[0]:.2f}..{lives[-1]:.2f}s")
    check(all(c in held for c in clients[:PARTIAL]), f"the {PARTIAL} half-line clients were among them")
    check(cpu < 1.0, f"fulcrumd used {cpu:.2f}s of CPU over the 10 s (no spinning)")

    r, _ = ctl(lab, "status", "--json")
    cs = json.loads(r.stdout)["control"]
    check(cs["refused_busy"] >= CLIENTS - LIMIT and cs["timed_out"] >= len(held) and cs["sessions_open"] == 1 and
          cs["max_sessions"] == LIMIT, f"status --json counts them: {cs}")
    refused_lines = log_count(lab, r"control: refused a connection")
    deadline_lines = log_count(lab, r"control: closed a session at its deadline")
    check(1 <= refused_lines <= 2 and 1 <= deadline_lines <= 2,
          f"the log says so without flooding: {refused_lines} line(s) on refusals, {deadline_lines} on deadlines",
          daemon_log_tail(lab))


def part_b(lab, pid):
    path = f"{lab.workdir}/fulcrumd.sock"
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    limit = fds + 8
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    step(f"(b) EMFILE: fulcrumd has {fds} fds open; RLIMIT_NOFILE lowered to {limit} (was {soft}:{hard})")
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
    try:
        cpu0, t0 = cpu_seconds(pid), time.time()
        clients, waiting = [], 0
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
                clients.append(s)
            except BlockingIOError:  # the backlog is full: fulcrumd is not accepting
                waiting += 1
                s.close()
        print(f"    ({len(clients)} clients connected, {waiting} found the backlog full)", flush=True)
        time.sleep(5)
        cpu = cpu_seconds(pid) - cpu0
        # Sessions ending at their deadline free fds, so EMFILE episodes follow each other: their
        # start is logged at most once per 10 s.
        failures = log_count(lab, r"control: cannot accept on .*Too many open files")
        check(failures == 1, f"accept failed with EMFILE, logged once in 5 s ({failures} line)",
              daemon_log_tail(lab))
        check(cpu < 0.5, f"fulcrumd used {cpu:.2f}s of CPU over 5 s at EMFILE (no busy loop)")

        step("the clients go away: fulcrumd accepts again")
        for s in clients:
            s.close()
        r, took = ctl(lab, "status", "--json", timeout=20)
        check(r.returncode == 0 and took < 5.0, f"fulcrumctl status succeeded in {took:.2f}s",
              f"exit {r.returncode}: {r.stdout}{r.stderr}")
        cs = json.loads(r.stdout)["control"]
        check(cs["accept_failures"] >= 1, f"status counts the failed accepts: {cs['accept_failures']}")
        check(cs["accept_failures"] <= (time.time() - t0) * 10 + 5,
              "at most ten tries a second (100 ms apart)")
        again = log_count(lab, r"control: accepting on .* again, after \d+ failed accepts")
        starts = log_count(lab, r"control: cannot accept on ")
        check(1 <= again <= starts <= 1 + (time.time() - t0) / 10,
              f"the log says it is accepting again ({again} line; {starts} on failures, one per 10 s at most)",
              daemon_log_tail(lab))
        cpu = cpu_seconds(pid) - cpu0
        check(cpu < 1.0, f"fulcrumd used {cpu:.2f}s of CPU over the {time.time() - t0:.1f}s of (b)")
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))


def body(lab):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    step("lab up: fulcrumd with one service and one backend")
    lab_up(lab)
    lab.start_servers()
    services = (f"  - name: web\n    vip: {VIP}\n    port: 80\n    protocol: tcp\n    backends:\n"
                f"      - address: {fl.backend_v4(1)}\n")
    lab.start_fulcrumd(lab.write_config(lab.config_text(services, extra=HEALTH)))
    pid = daemon_pid(lab)
    part_a(lab, pid)
    part_b(lab, pid)
    check(lab.daemon.poll() is None, "fulcrumd is still running")


if __name__ == "__main__":
    lab = fl.Lab(backends=1, prefix=f"ca{os.getpid() % 100000}")
    try:
        main("test_control_abuse", lambda: body(lab))
    finally:
        lab.down()
