#!/usr/bin/python3
"""Health-check load benchmark: fulcrumd checking 10,000 backends every second.

    sudo FULCRUM_BUILD_DIR=build /usr/bin/python3 bench/health_bench.py [--backends 10000]
        [--services 10] [--seconds 30] [--interval 1s] [--timeout 500ms] [--capture 5] [--json]

Two network namespaces joined by a veth pair:
    PREFIX-lb  198.18.0.1  fulcrumd (XDP on eth0), route 198.19.0.0/18 via the backend namespace
    PREFIX-be  198.18.0.2  `ip route add local 198.19.0.0/18 dev lo` (AnyIP: every address of the
                            /18 is local), one TCP listener on 0.0.0.0:8080 (two processes
                            accepting and closing)
fulcrumd gets SERVICES services x BACKENDS/SERVICES backends (198.19.0.1, 198.19.0.2, ...), tcp
checks to port 8080, interval 1s, timeout 500ms, rise 1, fall 2, default jitter (0.1). Once every
backend is up it measures, over --seconds:
  - fulcrumd's CPU (utime+stime from /proc/PID/stat and per thread from /proc/PID/task/*/stat), as
    % of one core; the listener's CPU for comparison;
  - checks done (fulcrum_healthcheck_duration_seconds_count), failures by reason, and the
    distribution of check durations (the histogram's buckets summed over all backends);
then, for --capture seconds, every SYN reaching the backend namespace (tcpdump): checks started per
100 ms (spread of start times over the second), and each backend's time between two checks.
The metrics scrapes and the capture happen outside the CPU window. Prints a table (with --json:
on stderr, and one JSON object on stdout); asserts nothing (the targets: 10 % of one core, 32 MiB). Cleans up everything it made, also on failure.
"""
import argparse
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.setdefault("FULCRUM_SOURCE_DIR", os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "system"))
import fulcrum_lab as fl  # noqa: E402

PORT = 8080
# Issue 10's targets for 10,000 checks a second (bench/RESULTS.md reads them from the JSON).
CPU_TARGET_PERCENT = 10.0
RSS_TARGET_MIB = 32.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

LISTENER = r"""
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(65535)
if os.fork() == 0:
    pass   # two processes accept on the one socket
while True:
    c, _ = s.accept()
    c.close()
"""


def parse_duration(text):
    text = text.strip()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    raise ValueError(text)


def args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", type=int, default=10000)
    p.add_argument("--services", type=int, default=10)
    p.add_argument("--seconds", type=float, default=30.0, help="CPU measurement window")
    p.add_argument("--interval", default="1s")
    p.add_argument("--timeout", default="500ms")
    p.add_argument("--capture", type=float, default=5.0, help="seconds of SYN capture (0: none)")
    p.add_argument("--prefix", default=f"hb{os.getpid() % 100000}")
    p.add_argument("--perf", type=float, default=0, help="after the window: perf record fulcrumd this many "
                                                          "seconds and print the top symbols")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout at the end (the table goes to stderr)")
    return p.parse_args()


