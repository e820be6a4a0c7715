#!/usr/bin/python3
"""`fulcrumctl capture` against a real fulcrumd, with frames built by Scapy and sent from the
client namespace, the file read back with tcpdump and Scapy (issue 11 point 4):

- `capture --vip WEB -c 8 -w FILE` while the client sends 3 TCP SYNs to web (WEB:80), one IPv4
  packet to WEB with a truncated TCP header and one UDP datagram to WEB:9 (no service there):
  tcpdump reads 8 packets; each SYN appears as sent (stage=before, verdict=tx, service=web) and
  then IP-in-IP from the tunnel source to the backend `fulcrumctl lookup` names, the inner
  packet byte for byte what was sent (stage=after, verdict=tx); the malformed packet appears as
  sent with verdict=drop reason=parse_l4, the datagram with verdict=drop reason=port_unserved;
- `--service web -c 2` while a datagram to dns goes first, then a SYN to web: only web's two
  records; `--vip DNS -c 1` with a SYN to web first: only the datagram to DNS;
- a capture whose client is killed (SIGKILL) is ended by fulcrumd (its lease runs out), and a
  new one can start; SIGINT ends a capture cleanly (exit 0, a file tcpdump reads);
- bad arguments and unknown filters fail with a clear message and exit 2 (usage) or 1.
"""
import os
import re
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
import scapy_flows  # noqa: E402
from health_helpers import ctl, status  # noqa: E402
from st_helpers import check, lab_up, main, service_yaml, step  # noqa: E402

from scapy.all import IP, TCP, UDP, Ether, rdpcap  # noqa: E402

WEB, DNS = "198.18.100.10", "198.18.100.20"


def mac(lab, ns):
    import json
    return json.loads(lab.run(ns, "ip -j link show dev eth0", capture=True))[0]["address"]


def pcapng_comments(path):
    """(frame bytes, comment) of every Enhanced Packet Block, read by hand: the comments are what
    the test checks, and reading the blocks here does not depend on one reader's options API."""
    data = open(path, "rb").read()
    out, i = [], 0
    while i + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, i)
        if not (blen >= 12 and blen % 4 == 0 and i + blen <= len(data)):
            check(False, f"pcapng block at {i}: length {blen} is a multiple of 4 inside the file")
        if btype == 6:
            caplen = struct.unpack_from("<I", data, i + 20)[0]
            frame = data[i + 28:i + 28 + caplen]
            j, comment = i + 28 + (caplen + 3) // 4 * 4, ""
            while j + 4 <= i + blen - 4:
                code, olen = struct.unpack_from("<HH", data, j)
                if code == 0:
                    break
                if code == 1:
                    comment = data[j + 4:j + 4 + olen].decode().rstrip("\n")
                j += 4 + (olen + 3) // 4 * 4
            out.append((frame, comment))
        i += blen
    return out


def tcpdump(path):
    r = subprocess.run(["tcpdump", "-nn", "-r", path], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"tcpdump -r {os.path.basename(path)} reads the file", r.stderr)
    return r.stdout.splitlines()


class Sender:
    def __init__(self, lab):
        self.lab = lab
        self.dst_mac = mac(lab, lab.balancer)
        self.src_mac = mac(lab, lab.client)
        self.n = 0

    def eth(self):
        return Ether(src=self.src_mac, dst=self.dst_mac)

    def send(self, frames):
        """Sends the frames in order from the client's eth0 (Scapy sendp, one process)."""
        self.n += 1
        path = f"{self.lab.workdir}/frames{self.n}"
        scapy_flows.write_frames(path, [bytes(f) for f in frames])
        self.lab.run(self.lab.client, f"{fl.PYTHON} {scapy_flows.SELF} send eth0 {path} 1 0.05")


