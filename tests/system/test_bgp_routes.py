#!/usr/bin/python3
"""VIP route injection for BGP (ARCHITECTURE.md "routes", config routes.table / routes.need), with
real BIRD 2 speakers in network namespaces:

    lb1 (198.18.1.1, 2001:db8:1::1) ──eth1── router ──eth2── lb2 (198.18.2.1, 2001:db8:2::1)
    BIRD: kernel table 100 (learn,           BIRD: BGP from both balancers,
          krt_source = 201) -> BGP AS 65001        kernel export with `merge paths on`, AS 65000

Proves, on the router's kernel routing table (what really steers traffic):
- a stale Fulcrum route (protocol 201) left in table 100 by a crashed daemon is announced until
  route injection starts, and is gone from the balancer and the router within 10 s after;
  a route of another protocol in the same table is left alone (and BIRD does not export it);
- with healthy >= routes.need the router has the VIPs (IPv4 and IPv6) via the balancer within
  10 s; with healthy < need they disappear within 10 s;
- ECMP: two balancers announcing the same VIPs give one multipath route with both balancers as
  next hops; one balancer withdrawing leaves a single path; withdraw_all (on_exit: detach) on the
  other removes the route;
- two real fulcrumd with the same services and hash seed, one per balancer, choose the same
  backend for the same 3,000 flows (`fulcrumctl lookup ... --json`), so ECMP may send a flow's
  packets to either balancer.

Route injection is done by fulcrumd itself (`routes: {table: 100, need: 2}`), driven by its health
checks: each balancer's services (web on VIP4 with 4 IPv4 backends, web6 on VIP6 with 4 IPv6
backends) check every backend with an exec check `test -e FILE` (one file per balancer and backend,
interval 200ms, rise 1, fall 1); set_healthy(balancer, n) creates the files of the first n backends
and removes the others, then waits until `fulcrumctl status` shows n healthy in both services
(routes are synced in the same apply). withdraw_all is fulcrumd stopping with on_exit: detach."""
import json
import os
import signal
import string
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, main, step  # noqa: E402

FULCRUMCTL = os.path.join(fl.BUILD_DIR, "src", "cmd", "fulcrumctl")
BIRD_DIR = os.path.join(fl.SOURCE_DIR, "tests", "system", "bird")
PROTO = 201          # routes::kRouteProtocol
TABLE = 100          # routes.table
NEED = 2             # routes.need
VIP4, VIP6 = "198.18.100.10", "2001:db8:100::10"
STALE = "198.18.100.99"     # left by "a crashed fulcrumd" (protocol 201)
FOREIGN = "198.18.100.98"   # someone else's route in the same table (protocol static)
ROUTE_WAIT = 10.0
# One fulcrumctl process per lookup: 1,000 of them took 20-60 s on the 2-core VMs (process start
# dominates), 3,000 timed out at 90 s on a slower one. Agreement of two balancers is as clear on 1,000.
FLOWS = 1000
BACKENDS = 4


class Balancer:
    def __init__(self, lab, i):
        self.i = i
        self.ns = f"{lab.prefix}-lb{i}"
        self.v4, self.v6 = f"198.18.{i}.1", f"2001:db8:{i}::1"
        self.router_v4, self.router_v6 = f"198.18.{i}.254", f"2001:db8:{i}::fe"
        self.bird = None
        self.fulcrumd = None


