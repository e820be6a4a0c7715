#!/usr/bin/python3
"""Traffic that is not for a service still works while fulcrumd's XDP program runs on the
balancer's eth0:
- TCP to the balancer's own address (an echo server in its namespace on 198.18.0.1:2222 and
  [2001:db8::1]:2222) from the client, data exchanged, over IPv4 and IPv6 (so ARP and ND work too);
- ping to the balancer's own IPv4 and IPv6 address;
- all of it is seen and passed by the XDP program (fulcrum_packets_passed_total{reason="not_vip"} grows);
- UDP to a VIP on a port with no service is dropped (no answer, no ICMP) and counted exactly in
  fulcrum_packets_dropped_total{reason="port_unserved"};
- ICMP echo to a VIP (IPv4 and IPv6) is answered by XDP: ping succeeds and
  fulcrum_packets_answered_total{reason="echo_reply"} grows by exactly the echoes sent."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import lab_up, TestFailure, check, daemon_log_tail, main, service_yaml, step  # noqa: E402

VIP4, VIP6 = "198.18.100.10", "2001:db8:100::10"
PORT = 2222
UNSERVED = 9999
K = 7          # datagrams to the unserved port, per family
PINGS = 3      # echo requests per ping

ECHO_SERVER = f"""
import socket, threading
def serve(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, {PORT}))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
threading.Thread(target=serve, args=(socket.AF_INET, {fl.BALANCER_V4!r}), daemon=True).start()
serve(socket.AF_INET6, {fl.BALANCER_V6!r})
"""

ECHO_CLIENT = """
import os, socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
for i in range(3):
    payload = os.urandom(200000)
    s = socket.create_connection((addr, port), timeout=5)
    peer = s.getpeername()[0]
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = b''
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    print(i, len(payload), len(got), got == payload, peer)
    s.close()
"""

UNSERVED_CLIENT = """
import socket, sys
addr, port, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.connect((addr, port))
s.settimeout(1)
for i in range(k):
    s.send(b'anyone?')
try:
    print('ANSWER', s.recv(512))
except socket.timeout:
    print('no answer')
except OSError as e:
    print('ERROR', e)
"""


def value(m, name, **labels):
    want = tuple(sorted(labels.items()))
    return m.get((name, want), 0.0)


def test():
    lab = fl.Lab(backends=2, prefix=f"hst{os.getpid() % 100000}")
    try:
        step("lab up; fulcrumd with TCP :80 and UDP :53 services on an IPv4 and an IPv6 VIP")
        lab_up(lab)
        services = ""
        for vip, bes in ((VIP4, [fl.backend_v4(1), fl.backend_v4(2)]), (VIP6, [fl.backend_v6(1), fl.backend_v6(2)])):
            tag = "v4" if vip == VIP4 else "v6"
            services += service_yaml(f"web{tag}", vip, 80, "tcp", [(b, None) for b in bes])
            services += service_yaml(f"dns{tag}", vip, 53, "udp", [(b, None) for b in bes])
        lab.start_fulcrumd(lab.write_config(lab.config_text(services)))
        check(lab.xdp_attached(lab.balancer, "eth0"), "XDP attached on the balancer's eth0")

        step(f"echo server in the balancer namespace on {fl.BALANCER_V4}:{PORT} and [{fl.BALANCER_V6}]:{PORT}")
        for path, text in (("echo-server.py", ECHO_SERVER), ("echo-client.py", ECHO_CLIENT),
                           ("unserved-client.py", UNSERVED_CLIENT)):
            with open(f"{lab.workdir}/{path}", "w") as f:
                f.write(text)
        log = open(f"{lab.workdir}/echo-server.log", "w")
        lab.procs.append(subprocess.Popen(lab.ns(lab.balancer, f"{fl.PYTHON} {lab.workdir}/echo-server.py").split(),
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.time() + 10
        while lab.run(lab.balancer, f"ss -ltnH sport = :{PORT}", capture=True).count("LISTEN") < 2:
            if time.time() > deadline:
                raise TestFailure("echo server did not start: " + open(f"{lab.workdir}/echo-server.log").read())
            time.sleep(0.05)

        m0 = lab.scrape()
        for addr in (fl.BALANCER_V4, fl.BALANCER_V6):
            step(f"TCP from the client to the balancer's own address {addr}:{PORT}: 3 x 200 kB echoed")
            out = lab.run(lab.client, f"{fl.PYTHON} {lab.workdir}/echo-client.py {addr} {PORT}", capture=True)
            rows = [line.split() for line in out.splitlines()]
            check(len(rows) == 3 and all(r[3] == "True" and r[4] == addr for r in rows),
                  f"3 connections to {addr}: every byte came back intact", out)
            step(f"ping the balancer's own address {addr}")
            r = lab.run(lab.client, f"ping -c {PINGS} -i 0.2 -W 2 {addr}", check=False, capture=False)
            check(r.returncode == 0 and f"{PINGS} received" in r.stdout, f"{PINGS}/{PINGS} echo replies from {addr}",
                  r.stdout + r.stderr)
        m1 = lab.scrape()
        passed = value(m1, "fulcrum_packets_passed_total", reason="not_vip") - \
            value(m0, "fulcrum_packets_passed_total", reason="not_vip")
        check(passed >= 2 * (3 * 200000 // 1500 + PINGS), f"the XDP program saw and passed that host traffic: "
              f"packets_passed_total{{reason=not_vip}} +{passed:.0f}")
        check(value(m1, "fulcrum_service_packets_total", service="webv4", vip=VIP4) == 0 and
              value(m1, "fulcrum_service_packets_total", service="webv6", vip=VIP6) == 0,
              "none of it was counted as service traffic")

        for vip in (VIP4, VIP6):
            step(f"{K} UDP datagrams to {vip}:{UNSERVED} (no service on that port)")
            before = lab.scrape()
            out = lab.run(lab.client, f"{fl.PYTHON} {lab.workdir}/unserved-client.py {vip} {UNSERVED} {K}",
                          capture=True)
            after = lab.scrape()
            d = value(after, "fulcrum_packets_dropped_total", reason="port_unserved") - \
                value(before, "fulcrum_packets_dropped_total", reason="port_unserved")
            check("no answer" in out, "no answer came back (no ICMP port unreachable either)", out)
            check(d == K, f"fulcrum_packets_dropped_total{{reason=\"port_unserved\"}} grew by exactly {K}",
                  f"grew by {d}")

        for vip in (VIP4, VIP6):
            step(f"ping the VIP {vip} (answered from XDP)")
            before = lab.scrape()
            r = lab.run(lab.client, f"ping -c {PINGS} -i 0.2 -W 2 {vip}", check=False)
            after = lab.scrape()
            d = value(after, "fulcrum_packets_answered_total", reason="echo_reply") - \
                value(before, "fulcrum_packets_answered_total", reason="echo_reply")
            check(r.returncode == 0 and f"{PINGS} received" in r.stdout, f"{PINGS}/{PINGS} echo replies from {vip}",
                  r.stdout + r.stderr + daemon_log_tail(lab))
            check(d == PINGS, f"fulcrum_packets_answered_total{{reason=\"echo_reply\"}} grew by exactly {PINGS}",
                  f"grew by {d}")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_host_traffic", test)
