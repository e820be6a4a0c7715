#!/usr/bin/python3
"""forwarding-bench: frames forwarded per second on veth by XDP floors, the kernel and fulcrumd.

trafgen (one process, CPU 0) sends TCP ACKs with random source ports and addresses (--flows
distinct 5-tuples, default 65,536) from a generator namespace into a balancer namespace, whose
receive path (threaded NAPI of its in-interface) runs on CPU 1; what comes out is counted by an
XDP program (sink_count, xdp/floors.bpf.c) in a sink namespace, or back on the generator's own
veth for the one-interface cases. Cases, in every round, each after an untimed warm-up that opens
every flow:

  redirect floor   floor_redirect on in: MAC rewrite, devmap redirect to out
  kernel forward   no XDP; ip_forward=1, static neighbour; frames to the sink's address
  nftables DNAT    no XDP; ip_forward=1, nft dnat of VIP:80 to the sink's address (conntrack)
  fulcrumd         fulcrumd on in and out: Maglev + flow table, IPIP to backends behind out
  XDP_TX floor     floor_tx on in: swap MACs and addresses, XDP_TX back to the generator
  fulcrumd stick   the same fulcrumd, a VIP whose backends are behind in: IPIP, XDP_TX

Printed per case (median of --rounds): frames delivered per second in steady state, its ratio to
the redirect floor (and to the XDP_TX floor for the one-interface cases) from the same round, the
CPU time of the balancer's receive thread per delivered frame, and the program's own ns per run
from the kernel's bpf_stats (run_time_ns / run_cnt) for the XDP cases; then each case's path
check. It reports, it asserts nothing about speed: exit 1 only if something could not run or a
case's frames did not take its path. Everything it makes is removed, also on failure. Run as root:
`./run bench --forwarding [ARGS]`, or this file with FULCRUM_BUILD_DIR set (bench/README.md)."""
import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import fulcrum_lab as fl  # noqa: E402  (the build's paths: FULCRUMD, FLOORS, CTL)

GEN_CPU, RX_CPU = 0, 1
NICE = -20   # trafgen and the receive thread: on a shared machine, the others' jobs yield to them

# Addresses (LAB.md: 198.18.0.0/15 only). Generator side 198.18.1.0/24, sink side 198.18.2.0/24;
# the clients are 198.18.64.0/24 (routed back through the generator, so rp_filter is content).
GEN_ADDR, IN_ADDR = "198.18.1.1", "198.18.1.2"
OUT_ADDR, SINK_ADDR = "198.18.2.1", "198.18.2.2"
CLIENT_NET = "198.18.64"
VIP, STICK_VIP, PORT = "198.18.100.1", "198.18.100.2", 80
BACKENDS = [f"198.18.2.{10 + i}" for i in range(4)]        # behind out (the sink)
STICK_BACKENDS = [f"198.18.1.{10 + i}" for i in range(4)]  # behind in (the generator)
PORTS_PER_ADDR = 256
FIRST_PORT = 1024
WARMUP_PPS = 100000   # warm-up rate: slow enough that the balancer drops none of it

# sink_count's classes (enum sink_class in xdp/floors.bpf.c).
SINK_IPIP, SINK_TCP_MATCH, SINK_TCP_OTHER, SINK_OTHER = range(4)
CLASS_NAMES = ["ipip", "tcp_to_sink", "tcp_other", "other"]


# -- the bpf(2) calls the bench makes often (per-CPU counters while trafgen runs; statistics) ------
class Bpf:
    SYSCALL = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
    MAP_LOOKUP_ELEM, OBJ_GET, ENABLE_STATS = 1, 7, 32

    def __init__(self):
        machine = platform.machine()
        if machine not in self.SYSCALL:
            raise RuntimeError(f"no bpf(2) syscall number known for {machine}")
        self.nr = self.SYSCALL[machine]
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.cpus = possible_cpus()

    def _call(self, cmd, attr, what):
        buf = ctypes.create_string_buffer(bytes(attr), 128)
        r = self.libc.syscall(ctypes.c_long(self.nr), ctypes.c_long(cmd), buf, ctypes.c_uint(128))
        if r < 0:
            e = ctypes.get_errno()
            raise RuntimeError(f"bpf: {what}: {os.strerror(e)}")
        return r

    def obj_get(self, path):
        name = ctypes.create_string_buffer(path.encode())
        attr = ctypes.c_uint64(ctypes.addressof(name)).value.to_bytes(8, "little")
        return self._call(self.OBJ_GET, attr, f"cannot open pinned {path}")

    def percpu_u64(self, map_fd, key):
        """Sum over CPUs of a BPF_MAP_TYPE_PERCPU_ARRAY's u64 value at `key`."""
        k = ctypes.c_uint32(key)
        v = (ctypes.c_uint64 * self.cpus)()
        attr = (map_fd.to_bytes(4, "little") + bytes(4) + ctypes.addressof(k).to_bytes(8, "little")
                + ctypes.addressof(v).to_bytes(8, "little") + bytes(8))
        self._call(self.MAP_LOOKUP_ELEM, attr, f"lookup of key {key}")
        return sum(v)

    def enable_stats(self):
        """BPF_STATS_RUN_TIME for as long as the returned fd is open (the kernel drops it when this
        process ends, however it ends). System-wide: every program pays two clock reads per run."""
        return self._call(self.ENABLE_STATS, (0).to_bytes(4, "little"), "BPF_ENABLE_STATS(RUN_TIME)")


