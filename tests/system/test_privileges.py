#!/usr/bin/python3
"""Least privilege (issue 13 point 1), seen from outside on a running fulcrumd in a lab:

  1. Once up, every thread of fulcrumd (/proc/PID/task/*/status) holds exactly CAP_BPF and
     CAP_NET_ADMIN effective (no CAP_SYS_ADMIN); CAP_SETUID, CAP_SETGID and CAP_KILL only permitted; the bounding set
     equals the permitted set; nothing inheritable or ambient; NoNewPrivs 1. (fulcrumd started as
     root with every capability here, so without the drop every one of these fails.)
  2. An exec health check reports, from inside its own shell, its uid/gid/groups (healthcheck.user
     by default: the user `fulcrum` if it exists, else `nobody`), CapEff/CapPrm/CapInh/CapAmb 0,
     NoNewPrivs 1, an environment of PATH and the three FULCRUM_* variables only (fulcrumd runs with
     NOTIFY_SOCKET and a marker variable in its environment here), and fds 0, 1, 2 only.
  3. What the check left running in its process group (a background sleep, another user's
     process) is killed when the check ends: CAP_KILL, raised around the kill, works.
  4. Still able to do its job after the drop: a reload that rebuilds a Maglev table (a new inner
     map: CAP_BPF; the previous one held open for a rollback, since opening it by id would need
     CAP_SYS_ADMIN) is applied and the replaced table is freed; the same after a SIGKILL and a
     restart that adopted the pins; `on_exit: detach`
     removes the program at SIGTERM (CAP_NET_ADMIN, with the handle opened before the drop).
"""
import glob
import os
import json
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, daemon_log_tail, lab_up, main, step  # noqa: E402

CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_ADMIN, CAP_BPF = 5, 6, 7, 12, 39
EFFECTIVE = (1 << CAP_BPF) | (1 << CAP_NET_ADMIN)
PERMITTED = EFFECTIVE | (1 << CAP_SETUID) | (1 << CAP_SETGID) | (1 << CAP_KILL)
ENV_KEYS = ["FULCRUM_ADDRESS", "FULCRUM_PORT", "FULCRUM_SERVICE", "PATH"]

# Run by the exec check (copied where the check's user can read it): the shell's ids,
# capabilities, initial environment, descriptors and cwd. Shared with tests/health/test_checks.cpp.
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "exec_probe.py")


