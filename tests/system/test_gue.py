#!/usr/bin/python3
"""GUE per service (services[].encap: gue) with real connections through the balancer.

Lab: 3 backends with fulcrum-decap (GUE on its default port 6080) and servers. Services: web (VIP4
TCP 80, gue), dns (VIP4 UDP 53, gue), web6 (VIP6 TCP 80 over IPv6 backends, gue), plain (VIP2 UDP
53, ipip: the control).
1. `fulcrumd --check` refuses `encap: fou` at its file:line:column;
2. 30 real HTTP connections to web are answered, by more than one backend; the backends' decap
   counted them as GUE (decap_gue_v4_in_v4), none as IP-in-IP; a capture on the switch port of a
   backend sees UDP to 6080 from the balancer with source ports in 49152..65535, more than one of them;
3. 20 UDP exchanges to dns, and 20 HTTP connections to web6 over IPv6 GUE (decap_gue_v6_in_v6);
   `fulcrumctl lookup` of each dns flow, asked before it was sent (Maglev) and after (flow table),
   names the backend and the GUE source and destination ports its datagram carried on the wire (a
   capture on the switch's port from the balancer);
4. plain (ipip) is counted as IP-in-IP, and lookup says ipip; `fulcrumctl diff` of a file with plain
   at gue names "encap: ipip -> gue"; after the reload 20 UDP flows recorded before it are answered
   by the same backends (flow-table entries, lookup says, now with GUE ports), now through GUE.
Bounded in time; the lab is removed also on failure."""
import json
import time
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, lab_up, main, service_yaml, step, udp_ask_connected  # noqa: E402

VIP4, VIP2, VIP6 = "198.18.100.30", "198.18.100.31", "2001:db8:100::30"


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def with_encap(text, encap):
    """service_yaml's lines with `encap:` after `protocol:`."""
    return text.replace("    protocol: tcp\n", f"    protocol: tcp\n    encap: {encap}\n").replace(
        "    protocol: udp\n", f"    protocol: udp\n    encap: {encap}\n")


def config(lab, plain_encap):
    v4 = [(fl.backend_v4(i), None) for i in range(1, 4)]
    v6 = [(fl.backend_v6(i), None) for i in range(1, 4)]
    services = (with_encap(service_yaml("web", VIP4, 80, "tcp", v4), "gue") +
                with_encap(service_yaml("dns", VIP4, 53, "udp", v4), "gue") +
                with_encap(service_yaml("web6", VIP6, 80, "tcp", v6), "gue") +
                with_encap(service_yaml("plain", VIP2, 53, "udp", v4), plain_encap))
    return lab.config_text(services, extra="flows: {udp_idle_timeout: 10m}\n")


def decap_counters(lab):
    """Every backend's decap counters (packets by reason), summed."""
    total = {}
    for b in lab.backends:
        out = lab.run(b, f"{fl.DECAP} status --pin-path /sys/fs/bpf/{b} --json", capture=True)
        for i in json.loads(out)["interfaces"]:
            for reason, c in i["counters"].items():
                total[reason] = total.get(reason, 0) + c["packets"]
    return total


def start_capture(lab, name, bpf_filter):
    """tcpdump on the switch's port from the balancer (after the floor's XDP_PASS, before any
    backend's decap); returns (process, pcap path) once it listens."""
    capture, log = f"{lab.workdir}/{name}.pcap", f"{lab.workdir}/{name}.log"
    port = f"{lab.prefix}lb"[-15:]
    sniff = subprocess.Popen(lab.ns(lab.switch, f"tcpdump -i {port} -n -U --immediate-mode -w {capture} {bpf_filter}").split(),
                             stdout=subprocess.DEVNULL, stderr=open(log, "w"), start_new_session=True)
    lab.procs.append(sniff)
    deadline = time.time() + 10
    while "listening on" not in open(log).read() and time.time() < deadline:
        time.sleep(0.05)
    return sniff, capture


def gue_datagrams(sniff, capture, vip, port):
    """After the capture stops: {inner client port: (outer destination, GUE source port, GUE
    destination port)} of the GUE datagrams that carried UDP to vip:port."""
    from scapy.all import IP, UDP, rdpcap  # noqa: E402 (Scapy only where a test reads packets)
    time.sleep(1)  # tcpdump writes what it has read (immediate mode, -U) before it stops
    sniff.terminate()
    sniff.wait(timeout=10)
    seen = {}
    for p in rdpcap(capture):
        if IP not in p or UDP not in p:
            continue
        inner = IP(bytes(p[UDP].payload))
        if UDP in inner and inner.dst == vip and inner[UDP].dport == port:
            seen[inner[UDP].sport] = (p[IP].dst, p[UDP].sport, p[UDP].dport)
    return seen


def moved(before, after, reason):
    return after.get(reason, 0) - before.get(reason, 0)


