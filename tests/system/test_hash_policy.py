#!/usr/bin/python3
"""Hash policies (services[].hash) with real connections through the balancer.

Lab: 3 backends with decap and servers. Services: web (VIP1 TCP 80, hash: src-ip), dns (VIP1 UDP
53, hash: src-ip), spread (VIP2 TCP 80, the default 5-tuple), a fixed bpf.hash_seed.
1. `fulcrumd --check` refuses an unknown policy word at its file:line:column;
2. 40 real HTTP connections of one client to web (each from its own source port) are answered
   by one backend, and `fulcrumctl lookup web CLIENT PORT` names that backend for 20 ports never
   used (a Maglev answer, with "hash": "src-ip"); the same client's 40 connections to spread are
   answered by more than one backend (the control); lookups of 30 other client addresses spread;
3. 30 UDP flows to dns from 30 source ports: one backend, the one lookup names;
4. `fulcrumctl diff` of a file with dns at 5-tuple names the change; after the reload the 30
   recorded flows stay on their backend (the flow table keeps them), 30 new flows spread, each
   where lookup says;
5. a second balancer (a fresh fulcrumd on fresh pins) with the same file gives the same lookups,
   and the client's HTTP connections to web reach the same backend.
Bounded in time; the lab is removed also on failure."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, lab_up, main, service_yaml, step, udp_ask_connected  # noqa: E402

VIP1, VIP2 = "198.18.100.10", "198.18.100.11"
SEED = 305419896


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def config(lab, dns_policy):
    backends = [(fl.backend_v4(i), None) for i in range(1, 4)]
    services = (service_yaml("web", VIP1, 80, "tcp", backends, hash_policy="src-ip") +
                service_yaml("dns", VIP1, 53, "udp", backends, hash_policy=dns_policy) +
                service_yaml("spread", VIP2, 80, "tcp", backends))
    text = lab.config_text(services, extra="flows: {udp_idle_timeout: 10m}\n")
    return text.replace(f"  pin_path: {lab.pin_path}\n", f"  pin_path: {lab.pin_path}\n  hash_seed: {SEED}\n")


def lookup(lab, service, client, port):
    r = ctl(lab, "lookup", service, client, str(port), "--json")
    check_quiet(r.returncode == 0, f"fulcrumctl lookup {service} {client} {port} exits 0", r.stdout + r.stderr)
    return json.loads(r.stdout)


def check_quiet(cond, msg, detail=""):
    if not cond:
        check(cond, msg, detail)


def test():
    lab = fl.Lab(backends=3, prefix=f"hp{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends with decap and servers; VIP1 and VIP2 on their lo")
        lab_up(lab)
        lab.add_vip_to_backends(VIP1)
        lab.add_vip_to_backends(VIP2)
        lab.attach_decap()
        lab.start_servers()
        names = {fl.backend_v4(i): b for i, b in enumerate(lab.backends, start=1)}

        step("1. fulcrumd --check: an unknown policy is an error at its line and column")
        bad = lab.write_config(config(lab, "src-ip").replace("hash: src-ip", "hash: source-ip", 1), "bad.yaml")
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", bad], capture_output=True, text=True, timeout=30)
        line = next(n for n, t in enumerate(open(bad).read().splitlines(), start=1) if "hash: source-ip" in t)
        want = (f"{bad}:{line}:11: services[0].hash: expected 5-tuple, src-ip, src-ip-dst-port or dst-port, "
                f"got \"source-ip\"")
        check(r.returncode == 1 and want in r.stdout + r.stderr, f"exit 1 and '{want}'", r.stdout + r.stderr)
        good = lab.write_config(config(lab, "src-ip"))
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", good], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "the file with src-ip policies passes --check", r.stdout + r.stderr)

        step("2. fulcrumd; one client's HTTP connections to web (src-ip) and to spread (5-tuple)")
        lab.start_fulcrumd(good)
        web = lab.http_get_many(VIP1, 40)
        check(None not in web, "40 HTTP connections to web answered", str(web))
        check(len(set(web)) == 1, f"all 40 answered by one backend ({web[0]}) under src-ip", str(web))
        sticky = web[0]
        answers = [lookup(lab, "web", fl.CLIENT_V4, port) for port in range(20000, 20020)]
        check(all(a["source"] == "maglev" and a["hash"] == "src-ip" for a in answers),
              "lookup answers from Maglev with the service's policy (\"hash\": \"src-ip\")", str(answers[0]))
        check({names[a["backend"]] for a in answers} == {sticky},
              f"fulcrumctl lookup names {sticky} for 20 client ports never used", str(answers[:3]))
        spread = lab.http_get_many(VIP2, 40)
        check(None not in spread and len(set(spread)) >= 2,
              f"the same client's 40 connections to spread (5-tuple) reach {len(set(spread))} backends", str(spread))
        clients = [f"198.18.1.{i}" for i in range(1, 31)]
        per_client = {c: lookup(lab, "web", c, 40000)["backend"] for c in clients}
        check(len(set(per_client.values())) >= 2,
              f"30 other client addresses spread over {len(set(per_client.values()))} backends under src-ip")

        step("3. 30 UDP flows of the client to dns (src-ip) from 30 source ports")
        got = [name for name, _ in udp_ask_connected(lab, VIP1, 30, src_port_base=21000)]
        check(None not in got and len(set(got)) == 1, f"all 30 answered by one backend ({got[0]})", str(got))
        udp_backend = got[0]
        check(names[lookup(lab, "dns", fl.CLIENT_V4, 23999)["backend"]] == udp_backend,
              "lookup of an unused port names that backend")

        step("4. diff and reload with dns at 5-tuple: recorded flows stay, new flows spread")
        nxt = lab.write_config(config(lab, "5-tuple"), "next.yaml")
        r = ctl(lab, "diff", nxt)
        check(r.returncode == 0 and "hash: src-ip -> 5-tuple" in r.stdout and "recorded flows keep theirs" in r.stdout,
              "fulcrumctl diff names the policy change", r.stdout + r.stderr)
        print("    " + next(t for t in r.stdout.splitlines() if "hash:" in t).strip())
        r = ctl(lab, "diff", nxt, "--json")
        dns = next(s for s in json.loads(r.stdout)["services"] if s["name"] == "dns")
        check(dns["change"] == "changed" and dns["hash_before"] == "src-ip" and dns["hash_after"] == "5-tuple"
              and 0.4 < dns["slots_moved"] < 0.9,
              f"diff --json: changed, hash_before/after, about {dns['slots_moved']:.0%} of new flows move", str(dns))
        lab.write_config(config(lab, "5-tuple"))
        r = ctl(lab, "reload")
        check(r.returncode == 0, "reload applied", r.stdout + r.stderr)
        kept = [lookup(lab, "dns", fl.CLIENT_V4, port) for port in range(21000, 21030)]
        check(all(a["source"] == "flow_table" and names[a["backend"]] == udp_backend for a in kept),
              "lookup: the 30 recorded flows are flow-table entries on their backend", str(kept[:2]))
        again = [name for name, _ in udp_ask_connected(lab, VIP1, 30, src_port_base=21000)]
        check(again == [udp_backend] * 30, f"the 30 recorded flows are still answered by {udp_backend}", str(again))
        expect = [names[lookup(lab, "dns", fl.CLIENT_V4, port)["backend"]] for port in range(22000, 22030)]
        fresh = [name for name, _ in udp_ask_connected(lab, VIP1, 30, src_port_base=22000)]
        check(fresh == expect, "30 new flows go where lookup (5-tuple now) says", str(list(zip(fresh, expect))[:5]))
        check(len(set(fresh)) >= 2, f"and spread over {len(set(fresh))} backends")

        step("5. a second balancer with the same file: the same choices")
        ports = list(range(23000, 23030))
        before = ([lookup(lab, "web", c, 40000)["backend"] for c in clients] +
                  [lookup(lab, "dns", fl.CLIENT_V4, p)["backend"] for p in ports] +
                  [lookup(lab, "web", fl.CLIENT_V4, p)["backend"] for p in ports])
        lab.stop_fulcrumd()  # on_exit: detach: program and pins gone
        lab.start_fulcrumd(lab.write_config(config(lab, "5-tuple")))
        after = ([lookup(lab, "web", c, 40000)["backend"] for c in clients] +
                 [lookup(lab, "dns", fl.CLIENT_V4, p)["backend"] for p in ports] +
                 [lookup(lab, "web", fl.CLIENT_V4, p)["backend"] for p in ports])
        check(after == before, f"{len(before)} lookups equal on the fresh balancer",
              str([(i, b, a) for i, (b, a) in enumerate(zip(before, after)) if a != b][:5]))
        web = lab.http_get_many(VIP1, 20)
        check(web == [sticky] * 20, f"the client's 20 new HTTP connections to web reach {sticky} again", str(web))
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_hash_policy", test)