def status_fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def expected_user():
    for name in ("fulcrum", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    raise TestFailure("this machine has neither a `fulcrum` nor a `nobody` user")


def inner_tables(lab):
    """maglev_tables as pinned: service id -> the id of its inner map."""
    r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", f"{lab.pin_path}/maglev_tables"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise TestFailure("bpftool map dump maglev_tables: " + r.stderr)
    out = {}
    for e in json.loads(r.stdout):
        key = int.from_bytes(bytes(int(b, 16) for b in e["key"]), "little")
        out[key] = int.from_bytes(bytes(int(b, 16) for b in e["value"]), "little")
    return out


def map_exists(map_id):
    return subprocess.run(["bpftool", "map", "show", "id", str(map_id)], capture_output=True).returncode == 0


def reload_swaps_a_table(lab, services, before, what):
    """A reload with `services` swaps in a new table for one service; the table it replaced is
    freed (fulcrumd held it for a possible rollback, and let go at commit)."""
    lab.write_config(lab.config_text(services))
    r = subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", "reload"], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, f"fulcrumctl reload ({what}) exits 0", r.stdout + r.stderr + daemon_log_tail(lab))
    after = inner_tables(lab)
    swapped = [sid for sid in before if after.get(sid) != before[sid]]
    check(len(swapped) == 1 and set(after) == set(before),
          f"one service's table was swapped (service ids {sorted(before)}; inner map {before.get(swapped[0]) if swapped else '-'}"
          f" -> {after.get(swapped[0]) if swapped else '-'})", f"before {before}, after {after}")
    check(not map_exists(before[swapped[0]]), f"the replaced table (map id {before[swapped[0]]}) is freed, not leaked",
          subprocess.run(["bpftool", "map", "show", "id", str(before[swapped[0]])], capture_output=True, text=True).stdout)


def body(lab):
    user = expected_user()
    step("lab up: service web (tcp checks), service probe (an exec check that reports what it sees)")
    lab_up(lab)  # (re)creates lab.workdir: the check's files go in after it
    report_dir = f"{lab.workdir}/probe"
    os.makedirs(report_dir, exist_ok=True)
    os.chmod(lab.workdir, 0o755)
    os.chmod(report_dir, 0o1777)  # the check writes here as an unprivileged user
    report = f"{report_dir}/report"
    # A child of the shell, started before the shell opened anything, reports what the shell was
    # given; then a background process is left in the check's group.
    probe = f"{report_dir}/probe.py"
    shutil.copyfile(PROBE, probe)
    os.chmod(probe, 0o644)
    command = f"{fl.PYTHON} {probe} {report}; sleep 300 & echo $! > {report_dir}/left.$$; exit 0"

    lab.add_vip_to_backends("198.18.100.10")
    lab.attach_decap()
    lab.start_servers()
    web = ("  - name: web\n    vip: 198.18.100.10\n    port: 80\n    protocol: tcp\n    backends:\n" +
           "".join(f"      - address: {fl.backend_v4(i)}\n" for i in (1, 2)))
    probe = ("  - name: probe\n    vip: 198.18.100.20\n    port: 80\n    protocol: tcp\n"
             "    healthcheck:\n      type: exec\n      interval: 1s\n      timeout: 1s\n"
             f"      command: \"{command.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}\"\n"
             f"    backends:\n      - address: {fl.backend_v4(3)}\n")
    path = lab.write_config(lab.config_text(web + probe))
    # What a service manager puts in a daemon's environment must not reach a check.
    os.environ["NOTIFY_SOCKET"] = f"{lab.workdir}/no-such-notify-socket"
    os.environ["FULCRUM_TEST_MARKER"] = "daemon-only"
    try:
        lab.start_fulcrumd(path)
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["FULCRUM_TEST_MARKER"]
    pid = lab.daemon.pid
    check(open(f"/proc/{pid}/comm").read().strip() == "fulcrumd", f"pid {pid} is fulcrumd itself")

    step("1. fulcrumd's capabilities, thread by thread")
    tasks = sorted(glob.glob(f"/proc/{pid}/task/*/status"))
    check(len(tasks) > 1, f"fulcrumd runs {len(tasks)} threads (the drop must reach each one)")
    for t in tasks:
        f = status_fields(t)
        tid = t.split("/")[4]
        got = {k: int(f[k], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")}
        want = {"CapEff": EFFECTIVE, "CapPrm": PERMITTED, "CapBnd": PERMITTED, "CapInh": 0, "CapAmb": 0}
        check(got == want and f["NoNewPrivs"] == "1",
              f"thread {tid} ({f['Name']}): CapEff {got['CapEff']:#x} CapPrm {got['CapPrm']:#x} "
              f"CapBnd {got['CapBnd']:#x} CapInh 0 CapAmb 0 NoNewPrivs 1",
              f"got {({k: hex(v) for k, v in got.items()})} NoNewPrivs {f['NoNewPrivs']}; want "
              f"{({k: hex(v) for k, v in want.items()})} NoNewPrivs 1\n" + daemon_log_tail(lab, 40))
    log = open(lab.daemon_log).read()
    check("caps: every thread now holds only cap_net_admin cap_bpf " in log, "the log says what was kept",
          daemon_log_tail(lab))

    step("2. what the exec check sees")
    deadline = time.time() + 15
    while not os.path.exists(report) and time.time() < deadline:
        time.sleep(0.1)
    check(os.path.exists(report), "the exec check ran and wrote its report", daemon_log_tail(lab))
    lines = open(report).read().splitlines()
    for line in lines:
        print(f"    | {line}")
    fields = {}
    env, fds = [], []
    for line in lines:
        if line.startswith("env "):
            env.append(line[4:])
        elif line.startswith("fd "):
            fds.append(line[3:])
        elif line.startswith(("Cap", "NoNewPrivs:")):
            k, _, v = line.partition(":")
            fields[k] = v.strip()
        else:
            fields[line.split(" ", 1)[0]] = line.split(" ", 1)[1]
    check(fields.get("uid") == f"{user.pw_uid} gid {user.pw_gid} groups {user.pw_gid}",
          f"runs as {user.pw_name}: uid {user.pw_uid}, gid {user.pw_gid}, no other group", str(fields.get("uid")))
    for key in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        check(fields.get(key) == "0" * 16, f"{key} 0", str(fields.get(key)))
    check(fields.get("NoNewPrivs") == "1", "NoNewPrivs 1")
    check(sorted(e.split("=", 1)[0] for e in env) == ENV_KEYS,
          "environment: PATH, FULCRUM_ADDRESS, FULCRUM_PORT, FULCRUM_SERVICE and nothing else", str(env))
    check("PATH=/usr/sbin:/usr/bin:/sbin:/bin" in env and "FULCRUM_SERVICE=probe" in env and
          f"FULCRUM_ADDRESS={fl.backend_v4(3)}" in env and "FULCRUM_PORT=80" in env,
          "their values: the fixed PATH and the checked target", str(env))
    check(fds == ["0", "1", "2"], "open descriptors: 0, 1, 2 only", str(fds))
    check(fields.get("cwd") == "/", "working directory /", str(fields.get("cwd")))

    step("3. what the check left in its group is killed (another user's process: CAP_KILL)")
    left = []
    deadline = time.time() + 10
    while not left and time.time() < deadline:
        left = [int(open(p).read()) for p in glob.glob(f"{report_dir}/left.*") if open(p).read().strip()]
        time.sleep(0.1)
    check(left, "the check started a background sleep and wrote its pid")

    def alive(p):
        try:
            with open(f"/proc/{p}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.time() + 10
    while alive(left[0]) and time.time() < deadline:
        time.sleep(0.1)
    check(not alive(left[0]), f"background sleep {left[0]} (uid {user.pw_uid}) is gone")
    check("cannot run the command" not in open(lab.daemon_log).read(), "no check failed to start")

    step("4. still able to change the data plane without CAP_SYS_ADMIN: reloads that swap tables, "
         "also after a restart that adopted the pins")
    before = inner_tables(lab)
    weights = web.replace(f"      - address: {fl.backend_v4(2)}\n", f"      - address: {fl.backend_v4(2)}\n        weight: 300\n")
    reload_swaps_a_table(lab, weights + probe, before, "new weights")

    # SIGKILL leaves the program attached and the maps pinned; the next fulcrumd adopts them, opens
    # their Maglev tables by id while it may (before the drop), and its first apply swaps in tables
    # of its own (same content: the plan of an adopted service starts without one).
    lab.stop_fulcrumd(signal.SIGKILL)
    lab.start_fulcrumd(path)
    adopted = re.findall(r"balancer loaded; (\d+) pinned maps adopted", open(lab.daemon_log).read())
    check(len(adopted) == 2 and int(adopted[-1]) > 0, f"the restarted fulcrumd adopted {adopted[-1]} pinned maps",
          daemon_log_tail(lab))
    reload_swaps_a_table(lab, web + probe, inner_tables(lab), "weights back, after a restart that adopted the pins")

    code = lab.stop_fulcrumd()
    check(code == 0, "SIGTERM: exit 0", daemon_log_tail(lab))
    check(not lab.xdp_attached(lab.balancer, "eth0"), "on_exit: detach removed the program (through the handle opened at start)",
          daemon_log_tail(lab))
    for p in left:
        subprocess.run(["kill", "-9", str(p)], capture_output=True)


if __name__ == "__main__":
    lab = fl.Lab(backends=3, prefix=f"pv{os.getpid() % 100000}")
    try:
        main("test_privileges", lambda: body(lab))
    finally:
        lab.down()
