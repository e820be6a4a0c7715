"""Helpers for the flow-level system tests (test_flows_scapy.py, test_restart_flows.py): many
TCP SYN flows built with Scapy, sent from a client namespace pinned to one CPU, and the tunnelled
packets captured, undecapsulated, on the backends' eth0 by one raw AF_PACKET sniffer per backend.

No decap program runs on the backends in these tests, so each backend's eth0 sees the balancer's
IPv4-in-IPv4 packets exactly as they left the balancer.

Also runnable as a script (inside a namespace, via nsenter):
    scapy_flows.py sniff IFACE OUT_FILE READY_FILE MAX_SECONDS   capture IP-in-IP frames
    scapy_flows.py send IFACE FRAMES_FILE BATCH GAP_SECONDS       send frames with Scapy sendp
"""
import glob
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's, with Scapy
SELF = os.path.abspath(__file__)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33


# -- frame files: a 2-byte big-endian length before each frame ------------------------------
def write_frames(path, frames):
    with open(path + ".tmp", "wb") as f:
        for fr in frames:
            f.write(struct.pack("!H", len(fr)) + fr)
    os.rename(path + ".tmp", path)


def read_frames(path):
    data = open(path, "rb").read()
    frames, i = [], 0
    while i + 2 <= len(data):
        (n,) = struct.unpack_from("!H", data, i)
        frames.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return frames


