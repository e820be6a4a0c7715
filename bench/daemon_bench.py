#!/usr/bin/python3
"""daemon-bench: a real fulcrumd on a large config, seen from outside as an operator sees it.

In a lab of network namespaces (tests/system/fulcrum_lab.py: the balancer's eth0 with XDP
attached natively), fulcrumd starts on a generated config of --services services x --backends
backends with Maglev tables of --table-size slots. Every generated backend address (10.0.0.0/8) is
routed through the lab's one backend namespace, which has the whole /8 as local addresses (AnyIP)
and a listener on port 80 that accepts and closes: every backend's TCP health check passes, as in
a healthy fleet. Checks start up (`start_up: true`) and run every --check-interval (default 120s,
timeout 5s: at 100,000 backends ~830 checks/s, which this 2-core lab sustains next to the rest;
the health-check bench measures checks/s itself), so every table holds all of its backends and
health changes no table during the run.

Printed, each next to its target (issue 10): the time from exec to the control socket answering
(the first apply is synchronous at start, so it is inside), the daemon's RSS then (VmRSS) and its
peak (VmHWM), the time of `fulcrumctl reload` after one backend's weight changed in the file (the
reply comes once the apply is done: parse + validate + plan + map writes), of a reload with no
change, and the RSS after them; beside each time, fulcrumd's CPU time over the same span (user +
system, all threads: the steadier figure on a busy machine). It reports; it does not assert: exit 1
only if something could not run. Run as root: `ninja -C build daemon-bench`, or this file with FULCRUM_BUILD_DIR set."""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import lab_up  # noqa: E402

RSS_TARGET_MIB = 128
RELOAD_TARGET_S = 0.5
START_TARGET_S = 1.0


def vip_of(s):
    return f"198.19.{s // 256}.{s % 256}"


def backend_of(s, b):
    return f"10.{s // 256}.{s % 256}.{b + 1}"


LISTENER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(4096)
while True:
    s.accept()[0].close()
"""


def config_text(lab, services, backends, table_size, check_interval, weight0=100):
    out = [f"""interfaces:
  - name: eth0
    mode: native
tunnel:
  source_v4: {fl.BALANCER_V4}
bpf:
  pin_path: {lab.pin_path}
control:
  socket: {lab.workdir}/fulcrumd.sock
metrics:
  listen: 127.0.0.1:{lab.metrics_port()}
on_exit: detach
defaults:
  healthcheck: {{type: tcp, interval: {check_interval}, timeout: 5s, start_up: true}}
services:
"""]
    for s in range(services):
        out.append(f"  - name: svc{s}\n    vip: {vip_of(s)}\n    port: 80\n    protocol: tcp\n"
                   f"    table_size: {table_size}\n    backends:\n")
        for b in range(backends):
            weight = weight0 if s == 0 and b == 0 else 100
            out.append(f"      - address: {backend_of(s, b)}\n        weight: {weight}\n")
    return "".join(out)


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def largest_mappings(pid, count=6):
    """The daemon's largest mappings by resident size: [(name, KiB)], so the RSS can be explained."""
    found, name = [], ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = head[5] if len(head) > 5 else "[anonymous]"
            elif head[0] == "Rss:":
                found.append((name, int(head[1])))
    return sorted(found, key=lambda m: -m[1])[:count]


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", "--timeout", "600", *args],
                          capture_output=True, text=True, timeout=600)