class Bench:
    def __init__(self, a):
        self.a = a
        self.lb, self.be = f"{a.prefix}-lb", f"{a.prefix}-be"
        self.workdir = f"/tmp/{a.prefix}-bench"
        self.pin_path = f"/sys/fs/bpf/{a.prefix}-lb"
        self.metrics = f"127.0.0.1:{19500 + os.getpid() % 400}"
        self.procs = []
        self.daemon = None

    def ns(self, name, cmd, check=True, capture=False):
        return fl.sh(f"nsenter --net=/run/netns/{name} {cmd}", check=check, capture=capture)

    def up(self):
        os.makedirs(self.workdir, exist_ok=True)
        for n in (self.lb, self.be):
            fl.sh(f"ip netns add {n}")
            self.ns(n, "ip link set lo up")
        fl.sh(f"ip link add eth0 netns {self.lb} type veth peer name eth0 netns {self.be}")
        self.ns(self.lb, "ip addr add 198.18.0.1/24 dev eth0")
        self.ns(self.be, "ip addr add 198.18.0.2/24 dev eth0")
        for n in (self.lb, self.be):
            self.ns(n, "ip link set eth0 up")
        self.ns(self.lb, "ip route add 198.19.0.0/18 via 198.18.0.2")
        self.ns(self.be, "ip route add local 198.19.0.0/18 dev lo")
        for key, value in (("net.ipv4.ip_local_port_range", "'1024 65535'"), ("net.ipv4.tcp_tw_reuse", 1),
                           ("net.ipv4.conf.eth0.forwarding", 1)):
            self.ns(self.lb, f"sysctl -qw {key}={value}")
        for key, value in (("net.core.somaxconn", 65535), ("net.ipv4.tcp_max_syn_backlog", 65535)):
            self.ns(self.be, f"sysctl -qw {key}={value}")
        path = f"{self.workdir}/listener.py"
        with open(path, "w") as f:
            f.write(LISTENER)
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.be}", fl.PYTHON, path, str(PORT)],
                             stdout=subprocess.DEVNULL, stderr=open(f"{self.workdir}/listener.log", "w"),
                             start_new_session=True)
        self.procs.append(p)
        deadline = time.time() + 5
        while f":{PORT} " not in self.ns(self.be, "ss -Hltn", capture=True):
            if time.time() > deadline:
                raise RuntimeError("listener did not start")
            time.sleep(0.05)

    def addresses(self):
        return [f"198.19.{k // 256}.{k % 256}" for k in range(1, self.a.backends + 1)]

    def config(self):
        a = self.a
        per = a.backends // a.services
        addrs = self.addresses()
        lines = [f"""interfaces:
  - name: eth0
    mode: native
tunnel:
  source_v4: 198.18.0.1
bpf:
  pin_path: {self.pin_path}
control:
  socket: {self.workdir}/fulcrumd.sock
metrics:
  listen: {self.metrics}
on_exit: detach
defaults:
  healthcheck: {{type: tcp, port: {PORT}, interval: {a.interval}, timeout: {a.timeout}, rise: 1, fall: 2}}
services:"""]
        for s in range(a.services):
            lines.append(f"""  - name: svc{s}
    vip: 198.18.100.{s + 1}
    port: 80
    protocol: tcp
    backends:""")
            for addr in addrs[s * per:(s + 1) * per]:
                lines.append(f"      - address: {addr}")
        path = f"{self.workdir}/fulcrum.yaml"
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start_fulcrumd(self, config):
        self.log = f"{self.workdir}/fulcrumd.log"
        t0 = time.time()
        self.daemon = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.lb}", fl.FULCRUMD, "-c", config],
                                       stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                       start_new_session=True)
        deadline = time.time() + 90
        while "health now drives the tables" not in open(self.log).read():
            if self.daemon.poll() is not None or time.time() > deadline:
                raise RuntimeError("fulcrumd did not settle:\n" + open(self.log).read()[-3000:])
            time.sleep(0.1)
        return time.time() - t0

    def scrape(self):
        out = self.ns(self.lb, f"curl -sf http://{self.metrics}/metrics", capture=True)
        m = {}
        for line in out.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, value = line.rsplit(" ", 1)
            m[name_labels] = float(value)
        return m

    def down(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for n in (self.lb, self.be):
            for pid in fl.sh(f"ip netns pids {n}", check=False, capture=True).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            fl.sh(f"ip netns del {n}", check=False)
        shutil.rmtree(self.pin_path, ignore_errors=True)
        lock = "/run/fulcrum/lock" + self.pin_path.replace("/", "_")
        if os.path.exists(lock):
            os.unlink(lock)
        if not os.environ.get("FULCRUM_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def cpu_ticks(pid, split=False):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    if split:
        return int(fields[11]), int(fields[12])   # utime, stime
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
            comm = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            out[int(tid)] = (comm, int(fields[11]) + int(fields[12]))
        except (OSError, ValueError):
            pass
    return out


def family_pids(root):
    """root and its descendants (the listener forks)."""
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def histogram(m0, m1):
    """Check-duration histogram summed over every backend between two scrapes:
    [(le, cumulative count)], total count, total seconds."""
    by_le = {}
    for key, v in m1.items():
        if key.startswith("fulcrum_healthcheck_duration_seconds_bucket{"):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            by_le[le] = by_le.get(le, 0) + v - m0.get(key, 0)
    count = sum(v - m0.get(k, 0) for k, v in m1.items() if k.startswith("fulcrum_healthcheck_duration_seconds_count{"))
    total = sum(v - m0.get(k, 0) for k, v in m1.items() if k.startswith("fulcrum_healthcheck_duration_seconds_sum{"))
    les = sorted(by_le, key=lambda x: float("inf") if x == "+Inf" else float(x))
    return [(le, by_le[le]) for le in les], count, total


def failures(m0, m1):
    out = {}
    for key, v in m1.items():
        if key.startswith("fulcrum_healthcheck_failures_total{"):
            reason = key.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = out.get(reason, 0) + v - m0.get(key, 0)
    return {k: int(v) for k, v in out.items() if v}


def percentile_bucket(cum, count, q):
    for le, c in cum:
        if c >= q * count:
            return le
    return "+Inf"


def capture_syns(b, seconds):
    pcap = f"{b.workdir}/syn.pcap"
    err = f"{b.workdir}/tcpdump.err"
    p = subprocess.Popen(f"nsenter --net=/run/netns/{b.be} tcpdump -i eth0 -B 65536 -nn -w {pcap} "
                         f"'tcp dst port {PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn'",
                         shell=True, stdout=subprocess.DEVNULL, stderr=open(err, "w"), start_new_session=True)
    deadline = time.time() + 10
    while "listening on" not in open(err).read():
        if p.poll() is not None or time.time() > deadline:
            raise RuntimeError("tcpdump did not start: " + open(err).read())
        time.sleep(0.05)
    time.sleep(seconds)
    os.killpg(p.pid, signal.SIGINT)
    p.wait(10)
    dropped = [x for x in open(err).read().splitlines() if "dropped by kernel" in x]
    out = subprocess.run(["tcpdump", "-tt", "-nn", "-r", pcap], capture_output=True, text=True).stdout
    syns = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[1] == "IP":
            syns.append((float(parts[0]), parts[4].rsplit(".", 1)[0]))
    return syns, (dropped[0] if dropped else "")


def main():
    a = args()
    b = Bench(a)
    # With --json the human table goes to stderr and stdout carries only the JSON object.
    say = functools.partial(print, file=sys.stderr if a.json else sys.stdout)
    result = {"backends": a.backends, "services": a.services, "interval": a.interval, "timeout": a.timeout,
              "cpus": os.cpu_count(), "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    interval, timeout = parse_duration(a.interval), parse_duration(a.timeout)
    try:
        say(f"health_bench: {a.backends} backends in {a.services} services, tcp checks every {a.interval} "
              f"(timeout {a.timeout}, jitter 0.1), {os.cpu_count()} CPUs", flush=True)
        b.up()
        config = b.config()
        settle = b.start_fulcrumd(config)
        pid = b.daemon.pid
        say(f"  fulcrumd up and settled (every backend checked) in {settle:.1f} s", flush=True)
        time.sleep(3)   # past the start-up burst
        s0 = time.time()
        m0 = b.scrape()
        s0 = (s0 + time.time()) / 2
        listener = [p for root in b.procs for p in family_pids(root.pid)]
        c0, t0, th0 = cpu_ticks(pid), time.time(), thread_ticks(pid)
        us0 = cpu_ticks(pid, split=True)
        l0 = sum(cpu_ticks(p) for p in listener)
        time.sleep(a.seconds)
        c1, t1, th1 = cpu_ticks(pid), time.time(), thread_ticks(pid)
        us1 = cpu_ticks(pid, split=True)
        l1 = sum(cpu_ticks(p) for p in listener)
        s1 = time.time()
        m1 = b.scrape()
        s1 = (s1 + time.time()) / 2
        wall = t1 - t0
        cpu = (c1 - c0) / CLK_TCK / wall * 100
        lcpu = (l1 - l0) / CLK_TCK / wall * 100
        cum, count, total = histogram(m0, m1)
        fails = failures(m0, m1)
        up = sum(1 for k, v in m1.items() if k.startswith("fulcrum_backend_up{") and v == 1)
        with open(f"/proc/{pid}/status") as f:
            status = {k: v.split()[0] for k, _, v in (x.partition(":") for x in f) if k.startswith("Rss") or k == "VmRSS"}
        rss = status["VmRSS"]

        say()
        say(f"  {'measured over':<44} {wall:.1f} s (scrapes outside the window)")
        say(f"  {'fulcrumd CPU (user+sys), % of one core':<44} {cpu:.1f} %   (target <= {CPU_TARGET_PERCENT:.0f} %: "
            f"{'met' if cpu <= CPU_TARGET_PERCENT else 'not met'})")
        say(f"  {'  user / system':<44} {(us1[0] - us0[0]) / CLK_TCK / wall * 100:.1f} % / "
              f"{(us1[1] - us0[1]) / CLK_TCK / wall * 100:.1f} %  (system includes softirq work the kernel "
              f"charges to fulcrumd: on a veth the backend's side of each handshake runs in the sender's context)")
        per_thread = {}
        for tid, (comm, ticks) in th1.items():
            per_thread[comm] = per_thread.get(comm, 0) + ticks - th0.get(tid, (comm, 0))[1]
        busy = sorted(per_thread.items(), key=lambda x: -x[1])
        say(f"  {'  by thread':<44} " + ", ".join(f"{c} {t / CLK_TCK / wall * 100:.1f} %" for c, t in busy[:4]))
        say(f"  {'listener CPU (2 accept loops), % of one core':<44} {lcpu:.1f} %")
        say(f"  {'fulcrumd RSS':<44} {int(rss) / 1024:.0f} MiB   (target <= {RSS_TARGET_MIB:.0f} MiB: "
            f"{'met' if int(rss) / 1024 <= RSS_TARGET_MIB else 'not met'})")
        say(f"  {'  anonymous / file-backed / shared':<44} {int(status['RssAnon']) / 1024:.1f} / "
            f"{int(status['RssFile']) / 1024:.1f} / {int(status['RssShmem']) / 1024:.1f} MiB  (file-backed: the "
            f"binary's and libraries' pages in use)")
        say(f"  {'backends up at the end':<44} {up} of {a.backends}")
        say(f"  {'checks done between the two scrapes':<44} {count:.0f} in {s1 - s0:.1f} s = {count / (s1 - s0):.0f}/s "
              f"(ideal {a.backends / interval:.0f}/s less the check duration: the interval counts from a "
              f"check's end)")
        say(f"  {'failed checks by reason':<44} {fails or 'none'}")
        result.update({"settle_s": settle, "window_s": wall, "cpu_percent": cpu,
                       "user_percent": (us1[0] - us0[0]) / CLK_TCK / wall * 100,
                       "system_percent": (us1[1] - us0[1]) / CLK_TCK / wall * 100,
                       "listener_cpu_percent": lcpu, "rss_mib": int(rss) / 1024, "backends_up": up,
                       "rss_anon_mib": int(status["RssAnon"]) / 1024, "rss_file_mib": int(status["RssFile"]) / 1024,
                       "checks_per_second": count / (s1 - s0), "failures": fails,
                       "mean_check_ms": 1000 * total / count if count else None,
                       "cpu_target_percent": CPU_TARGET_PERCENT, "rss_target_mib": RSS_TARGET_MIB})
        if count:
            say(f"  {'check duration: mean':<44} {1000 * total / count:.2f} ms")
            say(f"  {'check duration: p50 / p90 / p99 / max (le)':<44} "
                  + " / ".join(f"<= {percentile_bucket(cum, count, q)} s" for q in (0.5, 0.9, 0.99, 1.0)))
            prev = 0
            row = []
            for le, c in cum:
                if c - prev:
                    row.append(f"<= {le}: {c - prev:.0f}")
                prev = c
            say(f"  {'check duration histogram (non-empty)':<44} " + ", ".join(row))

        if a.perf > 0:
            data = f"{b.workdir}/perf.data"
            subprocess.run(["perf", "record", "-q", "-F", "499", "-g", "-o", data, "-p", str(pid), "--", "sleep",
                            str(a.perf)], capture_output=True)
            rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "1.5",
                                  "-g", "none", "--sort", os.environ.get("HB_PERF_SORT", "dso,symbol")]
                                 + (["--dsos", os.environ["HB_PERF_DSOS"]] if os.environ.get("HB_PERF_DSOS") else []), capture_output=True, text=True).stdout
            say("  perf (self time, >= 1.5 %):")
            for line in rep.splitlines():
                if line.strip() and not line.startswith("#"):
                    say("    " + line.strip()[:150])
        if a.capture > 0:
            syns, dropped = capture_syns(b, a.capture)
            say(f"  {'SYN capture':<44} {len(syns)} SYNs in {a.capture:.0f} s {dropped}")
            if syns:
                start = syns[0][0]
                nb = int(a.capture / 0.1) - 1
                buckets = [0] * nb
                for t, _ in syns:
                    i = int((t - start) / 0.1)
                    if i < nb:
                        buckets[i] += 1
                mean = statistics.mean(buckets)
                say(f"  {'checks started per 100 ms':<44} min {min(buckets)}, mean {mean:.0f}, max {max(buckets)}, "
                      f"stdev {statistics.pstdev(buckets):.0f} (ideal {a.backends * 0.1 / interval:.0f} each)")
                times = sorted(t for t, _ in syns)
                holes = sorted(((times[i + 1] - times[i]), times[i] - start) for i in range(len(times) - 1))[-3:]
                say(f"  {'longest times with no check starting':<44} "
                      + ", ".join(f"{1000 * g:.0f} ms (at +{at:.2f} s)" for g, at in reversed(holes))
                      + f" (mean gap {1000 * a.capture / max(1, len(times)):.2f} ms)")
                last, gaps = {}, []
                for t, dst in syns:
                    if dst in last:
                        gaps.append(t - last[dst])
                    last[dst] = t
                gaps.sort()
                if gaps:
                    q = lambda x: gaps[min(len(gaps) - 1, int(x * len(gaps)))]  # noqa: E731
                    say(f"  {'time between two checks of a backend':<44} p1 {1000 * q(0.01):.0f} ms, "
                          f"p50 {1000 * q(0.5):.0f} ms, p99 {1000 * q(0.99):.0f} ms, max {1000 * gaps[-1]:.0f} ms "
                          f"({len(gaps)} intervals; jitter +-{100 * 0.1:.0f} % of {interval * 1000:.0f} ms)")
        say()
        if a.json:
            result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
            print(json.dumps(result))
    finally:
        b.down()


if __name__ == "__main__":
    main()
