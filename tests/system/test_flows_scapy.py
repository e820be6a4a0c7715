#!/usr/bin/python3
"""Every packet of 3,000 flows to a service reaches exactly one backend, correctly encapsulated
(outer source and destination, inner packet unchanged); shares match weights within 5 points;
re-sent flows land on the same backend.

Lab: one client, the balancer (fulcrumd, XDP on eth0), 3 backends weighted 100/100/200 with NO
decap program, so the balancer's IPv4-in-IPv4 packets reach each backend's eth0 intact and a raw
AF_PACKET sniffer there records them. The client sends 3,000 TCP SYNs (distinct source ports)
with Scapy sendp, pinned to CPU 0 (the flow table is per CPU), then the same 3,000 again.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scapy_flows as sf  # noqa: E402
from fulcrum_lab import BALANCER_V4, CLIENT_V4, Lab, backend_v4  # noqa: E402

VIP, PORT = "198.18.100.10", 80
FLOWS = 3000
WEIGHTS = [100, 100, 200]
SPORTS = list(range(20000, 20000 + FLOWS))
TIME_LIMIT = 240  # seconds, for the whole test


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print(f"ok: {what}")


def timed_out(*_):
    raise Failed(f"time limit of {TIME_LIMIT}s exceeded")


def services_text():
    backends = "".join(f"      - address: {backend_v4(i)}\n        weight: {w}\n"
                       for i, w in enumerate(WEIGHTS, start=1))
    return f"""  - name: web
    vip: {VIP}
    port: {PORT}
    protocol: tcp
    backends:
{backends}"""


def one_round(lab, tag, frames, expected_service_packets, lb_mac, be_macs):
    """Sends all frames once and checks them; returns {sport: backend index}, {index: frames}."""
    addresses = [backend_v4(i) for i in range(1, len(WEIGHTS) + 1)]
    wait = lambda: sf.wait_for_counter(lab, "fulcrum_service_packets_total",  # noqa: E731
                                       {"service": "web", "vip": VIP}, expected_service_packets)
    r = sf.run_round(lab, tag, frames, lab.backends, addresses, lb_mac, be_macs, BALANCER_V4, wait=wait)
    check(r["sent"]["cpu"] == 0, f"{tag}: the sender ran on CPU 0 (taskset)")
    if r["missing"] or r["problems"]:
        print(f"{tag}: balancer drops by reason: {sf.dropped(lab.scrape())}")
    check(not r["problems"], f"{tag}: every captured frame is a flow we sent, " + sf.ENCAP_OK
                             + (f" ({len(r['problems'])} problems)" if r["problems"] else ""))
    check(not r["missing"], f"{tag}: all {FLOWS} sent packets arrived at a backend"
                            + (f" (missing {len(r['missing'])}, e.g. ports {r['missing'][:10]})"
                               if r["missing"] else ""))
    return r["where"], r["counts"]


def main():
    signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(TIME_LIMIT)
    started = time.time()
    lab = Lab(backends=len(WEIGHTS), clients=1, prefix=f"fs{os.getpid() % 100000}")
    try:
        lab.up()
        print(f"lab {lab.prefix}: client, balancer, {len(lab.backends)} backends (no decap) on one bridge")
        # Real servers so that health checks (when the daemon runs them) see live backends; the
        # tunnelled SYNs themselves never reach them (no decap).
        lab.start_servers(tcp_port=PORT, udp_port=53)
        cfg = lab.write_config(lab.config_text(services_text()))
        lab.start_fulcrumd(cfg)
        print(f"fulcrumd up with {cfg}: service web {VIP}:{PORT}/tcp, backends weighted {WEIGHTS}")
        up = sf.wait_backends_up(lab, "web", [backend_v4(i) for i in range(1, len(WEIGHTS) + 1)])
        check(all(u == 1 for u in up), f"fulcrum_backend_up = 1 for all 3 backends ({up})")
        mode, name = sf.xdp_prog(lab, lab.balancer) or (None, None)
        check(name == "balancer", f"XDP program on the balancer's eth0 is \"{name}\" (mode {mode})")

        lb_mac = sf.mac_of(lab, lab.balancer)
        client_mac = sf.mac_of(lab, lab.client)
        be_macs = {i: sf.mac_of(lab, ns) for i, ns in enumerate(lab.backends, start=1)}
        frames = sf.syn_frames(client_mac, lb_mac, CLIENT_V4, VIP, PORT, SPORTS)
        print(f"built {len(frames)} TCP SYN frames {CLIENT_V4}:{SPORTS[0]}..{SPORTS[-1]} -> {VIP}:{PORT}, "
              f"Ethernet {client_mac} -> {lb_mac}")

        # Round 1: every flow is new.
        where1, counts1 = one_round(lab, "round1", frames, FLOWS, lb_mac, be_macs)
        total_w = sum(WEIGHTS)
        shares = []
        for i, w in enumerate(WEIGHTS, start=1):
            got, want = 100.0 * counts1[i] / FLOWS, 100.0 * w / total_w
            shares.append(f"{lab.backends[i - 1]} {got:.1f}% (weight share {want:.1f}%)")
            check(abs(got - want) <= 5.0, f"share of backend {i} ({backend_v4(i)}, weight {w}) "
                                          f"is {got:.1f}%, within 5 points of {want:.1f}%")
        print("shares: " + "; ".join(shares))
        m = lab.scrape()
        nf = sf.metric(m, "fulcrum_service_new_flows_total", service="web")
        check(nf == FLOWS, f"fulcrum_service_new_flows_total = {nf} after round 1 (want {FLOWS})")
        for i in range(1, len(WEIGHTS) + 1):
            bp = sf.metric(m, "fulcrum_backend_packets_total", service="web", backend=backend_v4(i))
            check(bp == counts1[i], f"fulcrum_backend_packets_total{{backend={backend_v4(i)}}} = {bp} "
                                    f"equals the {counts1[i]} frames captured there")

        # Round 2: the same flows again; the flow table must send each to the same backend.
        where2, counts2 = one_round(lab, "round2", frames, 2 * FLOWS, lb_mac, be_macs)
        moved = [sp for sp in SPORTS if where1[sp] != where2[sp]]
        check(not moved, f"round 2: all {FLOWS} re-sent flows landed on the same backend as in round 1"
                         + (f" ({len(moved)} moved, e.g. {[(sp, where1[sp], where2[sp]) for sp in moved[:5]]})"
                            if moved else ""))
        m = lab.scrape()
        nf = sf.metric(m, "fulcrum_service_new_flows_total", service="web")
        check(nf == FLOWS, f"fulcrum_service_new_flows_total = {nf} after round 2 (still {FLOWS}: "
                           f"round 2 was all flow-table hits)")
        sp_total = sf.metric(m, "fulcrum_service_packets_total", service="web", vip=VIP)
        check(sp_total == 2 * FLOWS, f"fulcrum_service_packets_total = {sp_total} (want {2 * FLOWS})")
        for i in range(1, len(WEIGHTS) + 1):
            bp = sf.metric(m, "fulcrum_backend_packets_total", service="web", backend=backend_v4(i))
            cap = counts1[i] + counts2[i]
            check(bp == cap, f"fulcrum_backend_packets_total{{backend={backend_v4(i)}}} = {bp} equals "
                             f"the {cap} frames captured there over both rounds")
        drops = sf.dropped(m)
        check(not drops, f"no packet dropped by the balancer (drops by reason: {drops})")
        print(f"PASS test_flows_scapy in {time.time() - started:.1f}s")
        return 0
    except Failed as e:
        print(f"FAIL: {e}")
        if lab.daemon_log and os.path.exists(lab.daemon_log):
            print("fulcrumd log (last lines):\n" + "".join(open(lab.daemon_log).readlines()[-15:]))
        return 1
    finally:
        signal.alarm(0)
        lab.down()
        sf.remove_own_files(lab)


if __name__ == "__main__":
    sys.exit(main())