def start_capture(lab, path, *args):
    """fulcrumctl capture running in the background; returns once fulcrumd logs it started."""
    log_start = os.path.getsize(lab.daemon_log)
    proc = subprocess.Popen([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", "capture", *args, "-w", path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lab.procs.append(proc)
    deadline = time.time() + 20
    while not re.search(r"capture \d+: started", open(lab.daemon_log).read()[log_start:]):
        if proc.poll() is not None:
            raise RuntimeError(f"fulcrumctl capture exited {proc.returncode}: {proc.stderr.read()}")
        if time.time() > deadline:
            raise RuntimeError("fulcrumd did not log the capture's start within 20 s")
        time.sleep(0.05)
    return proc


def finish(proc, what):
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        check(False, f"{what}: fulcrumctl capture ends by itself after its -c packets", err)
    check(proc.returncode == 0, f"{what}: fulcrumctl capture exited 0", err)
    return err


def syn(sender, dst, sport):
    return sender.eth() / IP(src=fl.CLIENT_V4, dst=dst) / TCP(sport=sport, dport=80, flags="S", seq=1000 + sport)


def udp(sender, dst, port, sport):
    return sender.eth() / IP(src=fl.CLIENT_V4, dst=dst) / UDP(sport=sport, dport=port) / (b"q" * 20)


def test():
    lab = fl.Lab(backends=2, prefix=f"cap{os.getpid() % 100000}")
    try:
        # No decap on the backends: a decapsulated SYN would be answered, and the client's RST
        # to the VIP would join the capture. The tunnel packets are what the test looks at.
        step("lab up: 2 backends with servers (health), no decap; fulcrumd with web (TCP 80) and dns (UDP 53)")
        lab_up(lab)
        lab.start_servers(tcp_port=80, udp_port=53)
        backends = [fl.backend_v4(i) for i in (1, 2)]
        lab.start_fulcrumd(lab.write_config(lab.config_text(
            service_yaml("web", WEB, 80, "tcp", [(b, None) for b in backends]) +
            service_yaml("dns", DNS, 53, "udp", [(b, None) for b in backends]))))
        deadline = time.time() + 20
        while not all(b["health"] == "up" for s in status(lab).values() for b in s["backends"].values()):
            if time.time() > deadline:
                check(False, "every backend up within 20 s")
            time.sleep(0.2)
        sender = Sender(lab)

        step("capture --vip WEB -c 8: 3 SYNs to web, a truncated TCP header, a datagram to an unserved port")
        path = f"{lab.workdir}/vip.pcapng"
        proc = start_capture(lab, path, "--vip", WEB, "-c", "8")
        ports = [41001, 41002, 41003]
        # IPv4 total length covers 4 bytes of TCP header only: the balancer drops it (parse_l4).
        bad = sender.eth() / IP(src=fl.CLIENT_V4, dst=WEB, proto=6, len=24) / b"\x9c\x41\x00\x50"
        sent = [syn(sender, WEB, p) for p in ports] + [bad, udp(sender, WEB, 9, 42000)]
        sender.send(sent)
        finish(proc, "--vip")
        lines = tcpdump(path)
        check(len(lines) == 8, "tcpdump reads 8 packets", "\n".join(lines))
        pkts = rdpcap(path)
        check(len(pkts) == 8, "Scapy reads 8 packets")
        records = pcapng_comments(path)
        check([bytes(p) for p in pkts] == [f for f, _ in records], "Scapy's frames are the file's frames")
        check([p.comment.decode() for p in pkts] == [c for _, c in records], "Scapy reads every frame's comment",
              [p.comment for p in pkts])
        want_backend = {p: __import__("json").loads(ctl(lab, "lookup", "web", fl.CLIENT_V4, str(p), "--json")
                                                        .stdout)["backend"] for p in ports}
        i = 0
        for p, frame in zip(ports, sent[:3]):
            (f_in, c_in), (f_out, c_out) = records[i], records[i + 1]
            check(f_in == bytes(frame), f"SYN :{p}: stage before is the frame as sent, byte for byte")
            check(c_in.startswith("stage=before verdict=tx reason=- service=web"), f"SYN :{p}: comment '{c_in}'")
            check(c_out.startswith("stage=after verdict=tx reason=- service=web"), f"SYN :{p}: comment '{c_out}'")
            outer = Ether(f_out)
            check(outer.haslayer(IP) and outer[IP].proto == 4 and outer[IP].src == fl.BALANCER_V4 and
                  outer[IP].dst == want_backend[p],
                  f"SYN :{p}: after is IP-in-IP {fl.BALANCER_V4} -> {want_backend[p]} (fulcrumctl lookup)",
                  outer.summary())
            check(bytes(outer[IP].payload) == bytes(frame[IP]), f"SYN :{p}: the inner packet is the one sent")
            check(f" > {want_backend[p]}: IP {fl.CLIENT_V4}.{p} > {WEB}.80: Flags [S]" in lines[i + 1],
                  "tcpdump shows it tunnelled", lines[i + 1])
            i += 2
        check(records[6][0] == bytes(bad) and records[6][1].startswith("stage=before verdict=drop reason=parse_l4 "
                                                                        "service=-"),
              f"the truncated TCP header: as sent, dropped with reason parse_l4 ('{records[6][1]}')")
        check(records[7][0] == bytes(sent[4]) and records[7][1].startswith(
            "stage=before verdict=drop reason=port_unserved service=-"),
              f"the datagram to port 9: as sent, dropped with reason port_unserved ('{records[7][1]}')")

        step("capture --service web -c 2: a datagram to dns first, then a SYN to web")
        path = f"{lab.workdir}/service.pcapng"
        proc = start_capture(lab, path, "--service", "web", "-c", "2")
        sender.send([udp(sender, DNS, 53, 42001), syn(sender, WEB, 41010)])
        finish(proc, "--service web")
        records = pcapng_comments(path)
        check(len(records) == 2 and all("service=web" in c for _, c in records) and
              Ether(records[0][0])[TCP].sport == 41010,
              "only web's SYN, before and after", [c for _, c in records])

        step("capture --vip DNS -c 1: a SYN to web first, then a datagram to dns")
        path = f"{lab.workdir}/dns.pcapng"
        proc = start_capture(lab, path, "--vip", DNS, "-c", "1")
        sender.send([syn(sender, WEB, 41011), udp(sender, DNS, 53, 42002)])
        finish(proc, "--vip DNS")
        records = pcapng_comments(path)
        check(len(records) == 1 and Ether(records[0][0])[IP].dst == DNS and "service=dns" in records[0][1],
              "only the datagram to DNS", [c for _, c in records])

        step("a client killed mid-capture: fulcrumd ends the capture itself; another one starts")
        path = f"{lab.workdir}/killed.pcapng"
        proc = start_capture(lab, path)
        proc.kill()
        proc.wait()
        deadline = time.time() + 30
        while "the client went away" not in open(lab.daemon_log).read():
            if time.time() > deadline:
                check(False, "fulcrumd ends the capture of a vanished client within 30 s")
            time.sleep(0.2)
        check(True, "fulcrumd: capture ended, 'the client went away'")
        path = f"{lab.workdir}/sigint.pcapng"
        proc = start_capture(lab, path)
        r = ctl(lab, "capture", "-w", f"{lab.workdir}/second.pcapng", check=False)
        check(r.returncode == 1 and "already running" in r.stderr, "a second capture at once: exit 1, 'already running'",
              r.stderr)
        sender.send([syn(sender, WEB, 41012)])
        proc.send_signal(signal.SIGINT)
        err = finish(proc, "SIGINT")
        check("packets written" in err, "SIGINT: fulcrumctl says what it wrote", err)
        check(len(tcpdump(path)) >= 0, "the interrupted capture's file is a valid pcapng")
        check("stopped by the client" in open(lab.daemon_log).read(), "fulcrumd: 'stopped by the client'")

        step("bad arguments and filters")
        sock = f"{lab.workdir}/fulcrumd.sock"
        for args, code, words in (
                (["capture"], 2, "-w FILE is required"),
                (["capture", "-w", "/tmp/x", "--service", "web", "--vip", WEB], 2, "exclude each other"),
                (["capture", "-w", "/tmp/x", "--vip", "web"], 2, "is not an IPv4 or IPv6 address"),
                (["capture", "-w", "/tmp/x", "-c", "0"], 2, "is not a number of packets"),
                (["capture", "-w", "/tmp/x", "--json"], 2, "--json does not apply"),
                (["status", "-w", "/tmp/x"], 2, "go with capture"),
                (["capture", "-w", f"{lab.workdir}/x", "--service", "nosuch"], 1, 'no service "nosuch"'),
                (["capture", "-w", f"{lab.workdir}/x", "--vip", "198.18.100.99"], 1, "not the VIP of any"),
                (["capture", "-w", f"{lab.workdir}/no/such/dir/x"], 1, "cannot write")):
            r = subprocess.run([fl.CTL, "-s", sock, *args], capture_output=True, text=True, timeout=20)
            check(r.returncode == code and words in r.stderr,
                  f"fulcrumctl {' '.join(args)}: exit {code}, '{words}'", f"exit {r.returncode}: {r.stderr}")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_fulcrumctl_capture", test)
