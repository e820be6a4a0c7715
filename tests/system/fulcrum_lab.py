"""A Fulcrum lab on one machine, built from network namespaces: clients, the balancer (fulcrumd
with XDP attached), backends (fulcrum-decap, the VIPs on lo, real HTTP and UDP servers), all on
one bridge. Used by ./run demo and by the system tests. Every name carries a per-run prefix so two
runs never collide, and down() removes everything the lab made, also after a failure.

    198.18.0.100  2001:db8::100   client      routes VIPs via the balancer
    198.18.0.1    2001:db8::1     balancer    fulcrumd, XDP on eth0 (tunnel source)
    198.18.0.11.. 2001:db8::11..  backends    decap XDP on eth0, VIPs on lo, servers
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

SOURCE_DIR = os.environ.get("FULCRUM_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BUILD_DIR = os.environ.get("FULCRUM_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
# FULCRUM_FULCRUMD replaces this build's fulcrumd: tests/run_all runs some tests again against the
# ASan+UBSan build's (build-asan/, the asan/... runs).
FULCRUMD = os.environ.get("FULCRUM_FULCRUMD") or os.path.join(BUILD_DIR, "src", "cmd", "fulcrumd")
DECAP = os.path.join(BUILD_DIR, "src", "cmd", "fulcrum-decap")
CTL = os.path.join(BUILD_DIR, "src", "cmd", "fulcrumctl")
FLOORS = os.path.join(BUILD_DIR, "xdp", "floors.bpf.o")
SERVER = os.path.join(SOURCE_DIR, "tests", "system", "lab_server.py")
PYTHON = "/usr/bin/python3"  # Debian's, with Scapy

CLIENT_V4, CLIENT_V6 = "198.18.0.100", "2001:db8::100"
BALANCER_V4, BALANCER_V6 = "198.18.0.1", "2001:db8::1"


# Lab health checks: quick, so a lab settles (every backend checked) within a second.
FAST_HEALTH = """defaults:
  healthcheck: {type: tcp, interval: 500ms, timeout: 300ms, rise: 1, fall: 2}
