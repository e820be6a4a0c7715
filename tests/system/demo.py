#!/usr/bin/python3
"""./run demo: Fulcrum on a lab of network namespaces, with real connections through the balancer.
Builds the lab, starts fulcrumd with config/lab.yaml, opens real HTTP connections and UDP
exchanges from a client, and shows where they went and what the balancer counted.
  --keep   leave the lab running to explore (./run demo --clean removes it)
  --clean  remove a lab left by --keep"""
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402

CONFIG = os.path.join(fl.SOURCE_DIR, "config", "lab.yaml")
WEB4, WEB6 = "198.18.100.10", "2001:db8:100::10"
WEIGHTS = {"be1": 100, "be2": 100, "be3": 200}  # as in config/lab.yaml (web4)
BOLD, DIM, GREEN, RED, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m") \
    if sys.stdout.isatty() else ("",) * 5


def step(n, title):
    print(f"\n{BOLD}{n}. {title}{RESET}")


def proved(text):
    print(f"   {GREEN}proved:{RESET} {text}")


def short(name):
    return name.rsplit("-", 1)[-1]


def shares(answers, lab):
    counts = collections.Counter(short(a) for a in answers if a)
    return counts, sum(1 for a in answers if a is None)


def print_shares(title, answers, lab, weights=None):
    counts, failed = shares(answers, lab)
    total = sum(counts.values())
    print(f"   {title}: {total} answered, {failed} failed")
    wsum = sum(weights.values()) if weights else None
    for b in sorted(short(x) for x in lab.backends):
        got = counts.get(b, 0)
        bar = "#" * round(40 * got / max(total, 1))
        expect = f"  (weight {weights[b]}: expect {100 * weights[b] / wsum:4.1f} %)" if weights else ""
        print(f"     {b}  {got:4d}  {100 * got / max(total, 1):5.1f} %  {bar:<40}{expect}")
    return counts, failed


def main():
    keep = "--keep" in sys.argv
    lab = fl.Lab(backends=3, prefix="fdemo", metrics_port=9470)
    if "--clean" in sys.argv:
        lab.down()
        print("fulcrum demo: lab removed")
        return 0
    ok = True
    try:
        step(1, "A lab of network namespaces on this machine")
        lab.up()
        print(f"""   client  {lab.client:<10} 198.18.0.100  2001:db8::100   routes the VIPs via the balancer
   balancer {lab.balancer:<9} 198.18.0.1    2001:db8::1     fulcrumd, XDP on eth0
   backends {', '.join(lab.backends)}  198.18.0.11-13  2001:db8::11-13
   all on one bridge in {lab.switch}; VIPs: web4 {WEB4}:80, web6 [{WEB6}]:80, dns4 {WEB4}:53/udp""")

        step(2, "Backends: Fulcrum's decap XDP program, the VIPs on lo, a real HTTP/UDP server")
        lab.add_vip_to_backends(WEB4)
        lab.add_vip_to_backends(WEB6)
        lab.attach_decap()
        lab.start_servers()
        for b in lab.backends:
            assert lab.xdp_attached(b, "eth0")
        proved("each backend strips the tunnel itself (no ipip module on this kernel) and serves the VIPs")

        step(3, "The balancer: fulcrumd -c config/lab.yaml")
        lab.start_fulcrumd(CONFIG)
        # Health checks start every backend down; wait until they have all passed (a few s).
        deadline = time.time() + 20
        while time.time() < deadline:
            status = fl.json.loads(lab.run(lab.balancer, f"{fl.CTL} -s /run/fulcrum/fdemo.sock status --json",
                                           capture=True))
            if all(b["health"] == "up" for s in status["services"] for b in s["backends"]):
                break
            time.sleep(0.3)
        for s in status["services"]:
            print(f"   health: {s['name']:<5} " + "  ".join(f"{b['address']} {b['health']}" for b in s["backends"]))
        print("   " + "\n   ".join(l for l in open(lab.daemon_log).read().splitlines()
                                   if "warning" in l or "fulcrumd" in l))
        proved("the YAML was validated, turned into Maglev tables and maps, the program attached, "
               "and every backend passed its health checks (TCP for HTTP, UDP for dns4)")

        step(4, "400 real HTTP connections to the IPv4 VIP (web4: weights 100/100/200)")
        c4, f4 = print_shares("web4", lab.http_get_many(WEB4, 400), lab, WEIGHTS)
        ok &= f4 == 0 and len(c4) == 3
        proved("TCP handshakes, requests and replies work through XDP encapsulation and direct server return")

        step(5, "200 real HTTP connections to the IPv6 VIP, 200 UDP exchanges (IPv4 VIP, IPv6 backends)")
        c6, f6 = print_shares("web6", lab.http_get_many(WEB6, 200), lab)
        cu, fu = print_shares("dns4", lab.udp_ask_many(WEB4, 200), lab)
        ok &= f6 == 0 and fu == 0 and len(c6) == 3 and len(cu) == 3
        proved("IPv6-in-IPv6 and IPv4-in-IPv6 tunnels; UDP replies come from the VIP straight to the client")

        step(6, "What the balancer counted (its Prometheus endpoint, read from the BPF maps at scrape time)")
        m = lab.scrape()
        for (name, labels), value in sorted(m.items()):
            if name.startswith("fulcrum_") and value and not name.endswith(("_weight", "_up", "_info")):
                lbl = ",".join(f"{k}={v}" for k, v in labels)
                print(f"   {name:<36} {lbl:<40} {value:>10.0f}")
        drops = sum(v for (n, _), v in m.items() if n == "fulcrum_packets_dropped_total")
        proved(f"every forwarded packet is counted per service and backend; drops by reason: {drops:.0f}")

        step(7, "Direct server return")
        rx = fl.json.loads(lab.run(lab.balancer, "ip -s -j link show eth0", capture=True))[0]["stats64"]["rx"]
        fwd = sum(v for (n, _), v in m.items() if n == "fulcrum_backend_packets_total")
        passed = sum(v for (n, _), v in m.items() if n == "fulcrum_packets_passed_total")
        print(f"   the balancer's eth0 received {rx['packets']} packets: {fwd:.0f} forwarded to backends "
              f"+ {passed:.0f} for its own stack (ARP, ND, ...)")
        ok &= rx["packets"] < 1.2 * (fwd + passed)  # replies through the balancer would double it
        proved("the backends' replies (about as many again) never crossed the balancer: they went "
               "straight to the client")
        print(f"   {DIM}(new flows exceed connections a little: the flow table is per CPU, and a "
              f"connection seen on both CPUs is new on each){RESET}")
    except Exception as e:  # show what broke, then clean up
        ok = False
        print(f"\n{RED}demo failed: {e}{RESET}")
        if lab.daemon_log and os.path.exists(lab.daemon_log):
            print(open(lab.daemon_log).read()[-3000:])
    finally:
        if keep and ok:
            print(f"""
{BOLD}The lab is still up.{RESET} Step into it:
   ip netns exec {lab.client} curl -s http://{WEB4}/          # a backend answers with its name
   ip netns exec {lab.balancer} curl -s http://127.0.0.1:9470/metrics | grep ^fulcrum_
   ip netns exec {lab.backends[0]} {fl.DECAP} status --pin-path /sys/fs/bpf/{lab.backends[0]}
   ./run demo --clean                                           # remove it""")
        else:
            lab.down()
    print(f"\n{GREEN if ok else RED}{'demo complete' if ok else 'demo FAILED'}{RESET}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