def possible_cpus():
    text = open("/sys/devices/system/cpu/possible").read().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n = max(n, int(hi or lo) + 1)
    return n


def sh(cmd, check=True, timeout=120):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}{r.stderr}")
    return r.stdout


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# -- the lab ------------------------------------------------------------------------------------
class Lab:
    """Three namespaces, two veth pairs:  gen [g] <-> [i] lb [o] <-> [s] sink.
    sink_count runs on s (the sink) and on g (the generator side: what the one-interface cases
    send back). Device names carry the run's prefix, so the receive thread is napi/<i>-N."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.gen, self.lb, self.sink = f"{prefix}-gen", f"{prefix}-lb", f"{prefix}-sink"
        self.g, self.i, self.o, self.s = (f"{prefix}{c}" for c in "gios")
        self.bpffs = f"/sys/fs/bpf/{prefix}"
        self.workdir = tempfile.mkdtemp(prefix=f"{prefix}-")
        self.pin_path = f"{self.bpffs}/fulcrumd"
        self.daemon = None
        self.procs = []
        self.fds = []
        self.mac = {}
        self.rx_threads = {}

    def ns(self, name, cmd):
        # nsenter --net keeps the host's mounts, so /sys/fs/bpf is the host's bpffs (ip netns exec
        # would remount /sys; LAB.md).
        return f"nsenter --net=/run/netns/{name} {cmd}"

    def run(self, name, cmd, check=True, timeout=120):
        return sh(self.ns(name, cmd), check=check, timeout=timeout)

    def up(self):
        for name in (self.gen, self.lb, self.sink):
            sh(f"ip netns add {name}")
            self.run(name, "ip link set lo up")
            # No IPv6 on the bench's links: no neighbour discovery or MLD frames in the counts.
            self.run(name, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        sh(f"ip link add {self.g} netns {self.gen} type veth peer name {self.i} netns {self.lb}")
        sh(f"ip link add {self.o} netns {self.lb} type veth peer name {self.s} netns {self.sink}")
        for name, dev, addr in ((self.gen, self.g, GEN_ADDR), (self.lb, self.i, IN_ADDR),
                                (self.lb, self.o, OUT_ADDR), (self.sink, self.s, SINK_ADDR)):
            self.run(name, f"ip addr add {addr}/24 dev {dev}")
            self.run(name, f"ip link set {dev} up")
            self.mac[dev] = json.loads(self.run(name, f"ip -j link show dev {dev}"))[0]["address"]
        # Static neighbours: the sinks drop everything in XDP, ARP too.
        for addr in [SINK_ADDR] + BACKENDS:
            self.run(self.lb, f"ip neigh replace {addr} lladdr {self.mac[self.s]} dev {self.o} nud permanent")
        for addr in [GEN_ADDR] + STICK_BACKENDS:
            self.run(self.lb, f"ip neigh replace {addr} lladdr {self.mac[self.g]} dev {self.i} nud permanent")
        self.run(self.lb, f"ip route add {CLIENT_NET}.0/24 via {GEN_ADDR} dev {self.i}")
        # trafgen sends through a pfifo (-q): veth stops its queue while the receiver's ring is
        # full, and a pfifo then queues and drops like a NIC's full ring (bench/flood.cpp).
        self.run(self.gen, f"tc qdisc replace dev {self.g} root pfifo limit 1024")
        # GRO on the balancer's in-interface gives it a NAPI without XDP (the kernel cases), and
        # keeps that NAPI, hence its pinned thread, while XDP programs come and go.
        self.run(self.lb, f"ethtool -K {self.i} gro on")
        # veth hands a frame to its peer's NAPI only if the sender cannot do TSO (else it takes the
        # backlog, on the sender's CPU: trafgen's). Attaching XDP turns the sender's TSO off by
        # itself; for the kernel cases it must be off too, or they would run on trafgen's CPU.
        self.run(self.gen, f"ethtool -K {self.g} tso off")
        os.makedirs(self.bpffs)
        self.sink_maps = {}
        for side, name, dev in (("sink", self.sink, self.s), ("gen", self.gen, self.g)):
            d = f"{self.bpffs}/{side}"
            sh(f"bpftool prog loadall {fl.FLOORS} {d} type xdp pinmaps {d}/maps")
            self.run(name, f"bpftool net attach xdpdrv pinned {d}/sink_count dev {dev}")
            self.sink_maps[side] = BPF.obj_get(f"{d}/maps/sink_counts")
            self.fds.append(self.sink_maps[side])
        sh(f"bpftool map update pinned {self.bpffs}/sink/maps/sink_match key 0 0 0 0 value "
           + " ".join(SINK_ADDR.split(".")))
        sh(f"bpftool map update pinned {self.bpffs}/gen/maps/sink_match key 0 0 0 0 value "
           + " ".join(GEN_ADDR.split(".")))
        # The floors' own copy (floor_redirect, floor_tx), loaded once.
        fl_dir = f"{self.bpffs}/floors"
        sh(f"bpftool prog loadall {fl.FLOORS} {fl_dir} type xdp pinmaps {fl_dir}/maps")
        hop = bytes.fromhex(self.mac[self.s].replace(":", "") + self.mac[self.o].replace(":", ""))
        sh(f"bpftool map update pinned {fl_dir}/maps/floor_redirect_hop key 0 0 0 0 value "
           + " ".join(str(b) for b in hop))
        # A devmap entry is an ifindex of the updating task's namespace: update from inside lb.
        ifindex = json.loads(self.run(self.lb, f"ip -j link show dev {self.o}"))[0]["ifindex"]
        self.run(self.lb, f"bpftool map update pinned {fl_dir}/maps/floor_redirect_port key 0 0 0 0 value "
                          + " ".join(str(b) for b in ifindex.to_bytes(4, "little")))
        self.pin_rx()
        return self

    # -- the balancer's receive thread ------------------------------------------------------------
    def napi_threads(self):
        prefix = f"napi/{self.i}-"[:15]
        out = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    comm = open(f"/proc/{pid}/comm").read().strip()
                except OSError:
                    continue
                if comm.startswith(prefix):
                    out[int(pid)] = comm
        return out

    def pin_rx(self):
        """Threaded NAPI on the balancer's in-interface, its thread on RX_CPU: the balancer's
        whole receive path (XDP or the stack, and what it sends on) runs there, away from trafgen
        (tests/system/load_gen.py pin_rx_to_cpu has why a veth needs this)."""
        # /sys under nsenter --net shows the host's devices; the namespace's own sysfs needs
        # `ip netns exec`.
        sh(f"ip netns exec {self.lb} sh -c 'echo 1 > /sys/class/net/{self.i}/threaded'")
        deadline = time.time() + 5
        while not self.napi_threads():
            if time.time() > deadline:
                raise RuntimeError(f"no napi/{self.i}-* thread after enabling threaded NAPI")
            time.sleep(0.02)
        self.check_rx_pinned()

    def check_rx_pinned(self):
        threads = self.napi_threads()
        if not threads:
            raise RuntimeError(f"the receive thread napi/{self.i}-* is gone")
        for pid in threads:
            if os.sched_getaffinity(pid) != {RX_CPU}:
                os.sched_setaffinity(pid, {RX_CPU})
            # As trafgen: the shared machine's other jobs get what is left (fulcrum-bench does the same).
            os.setpriority(os.PRIO_PROCESS, pid, NICE)
        self.rx_threads = threads
        return threads

    def rx_cpu_ns(self):
        """CPU time of the receive thread(s) so far (schedstat's sum_exec_runtime, ns). The sink's
        NAPI is scheduled from it and runs as its softirq, so this includes the sink's count."""
        total = 0
        for pid in self.rx_threads:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total

    # -- XDP on the balancer's in-interface -------------------------------------------------------
    def attach_in(self, prog):
        self.run(self.lb, f"bpftool net attach xdpdrv pinned {self.bpffs}/floors/{prog} dev {self.i} overwrite")

    def detach_in(self):
        self.run(self.lb, f"bpftool net detach xdpdrv dev {self.i}", check=False)

    def in_prog_id(self, dev=None):
        info = json.loads(self.run(self.lb, f"ip -j link show dev {dev or self.i}"))[0]
        return info.get("xdp", {}).get("prog", {}).get("id")

    # -- counters ---------------------------------------------------------------------------------
    def sink_counts(self, side):
        return [BPF.percpu_u64(self.sink_maps[side], c) for c in range(4)]

    def gen_tx(self):
        info = json.loads(self.run(self.gen, f"ip -s -j link show dev {self.g}"))[0]["stats64"]
        return info["tx"]["packets"]

    def qdisc_drops(self):
        q = json.loads(self.run(self.gen, f"tc -s -j qdisc show dev {self.g}"))
        return sum(x.get("drops", 0) for x in q)

    def lb_ip_stats(self):
        """The balancer namespace's Ip: counters (/proc/net/snmp is per namespace)."""
        lines = [l.split() for l in self.run(self.lb, "cat /proc/net/snmp").splitlines() if l.startswith("Ip:")]
        return dict(zip(lines[0][1:], map(int, lines[1][1:])))

    def prog_stats(self, prog_id):
        if prog_id is None:
            return None
        info = json.loads(sh(f"bpftool -j prog show id {prog_id}"))
        return info.get("run_cnt", 0), info.get("run_time_ns", 0)

    def sink_prog_id(self, side):
        return json.loads(sh(f"bpftool -j prog show pinned {self.bpffs}/{side}/sink_count"))["id"]

    # -- trafgen ----------------------------------------------------------------------------------
    def trafgen(self, config, packets, rate=None, sample=None, limit=120):
        """trafgen from the generator namespace, one process on GEN_CPU, bounded by -n and
        `timeout`. While it runs, sample() is called every 5 ms. Returns its wall time."""
        path = f"{self.workdir}/frames.trafgen"
        with open(path, "w") as f:
            f.write(config)
        cmd = (f"nice -n {NICE} taskset -c {GEN_CPU} timeout {limit} trafgen -o {self.g} -P 1 -q -t 0 --no-sock-mem "
               f"--notouch-irq -i {path} -n {packets}" + (f" -b {rate}pps" if rate else ""))
        t0 = time.monotonic()
        p = subprocess.Popen(self.ns(self.gen, cmd).split(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
        self.procs.append(p)
        while p.poll() is None:
            if sample:
                sample()
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        out = p.stdout.read()
        self.procs.remove(p)
        if p.returncode != 0:
            raise RuntimeError(f"trafgen failed (exit {p.returncode}): {cmd}\n{out[-2000:]}")
        return seconds

    # -- fulcrumd ---------------------------------------------------------------------------------
    def start_fulcrumd(self):
        """fulcrumd in the balancer namespace as the system tests start it (fulcrum_lab.py), on
        both interfaces, pinned to GEN_CPU so its own threads stay off the receive CPU; both
        services (two interfaces, stick) configured, each case using one."""
        def service(name, vip, backends):
            return (f"  - name: {name}\n    vip: {vip}\n    port: {PORT}\n    protocol: tcp\n    backends:\n"
                    + "".join(f"      - address: {b}\n" for b in backends))
        # No health check can pass (the sinks drop everything), so backends start up and are not
        # checked again within a run; no new-flow budget, so the warm-up records every flow.
        config = f"""interfaces:
  - name: {self.i}
    mode: native
  - name: {self.o}
    mode: native
tunnel:
  source_v4: {OUT_ADDR}
bpf:
  pin_path: {self.pin_path}
control:
  socket: {self.workdir}/fulcrumd.sock
metrics:
  listen: 127.0.0.1:9470
on_exit: detach
flows:
  new_per_second: 0
defaults:
  healthcheck: {{start_up: true, interval: 1h, timeout: 1s}}
services:
{service("two", VIP, BACKENDS)}{service("stick", STICK_VIP, STICK_BACKENDS)}"""
        path = f"{self.workdir}/fulcrum.yaml"
        with open(path, "w") as f:
            f.write(config)
        self.daemon_log = f"{self.workdir}/fulcrumd.log"
        log = open(self.daemon_log, "a")
        self.daemon = subprocess.Popen(self.ns(self.lb, f"taskset -c {GEN_CPU} {fl.FULCRUMD} -c {path}").split(),
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.daemon.poll() is not None:
                raise RuntimeError("fulcrumd exited early:\n" + open(self.daemon_log).read()[-3000:])
            if self.in_prog_id() and self.in_prog_id(self.o):
                try:
                    m = self.scrape()
                except RuntimeError:
                    m = {}
                up = [v for (n, _), v in m.items() if n == "fulcrum_backend_up"]
                if len(up) == len(BACKENDS) + len(STICK_BACKENDS) and all(v == 1 for v in up):
                    return
            time.sleep(0.1)
        raise RuntimeError("fulcrumd did not come up within 30 s:\n" + open(self.daemon_log).read()[-3000:])

    def stop_fulcrumd(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(15)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def scrape(self):
        """fulcrumd's metrics, {(name, ((label, value), ...)): value} (fulcrum_lab.py's format)."""
        r = subprocess.run(self.ns(self.lb, "curl -sf http://127.0.0.1:9470/metrics").split(),
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("cannot scrape fulcrumd's metrics")
        metrics = {}
        for line in r.stdout.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, value = line.rsplit(" ", 1)
            name, _, labels = name_labels.partition("{")
            pairs = tuple(sorted((k, v.strip('"')) for k, v in
                                 (kv.split("=", 1) for kv in labels.rstrip("}").split(",") if kv)))
            metrics[(name, pairs)] = float(value)
        return metrics

    # -- teardown ---------------------------------------------------------------------------------
    def down(self):
        try:
            self.stop_fulcrumd()
        except Exception:
            pass
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for name in (self.gen, self.lb, self.sink):
            for pid in sh(f"ip netns pids {name}", check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(f"ip netns del {name}", check=False)
        shutil.rmtree(self.bpffs, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


BPF = None


# -- frames -------------------------------------------------------------------------------------
def frames(lab, dst, flows, kind, randomly):
    """trafgen blocks: TCP `kind` ("syn" or "ack") from CLIENT_NET.0..A-1, ports FIRST_PORT..+255,
    to dst:80. randomly: one block, address and port drawn at random per frame (the timed runs);
    else one block per address with the port counting up, sent round robin, so the first
    `flows` frames are every flow once (the warm-up)."""
    addrs = flows // PORTS_PER_ADDR
    flags = "syn, seq=1" if kind == "syn" else "ack, seq=2, aseq=1"
    head = f"eth(da={lab.mac[lab.i]}, sa={lab.mac[lab.g]})"
    last_port = FIRST_PORT + PORTS_PER_ADDR - 1
    if randomly:
        # trafgen's drnd(0, 0) is not 0 (seen with --flows 256: the timed frames left the warmed
        # flows and went mid-stream), so one address is written as it is.
        source = f"sa={CLIENT_NET}.0, sa[3]=drnd(0, {addrs - 1})" if addrs > 1 else f"sa={CLIENT_NET}.0"
        return (f"{{ {head}, ipv4({source}, da={dst}, ttl=64, df), "
                f"tcp(sp=drnd({FIRST_PORT}, {last_port}), dp={PORT}, {flags}, win=512) }}\n")
    return "".join(f"{{ {head}, ipv4(sa={CLIENT_NET}.{a}, da={dst}, ttl=64, df), "
                   f"tcp(sp=dinc({FIRST_PORT}, {last_port}), dp={PORT}, {flags}, win=512) }}\n"
                   for a in range(addrs))


# -- cases --------------------------------------------------------------------------------------
class Case:
    """One way through the balancer namespace. setup()/teardown() around the runs of a round;
    `side`: which sink counts it; `cls`: the sink class its frames must arrive as."""

    def __init__(self, key, title, dst, side, cls, xdp):
        self.key, self.title, self.dst, self.side, self.cls, self.xdp = key, title, dst, side, cls, xdp
        self.runs = []

    def setup(self, lab):
        pass

    def warm(self, lab, flows):
        lab.trafgen(frames(lab, self.dst, flows, "ack", False), flows, rate=WARMUP_PPS)

    def teardown(self, lab):
        pass

    def prog_id(self, lab):
        return lab.in_prog_id() if self.xdp else None

    def fulcrum_snapshot(self, lab):
        return None

    def path(self, lab, run, before, after):
        """(ok, text): did the frames take this case's path?"""
        return True, ""


class FloorCase(Case):
    def __init__(self, key, title, dst, side, cls, prog):
        super().__init__(key, title, dst, side, cls, True)
        self.prog = prog

    def setup(self, lab):
        lab.attach_in(self.prog)

    def teardown(self, lab):
        lab.detach_in()

    def path(self, lab, run, before, after):
        runs, got = run["prog_runs"], run["delivered"]
        stack = run["lb_ip"]["InReceives"]
        ok = got <= runs and got >= 0.99 * runs and stack <= 0.001 * runs + 10
        return ok, f"{self.prog} ran {runs} times, the sink counted {got}; stack received {stack}"


class KernelCase(Case):
    def __init__(self, key, title, dst, nat):
        super().__init__(key, title, dst, "sink", SINK_TCP_MATCH, False)
        self.nat = nat

    def setup(self, lab):
        lab.run(lab.lb, "sysctl -qw net.ipv4.ip_forward=1")
        if self.nat:
            rules = (f"table ip {lab.prefix} {{\n  chain pre {{\n    type nat hook prerouting priority dstnat;\n"
                     f"    ip daddr {VIP} tcp dport {PORT} dnat to {SINK_ADDR}\n  }}\n}}")
            path = f"{lab.workdir}/dnat.nft"
            with open(path, "w") as f:
                f.write(rules + "\n")
            lab.run(lab.lb, f"nft -f {path}")

    def teardown(self, lab):
        if self.nat:
            lab.run(lab.lb, f"nft delete table ip {lab.prefix}", check=False)
        lab.run(lab.lb, "sysctl -qw net.ipv4.ip_forward=0", check=False)

    def path(self, lab, run, before, after):
        fwd, got, sent = run["lb_ip"]["ForwDatagrams"], run["delivered"], run["sent"]
        other = run["sink_other_classes"]
        ok = got >= 0.99 * fwd and other <= 0.001 * got + 10
        what = "DNAT'ed to" if self.nat else "forwarded to"
        return ok, (f"the stack forwarded {fwd} of {sent} sent; the sink counted {got} {what} {SINK_ADDR}, "
                    f"{other} otherwise")


class FulcrumCase(Case):
    def __init__(self, key, title, vip, service, side):
        super().__init__(key, title, vip, side, SINK_IPIP, True)
        self.service = service

    def setup(self, lab):
        # A fulcrumd of its own per case and round: empty flow tables. (One fulcrumd for both
        # cases overflowed new_flows: 250,000 entries by default, 125,000 per CPU, and first
        # packets stay there after their promotion until the LRU takes them.)
        lab.start_fulcrumd()

    def teardown(self, lab):
        lab.stop_fulcrumd()

    def warm(self, lab, flows):
        # As clients open them: a SYN (a first packet, new_flows), then an ACK (promoted to flows).
        before = self.fulcrum_snapshot(lab)
        lab.trafgen(frames(lab, self.dst, flows, "syn", False), flows, rate=WARMUP_PPS)
        lab.trafgen(frames(lab, self.dst, flows, "ack", False), flows, rate=WARMUP_PPS)
        d = delta(self.fulcrum_snapshot(lab), before)
        if d["new_flows"] != flows or d["mid_stream"] or d["budget"]:
            raise RuntimeError(f"{self.key}: warm-up did not open every flow: {d} (expected {flows} new flows)")

    def fulcrum_snapshot(self, lab):
        m = lab.scrape()
        get = lambda name, **l: m.get((name, tuple(sorted(l.items()))), 0.0)  # noqa: E731
        return {
            "packets": sum(v for (n, l), v in m.items()
                           if n == "fulcrum_service_packets_total" and ("service", self.service) in l),
            "new_flows": get("fulcrum_service_new_flows_total", service=self.service),
            "mid_stream": get("fulcrum_flows_not_recorded_total", reason="mid_stream"),
            "budget": get("fulcrum_flows_not_recorded_total", reason="budget"),
            "dropped": sum(v for (n, _), v in m.items() if n == "fulcrum_packets_dropped_total"),
            "passed": sum(v for (n, _), v in m.items() if n == "fulcrum_packets_passed_total"),
        }

    def path(self, lab, run, before, after):
        d = delta(after, before)
        got, runs = run["delivered"], run["prog_runs"]
        hits = d["packets"] - d["new_flows"] - d["mid_stream"] - d["budget"]
        ok = (d["packets"] == runs and hits == runs and not d["dropped"] and not d["passed"]
              and got <= runs and got >= 0.99 * runs)
        return ok, (f"balancer ran {runs} times: {int(d['packets'])} forwarded ({int(hits)} flow-table hits, "
                    f"{int(d['new_flows'])} new, {int(d['mid_stream'])} mid-stream), {int(d['dropped'])} dropped, "
                    f"{int(d['passed'])} passed; the sink counted {got} IPIP")


def delta(after, before):
    return {k: after[k] - before[k] for k in after}


def run_case(lab, case, packets, flows):
    """One timed run of `case` (set up and warmed by the caller): trafgen sends `packets` random
    frames; the sink is sampled every 5 ms for the steady-state rate."""
    lab.check_rx_pinned()
    prog = case.prog_id(lab)
    sink_prog = lab.sink_prog_id(case.side)
    sink0 = lab.sink_counts(case.side)
    tx0, q0, ip0 = lab.gen_tx(), lab.qdisc_drops(), lab.lb_ip_stats()
    fs0 = case.fulcrum_snapshot(lab)
    p0, sp0, cpu0 = lab.prog_stats(prog), lab.prog_stats(sink_prog), lab.rx_cpu_ns()
    base = sink0[case.cls]
    samples = []

    def sample():
        samples.append((time.monotonic(), BPF.percpu_u64(lab.sink_maps[case.side], case.cls) - base))

    seconds = lab.trafgen(frames(lab, case.dst, flows, "ack", True), packets, sample=sample)
    # The last frames still in the rings: wait until the count stops moving.
    last = None
    for _ in range(100):
        sample()
        if samples[-1][1] == last:
            break
        last = samples[-1][1]
        time.sleep(0.02)
    cpu1, p1, sp1 = lab.rx_cpu_ns(), lab.prog_stats(prog), lab.prog_stats(sink_prog)
    sink1 = lab.sink_counts(case.side)
    tx1, q1, ip1 = lab.gen_tx(), lab.qdisc_drops(), lab.lb_ip_stats()
    fs1 = case.fulcrum_snapshot(lab)
    delivered = sink1[case.cls] - sink0[case.cls]
    run = {
        "trafgen_seconds": seconds,
        "sent": tx1 - tx0,
        "qdisc_drops": q1 - q0,
        "delivered": delivered,
        "sink_classes": {CLASS_NAMES[c]: sink1[c] - sink0[c] for c in range(4)},
        "sink_other_classes": sum(sink1[c] - sink0[c] for c in range(4) if c != case.cls),
        "delivered_pps": steady_rate(samples, delivered, seconds),
        "rx_cpu_ns_per_frame": (cpu1 - cpu0) / delivered if delivered else None,
        "lb_ip": {k: ip1[k] - ip0[k] for k in ("InReceives", "ForwDatagrams", "InDiscards", "OutNoRoutes")},
        "prog_runs": p1[0] - p0[0] if p0 else None,
        "prog_ns_per_run": (p1[1] - p0[1]) / (p1[0] - p0[0]) if p0 and p1[0] > p0[0] else None,
        "sink_ns_per_run": (sp1[1] - sp0[1]) / (sp1[0] - sp0[0]) if sp1[0] > sp0[0] else None,
    }
    ok, text = case.path(lab, run, fs0, fs1)
    run["path_ok"], run["path"] = ok, text
    return run


def steady_rate(samples, total, seconds):
    """Frames per second between the samples where the count passed 10 % and 90 % of the total:
    trafgen's start and the drain after it are left out."""
    if total < 1000:
        return total / seconds if seconds else None
    a = next((s for s in samples if s[1] >= 0.1 * total), None)
    b = next((s for s in samples if s[1] >= 0.9 * total), None)
    if not a or not b or b[0] <= a[0]:
        return total / seconds
    return (b[1] - a[1]) / (b[0] - a[0])


def make_cases():
    return [
        FloorCase("redirect_floor", "XDP redirect floor (floor_redirect, in -> out)", VIP, "sink",
                  SINK_TCP_OTHER, "floor_redirect"),
        KernelCase("kernel_forward", "kernel forwarding (ip_forward, static neighbour)", SINK_ADDR, nat=False),
        KernelCase("nft_dnat", "nftables DNAT of VIP:80 to one address", VIP, nat=True),
        FloorCase("tx_floor", "XDP_TX floor (floor_tx, back out of in)", VIP, "gen", SINK_TCP_OTHER, "floor_tx"),
        FulcrumCase("fulcrumd", "fulcrumd, IPIP out of the second interface", VIP, "two", "sink"),
        FulcrumCase("fulcrumd_stick", "fulcrumd on a stick, IPIP XDP_TX back out of in", STICK_VIP, "stick",
                    "gen"),
    ]


def run_bench(args):
    cases = [c for c in make_cases() if not args.cases or c.key in args.cases]
    lab = Lab(f"fw{os.getpid() % 100000}")
    stats_fd = BPF.enable_stats()
    try:
        lab.up()
        for rnd in range(args.rounds):
            for case in cases:
                case.setup(lab)
                case.warm(lab, args.flows)
                run = run_case(lab, case, args.packets, args.flows)
                run["round"] = rnd
                case.runs.append(run)
                case.teardown(lab)
                if not args.json:
                    print(f"  round {rnd + 1}: {case.key:15s} {fmt(run['delivered_pps'], 0):>10s} frames/s  "
                          f"path: {'ok' if run['path_ok'] else 'WRONG'}", file=sys.stderr, flush=True)
    finally:
        lab.down()
        os.close(stats_fd)
    return cases


def fmt(x, digits=2):
    return "-" if x is None else f"{x:,.{digits}f}"


# The floor each XDP case's program time is compared with: the same way out.
FLOOR_OF = {"fulcrumd": "redirect_floor", "fulcrumd_stick": "tx_floor"}


def summarize(cases, args):
    by = {c.key: c for c in cases}

    def per_round_ratio(key, floor):
        if floor not in by:
            return None
        return median([a["delivered_pps"] / b["delivered_pps"]
                       for a, b in zip(by[key].runs, by[floor].runs) if a["delivered_pps"] and b["delivered_pps"]])

    out = []
    for c in cases:
        r = c.runs
        row = {
            "case": c.key, "title": c.title,
            "delivered_pps": median([x["delivered_pps"] for x in r]),
            "vs_redirect_floor": per_round_ratio(c.key, "redirect_floor"),
            "vs_tx_floor": per_round_ratio(c.key, "tx_floor") if c.side == "gen" else None,
            "rx_cpu_ns_per_frame": median([x["rx_cpu_ns_per_frame"] for x in r]),
            "prog_ns_per_run": median([x["prog_ns_per_run"] for x in r]),
            "sink_ns_per_run": median([x["sink_ns_per_run"] for x in r]),
            "sent_pps": median([x["sent"] / x["trafgen_seconds"] for x in r]),
            "qdisc_drop_share": median([x["qdisc_drops"] / args.packets for x in r]),
            "path_ok": all(x["path_ok"] for x in r),
            # The program's cost above its floor's, from the same round (LAB.md: report it beside ratios).
            "prog_ns_above_floor": median([a["prog_ns_per_run"] - b["prog_ns_per_run"]
                                           for a, b in zip(r, by[FLOOR_OF[c.key]].runs)
                                           if a["prog_ns_per_run"] and b["prog_ns_per_run"]])
            if FLOOR_OF.get(c.key) in by else None,
            "runs": r,
        }
        out.append(row)
    return out


def print_table(rows, args, header):
    print(header)
    print(f"{'case':50s} {'frames/s':>10s} {'/redirect':>9s} {'/tx':>6s} {'rx CPU':>8s} {'prog':>7s}"
          f" {'above':>6s} {'sent/s':>10s} {'qdisc':>6s}")
    print(f"{'':50s} {'delivered':>10s} {'floor':>9s} {'floor':>6s} {'ns/frame':>8s} {'ns/run':>7s}"
          f" {'floor':>6s} {'(trafgen)':>10s} {'drops':>6s}")
    for r in rows:
        print(f"{r['title']:50s} {fmt(r['delivered_pps'], 0):>10s} {fmt(r['vs_redirect_floor']):>9s} "
              f"{fmt(r['vs_tx_floor']):>6s} {fmt(r['rx_cpu_ns_per_frame'], 0):>8s} {fmt(r['prog_ns_per_run'], 0):>7s} "
              f"{fmt(r['prog_ns_above_floor'], 0):>6s} {fmt(r['sent_pps'], 0):>10s} {r['qdisc_drop_share'] * 100:5.1f}%")
    print("\npaths (each round):")
    for r in rows:
        for x in r["runs"]:
            print(f"  {r['case']:15s} round {x['round'] + 1}: {'ok' if x['path_ok'] else 'WRONG PATH'}: {x['path']}")
    print("\nframes/s: delivered at the sink in steady state (10 %..90 % of the run), median of rounds; "
          "/redirect floor, /tx floor: same-round ratios, median; rx CPU: the balancer's receive thread's CPU "
          "time per delivered frame (the sink's count included); prog: bpf_stats run_time_ns / run_cnt of the "
          "XDP program on in; above floor: prog ns/run minus its floor's (redirect floor for fulcrumd, XDP_TX floor on a stick), same round, median; sent/s: what trafgen got into the veth per second of its wall time; qdisc drops: "
          "share of trafgen's frames its pfifo dropped (the balancer's ring full: the balancer's CPU is the "
          "limit; near 0 %: trafgen is).")


def main():
    global BPF
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=1000000, help="frames per timed run (default 1,000,000)")
    p.add_argument("--flows", type=int, default=65536,
                   help="distinct flows, a multiple of 256 up to 65,536 (default 65,536)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every case (default 3; median shown)")
    p.add_argument("--cases", type=lambda t: t.split(","), default=None,
                   help="comma-separated subset of: " + ", ".join(c.key for c in make_cases())
                   + " (default: all; a ratio needs its floor in the run)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = p.parse_args()
    unknown = set(args.cases or []) - {c.key for c in make_cases()}
    if unknown:
        p.error("--cases: unknown " + ", ".join(sorted(unknown)))
    if args.flows % PORTS_PER_ADDR or not PORTS_PER_ADDR <= args.flows <= 256 * PORTS_PER_ADDR:
        p.error("--flows: a multiple of 256 from 256 to 65536")
    if args.packets < 10000 or args.rounds < 1:
        p.error("--packets at least 10000, --rounds at least 1")
    if os.geteuid() != 0:
        sys.exit("forwarding-bench: needs root (network namespaces, XDP)")
    for tool in ("trafgen", "bpftool", "nft", "ethtool", "curl"):
        if not shutil.which(tool):
            sys.exit(f"forwarding-bench: {tool} not found (./run installs netsniff-ng, bpftool, nftables, ...)")
    for path in (fl.FULCRUMD, fl.FLOORS):
        if not os.path.exists(path):
            sys.exit(f"forwarding-bench: {path} is missing (build first: ./run build)")
    # SIGTERM ends the run through the same cleanup as an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("forwarding-bench: terminated"))
    os.sched_setaffinity(0, {GEN_CPU})
    load = open("/proc/loadavg").read().split()[:3]
    header = (f"forwarding-bench: {args.packets:,} frames per run, {args.flows:,} flows (random source "
              f"address and port), {args.rounds} rounds; kernel {platform.release()}, {os.cpu_count()} CPUs, "
              f"load average {' '.join(load)} at start; trafgen on CPU {GEN_CPU}, receive thread on CPU {RX_CPU}, "
              f"both at nice {NICE}")
    try:
        BPF = Bpf()
        cases = run_bench(args)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        sys.exit(f"forwarding-bench: {e}")
    rows = summarize(cases, args)
    load_end = open("/proc/loadavg").read().split()[:3]
    if args.json:
        print(json.dumps({"packets": args.packets, "flows": args.flows, "rounds": args.rounds,
                          "kernel": platform.release(), "loadavg_start": load, "loadavg_end": load_end,
                          "cases": rows}))
    else:
        print_table(rows, args, header + f"; load average {' '.join(load_end)} at end")
    if not all(r["path_ok"] for r in rows):
        print("forwarding-bench: a case's frames did not take its path (WRONG PATH above)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
