#!/usr/bin/python3
"""`fulcrumctl top` against a real fulcrumd while real traffic flows through it:

- a UDP service on three backends, one drained with `fulcrumctl drain`; a client sends ~300
  datagrams a second, every one from a new source port (so every datagram is a new flow) and
  of one size (a 102-byte frame);
- `top --json --iterations 3` prints 3 frames, one JSON object per line; in each, every backend
  has the state and health `fulcrumctl status --json` reports (active / draining, up);
- in a frame taken during the traffic: the service's packets/s is well above 0, its bits/s is
  packets/s x 816 (bytes are counted as received frames), its new flows/s equals its packets/s
  (both within two packets: a packet in flight may straddle the counter read), the drained backend has 0 packets/s and the other two add up to the service's;
- `top --iterations 2` (text, not a terminal) prints 2 frames separated by a blank line, each
  with the service line and every backend with its state;
- `--iterations` with another command is a usage error (exit 2).
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from health_helpers import ctl, status  # noqa: E402
from st_helpers import check, lab_up, main, service_yaml, step  # noqa: E402

VIP = "198.18.100.10"
PAYLOAD = 60
FRAME_BITS = 8 * (14 + 20 + 8 + PAYLOAD)

SENDER = r"""
import socket, sys, time
vip, seconds, rate, first = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
end, n = time.time() + seconds, 0
while time.time() < end:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", first + n % 30000))
    s.sendto(b"x" * PAYLOAD, (vip, 53))
    s.close()
    n += 1
    time.sleep(1 / rate)
""".replace("PAYLOAD", str(PAYLOAD))


def top(lab, *args):
    return ctl(lab, "top", *args)


def test():
    lab = fl.Lab(backends=3, prefix=f"top{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends with decap and UDP servers; fulcrumd with dns (UDP, 3 backends)")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        backends = [fl.backend_v4(i) for i in (1, 2, 3)]
        lab.start_fulcrumd(lab.write_config(lab.config_text(
            service_yaml("dns", VIP, 53, "udp", [(b, None) for b in backends]))))
        deadline = time.time() + 20
        while not all(b["health"] == "up" for b in status(lab)["dns"]["backends"].values()):
            check(time.time() < deadline, "every backend up within 20 s")
            time.sleep(0.2)
        ctl(lab, "drain", "dns", backends[1])
        st = status(lab)["dns"]["backends"]
        check(st[backends[1]]["state"] == "draining", f"{backends[1]} drained (fulcrumctl drain)")

        step("~300 datagrams/s from new source ports for 6 s; top --json --iterations 3 meanwhile")
        path = f"{lab.workdir}/sender.py"
        with open(path, "w") as f:
            f.write(SENDER)
        sender = subprocess.Popen(lab.ns(lab.client, f"{fl.PYTHON} {path} {VIP} 6 300 30000").split())
        lab.procs.append(sender)
        time.sleep(1.5)   # a whole sampled second of traffic before the first frame
        r = top(lab, "--json", "--iterations", "3", "--interval", "1")
        frames = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
        check(len(frames) == 3, f"3 frames, one JSON object per line (got {len(frames)})", r.stdout[:500])
        st = status(lab)["dns"]["backends"]
        for i, frame in enumerate(frames):
            svc = {s["name"]: s for s in frame["services"]}["dns"]
            got = {b["address"]: (b["state"], b["health"]) for b in svc["backends"]}
            want = {a: (b["state"], b["health"]) for a, b in st.items()}
            check(got == want, f"frame {i + 1}: every backend's state and health as status reports: {got}")
        svc = {s["name"]: s for s in frames[1]["services"]}["dns"]
        pps, bps, nfs = svc["packets_per_second"], svc["bits_per_second"], svc["new_flows_per_second"]
        check(pps > 100, f"frame 2: dns at {pps:.0f} packets/s (the sender runs at ~300/s)")
        # Counters are read while packets go through: packets, bytes and new flows of a packet in
        # flight on another CPU may straddle the read, so allow two packets' worth.
        check(abs(bps - pps * FRAME_BITS) <= 2 * FRAME_BITS,
              f"frame 2: {bps:.0f} bits/s = packets/s x {FRAME_BITS} (102-byte frames), within 2 packets")
        check(abs(nfs - pps) <= 2, f"frame 2: {nfs:.0f} new flows/s = packets/s (every datagram a new source "
              f"port), within 2")
        per = {b["address"]: b["packets_per_second"] for b in svc["backends"]}
        check(per[backends[1]] == 0 and per[backends[0]] + per[backends[2]] == pps,
              f"frame 2: the drained backend gets 0/s, the others {per[backends[0]]:.0f} + "
              f"{per[backends[2]]:.0f} = the service's {pps:.0f}")

        step("top --iterations 2, text, to a pipe")
        text = top(lab, "--iterations", "2", "--interval", "1").stdout
        parts = text.split("\n\n")
        check(len(parts) == 2, f"2 frames separated by one blank line (got {len(parts)})", text)
        for part in parts:
            lines = part.splitlines()
            check(lines[1].startswith("SERVICE / backend") and any(l.startswith(f"dns {VIP}:53/udp") for l in lines)
                  and all(any(l.split()[:2] == [b, st[b]["state"]] for l in lines) for b in backends),
                  "a frame: header, the service line, each backend with its state", part)
        sender.wait(10)

        step("--iterations goes with top only")
        r = ctl(lab, "status", "--iterations", "2", check=False)
        check(r.returncode == 2 and "go with top" in r.stderr, "status --iterations 2: usage error, exit 2",
              r.stderr)
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_fulcrumctl_top", test)
