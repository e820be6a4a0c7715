#!/usr/bin/python3
"""./run demo: Fulcrum on a lab of network namespaces, with real connections through the balancer.
Builds the lab, starts fulcrumd with config/lab.yaml, opens real HTTP connections and UDP
exchanges from a client, and shows where they went and what the balancer counted.
  --keep   leave the lab running to explore (./run demo --clean removes it)
  --clean  remove a lab left by --keep"""
import collections
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import Sniffer, link_stats  # noqa: E402

CONFIG = os.path.join(fl.SOURCE_DIR, "config", "lab.yaml")
WEB4, WEB6 = "198.18.100.10", "2001:db8:100::10"
WEIGHTS = {"be1": 100, "be2": 100, "be3": 200}  # as in config/lab.yaml (web4)
EQUAL = {"be1": 1, "be2": 1, "be3": 1}            # web6 and dns4: no weights, equal shares
# Each connection or exchange is a new flow with its own source port; the flow hash puts it in a
# Maglev slot as good as at random, so a backend of share p gets Binomial(n, p) of n flows. The
# demo fails if a count is outside n*p +- 4.5 sigma (sigma = sqrt(n p (1-p))): a false alarm has a
# chance of about 1 in 100,000 per run, while a table that ignored web4's weights (be3 at 1/3
# instead of 1/2 of 400) would fall outside 99 times in 100. Maglev's own deviation from the
# weights (65537 slots) is far below sigma.
SIGMAS = 4.5
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


def print_shares(title, answers, lab, weights):
    """Prints each backend's share and its bounds; returns True if every answer came and every
    count is within the bounds of its weight."""
    counts, failed = shares(answers, lab)
    total = sum(counts.values())
    print(f"   {title}: {total} answered, {failed} failed")
    wsum = sum(weights.values())
    ok = failed == 0
    for b in sorted(short(x) for x in lab.backends):
        got = counts.get(b, 0)
        p = weights[b] / wsum
        sigma = math.sqrt(total * p * (1 - p))
        low, high = math.ceil(total * p - SIGMAS * sigma), math.floor(total * p + SIGMAS * sigma)
        inside = low <= got <= high
        ok &= inside
        bar = "#" * round(40 * got / max(total, 1))
        verdict = "" if inside else f"  {RED}OUT OF BOUNDS{RESET}"
        print(f"     {b}  {got:4d}  {100 * got / max(total, 1):5.1f} %  {bar:<40}"
              f"  weight {weights[b]}: expect {100 * p:4.1f} %, {low}..{high}{verdict}")
    return ok


def decap_gue_packets(lab):
    """GUE packets the backends' decap stripped so far (fulcrum-decap status --json), summed."""
    total = 0
    for b in lab.backends:
        out = lab.run(b, f"{fl.DECAP} status --pin-path /sys/fs/bpf/{b} --json", capture=True)
        for i in fl.json.loads(out)["interfaces"]:
            total += sum(c["packets"] for r, c in i["counters"].items() if r.startswith("decap_gue_"))
    return total