"""


def backend_v4(i):
    return f"198.18.0.{10 + i}"


def backend_v6(i):
    return f"2001:db8::{10 + i}"


def sh(cmd, check=True, capture=False, timeout=120):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}{r.stderr}")
    return r.stdout if capture else r


class Lab:
    def __init__(self, backends=3, clients=1, prefix=None, metrics_port=None):
        self.prefix = prefix or f"fl{os.getpid() % 100000}"
        self.backends = [f"{self.prefix}-be{i}" for i in range(1, backends + 1)]
        self.clients = [f"{self.prefix}-cl{i}" for i in range(1, clients + 1)]
        self.client = self.clients[0]
        self.balancer = f"{self.prefix}-lb"
        self.switch = f"{self.prefix}-sw"
        self.workdir = f"/tmp/{self.prefix}-lab"
        self.pin_path = f"/sys/fs/bpf/{self.prefix}-lb"
        self.procs = []
        self.daemon = None
        self.daemon_log = None
        self._metrics_port = metrics_port or 19000 + os.getpid() % 1000

    # -- topology ---------------------------------------------------------------------------
    def ns(self, name, cmd):
        """A shell command inside namespace `name` (network namespace only: the host's mounts,
        including the host bpffs at /sys/fs/bpf, stay visible)."""
        return f"nsenter --net=/run/netns/{name} {cmd}"

    def run(self, name, cmd, check=True, capture=False):
        return sh(self.ns(name, cmd), check=check, capture=capture)

    def _host(self, name, port, v4, v6):
        sh(f"ip netns add {name}")
        self.run(name, "ip link set lo up")
        sh(f"ip link add eth0 netns {name} type veth peer name {port} netns {self.switch}")
        self.run(self.switch, f"ip link set {port} master br0 up")
        self.run(name, f"ip addr add {v4}/24 dev eth0")
        self.run(name, f"ip -6 addr add {v6}/64 dev eth0 nodad")
        self.run(name, "ip link set eth0 up")
        # Sockets on veth leave checksums to "hardware"; XDP-rewritten frames then arrive with a
        # bad checksum (LAB.md). Real NICs finish them; here the senders must.
        self.run(name, "ethtool -K eth0 tx off", check=False)

    def up(self):
        self.down(quiet=True)
        os.makedirs(self.workdir, exist_ok=True)
        sh(f"ip netns add {self.switch}")
        self.run(self.switch, "ip link set lo up")
        # No MLD snooping: with no querier it can starve IPv6 neighbour discovery.
        self.run(self.switch, "ip link add br0 type bridge mcast_snooping 0")
        self.run(self.switch, "ip link set br0 up")
        for i, c in enumerate(self.clients):
            self._host(c, f"{self.prefix}c{i + 1}"[-15:], f"198.18.0.{100 + i}", f"2001:db8::{100 + i}")
            self.run(c, f"ip route add 198.18.100.0/24 via {BALANCER_V4}")
            self.run(c, f"ip -6 route add 2001:db8:100::/64 via {BALANCER_V6}")
        self._host(self.balancer, f"{self.prefix}lb"[-15:], BALANCER_V4, BALANCER_V6)
        # The balancer's forwarding sysctls stay at their default (off): fulcrumd forwards service
        # packets through its next-hop cache, and every system test proves it (INTERFACE.md: no
        # host setting needed). tests/system/test_forwarding_off.py checks it explicitly.
        # XDP_TX into a veth is delivered only if the peer runs an XDP program (LAB.md).
        # xdp-loader refuses to run while another one holds its lock (labs built in parallel).
        for attempt in range(20):
            r = self.run(self.switch, f"xdp-loader load -m native -p /sys/fs/bpf/{self.prefix}-sw "
                                      f"-n floor_pass {self.prefix}lb {FLOORS}", check=False)
            if self.xdp_attached(self.switch, f"{self.prefix}lb"):
                break
            time.sleep(0.25)
        else:
            raise RuntimeError("could not attach the XDP_PASS program to the balancer's switch port:\n"
                               + r.stdout + r.stderr)
        for i, b in enumerate(self.backends, start=1):
            self._host(b, f"{self.prefix}b{i}"[-15:], backend_v4(i), backend_v6(i))
            for key, value in (("net.ipv4.conf.all.rp_filter", 0), ("net.ipv4.conf.eth0.rp_filter", 0),
                               ("net.ipv4.conf.all.arp_ignore", 1), ("net.ipv4.conf.all.arp_announce", 2)):
                self.run(b, f"sysctl -qw {key}={value}")
        return self

    def xdp_attached(self, ns, iface):
        out = self.run(ns, f"ip -j link show dev {iface}", capture=True)
        return "xdp" in json.loads(out)[0]

    def add_vip_to_backends(self, vip):
        plen = 128 if ":" in vip else 32
        for b in self.backends:
            self.run(b, f"ip addr add {vip}/{plen} dev lo" + (" nodad" if plen == 128 else ""))

    def attach_decap(self):
        """Decap on every backend, taking tunnels only from the balancer's tunnel sources. The VIPs
        must be on lo by now (add_vip_to_backends); sync_decap() picks up later ones."""
        for b in self.backends:
            self.run(b, f"{DECAP} attach eth0 --mode native --from {BALANCER_V4}/32 --from {BALANCER_V6}/128 "
                        f"--pin-path /sys/fs/bpf/{b}")

    def sync_decap(self):
        """Refreshes each backend's decap local addresses (after VIPs were added or removed)."""
        for b in self.backends:
            self.run(b, f"{DECAP} sync eth0 --pin-path /sys/fs/bpf/{b}")

    def start_servers(self, tcp_port=80, udp_port=53):
        """A real HTTP server and a UDP responder in each backend, answering with its name."""
        for b in self.backends:
            log = open(f"{self.workdir}/{b}-server.log", "w")
            p = subprocess.Popen(self.ns(b, f"{PYTHON} {SERVER} {b} {tcp_port} {udp_port}").split(),
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(p)
        deadline = time.time() + 10
        for b in self.backends:
            while not (self.run(b, f"ss -ltn sport = :{tcp_port}", capture=True).count("LISTEN") and
                       self.run(b, f"ss -lun sport = :{udp_port}", capture=True).count(f":{udp_port}")):
                if time.time() > deadline:
                    raise RuntimeError(f"server in {b} did not start")
                time.sleep(0.05)

    # -- fulcrumd ---------------------------------------------------------------------------
    def config_text(self, services, extra="", on_exit="detach"):
        return f"""interfaces:
  - name: eth0
    mode: native
tunnel:
  source_v4: {BALANCER_V4}
  source_v6: {BALANCER_V6}
bpf:
  pin_path: {self.pin_path}
control:
  socket: {self.workdir}/fulcrumd.sock
metrics:
  listen: 127.0.0.1:{self.metrics_port()}
on_exit: {on_exit}
{extra}services:
{services}{"" if "defaults:" in extra else FAST_HEALTH}"""

    def metrics_port(self):
        return self._metrics_port

    def write_config(self, text, name="fulcrum.yaml"):
        path = f"{self.workdir}/{name}"
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_fulcrumd(self, config_path, wait=True):
        self.daemon_log = f"{self.workdir}/fulcrumd.log"
        log = open(self.daemon_log, "a")
        log_start = log.tell()
        self.daemon = subprocess.Popen(self.ns(self.balancer, f"{FULCRUMD} -c {config_path}").split(),
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            deadline = time.time() + 20
            while time.time() < deadline:
                if self.daemon.poll() is not None:
                    raise RuntimeError("fulcrumd exited early:\n" + open(self.daemon_log).read())
                # Up, and health settled (every backend checked once, and the tables rebuilt from
                # it), so tests see stable state.
                if self.xdp_attached(self.balancer, "eth0"):
                    self.pin_balancer_rx()
                if (self.xdp_attached(self.balancer, "eth0") and self.metrics_up() and
                        "health now drives the tables" in open(self.daemon_log).read()[log_start:] and
                        self.scrape().get(("fulcrum_applies_total", (("cause", "health"),)), 0) >= 1):
                    return self.daemon
                time.sleep(0.1)
            raise RuntimeError("fulcrumd did not come up:\n" + open(self.daemon_log).read())
        return self.daemon

    def pin_balancer_rx(self, cpu=0):
        """Every frame the balancer receives goes through XDP on one CPU, as RSS keeps a flow on
        one CPU on a real NIC: the flow table is per CPU, and a veth has no RSS (a frame runs on
        whichever CPU has the veth's NAPI scheduled; tests/system/load_gen.py pin_rx_to_cpu has
        the story). Threaded NAPI on the balancer's eth0 (it exists once XDP is attached), its
        kthread pinned to `cpu`. Idempotent."""
        if getattr(self, "_rx_pinned", False):
            return
        import load_gen  # noqa: E402 (same directory)
        # `ip netns exec` remounts /sys for the namespace (nsenter --net would show the host's).
        if sh(f"ip netns exec {self.balancer} cat /sys/class/net/eth0/threaded", check=False,
              capture=True).strip() == "1":
            self._rx_pinned = True
            return
        load_gen.pin_rx_to_cpu(self, self.balancer, cpu=cpu)
        self._rx_pinned = True

    def stop_fulcrumd(self, sig=signal.SIGTERM, timeout=10):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            try:
                self.daemon.wait(timeout)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        code = self.daemon.returncode if self.daemon else None
        self.daemon = None
        return code

    def metrics_up(self):
        try:
            self.scrape()
            return True
        except Exception:
            return False

    def scrape(self):
        """The metrics endpoint, fetched from the balancer's namespace, as {(name, labels): value}."""
        out = self.run(self.balancer, f"curl -sf http://127.0.0.1:{self.metrics_port()}/metrics", capture=True)
        metrics = {}
        for line in out.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, value = line.rsplit(" ", 1)
            if "{" in name_labels:
                name, labels = name_labels.split("{", 1)
                pairs = tuple(sorted(tuple(kv.split("=", 1)) for kv in labels.rstrip("}").split(",") if kv))
                pairs = tuple((k, v.strip('"')) for k, v in pairs)
            else:
                name, pairs = name_labels, ()
            metrics[(name, pairs)] = float(value)
        return metrics

    # -- traffic ----------------------------------------------------------------------------
    def http_get_many(self, vip, count, client=None, port=80, timeout=5):
        """`count` real HTTP connections from a client; returns the list of backend names that
        answered (None for a failed connection)."""
        script = f"""
import socket, sys
names = []
for i in range({count}):
    fam = socket.AF_INET6 if ':' in '{vip}' else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout({timeout})
    try:
        s.connect(('{vip}', {port}))
        s.sendall(b'GET / HTTP/1.0\\r\\nHost: fulcrum\\r\\n\\r\\n')
        data = b''
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        names.append(data.split(b'\\r\\n\\r\\n', 1)[1].decode().strip())
    except Exception as e:
        names.append('ERROR ' + type(e).__name__)
    finally:
        s.close()
print('\\n'.join(names))
"""
        path = f"{self.workdir}/client-http.py"
        with open(path, "w") as f:
            f.write(script)
        out = self.run(client or self.client, f"{PYTHON} {path}", capture=True)
        return [None if n.startswith("ERROR") else n for n in out.splitlines()]

    def udp_ask_many(self, vip, count, client=None, port=53, timeout=2, first_port=None):
        """`count` UDP request/response exchanges, each from its own socket connected to the VIP
        (so the answer must come from the VIP), from distinct source ports first_port.. (default:
        chosen per run, so each exchange is a new flow)."""
        # Below the kernel's ephemeral range (32768..60999): a load generator's sockets in the same
        # namespace take ports there, and a bind onto one of them failed an exchange (EADDRINUSE).
        first_port = first_port or 20000 + (os.getpid() * 7 + int(time.time())) % 12000
        script = f"""
import socket
names = []
for i in range({count}):
    fam = socket.AF_INET6 if ':' in '{vip}' else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout({timeout})
    try:
        s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', {first_port} + i))
        s.connect(('{vip}', {port}))
        s.send(b'who')
        names.append(s.recv(512).decode().strip())
    except Exception as e:
        names.append('ERROR ' + type(e).__name__)
    finally:
        s.close()
print('\\n'.join(names))
"""
        path = f"{self.workdir}/client-udp.py"
        with open(path, "w") as f:
            f.write(script)
        out = self.run(client or self.client, f"{PYTHON} {path}", capture=True)
        return [None if n.startswith("ERROR") else n for n in out.splitlines()]

    # -- teardown ---------------------------------------------------------------------------
    def down(self, quiet=False):
        self.stop_fulcrumd() if self.daemon else None
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs = []
        for name in self.clients + [self.balancer] + self.backends + [self.switch]:
            # Whatever still runs in the namespace (also from an earlier run kept with --keep).
            pids = sh(f"ip netns pids {name}", check=False, capture=True) or ""
            for pid in pids.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(f"ip netns del {name}", check=False)
        for path in [self.pin_path, f"/sys/fs/bpf/{self.prefix}-sw"] + [f"/sys/fs/bpf/{b}" for b in self.backends]:
            shutil.rmtree(path, ignore_errors=True)
        if not os.environ.get("FULCRUM_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)
