"""Helpers shared by the DSR, host-traffic, bad-config and metrics system tests (built on
fulcrum_lab.py): step/check printing, a main() wrapper with a clear verdict, interface counters,
service YAML, a UDP client whose sockets are connected to the VIP, and a tcpdump sniffer."""
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402

_T0 = time.time()


class TestFailure(Exception):
    pass


def step(msg):
    print(f"[{time.time() - _T0:6.1f}s] {msg}", flush=True)


def check(cond, msg, detail=""):
    """Assert `cond`; print what it proved, or fail with `msg` and `detail`."""
    if not cond:
        raise TestFailure(f"{msg}" + (f"\n    {detail}" if detail else ""))
    print(f"    ok: {msg}", flush=True)


def main(name, body):
    """Run body(); exit 0 with 'PASS' or 1 with the failure and fulcrumd's log tail."""
    try:
        body()
    except TestFailure as e:
        print(f"FAIL {name}: {e}", flush=True)
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        print(f"FAIL {name}: unexpected error (above)", flush=True)
        sys.exit(1)
    print(f"PASS {name} ({time.time() - _T0:.1f}s)", flush=True)
    sys.exit(0)


def lab_up(lab, tries=6):
    """lab.up(), retried when attaching the switch port's XDP_PASS program fails: xdp-loader
    refuses to run while another xdp-loader holds its lock file ("Unable to read PID from
    lockfile: File exists"), which happens when labs are built concurrently."""
    for attempt in range(1, tries + 1):
        try:
            return lab.up()
        except RuntimeError as e:
            if "XDP_PASS" not in str(e) or attempt == tries:
                raise
            print(f"    (lab.up attempt {attempt}: {e}; xdp-loader busy elsewhere? retrying)", flush=True)
            time.sleep(0.2 + random.random())


def daemon_log_tail(lab, n=15):
    if lab.daemon_log and os.path.exists(lab.daemon_log):
        return "".join(open(lab.daemon_log).readlines()[-n:])
    return ""


def link_stats(lab, ns, iface="eth0"):
    """{'rx': packets, 'tx': packets, 'rx_bytes': .., 'tx_bytes': ..} of an interface in `ns`."""
    info = json.loads(lab.run(ns, f"ip -s -j link show dev {iface}", capture=True))[0]["stats64"]
    return {"rx": info["rx"]["packets"], "tx": info["tx"]["packets"],
            "rx_bytes": info["rx"]["bytes"], "tx_bytes": info["tx"]["bytes"]}


def mac_of(lab, ns, iface="eth0"):
    return json.loads(lab.run(ns, f"ip -j link show dev {iface}", capture=True))[0]["address"]


def service_yaml(name, vip, port, protocol, backends, table_size=None, hash_policy=None):
    """One entry of `services:`; backends is a list of (address, weight or None)."""
    lines = [f"  - name: {name}", f"    vip: {vip}", f"    port: {port}", f"    protocol: {protocol}"]
    if table_size:
        lines.append(f"    table_size: {table_size}")
    if hash_policy:
        lines.append(f"    hash: {hash_policy}")
    if protocol == "udp":  # the lab's UDP responder answers any datagram; a TCP check would fail
        lines.append("    healthcheck: {type: udp}")
    lines.append("    backends:")
    for address, weight in backends:
        lines.append(f"      - address: {address}")
        if weight is not None:
            lines.append(f"        weight: {weight}")
    return "\n".join(lines) + "\n"


def udp_ask_connected(lab, vip, count, port=53, client=None, timeout=2, payload=b"who", src_port_base=None):
    """Like lab.udp_ask_many, but each socket is connect()ed to the VIP, so the kernel delivers
    only datagrams whose source is exactly VIP:port; recvfrom's peer is checked too. With
    src_port_base, socket i is bound to source port src_port_base + i, so every exchange is surely
    a new flow (kernel-chosen ephemeral ports can repeat). Returns a list of
    (backend name or None, (peer address, port) or the error)."""
    script = f"""
import socket
fam = socket.AF_INET6 if ':' in {vip!r} else socket.AF_INET
for i in range({count}):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout({timeout})
    try:
        if {src_port_base!r} is not None:
            s.bind(('', {src_port_base!r} + i))
        s.connect(({vip!r}, {port}))
        s.send({payload!r})
        data, peer = s.recvfrom(512)
        print(data.decode().strip() + ' ' + peer[0] + ' ' + str(peer[1]))
    except Exception as e:
        print('ERROR ' + type(e).__name__)
    finally:
        s.close()
"""
    path = f"{lab.workdir}/client-udp-connected.py"
    with open(path, "w") as f:
        f.write(script)
    out = lab.run(client or lab.client, f"{fl.PYTHON} {path}", capture=True)
    result = []
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "ERROR":
            result.append((None, line))
        else:
            result.append((parts[0], (parts[1], int(parts[2]))))
    return result


class Sniffer:
    """tcpdump in a namespace, writing a pcap; stop() returns the packets (Scapy)."""

    def __init__(self, lab, ns, bpf_filter, iface="eth0", max_packets=20000):
        self.path = f"{lab.workdir}/{ns}-{int(time.time() * 1000)}.pcap"
        self.err = f"{self.path}.err"
        cmd = lab.ns(ns, f"tcpdump -i {iface} -B 16384 -nn -U --immediate-mode -c {max_packets} -w {self.path} '{bpf_filter}'")
        self.proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL,
                                     stderr=open(self.err, "w"), start_new_session=True)
        deadline = time.time() + 10
        while "listening on" not in open(self.err).read():
            if self.proc.poll() is not None or time.time() > deadline:
                raise TestFailure("tcpdump did not start: " + open(self.err).read())
            time.sleep(0.05)

    def stop(self):
        time.sleep(0.3)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        from scapy.all import rdpcap  # Debian's Scapy (/usr/bin/python3)
        return list(rdpcap(self.path)) if os.path.getsize(self.path) > 0 else []

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
