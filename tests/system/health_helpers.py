"""Helpers shared by the health-check system tests (test_health_*.py) and bench/health_bench.py:
fulcrumctl status/lookup, metric reading, killing and restarting a backend's lab server for real,
and a poller that timestamps state changes seen in `fulcrumctl status --json`."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402

FULCRUMCTL = os.path.join(fl.BUILD_DIR, "src", "cmd", "fulcrumctl")
HEALTH_SERVERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "health_servers.py")


def start_health_server(lab, ns, *args):
    """One of health_servers.py's servers (https, plain, dns) in namespace `ns`, until the lab goes."""
    p = subprocess.Popen(lab.ns(ns, f"{fl.PYTHON} {HEALTH_SERVERS} {' '.join(args)}").split(),
                         stdout=open(f"{lab.workdir}/{ns}-{args[0]}.log", "w"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    lab.procs.append(p)


def wait_listen(lab, ns, what, port):
    """Until something listens on `port` in `ns` (`what`: "t" TCP, "u" UDP), at most 10 s."""
    deadline = time.time() + 10
    while f":{port} " not in lab.run(ns, f"ss -Hln{what}", capture=True):
        if time.time() > deadline:
            raise RuntimeError(f"nothing listens on {port} in {ns}")
        time.sleep(0.05)


def ctl(lab, *args, check=True):
    r = subprocess.run([FULCRUMCTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args], capture_output=True,
                       text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"fulcrumctl {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r


def status(lab):
    """fulcrumctl status --json as {service: {..., 'backends': {address: {...}}}}."""
    doc = json.loads(ctl(lab, "status", "--json").stdout)
    out = {}
    for s in doc["services"]:
        s = dict(s)
        s["backends"] = {b["address"]: b for b in s["backends"]}
        out[s["name"]] = s
    return out


def metric(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def metric_sum(m, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= set(ls))


def server_pids(lab, ns):
    """PIDs of lab_server.py processes running in namespace `ns`."""
    pids = []
    for pid in fl.sh(f"ip netns pids {ns}", check=False, capture=True).split():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if any(c.endswith(b"lab_server.py") for c in cmd):
            pids.append(int(pid))
    return pids


def kill_server(lab, ns):
    """SIGKILL the lab server of backend namespace `ns` (really: its listeners go away and its
    connections are reset by the kernel). Returns the time of the kill (time.time())."""
    pids = server_pids(lab, ns)
    if not pids:
        raise RuntimeError(f"no lab_server.py running in {ns}")
    t = time.time()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 5
    while server_pids(lab, ns) and time.time() < deadline:
        time.sleep(0.01)
    for p in lab.procs:   # reap the killed process if we started it (poll() reaps)
        p.poll()
    return t


def start_server(lab, ns, tcp_port=80, udp_port=53):
    """Start the lab server in `ns` with the same command the lab uses; returns the time its
    three listeners (tcp_port, UDP udp_port, TCP 7) were all up."""
    log = open(f"{lab.workdir}/{ns}-server.log", "a")
    p = subprocess.Popen(lab.ns(ns, f"{fl.PYTHON} {fl.SERVER} {ns} {tcp_port} {udp_port}").split(),
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab.procs.append(p)
    deadline = time.time() + 10
    while True:
        tcp = lab.run(ns, "ss -Hltn", capture=True)
        udp = lab.run(ns, f"ss -Hlun sport = :{udp_port}", capture=True)
        if f":{tcp_port} " in tcp and ":7 " in tcp and udp.strip():
            return time.time()
        if time.time() > deadline or p.poll() is not None:
            raise RuntimeError(f"lab server in {ns} did not start")
        time.sleep(0.01)


class StatusPoller:
    """Polls `fulcrumctl status --json` every `period` seconds in the caller's thread until
    `until(status)` is true or `timeout` passes; returns (seconds waited, last status)."""

    def __init__(self, lab, period=0.05):
        self.lab, self.period = lab, period

    def wait(self, until, timeout, since=None):
        t0 = since or time.time()
        last = None
        while True:
            now = time.time()
            try:
                last = status(self.lab)
            except (RuntimeError, ValueError):
                last = None
            if last is not None and until(last):
                return time.time() - t0, last
            if now - t0 > timeout:
                return None, last
            time.sleep(max(0.0, self.period - (time.time() - now)))


def lookups(lab, service, flows):
    """fulcrumctl lookup for every (client ip, client port) in `flows` (one fulcrumctl per flow,
    run by one shell): the list of backends chosen (\"\" when none)."""
    path = f"{lab.workdir}/lookup-flows.txt"
    with open(path, "w") as f:
        for ip, port in flows:
            f.write(f"{ip} {port}\n")
    script = (f"while read ip port; do {FULCRUMCTL} -s {lab.workdir}/fulcrumd.sock lookup {service} "
              f"$ip $port --json; echo; done < {path}")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120).stdout
    chosen = []
    for line in out.splitlines():
        if line.strip():
            chosen.append(json.loads(line).get("backend", ""))
    return chosen


def log_count(lab, text, start=0):
    """Occurrences of `text` in fulcrumd's log from byte offset `start`."""
    with open(lab.daemon_log) as f:
        f.seek(start)
        return f.read().count(text)


def log_size(lab):
    return os.path.getsize(lab.daemon_log)
