#!/usr/bin/python3
"""DSR end to end: real TCP (HTTP) connections and UDP request/response exchanges from a client to
VIPs, balanced by fulcrumd's XDP program to 3 backends (fulcrum-decap, VIPs on lo, real servers),
over IPv4, IPv6, and an IPv4 service over IPv6 backends (IPv4-in-IPv6 tunnel).

Checks, per family and protocol: no failed request, every backend answered, the answers came from
the VIP (UDP sockets connect()ed to the VIP, recvfrom's peer is the VIP; TCP connected to the VIP),
and that it is really DSR: replies do not pass through the balancer (its eth0 RX grows only by what
the client sent, while the client receives the replies; the client sees every src=VIP frame come
from a backend's MAC, never the balancer's; a sniffer on the balancer sees no src=VIP packet)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import lab_up, Sniffer, check, daemon_log_tail, link_stats, mac_of, main, service_yaml, step, \
    udp_ask_connected  # noqa: E402

N = 200          # TCP connections and UDP exchanges per case
SLACK = 40       # stray frames allowed in the counter comparison, plus the balancer's own traffic

VIP4, VIP6, VIP46 = "198.18.100.10", "2001:db8:100::10", "198.18.100.20"
CASES = [  # (label, vip, backend family)
    ("IPv4 over IPv4 backends", VIP4, 4),
    ("IPv6 over IPv6 backends", VIP6, 6),
    ("IPv4 over IPv6 backends", VIP46, 6),
]


def test():
    lab = fl.Lab(backends=3, prefix=f"dsr{os.getpid() % 100000}")
    sniffers = []
    try:
        step("lab up: client, balancer, 3 backends with decap, VIPs on lo, HTTP :80 and UDP :53 servers")
        lab_up(lab)
        for vip in (VIP4, VIP6, VIP46):
            lab.add_vip_to_backends(vip)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)

        services = ""
        for label, vip, fam in CASES:
            bes = [((fl.backend_v4(i) if fam == 4 else fl.backend_v6(i)), 100) for i in (1, 2, 3)]
            tag = {VIP4: "v4", VIP6: "v6", VIP46: "v46"}[vip]
            services += service_yaml(f"web{tag}", vip, 80, "tcp", bes)
            services += service_yaml(f"udp{tag}", vip, 53, "udp", bes)
        # Health checks every 5 s, not the lab's 500 ms: the balancer's own traffic is what the
        # counter comparison below must allow for, and 18 checks twice a second made that
        # allowance (which grows with the time a window takes) exceed N on a loaded machine.
        slow_health = "defaults:\n  healthcheck: {type: tcp, interval: 5s, timeout: 300ms, rise: 1, fall: 2}\n"
        cfg = lab.write_config(lab.config_text(services, extra=slow_health))
        step("fulcrumd starts with 6 services (TCP :80 and UDP :53 on each VIP)")
        lab.start_fulcrumd(cfg)
        check(lab.xdp_attached(lab.balancer, "eth0"), "fulcrumd attached XDP to the balancer's eth0")

        lb_mac = mac_of(lab, lab.balancer)
        be_macs = {mac_of(lab, b) for b in lab.backends}
        client_sniff = Sniffer(lab, lab.client, f"src host {VIP4} or src host {VIP6} or src host {VIP46}")
        # On the balancer also capture ICMP echo requests to its own address: a positive control that
        # this sniffer does see what reaches the balancer's host stack.
        lb_sniff = Sniffer(lab, lab.balancer, f"src host {VIP4} or src host {VIP6} or src host {VIP46} or "
                                              f"(icmp and dst host {fl.BALANCER_V4})")
        sniffers += [client_sniff, lb_sniff]

        # The balancer's own traffic (health checks and their replies, ARP/ND) also crosses its
        # eth0: measure its rate with no client traffic, and allow for it over each window. Replies
        # through the balancer would add at least N frames, far above this allowance.
        idle0, t0 = link_stats(lab, lab.balancer), time.monotonic()
        time.sleep(3)
        idle1, idle_s = link_stats(lab, lab.balancer), time.monotonic() - t0
        own_rate = max(idle1["rx"] - idle0["rx"], idle1["tx"] - idle0["tx"]) / idle_s
        print(f"    the balancer's own traffic, idle: {own_rate:.1f} frames/s (health checks, ARP/ND)")
        for label, vip, fam in CASES:
            for proto in ("tcp", "udp"):
                step(f"{label}: {N} {'HTTP connections' if proto == 'tcp' else 'UDP exchanges'} to {vip}")
                lb0, cl0 = link_stats(lab, lab.balancer), link_stats(lab, lab.client)
                window_start = time.monotonic()
                if proto == "tcp":
                    names = lab.http_get_many(vip, N, port=80)
                    peers_ok = True  # a TCP connection to the VIP only completes with VIP replies
                else:
                    answers = udp_ask_connected(lab, vip, N, port=53)
                    names = [n for n, _ in answers]
                    bad_peers = [p for n, p in answers if n and p != (vip, 53)]
                    peers_ok = not bad_peers
                lb1, cl1 = link_stats(lab, lab.balancer), link_stats(lab, lab.client)
                slack = int(SLACK + 2 * own_rate * (time.monotonic() - window_start))
                failed = names.count(None)
                counts = {b: names.count(b) for b in lab.backends}
                check(len(names) == N and failed == 0, f"{N}/{N} requests answered, none failed",
                      f"{failed} failed of {len(names)}; log:\n{daemon_log_tail(lab)}")
                check(all(counts.values()), f"every backend answered: {counts}")
                if proto == "udp":
                    check(peers_ok, f"every UDP answer reached a socket connected to {vip}:53 and came from it",
                          f"other sources: {bad_peers[:5]}")
                d_lb_rx, d_lb_tx = lb1["rx"] - lb0["rx"], lb1["tx"] - lb0["tx"]
                d_cl_tx, d_cl_rx = cl1["tx"] - cl0["tx"], cl1["rx"] - cl0["rx"]
                print(f"    counters: client sent {d_cl_tx}, received {d_cl_rx}; "
                      f"balancer eth0 RX {d_lb_rx}, TX {d_lb_tx}")
                check(d_cl_rx >= N, f"the client received the replies ({d_cl_rx} frames >= {N})")
                check(slack < N, f"the allowance for the balancer's own traffic ({slack}) is below {N}, "
                                 "so replies through the balancer would show")
                check(d_lb_rx >= N and d_lb_rx <= d_cl_tx + slack,
                      f"balancer RX ({d_lb_rx}) = what the client sent ({d_cl_tx}) +- {slack}: "
                      f"the {d_cl_rx} reply frames did not pass through it")
                check(d_lb_tx <= d_cl_tx + slack,
                      f"balancer TX ({d_lb_tx}) = one tunnelled copy per client frame (+- {slack}), no replies")

        lab.run(lab.client, f"ping -c 2 -i 0.2 -W 2 {fl.BALANCER_V4}")
        step("sniffers: source MACs of src=VIP frames at the client; src=VIP frames at the balancer")
        client_pkts, lb_pkts = client_sniff.stop(), lb_sniff.stop()
        macs = {}
        for p in client_pkts:
            macs[p.src] = macs.get(p.src, 0) + 1
        print(f"    client saw {len(client_pkts)} frames from a VIP, by source MAC: {macs}")
        check(len(client_pkts) >= 6 * N, f"the client captured the replies ({len(client_pkts)} >= {6 * N})")
        check(lb_mac not in macs, f"no reply came from the balancer's MAC {lb_mac}")
        check(set(macs) <= be_macs and len(macs) == 3, "every reply came straight from a backend's MAC, all 3 seen",
              f"backend MACs {be_macs}")
        from_vip = [p for p in lb_pkts if p.haslayer("IP") and p["IP"].src in (VIP4, VIP46)
                    or p.haslayer("IPv6") and p["IPv6"].src == VIP6]
        check(len(lb_pkts) - len(from_vip) >= 2,
              f"positive control: the balancer's sniffer saw the 2 pings to its own address ({len(lb_pkts)} frames)")
        check(len(from_vip) == 0, "the balancer's eth0 saw no packet with a VIP source",
              f"{len(from_vip)} seen, first: {from_vip[:1]}")
        m = lab.scrape()
        for svc in ("webv4", "udpv4", "webv6", "udpv6", "webv46", "udpv46"):
            got = [v for (n, l), v in m.items() if n == "fulcrum_service_packets_total" and ("service", svc) in l]
            check(got and got[0] >= N, f"fulcrum_service_packets_total{{service={svc}}} = {got[0] if got else None}")
    finally:
        for s in sniffers:
            s.kill()
        lab.down()


if __name__ == "__main__":
    main("test_dsr_end_to_end", test)