def cpu_s(pid):
    """CPU time (user + system, every thread) the process has used so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_reload(lab, pid):
    """(wall s, daemon CPU s) of one fulcrumctl reload: on a busy machine the CPU time is the
    steadier figure (it leaves out time the daemon waited for a core)."""
    c, t = cpu_s(pid), time.monotonic()
    r = ctl(lab, "reload")
    elapsed, cpu = time.monotonic() - t, cpu_s(pid) - c
    if r.returncode != 0:
        raise RuntimeError("fulcrumctl reload failed: " + r.stdout + r.stderr)
    return elapsed, cpu


def run(args):
    lab = fl.Lab(backends=1, clients=1, prefix=f"fdb{os.getpid() % 10000}")
    lab_up(lab)
    try:
        lab.run(lab.balancer, f"ip route add 10.0.0.0/8 via {fl.backend_v4(1)}")
        backend = lab.backends[0]
        lab.run(backend, "ip route add local 10.0.0.0/8 dev lo")
        lab.procs.append(subprocess.Popen(lab.ns(backend, f"/usr/bin/python3 -c").split() + [LISTENER],
                                          start_new_session=True))
        path = lab.write_config(config_text(lab, args.services, args.backends, args.table_size,
                                            args.check_interval))
        log = open(f"{lab.workdir}/fulcrumd.log", "w")
        t0 = time.monotonic()
        daemon = subprocess.Popen(lab.ns(lab.balancer, f"{fl.FULCRUMD} -c {path}").split(),
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        lab.daemon = daemon
        while ctl(lab, "status", "--json").returncode != 0:
            if daemon.poll() is not None:
                raise RuntimeError("fulcrumd exited:\n" + open(f"{lab.workdir}/fulcrumd.log").read()[-3000:])
            if time.monotonic() - t0 > 600:
                raise RuntimeError("fulcrumd did not answer within 600 s")
            time.sleep(0.05)
        start_s = time.monotonic() - t0
        start_cpu_s = cpu_s(daemon.pid)
        at_start = memory_kib(daemon.pid)
        weight_s, nochange_s, weight_cpu, nochange_cpu = [], [], [], []
        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-g", "-o", args.perf, "-p", str(daemon.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        for rep in range(args.reps):
            lab.write_config(config_text(lab, args.services, args.backends, args.table_size,
                                         args.check_interval, weight0=200 if rep % 2 == 0 else 100))
            for walls, cpus in ((weight_s, weight_cpu), (nochange_s, nochange_cpu)):
                wall, cpu = timed_reload(lab, daemon.pid)
                walls.append(wall)
                cpus.append(cpu)
        if perf:
            perf.send_signal(2)
            perf.wait()
        after = memory_kib(daemon.pid)
        mappings = largest_mappings(daemon.pid)
        stats = json.loads(ctl(lab, "stats", "--json").stdout)
        lab.stop_fulcrumd()
    finally:
        lab.down(quiet=True)
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return {
        "services": args.services, "backends": args.backends, "table_size": args.table_size,
        "reloads_ok": stats.get("reloads_ok"),
        "start_s": start_s, "start_cpu_s": start_cpu_s, "weight_change_reload_s": median(weight_s),
        "weight_change_reload_all_s": weight_s, "no_change_reload_s": median(nochange_s),
        "weight_change_reload_cpu_s": median(weight_cpu), "weight_change_reload_cpu_all_s": weight_cpu,
        "no_change_reload_cpu_s": median(nochange_cpu),
        "rss_at_start_mib": at_start["VmRSS"] / 1024, "rss_after_reloads_mib": after["VmRSS"] / 1024,
        "peak_rss_mib": after["VmHWM"] / 1024, "largest_mappings": mappings,
    }


def met(value, target):
    return "met" if value <= target else "not met"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--backends", type=int, default=100)
    p.add_argument("--table-size", type=int, default=65537)
    p.add_argument("--check-interval", default="120s", help="health-check interval of every backend")
    p.add_argument("--reps", type=int, default=3, help="weight-change and no-change reloads (median)")
    p.add_argument("--perf", metavar="FILE", help="perf record -g fulcrumd during the reloads into FILE")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("daemon-bench: needs root (network namespaces, XDP)")
    try:
        r = run(args)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        sys.exit(f"daemon-bench: {e}")
    if args.json:
        print(json.dumps(r))
        return
    print(f"fulcrumd, {r['services']} services x {r['backends']} backends x {r['table_size']} slots")
    print(f"  exec to control socket answering (first apply inside): {r['start_s']:8.2f} s"
          f"   target <= {START_TARGET_S} s: {met(r['start_s'], START_TARGET_S)}")
    print(f"  reload, one backend's weight changed (median):         {r['weight_change_reload_s']:8.3f} s"
          f"   target <= {RELOAD_TARGET_S} s: {met(r['weight_change_reload_s'], RELOAD_TARGET_S)}")
    print(f"  reload, no change (median):                            {r['no_change_reload_s']:8.3f} s")
    print(f"  fulcrumd CPU time: to answering {r['start_cpu_s']:.2f} s, weight-change reload "
          f"{r['weight_change_reload_cpu_s']:.3f} s, no-change reload {r['no_change_reload_cpu_s']:.3f} s (medians)")
    print(f"  RSS after start:                                       {r['rss_at_start_mib']:8.1f} MiB"
          f"   target <= {RSS_TARGET_MIB} MiB: {met(r['rss_at_start_mib'], RSS_TARGET_MIB)}")
    print(f"  RSS after the reloads:                                 {r['rss_after_reloads_mib']:8.1f} MiB"
          f"   target <= {RSS_TARGET_MIB} MiB: {met(r['rss_after_reloads_mib'], RSS_TARGET_MIB)}")
    print(f"  peak RSS (VmHWM):                                      {r['peak_rss_mib']:8.1f} MiB")
    print("  largest mappings: " + ", ".join(f"{n} {k / 1024:.1f} MiB" for n, k in r["largest_mappings"]))


if __name__ == "__main__":
    main()