def test():
    lab = fl.Lab(backends=3, prefix=f"gue{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends with decap (GUE port 6080) and servers; the VIPs on their lo")
        lab_up(lab)
        for vip in (VIP4, VIP2, VIP6):
            lab.add_vip_to_backends(vip)
        lab.attach_decap()
        lab.start_servers()
        ports = [i["gue_port"] for b in lab.backends for i in json.loads(
            lab.run(b, f"{fl.DECAP} status --pin-path /sys/fs/bpf/{b} --json", capture=True))["interfaces"]]
        check(ports == [6080] * 3, "fulcrum-decap status --json: each backend's decap strips GUE on 6080, "
              "the port fulcrumd's tunnel.gue_port defaults to", str(ports))

        step("1. fulcrumd --check: an unknown encapsulation is an error at its line and column")
        bad = lab.write_config(config(lab, "ipip").replace("encap: gue", "encap: fou", 1), "bad.yaml")
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", bad], capture_output=True, text=True, timeout=30)
        line = next(n for n, t in enumerate(open(bad).read().splitlines(), start=1) if "encap: fou" in t)
        want = f"{bad}:{line}:12: services[0].encap: expected ipip or gue, got \"fou\""
        check(r.returncode == 1 and want in r.stdout + r.stderr, f"exit 1 and '{want}'", r.stdout + r.stderr)

        step("2. fulcrumd; 30 HTTP connections to web (gue), counted by decap as GUE, seen as UDP to 6080")
        lab.start_fulcrumd(lab.write_config(config(lab, "ipip")))
        # On the switch's port to backend 1: the backend's own decap runs before any tap there.
        capture, port = f"{lab.workdir}/b1.pcap", f"{lab.prefix}b1"[-15:]
        sniff = subprocess.Popen(lab.ns(lab.switch, f"tcpdump -i {port} -n -U --immediate-mode -w {capture} udp dst port 6080").split(),
                                 stdout=subprocess.DEVNULL, stderr=open(f"{lab.workdir}/tcpdump.log", "w"),
                                 start_new_session=True)
        lab.procs.append(sniff)
        before = decap_counters(lab)
        deadline = time.time() + 10  # until tcpdump listens (it says so on stderr)
        while "listening on" not in open(f"{lab.workdir}/tcpdump.log").read() and time.time() < deadline:
            time.sleep(0.05)
        web = lab.http_get_many(VIP4, 30)
        check(None not in web, "30 HTTP connections to web answered", str(web))
        check(len(set(web)) >= 2, f"by {len(set(web))} backends", str(web))
        after = decap_counters(lab)
        gue4 = moved(before, after, "decap_gue_v4_in_v4")
        # each connection: SYN, ACK, request, FIN/ACKs: at least 3 client packets
        check(gue4 >= 90, f"decap stripped {gue4} GUE packets (IPv4 in IPv4) for them", str(after))
        check(moved(before, after, "decap_v4_in_v4") == 0, "and no IP-in-IP packet", str(after))
        time.sleep(1)  # tcpdump writes what it has read (immediate mode, -U) before it stops
        sniff.terminate()
        sniff.wait(timeout=10)
        read = lab.run(lab.switch, f"tcpdump -r {capture} -n", capture=True)
        rows = [t for t in read.splitlines() if f"{fl.BALANCER_V4}." in t and ".6080:" in t]
        ports = {int(t.split(f"{fl.BALANCER_V4}.")[1].split()[0].rstrip(":")) for t in rows}
        check(rows and all(49152 <= p <= 65535 for p in ports),
              f"backend 1 received {len(rows)} UDP datagrams to 6080 from the balancer, source ports 49152..65535",
              read[:2000])
        check(len(ports) >= 2, f"from {len(ports)} different source ports (the flow hash)", str(sorted(ports)))

        step("3. UDP to dns (gue) and HTTP over IPv6 GUE to web6; lookup's GUE ports against the wire")
        ask = [json.loads(ctl(lab, "lookup", "dns", fl.CLIENT_V4, str(p), "--json").stdout) for p in range(31000, 31020)]
        sniff, capture = start_capture(lab, "dns", "ip and udp dst port 6080")
        before = decap_counters(lab)
        got = [name for name, _ in udp_ask_connected(lab, VIP4, 20, src_port_base=31000)]
        check(None not in got, "20 UDP exchanges with dns answered", str(got))
        wire = gue_datagrams(sniff, capture, VIP4, 53)
        check(sorted(wire) == list(range(31000, 31020)), "the capture holds a GUE datagram of each of the 20 flows",
              str(sorted(wire)))
        said = {31000 + i: (a["backend"], a["gue_source_port"], a["gue_port"]) for i, a in enumerate(ask)}
        check(all(a["source"] == "maglev" and a["encap"] == "gue" for a in ask) and said == wire,
              "lookup before each flow (Maglev) named its backend, GUE source port and port 6080, as on the wire",
              str([(p, said.get(p), wire.get(p)) for p in range(31000, 31020) if said.get(p) != wire.get(p)][:5]))
        check(len({w[1] for w in wire.values()}) >= 10, f"{len({w[1] for w in wire.values()})} different GUE source ports")
        after_ask = [json.loads(ctl(lab, "lookup", "dns", fl.CLIENT_V4, str(p), "--json").stdout) for p in range(31000, 31020)]
        check([(a["source"], a["backend"], a["gue_source_port"]) for a in after_ask] ==
              [("flow_table", a["backend"], a["gue_source_port"]) for a in ask],
              "lookup after (flow-table entries) says the same", str(after_ask[:2]))
        web6 = lab.http_get_many(VIP6, 20)
        check(None not in web6 and len(set(web6)) >= 2, f"20 HTTP connections to web6 answered by {len(set(web6))} backends",
              str(web6))
        after = decap_counters(lab)
        check(moved(before, after, "decap_gue_v4_in_v4") >= 20, "the datagrams were stripped as GUE", str(after))
        check(moved(before, after, "decap_gue_v6_in_v6") >= 60, "the IPv6 connections as IPv6-in-GUE-over-IPv6",
              str(after))

        step("4. plain (ipip), then a reload to gue: diff names it, recorded flows stay")
        before = decap_counters(lab)
        first = [name for name, _ in udp_ask_connected(lab, VIP2, 20, src_port_base=32000)]
        check(None not in first, "20 UDP flows to plain answered", str(first))
        after = decap_counters(lab)
        check(moved(before, after, "decap_v4_in_v4") >= 20 and moved(before, after, "decap_gue_v4_in_v4") == 0,
              "plain's datagrams came in IP-in-IP", str(after))
        r = ctl(lab, "lookup", "plain", fl.CLIENT_V4, "32000")
        a = json.loads(ctl(lab, "lookup", "plain", fl.CLIENT_V4, "32000", "--json").stdout)
        check(r.returncode == 0 and "\n  encap ipip\n" in r.stdout and a["encap"] == "ipip" and "gue_port" not in a,
              "lookup says ipip (text and JSON, no GUE ports)", r.stdout + str(a))
        nxt = lab.write_config(config(lab, "gue"), "next.yaml")
        r = ctl(lab, "diff", nxt)
        check(r.returncode == 0 and "encap: ipip -> gue" in r.stdout, "fulcrumctl diff names the encap change",
              r.stdout + r.stderr)
        plain = next(s for s in json.loads(ctl(lab, "diff", nxt, "--json").stdout)["services"] if s["name"] == "plain")
        check(plain["change"] == "changed" and plain["encap_before"] == "ipip" and plain["encap_after"] == "gue"
              and plain["slots_moved"] == 0, "diff --json: changed, encap_before/after, no slot moves", str(plain))
        lab.write_config(config(lab, "gue"))
        r = ctl(lab, "reload")
        check(r.returncode == 0, "reload applied", r.stdout + r.stderr)
        names = {fl.backend_v4(i): b for i, b in enumerate(lab.backends, start=1)}
        kept = [json.loads(ctl(lab, "lookup", "plain", fl.CLIENT_V4, str(p), "--json").stdout) for p in range(32000, 32020)]
        check(all(k["source"] == "flow_table" for k in kept), "the 20 flows are still flow-table entries", str(kept[:2]))
        check(all(k["encap"] == "gue" and k["gue_port"] == 6080 and 49152 <= k["gue_source_port"] <= 65535 for k in kept),
              "lookup now says gue, with their GUE ports", str(kept[:2]))
        r = ctl(lab, "lookup", "plain", fl.CLIENT_V4, "32000")
        check(r.returncode == 0 and f"  encap gue: UDP from port {kept[0]['gue_source_port']} to port 6080\n" in r.stdout,
              "the text answer names the ports", r.stdout)
        check([names[k["backend"]] for k in kept] == first, "on the backends that answered them", str(kept[:2]))
        before = decap_counters(lab)
        again = [name for name, _ in udp_ask_connected(lab, VIP2, 20, src_port_base=32000)]
        after = decap_counters(lab)
        check(again == first, "the same 20 flows are answered by the same backends after the reload",
              str(list(zip(first, again))))
        check(moved(before, after, "decap_gue_v4_in_v4") >= 20 and moved(before, after, "decap_v4_in_v4") == 0,
              "now through GUE", str(after))
        r = ctl(lab, "status", "--json")
        svc = {s["name"]: s for s in json.loads(r.stdout)["services"]}
        check(svc["plain"]["encap"] == "gue" and svc["web"]["encap"] == "gue",
              "fulcrumctl status --json shows encap per service", str(svc.get("plain")))
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_gue", test)