# -- the two in-namespace programs ------------------------------------------------------------
def sniff_main(iface, out, ready, max_seconds):
    """Every IPv4 frame with protocol 4 (IP-in-IP) received on IFACE until SIGTERM (or
    MAX_SECONDS), written to OUT once the socket queue is drained."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind((iface, 0))
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    frames, others = [], 0

    def keep(data, addr):
        nonlocal others
        if addr[2] == PACKET_OUTGOING:
            return
        if len(data) >= 34 and data[12:14] == b"\x08\x00" and data[23] == 4:
            frames.append(data)
        elif len(data) >= 54 and data[12:14] == b"\x86\xdd" and data[20] in (4, 41):
            frames.append(data)  # an IPv6 tunnel here would be a bug; keep it to report it
        else:
            others += 1

    with open(ready, "w") as f:
        f.write(str(os.getpid()))
    s.settimeout(0.1)
    deadline = time.time() + max_seconds
    while not stop and time.time() < deadline:
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        keep(data, addr)
    s.setblocking(False)
    while True:  # whatever is already queued on the socket
        try:
            data, addr = s.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            break
        keep(data, addr)
    write_frames(out, frames)
    sys.stderr.write(f"sniffer {iface}: {len(frames)} tunnel frames, {others} other frames\n")


def send_main(iface, frames_file, batch, gap):
    from scapy.all import Ether, sendp  # noqa: E402  (Scapy only where it is needed)
    pkts = [Ether(f) for f in read_frames(frames_file)]
    t0 = time.time()
    for i in range(0, len(pkts), batch):
        sendp(pkts[i:i + batch], iface=iface, verbose=0)
        if gap:
            time.sleep(gap)
    cpu = open("/proc/self/stat").read().rsplit(")", 1)[1].split()[36]
    print(json.dumps({"sent": len(pkts), "seconds": round(time.time() - t0, 3), "cpu": int(cpu)}))


# -- used by the tests (outside the namespaces) -----------------------------------------------
def link(lab, ns, iface="eth0"):
    return json.loads(lab.run(ns, f"ip -j -d link show dev {iface}", capture=True))[0]


def mac_of(lab, ns, iface="eth0"):
    return link(lab, ns, iface)["address"]


def xdp_prog(lab, ns, iface="eth0"):
    """(mode, program name) of the XDP program attached to iface, or None."""
    x = link(lab, ns, iface).get("xdp")
    if not x:
        return None
    prog = x.get("prog") or {}
    if not prog and x.get("attached"):
        prog = x["attached"][0].get("prog", {})
    return x.get("mode"), prog.get("name")


def syn_frames(client_mac, lb_mac, src_ip, vip, dport, sports):
    """One TCP SYN frame per source port, as the client would send them. Returns
    {sport: frame bytes}; the IP layer is frame[14:]."""
    from scapy.all import Ether, IP, TCP
    frames = {}
    for n, sp in enumerate(sports):
        p = (Ether(src=client_mac, dst=lb_mac) /
             IP(src=src_ip, dst=vip, id=(n * 7919) & 0xffff, flags="DF", ttl=64) /
             TCP(sport=sp, dport=dport, flags="S", seq=(sp * 2654435761) & 0xffffffff,
                 window=64240, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]))
        frames[sp] = bytes(p)
    return frames


def send_frames(lab, ns, frames, tag, cpu=0, batch=250, gap=0.002):
    """Sends frames from namespace ns with Scapy sendp, the sender pinned to one CPU (the
    balancer's flow table is per CPU: the whole path runs on the sender's CPU)."""
    path = f"{lab.workdir}/{tag}.frames"
    write_frames(path, frames)
    out = lab.run(ns, f"taskset -c {cpu} {PYTHON} {SELF} send eth0 {path} {batch} {gap}", capture=True)
    return json.loads(out.strip().splitlines()[-1])


class Sniffers:
    """One AF_PACKET sniffer per backend namespace, on its eth0."""

    def __init__(self, lab, namespaces, tag, max_seconds=180):
        self.lab, self.namespaces, self.tag = lab, list(namespaces), tag
        self.procs = {}
        for ns in self.namespaces:
            out, ready = self._paths(ns)
            for p in (out, ready):
                if os.path.exists(p):
                    os.unlink(p)
            log = open(f"{lab.workdir}/{ns}-{tag}.sniff.log", "w")
            proc = subprocess.Popen(lab.ns(ns, f"{PYTHON} {SELF} sniff eth0 {out} {ready} {max_seconds}").split(),
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            lab.procs.append(proc)  # lab.down() kills it if the test fails
            self.procs[ns] = proc
        deadline = time.time() + 15
        for ns in self.namespaces:
            while not os.path.exists(self._paths(ns)[1]):
                if self.procs[ns].poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"sniffer in {ns} did not start: " +
                                       open(f"{lab.workdir}/{ns}-{tag}.sniff.log").read())
                time.sleep(0.02)

    def _paths(self, ns):
        return f"{self.lab.workdir}/{ns}-{self.tag}.cap", f"{self.lab.workdir}/{ns}-{self.tag}.ready"

    def stop(self):
        """{namespace: [frames]}"""
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        result = {}
        for ns, proc in self.procs.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError(f"sniffer in {ns} did not stop")
            if proc.returncode != 0:
                raise RuntimeError(f"sniffer in {ns} failed ({proc.returncode}): " +
                                   open(f"{self.lab.workdir}/{ns}-{self.tag}.sniff.log").read())
            result[ns] = read_frames(self._paths(ns)[0])
        return result


def ipv4_checksum_ok(header):
    total = 0
    for i in range(0, len(header), 2):
        total += (header[i] << 8) | header[i + 1]
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return total == 0xffff


def decode_tunnel_frame(frame):
    """Fields of a captured IPv4-in-IPv4 frame, or None if it is not one."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0f) * 4
    tot_len = int.from_bytes(ip[2:4], "big")
    inner = ip[ihl:tot_len]
    d = {
        "eth_dst": frame[0:6].hex(":"), "eth_src": frame[6:12].hex(":"),
        "version": ip[0] >> 4, "ihl": ihl, "tos": ip[1], "tot_len": tot_len,
        "frag_off": int.from_bytes(ip[6:8], "big"), "ttl": ip[8], "proto": ip[9],
        "src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20]),
        "csum_ok": ipv4_checksum_ok(ip[:ihl]), "inner": bytes(inner), "sport": None,
        "frame_len_ok": len(ip) >= tot_len,
    }
    if len(inner) >= 24 and inner[0] >> 4 == 4:
        iihl = (inner[0] & 0x0f) * 4
        if len(inner) >= iihl + 4:
            d["sport"] = int.from_bytes(inner[iihl:iihl + 2], "big")
    return d