def main():
    keep = "--keep" in sys.argv
    lab = fl.Lab(backends=3, prefix="fdemo", metrics_port=9470)
    if "--clean" in sys.argv:
        lab.down()
        print("fulcrum demo: lab removed")
        return 0
    ok = True
    sniffer = None
    try:
        step(1, "A lab of network namespaces on this machine")
        lab.up()
        print(f"""   client  {lab.client:<10} 198.18.0.100  2001:db8::100   routes the VIPs via the balancer
   balancer {lab.balancer:<9} 198.18.0.1    2001:db8::1     fulcrumd, XDP on eth0
   backends {', '.join(lab.backends)}  198.18.0.11-13  2001:db8::11-13
   all on one bridge in {lab.switch}; VIPs: web4 {WEB4}:80, web6 [{WEB6}]:80 (GUE), dns4 {WEB4}:53/udp""")

        step(2, "Backends: Fulcrum's decap XDP program, the VIPs on lo, a real HTTP/UDP server")
        lab.add_vip_to_backends(WEB4)
        lab.add_vip_to_backends(WEB6)
        lab.attach_decap()
        lab.start_servers()
        for b in lab.backends:
            assert lab.xdp_attached(b, "eth0")
        proved("each backend strips the tunnel itself (no ipip module on this kernel), only for tunnels from "
               "the balancer's sources (fulcrum-decap --from 198.18.0.1/32 --from 2001:db8::1/128) to its own "
               "addresses, and serves the VIPs")

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
        # fulcrumd's summary line (services, interfaces, metrics endpoint); the full log is in the lab's workdir.
        print("   " + "\n   ".join(l.split(": ", 1)[-1] for l in open(lab.daemon_log).read().splitlines()
                                   if "info: fulcrumd " in l))
        proved("the YAML was validated, turned into Maglev tables and maps, the program attached, "
               "and every backend passed its health checks (TCP for HTTP, web4's at the VIP inside each "
               "backend's tunnel; UDP for dns4)")

        # Watch the balancer's eth0 during steps 4 and 5 (frames addressed to it: -p, no
        # promiscuous mode): a reply from a VIP there would mean replies go through it.
        sniffer = Sniffer(lab, lab.balancer, "tcp port 80 or udp port 53", iface="eth0 -p")  # -i eth0 -p
        before = {"lb": link_stats(lab, lab.balancer), "client": link_stats(lab, lab.client)}

        step(4, "400 real HTTP connections to the IPv4 VIP (web4: weights 100/100/200)")
        print(f"   {DIM}(bounds: n*p +- {SIGMAS} sigma of Binomial(n, p), p = weight / sum of weights){RESET}")
        in_bounds = print_shares("web4", lab.http_get_many(WEB4, 400), lab, WEIGHTS)
        ok &= in_bounds
        if in_bounds:
            proved("every connection answered; each backend's share is within the bounds of its weight")
        else:
            print(f"   {RED}FAILED: a connection failed or a share is outside its bounds{RESET}")

        step(5, "200 real HTTP connections to the IPv6 VIP (web6: encap gue), 200 UDP exchanges "
                "(IPv4 VIP, IPv6 backends)")
        gue_before = decap_gue_packets(lab)
        in_bounds = print_shares("web6", lab.http_get_many(WEB6, 200), lab, EQUAL)
        gue = decap_gue_packets(lab) - gue_before
        in_bounds &= print_shares("dns4", lab.udp_ask_many(WEB4, 200), lab, EQUAL)
        print(f"   the backends' decap stripped {gue} GUE packets (IPv6 in UDP to port 6080 over IPv6) "
              f"during web6's connections")
        in_bounds &= gue >= 600  # each connection: at least SYN, ACK and the request
        ok &= in_bounds
        if in_bounds:
            proved("IPv6 in GUE over IPv6 (UDP, source port from the flow hash) and IPv4-in-IPv6 tunnels; "
                   "every exchange answered; equal shares within bounds")
        else:
            print(f"   {RED}FAILED: an exchange failed, a share is outside its bounds, or web6 did not go "
                  f"through GUE{RESET}")
        after = {"lb": link_stats(lab, lab.balancer), "client": link_stats(lab, lab.client)}
        seen = sniffer.stop()

        step(6, "What the balancer counted (its Prometheus endpoint, read from the BPF maps at scrape time)")
        m = lab.scrape()

        def by(name, label):
            out = collections.Counter()
            for (n, labels), value in m.items():
                if n == name and value:
                    out[dict(labels)[label]] += value
            return out

        packets, flows, octets = (by(f"fulcrum_service_{x}_total", "service") for x in ("packets", "new_flows", "bytes"))
        print(f"   {'service':<8}{'packets':>9}{'new flows':>11}{'bytes':>10}")
        for svc in sorted(packets):
            print(f"   {svc:<8}{packets[svc]:>9.0f}{flows[svc]:>11.0f}{octets[svc]:>10.0f}")
        drops = by("fulcrum_packets_dropped_total", "reason")
        passed = by("fulcrum_packets_passed_total", "reason")
        print("   dropped by reason: " + (", ".join(f"{r} {v:.0f}" for r, v in sorted(drops.items())) or "none")
              + "; passed to the host (not for a VIP): "
              + (", ".join(f"{r} {v:.0f}" for r, v in sorted(passed.items())) or "none"))
        backend_sum = by("fulcrum_backend_packets_total", "service")
        # A connection is one new flow; a retransmitted SYN or datagram may rarely make one more.
        made = {"web4": 400, "web6": 200, "dns4": 200}
        counted = (set(flows) == set(made) and all(n <= flows[svc] <= n + n // 50 for svc, n in made.items())
                   and not drops
                   and all(backend_sum[svc] == packets[svc] for svc in packets))
        ok &= counted
        if counted:
            proved("one new flow per connection and exchange, each service's packets = the sum of its "
                   "backends' (fulcrum_backend_packets_total), nothing dropped")
        else:
            print(f"   {RED}FAILED: new flows are not 400/200/200 (+2 %), a service's packets differ from its "
                  f"backends' sum ({dict(backend_sum)}), or packets were dropped{RESET}")
        print(f"   {DIM}every metric: ./run demo --keep, then "
              f"ip netns exec {lab.balancer} curl -s http://127.0.0.1:9470/metrics{RESET}")

        step(7, "Direct server return (during steps 4 and 5)")
        sent = after["client"]["tx"] - before["client"]["tx"]
        replies = after["client"]["rx"] - before["client"]["rx"]
        received = after["lb"]["rx"] - before["lb"]["rx"]
        # From a VIP to the client: a reply that crossed the balancer. web4's health checks go
        # through the tunnel to the VIP (config/lab.yaml), so their answers, from the VIP to the
        # balancer's own address, are expected here.
        vip_src = [p for p in seen if (p.haslayer("IP") and p["IP"].src == WEB4)
                   or (p.haslayer("IPv6") and p["IPv6"].src == WEB6)]
        from_vip = [p for p in vip_src if (p.haslayer("IP") and p["IP"].dst == fl.CLIENT_V4)
                    or (p.haslayer("IPv6") and p["IPv6"].dst == fl.CLIENT_V6)]
        print(f"   the client sent {sent} packets and received {replies}; the balancer's eth0 received "
              f"{received}: {received - sent:+d} beyond what the client sent (its health checks' "
              f"answers, ARP/ND)")
        print(f"   a sniffer on the balancer's eth0 saw {len(seen)} packets on TCP 80 / UDP 53 (at least its own "
              f"health checks), {len(from_vip)} of them from a VIP to the client ({len(vip_src) - len(from_vip)} "
              f"from a VIP to the balancer: answers to web4's checks through the tunnel)")
        dsr = bool(seen) and not from_vip and replies > 0 and received - sent < replies / 2
        ok &= dsr
        if dsr:
            proved("the backends' replies never crossed the balancer: no packet from a VIP to the client reached "
                   "it, and it received about what the client sent, not the replies on top")
        else:
            print(f"   {RED}FAILED: replies crossed the balancer (or the sniffer saw nothing){RESET}")
            for p in from_vip[:5]:
                print(f"     {p.summary()}")
    except Exception as e:  # show what broke, then clean up
        ok = False
        print(f"\n{RED}demo failed: {e}{RESET}")
        if lab.daemon_log and os.path.exists(lab.daemon_log):
            print(open(lab.daemon_log).read()[-3000:])
    finally:
        if sniffer:
            sniffer.kill()
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