class BgpLab:
    def __init__(self):
        self.prefix = f"bgp{os.getpid() % 100000}"
        self.router = f"{self.prefix}-rt"
        self.workdir = f"/tmp/{self.prefix}-lab"
        self.balancers = [Balancer(self, 1), Balancer(self, 2)]
        self.router_bird = None
        self.procs = []

    def run(self, ns, cmd, check=True, capture=False):
        return fl.sh(f"nsenter --net=/run/netns/{ns} {cmd}", check=check, capture=capture)

    def up(self):
        os.makedirs(self.workdir, exist_ok=True)
        fl.sh(f"ip netns add {self.router}")
        self.run(self.router, "ip link set lo up")
        for key in ("net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding"):
            self.run(self.router, f"sysctl -qw {key}=1")
        for b in self.balancers:
            fl.sh(f"ip netns add {b.ns}")
            self.run(b.ns, "ip link set lo up")
            fl.sh(f"ip link add eth0 netns {b.ns} type veth peer name eth{b.i} netns {self.router}")
            self.run(b.ns, f"ip addr add {b.v4}/24 dev eth0")
            self.run(b.ns, f"ip -6 addr add {b.v6}/64 dev eth0 nodad")
            self.run(b.ns, "ip link set eth0 up")
            self.run(self.router, f"ip addr add {b.router_v4}/24 dev eth{b.i}")
            self.run(self.router, f"ip -6 addr add {b.router_v6}/64 dev eth{b.i} nodad")
            self.run(self.router, f"ip link set eth{b.i} up")

    def start_bird(self, ns, template, **values):
        name = ns.rsplit("-", 1)[1]
        conf = f"{self.workdir}/{name}.conf"
        values["LOG"] = f"{self.workdir}/{name}-bird.log"
        with open(os.path.join(BIRD_DIR, template)) as f:
            text = string.Template(f.read()).substitute(values)
        with open(conf, "w") as f:
            f.write(text)
        sock, pid = f"{self.workdir}/{name}.ctl", f"{self.workdir}/{name}.pid"
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "bird", "-f", "-c", conf, "-s", sock,
                              "-P", pid], stdout=open(f"{self.workdir}/{name}-bird.out", "w"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        deadline = time.time() + 10
        while not os.path.exists(sock):
            if p.poll() is not None or time.time() > deadline:
                raise TestFailure(f"bird in {ns} did not start:\n" + open(f"{self.workdir}/{name}-bird.out").read())
            time.sleep(0.05)
        return sock

    def birdc(self, sock, cmd):
        return fl.sh(f"birdc -s {sock} {cmd}", capture=True, check=False)

    def start_router_bird(self):
        neighbours = []
        for b in self.balancers:
            neighbours.append(f"protocol bgp lb{b.i}_4 from balancer4 {{ local {b.router_v4}; "
                              f"neighbor {b.v4} as 65001; }}")
            neighbours.append(f"protocol bgp lb{b.i}_6 from balancer6 {{ local {b.router_v6}; "
                              f"neighbor {b.v6} as 65001; }}")
        self.router_bird = self.start_bird(self.router, "router.conf.in", ROUTER_ID="198.18.1.254",
                                           LOCAL_AS=65000, NEIGHBOURS="\n".join(neighbours))

    def start_balancer_bird(self, b):
        b.bird = self.start_bird(b.ns, "balancer.conf.in", ROUTER_ID=b.v4, TABLE=TABLE, LOCAL4=b.v4,
                                 LOCAL6=b.v6, LOCAL_AS=65001, ROUTER4=b.router_v4, ROUTER6=b.router_v6,
                                 ROUTER_AS=65000)

    def wait_established(self, b, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.birdc(b.bird, "show protocols")
            if all(any(line.startswith(p) and "Established" in line for line in out.splitlines())
                   for p in ("uplink4", "uplink6")):
                return
            time.sleep(0.2)
        raise TestFailure(f"BGP sessions of {b.ns} not established:\n{out}")

    def router_nexthops(self, vip):
        """The router's kernel route to vip (main table) as a set of next-hop addresses; None if
        it has no route."""
        fam = "-6" if ":" in vip else "-4"
        out = self.run(self.router, f"ip {fam} -j route show {vip}", capture=True).strip()
        routes = json.loads(out) if out else []
        if not routes:
            return None
        r = routes[0]
        if "nexthops" in r:
            return {h["gateway"] for h in r["nexthops"]}
        return {r["gateway"]} if "gateway" in r else {"dev " + r.get("dev", "?")}

    def our_routes(self, b):
        """Fulcrum's routes (protocol 201) in table 100 of balancer b."""
        out = []
        for fam in ("-4", "-6"):
            r = self.run(b.ns, f"ip {fam} -j route show table {TABLE} proto {PROTO}", check=False)
            if r.returncode != 0 and "table does not exist" in r.stderr:
                continue  # the kernel drops an empty table (IPv6)
            if r.returncode != 0:
                raise TestFailure(f"ip route show in {b.ns} failed: {r.stderr}")
            text = r.stdout.strip()
            out += [x["dst"] for x in (json.loads(text) if text else [])]
        return set(out)

    def down(self):
        for b in self.balancers:
            if b.fulcrumd and b.fulcrumd.poll() is None:
                b.fulcrumd.send_signal(signal.SIGTERM)
                try:
                    b.fulcrumd.wait(10)
                except subprocess.TimeoutExpired:
                    b.fulcrumd.kill()
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        for ns in [b.ns for b in self.balancers] + [self.router]:
            fl.sh(f"ip netns del {ns}", check=False)
        for b in self.balancers:
            fl.sh(f"rm -rf /sys/fs/bpf/{b.ns}", check=False)
            lock = "/run/fulcrum/lock" + f"/sys/fs/bpf/{b.ns}".replace("/", "_")
            if os.path.exists(lock):
                os.unlink(lock)
        if not os.environ.get("FULCRUM_KEEP_LOGS"):
            fl.sh(f"rm -rf {self.workdir}", check=False)


def health_file(lab, b, k):
    return f"{lab.workdir}/{b.ns}-healthy-{k}"


def start_fulcrumd(lab, b):
    """fulcrumd in balancer b with routes: {table: TABLE, need: NEED}; waits until its first checks
    are done (health drives the tables and the routes)."""
    path = f"{lab.workdir}/{b.ns}.yaml"
    with open(path, "w") as f:
        f.write(fulcrumd_config(lab, b))
    log = f"{lab.workdir}/{b.ns}-fulcrumd.log"
    start = os.path.getsize(log) if os.path.exists(log) else 0
    b.fulcrumd = subprocess.Popen(["nsenter", f"--net=/run/netns/{b.ns}", fl.FULCRUMD, "-c", path],
                                  stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)

    def settled():
        if b.fulcrumd.poll() is not None:
            raise TestFailure(f"fulcrumd in {b.ns} exited:\n" + open(log).read()[-3000:])
        with open(log) as f:
            f.seek(start)
            return "health now drives the tables" in f.read()
    return wait_for(f"fulcrumd in {b.ns} up with its first checks done", settled, timeout=20)


def status(lab, b):
    r = subprocess.run([FULCRUMCTL, "-s", f"{lab.workdir}/{b.ns}.sock", "status", "--json"],
                       capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def set_healthy(lab, b, n):
    """The first n backends of each service of balancer b (web on VIP4, web6 on VIP6) pass their
    checks, the others fail; returns once fulcrumd's status shows n healthy in both."""
    for k in range(1, BACKENDS + 1):
        path = health_file(lab, b, k)
        if k <= n:
            open(path, "w").close()
        elif os.path.exists(path):
            os.unlink(path)

    def applied():
        st = status(lab, b)
        return st is not None and all(s["healthy"] == n for s in st["services"])
    return wait_for(f"fulcrumd in {b.ns} shows {n} healthy backends per service", applied, timeout=5)


def withdraw_all(b):
    """fulcrumd stops with on_exit: detach: it withdraws its routes."""
    b.fulcrumd.send_signal(signal.SIGTERM)
    try:
        code = b.fulcrumd.wait(10)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"fulcrumd in {b.ns} did not stop on SIGTERM")
    if code != 0:
        raise TestFailure(f"fulcrumd in {b.ns} exited {code}")


def wait_for(what, predicate, timeout=ROUTE_WAIT):
    """Polls predicate() until true; returns the seconds it took, or fails naming `what`."""
    t0 = time.time()
    while True:
        if predicate():
            return time.time() - t0
        if time.time() - t0 > timeout:
            raise TestFailure(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def fulcrumd_config(lab, b):
    def backends(fmt):
        out = ""
        for k in range(1, BACKENDS + 1):
            out += f"      - address: {fmt(k)}\n"
            if k == 2:
                out += "        weight: 200\n"
            out += f'        healthcheck: {{command: "test -e {health_file(lab, b, k)}"}}\n'
        return out
    return f"""interfaces:
  - name: eth0
    mode: native
tunnel:
  source_v4: {b.v4}
  source_v6: {b.v6}
bpf:
  pin_path: /sys/fs/bpf/{b.ns}
  hash_seed: 4242
control:
  socket: {lab.workdir}/{b.ns}.sock
metrics:
  listen: 127.0.0.1:{19600 + os.getpid() % 300 + b.i}
routes: {{table: {TABLE}, need: {NEED}}}
on_exit: detach
defaults:
  healthcheck: {{type: exec, command: "false", interval: 200ms, timeout: 200ms, rise: 1, fall: 1}}
services:
  - name: web
    vip: {VIP4}
    port: 80
    protocol: tcp
    table_size: 65537
    min_healthy: 0
    backends:
{backends(lambda k: f"198.18.10.{10 + k}")}  - name: web6
    vip: {VIP6}
    port: 80
    protocol: tcp
    min_healthy: 0
    backends:
{backends(lambda k: f"2001:db8:10::{10 + k}")}"""


def lookups(lab, b):
    """fulcrumctl lookup for FLOWS client flows -> list of the backend chosen per flow."""
    sock = f"{lab.workdir}/{b.ns}.sock"
    flows = f"{lab.workdir}/flows.txt"
    script = (f"while read ip port; do {FULCRUMCTL} -s {sock} lookup web $ip $port --json; "
              f"echo; done < {flows}")
    return subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test():
    for exe in ("bird", "birdc"):
        if subprocess.run(["which", exe], capture_output=True).returncode != 0:
            raise TestFailure(f"{exe} is not installed (Debian package bird2; ./run installs it)")
    lab = BgpLab()
    lb1, lb2 = lab.balancers
    try:
        step("namespaces: router with lb1 on eth1 and lb2 on eth2")
        lab.up()

        step(f"stale route {STALE} (protocol {PROTO}) and foreign route {FOREIGN} (static) in lb1's table {TABLE}")
        lab.run(lb1.ns, f"ip route add {STALE}/32 dev lo table {TABLE} proto {PROTO}")
        lab.run(lb1.ns, f"ip route add {FOREIGN}/32 dev lo table {TABLE} proto static")

        step("BIRD in the router and in lb1; BGP up")
        lab.start_router_bird()
        lab.start_balancer_bird(lb1)
        lab.wait_established(lb1)
        check(True, "lb1's BGP sessions (IPv4 and IPv6) to the router are established")
        t = wait_for("router learns the stale route", lambda: lab.router_nexthops(STALE) == {lb1.v4})
        check(True, f"router routes the stale VIP {STALE} to lb1 ({t:.1f} s): a crashed daemon's "
                    "route keeps attracting traffic until cleaned up")
        check(lab.router_nexthops(FOREIGN) is None,
              f"router has no route to {FOREIGN}: BIRD exports only protocol {PROTO} (krt_source filter)")

        step(f"fulcrumd starts in lb1 (routes: table {TABLE}, need {NEED}); every check fails: 0 healthy")
        t = start_fulcrumd(lab, lb1)
        check(True, f"fulcrumd in lb1 up, first checks done ({t:.1f} s)")
        t = set_healthy(lab, lb1, 0)
        check(True, "fulcrumctl status: web and web6 have 0 healthy backends")
        check(lab.our_routes(lb1) == set(), f"lb1's table {TABLE} has no Fulcrum route left",
              str(lab.our_routes(lb1)))
        foreign = lab.run(lb1.ns, f"ip route show table {TABLE} {FOREIGN}", capture=True)
        check("proto static" in foreign, f"the foreign route {FOREIGN} (proto static) is untouched", foreign)
        t = wait_for("router drops the stale route", lambda: lab.router_nexthops(STALE) is None)
        check(True, f"router no longer routes {STALE} ({t:.1f} s)")
        check(lab.router_nexthops(VIP4) is None and lab.router_nexthops(VIP6) is None,
              "router has no route to the VIPs (no healthy backends)")

        step(f"healthy = {NEED} >= need: the checks of {NEED} backends per service pass")
        t = set_healthy(lab, lb1, NEED)
        check(True, f"fulcrumctl status: {NEED} healthy in web and web6 after {t:.1f} s")
        check(lab.our_routes(lb1) == {VIP4, VIP6}, f"lb1's table {TABLE} has {VIP4} and {VIP6} (protocol {PROTO})",
              str(lab.our_routes(lb1)))
        t4 = wait_for(f"router routes {VIP4} via lb1", lambda: lab.router_nexthops(VIP4) == {lb1.v4})
        t6 = wait_for(f"router routes {VIP6} via lb1", lambda: lab.router_nexthops(VIP6) == {lb1.v6})
        check(True, f"router routes {VIP4} via {lb1.v4} ({t4:.1f} s) and {VIP6} via {lb1.v6} ({t6:.1f} s)")

        step(f"healthy = {NEED - 1} < need: one more backend fails its check")
        set_healthy(lab, lb1, NEED - 1)
        t4 = wait_for(f"router drops {VIP4}", lambda: lab.router_nexthops(VIP4) is None)
        t6 = wait_for(f"router drops {VIP6}", lambda: lab.router_nexthops(VIP6) is None)
        check(lab.our_routes(lb1) == set(), f"lb1's table {TABLE} is empty of Fulcrum routes")
        check(True, f"router has no route to {VIP4} ({t4:.1f} s) nor to {VIP6} ({t6:.1f} s)")

        step("ECMP: lb2 with BIRD and fulcrumd too; both balancers healthy")
        lab.start_balancer_bird(lb2)
        lab.wait_established(lb2)
        start_fulcrumd(lab, lb2)
        set_healthy(lab, lb1, NEED)
        set_healthy(lab, lb2, NEED + 1)
        t4 = wait_for(f"router has a 2-path route to {VIP4}", lambda: lab.router_nexthops(VIP4) == {lb1.v4, lb2.v4})
        t6 = wait_for(f"router has a 2-path route to {VIP6}", lambda: lab.router_nexthops(VIP6) == {lb1.v6, lb2.v6})
        check(True, f"router: {VIP4} multipath via {lb1.v4} and {lb2.v4} ({t4:.1f} s); "
                    f"{VIP6} via {lb1.v6} and {lb2.v6} ({t6:.1f} s)")
        print("    " + lab.run(lab.router, f"ip route show {VIP4}", capture=True).strip().replace("\n", "\n    "))

        step("lb2 loses its backends (every check fails)")
        set_healthy(lab, lb2, 0)
        t4 = wait_for(f"router routes {VIP4} via lb1 only", lambda: lab.router_nexthops(VIP4) == {lb1.v4})
        t6 = wait_for(f"router routes {VIP6} via lb1 only", lambda: lab.router_nexthops(VIP6) == {lb1.v6})
        check(True, f"router: single path via lb1 ({t4:.1f} s, {t6:.1f} s)")

        step("fulcrumd in lb1 stops (SIGTERM) with on_exit: detach: it withdraws its routes")
        withdraw_all(lb1)
        check(lab.our_routes(lb1) == set(), f"lb1's table {TABLE} is empty of Fulcrum routes")
        t4 = wait_for(f"router drops {VIP4}", lambda: lab.router_nexthops(VIP4) is None)
        t6 = wait_for(f"router drops {VIP6}", lambda: lab.router_nexthops(VIP6) is None)
        check(True, f"router has no route to the VIPs ({t4:.1f} s, {t6:.1f} s)")

        step(f"two fulcrumd (lb1, lb2), same services and hash_seed: {FLOWS} flows looked up on both")
        with open(f"{lab.workdir}/flows.txt", "w") as f:
            for i in range(FLOWS):
                f.write(f"198.18.{50 + i // 250}.{1 + i % 250} {1024 + (i * 7919) % 64000}\n")
        start_fulcrumd(lab, lb1)
        for b in lab.balancers:
            set_healthy(lab, b, BACKENDS)
            st = status(lab, b)
            backends = st["services"][0]["backends"]
            check(all(x["state"] == "active" and x["health"] == "up" for x in backends),
                  f"fulcrumd in {b.ns}: 4 backends of web up and active")
        t0 = time.time()
        procs = [lookups(lab, b) for b in lab.balancers]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        answers = []
        for b, out in zip(lab.balancers, outs):
            chosen = []
            for line in out.splitlines():
                if line.strip():
                    try:
                        chosen.append(json.loads(line)["backend"])
                    except (ValueError, KeyError):
                        raise TestFailure(f"fulcrumctl lookup in {b.ns}: unexpected answer {line!r}")
            check(len(chosen) == FLOWS, f"{b.ns}: {FLOWS} lookups answered", f"got {len(chosen)}")
            answers.append(chosen)
        same = sum(1 for x, y in zip(*answers) if x == y)
        spread = {}
        for x in answers[0]:
            spread[x] = spread.get(x, 0) + 1
        check(same == FLOWS, f"lb1 and lb2 choose the same backend for {same}/{FLOWS} flows "
                             f"({time.time() - t0:.1f} s of lookups)", f"{FLOWS - same} differ")
        check(len(spread) == 4, f"the flows spread over all 4 backends: {dict(sorted(spread.items()))}")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_bgp_routes", test)