def run_round(lab, tag, frames, namespaces, addresses, lb_mac, be_macs, tunnel_source,
              wait=None, sender=None):
    """Starts a sniffer on each backend in namespaces, sends frames ({sport: frame}, in sport
    order) from the client pinned to CPU 0, waits (wait(): until the balancer counted them; None:
    a fixed second), stops the sniffers and checks every captured frame. Returns a dict:
    where {sport: backend index}, counts {index: frames}, problems [str], missing [sport], sent."""
    sniffers = Sniffers(lab, namespaces, tag)
    t0 = time.time()
    sent = send_frames(lab, sender or lab.client, [frames[sp] for sp in sorted(frames)], tag, cpu=0)
    waited = wait() if wait else time.sleep(1.0)
    time.sleep(0.5)  # the last frames' way from the balancer to the backends' sockets
    captured = sniffers.stop()
    print(f"{tag}: sent {sent['sent']} SYNs in {sent['seconds']}s from CPU {sent['cpu']}"
          + (f"; balancer counted {waited:.0f}" if waited is not None else "") + "; captured "
          + ", ".join(f"{ns}={len(captured[ns])}" for ns in namespaces)
          + f" ({time.time() - t0:.1f}s)")
    where, counts, problems = {}, {}, []
    for i, ns in enumerate(namespaces, start=1):
        counts[i] = len(captured[ns])
        for fr in captured[ns]:
            d = decode_tunnel_frame(fr)
            if d is None or d["sport"] is None:
                problems.append(f"{ns}: not an IPv4-in-IPv4 TCP frame: {fr[:64].hex()}")
                continue
            sp = d["sport"]
            if sp not in frames:
                problems.append(f"{ns}: a flow we did not send (source port {sp})")
                continue
            if sp in where:
                problems.append(f"source port {sp} seen twice: on {namespaces[where[sp] - 1]} and {ns}")
                continue
            where[sp] = i
            inner_sent = frames[sp][14:]
            want = {
                "eth_src": lb_mac, "eth_dst": be_macs[i], "version": 4, "ihl": 20, "proto": 4,
                "src": tunnel_source, "dst": addresses[i - 1], "ttl": 64, "frag_off": 0x4000,
                "tos": inner_sent[1], "tot_len": 20 + len(inner_sent), "csum_ok": True,
                "frame_len_ok": True, "inner": inner_sent,
            }
            bad = {k: (d[k], v) for k, v in want.items() if d[k] != v}
            if bad:
                problems.append(f"{ns}: source port {sp}: " + ", ".join(
                    f"{k}={got!r:.80} (want {v!r:.80})" for k, (got, v) in bad.items()))
    missing = [sp for sp in sorted(frames) if sp not in where]
    for p in problems[:15]:
        print("  " + p)
    return {"where": where, "counts": counts, "problems": problems, "missing": missing, "sent": sent}


ENCAP_OK = ("seen once, on one backend, with Ethernet balancer -> that backend's MAC, outer IPv4 "
            "tunnel source -> that backend, proto 4, TTL 64, DF, TOS copied, valid header "
            "checksum, total length = 20 + inner, inner IP packet byte-identical to what was sent")


def wait_for_counter(lab, name, labels, value, timeout=10):
    """Polls a metric until it reaches value; returns the last value seen."""
    deadline = time.time() + timeout
    key = (name, tuple(sorted(labels.items())))
    seen = None
    while time.time() < deadline:
        seen = lab.scrape().get(key)
        if seen is not None and seen >= value:
            return seen
        time.sleep(0.1)
    return seen


def wait_backends_up(lab, service, addresses, timeout=20):
    """Waits until fulcrum_backend_up is 1 for every address (health checks, when they run, may
    take a few intervals); returns the last values seen."""
    deadline = time.time() + timeout
    while True:
        m = lab.scrape()
        up = [metric(m, "fulcrum_backend_up", service=service, backend=a) for a in addresses]
        if all(u == 1 for u in up) or time.time() > deadline:
            return up
        time.sleep(0.2)


def remove_own_files(lab):
    """The frame, capture and sniffer files these helpers left in the lab's workdir."""
    for pattern in ("*.frames", "*.cap", "*.ready", "*.sniff.log"):
        for p in glob.glob(os.path.join(lab.workdir, pattern)):
            os.unlink(p)


def metric(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))))


def dropped(metrics):
    return {dict(k[1]).get("reason"): v for k, v in metrics.items()
            if k[0] == "fulcrum_packets_dropped_total" and v}


if __name__ == "__main__":
    if sys.argv[1] == "sniff":
        sniff_main(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif sys.argv[1] == "send":
        send_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(f"usage: {sys.argv[0]} sniff|send ...")
