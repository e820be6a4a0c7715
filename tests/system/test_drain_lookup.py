#!/usr/bin/python3
"""drain/undrain with live connections: the existing connection completes, new ones avoid the
backend; `fulcrumctl lookup` agrees with where packets actually go for 1,000 flows.

Lab: 3 backends; service web = every TCP port of 198.18.100.10 (port 0: HTTP on 80, line echo on
7), service dns = UDP 53 on the same VIP. The client is pinned to CPU 0 (`taskset -c 0`): the
flow table is per CPU, and the balancer's XDP runs on the CPU that sent the frame into the veth.

(a) drain/undrain: a long-lived echo connection to VIP:7 learns its backend B from the echo;
    `fulcrumctl drain web B` exits 0; the connection keeps working, answered by B; 100 new HTTP
    connections never reach B (and all succeed); status shows B "draining (fulcrumctl drain)"
    (JSON: state draining, drained_by operator); `lookup` of the echo flow still says B from the
    flow table; the drain survives `fulcrumctl reload` of the unchanged file (100 more
    connections avoid B, the echo still works); errors exit 1 with their message: drain of an
    unknown service, of an unknown backend, of a backend already drained, undrain of a backend
    not drained; `undrain` exits 0 and new connections reach B again, the echo still answered by B.
(b) lookup agreement: 1,000 client source ports; for each, `fulcrumctl lookup dns CLIENT PORT
    --json` before the flow exists (source maglev) names the backend that then really answers
    a UDP datagram sent from a socket bound to that port; afterwards lookup (source flow_table)
    still names it, and a second datagram goes there too. Then a backend is removed from the
    file and reloaded: for the 1,000 existing flows lookup names a remaining backend (flow table
    for the kept ones, the same backend as before; Maglev for the removed backend's flows) and
    the datagrams really go there; 1,000 new flows agree too (maglev before, flow_table after).
(c) idle UDP flows: with udp_idle_timeout 2s (fulcrumd restarted), the Maglev choice of 600
    candidate flows is looked up over 3 backends, then dns is reloaded on 2 backends; the flows
    (of 450) whose choice over 2 differs from that over 3 ("movers") and 100 whose is the same are
    sent (they land on their 2-backend choice). The third backend is added back and reloaded
    (the same 3-backend table: 150 never-sent flows look up as before), the flows idle 3.5 s
    past their last packet: lookup must say source maglev and the 3-backend choice for every
    flow, and the next datagram of every mover really goes there, away from its old backend
    (an entry that never expired would keep it there and fail both).
"""
import json
import os
import random
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402

FULCRUMCTL = os.path.join(fl.BUILD_DIR, "src", "cmd", "fulcrumctl")
VIP = "198.18.100.10"
FLOWS = 1000

# Shared with the other system tests: timing, step/check reporting, lab.up() with retries.
from st_helpers import _T0, TestFailure, check, lab_up, step  # noqa: E402


def config_text(lab, web_backends, dns_backends, udp_idle_timeout="10m"):
    """web: every TCP port of VIP; dns: UDP 53 (health checks on TCP 80, which the lab servers
    answer; they have nothing on TCP 53). A UDP flow idle for udp_idle_timeout is re-hashed:
    10m keeps the flows of (b) alive throughout."""
    lines = ""
    for name, port, proto, extra, backends in (
            ("web", 0, "tcp", "    healthcheck:\n      port: 80\n", web_backends),
            ("dns", 53, "udp", "    healthcheck:\n      port: 80\n", dns_backends)):
        lines += f"  - name: {name}\n    vip: {VIP}\n    port: {port}\n    protocol: {proto}\n{extra}    backends:\n"
        lines += "".join(f"      - address: {b}\n" for b in backends)
    return lab.config_text(lines, extra=f"flows:\n  udp_idle_timeout: {udp_idle_timeout}\n")


def ctl(lab, *args):
    return subprocess.run([FULCRUMCTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


class Names:
    """Backend namespace name <-> tunnel address (be1 <-> 198.18.0.11, ...)."""

    def __init__(self, lab):
        self.by_name = {b: fl.backend_v4(i) for i, b in enumerate(lab.backends, start=1)}
        self.by_address = {a: b for b, a in self.by_name.items()}


# A long-lived connection to VIP:7 in the client namespace: prints its local port, then for every
# line on stdin sends it and prints the echo ("BACKEND line"), or "ERROR ..." (and exits).
ECHO_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 7), timeout=5)
print(s.getsockname()[1], flush=True)
replies = s.makefile("rb")
for line in sys.stdin:
    try:
        s.sendall(line.encode())
        answer = replies.readline().decode()
        if not answer:
            raise EOFError("connection closed")
        print(answer.rstrip("\n"), flush=True)
    except Exception as e:
        print(f"ERROR {type(e).__name__} {e}", flush=True)
        break
"""

# One UDP exchange per source port in PORTS_FILE, from a socket bound to CLIENT:PORT; a lost
# answer is asked again from the same port (the same flow). Prints {port: backend name or null}.
UDP_FLOWS = r"""
import json, socket, sys
client, vip, ports_file = sys.argv[1:4]
out, retries = {}, 0
for port in json.load(open(ports_file)):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((client, port))
    s.settimeout(1.0)
    out[port] = None
    for attempt in range(3):
        try:
            s.sendto(b"who", (vip, 53))
            out[port] = s.recv(512).decode().strip()
            break
        except socket.timeout:
            retries += 1
    s.close()
print(json.dumps({"names": out, "retries": retries}))
"""


class EchoConnection:
    def __init__(self, lab):
        path = f"{lab.workdir}/echo_client.py"
        with open(path, "w") as f:
            f.write(ECHO_CLIENT)
        cmd = lab.ns(lab.client, f"taskset -c 0 {fl.PYTHON} {path} {VIP}")
        self.proc = subprocess.Popen(cmd.split(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, start_new_session=True)
        lab.procs.append(self.proc)
        self.port = int(self.proc.stdout.readline())

    def say(self, line):
        """The backend that echoed `line` (checks the echo itself)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().rstrip("\n")
        name, _, echoed = answer.partition(" ")
        if name == "ERROR" or echoed != line:
            raise TestFailure(f"echo of {line!r} failed: {answer!r}")
        return name

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


def http_names(lab, count):
    names = lab.http_get_many(VIP, count)
    failed = names.count(None)
    if failed:
        raise TestFailure(f"{failed} of {count} HTTP connections failed")
    return names


def part_a(lab, names):
    step("(a) a long-lived echo connection to VIP:7 (service web, port 0)")
    echo = EchoConnection(lab)
    owner = echo.say("hello 1")
    address = names.by_name[owner]
    check(all(echo.say(f"hello {i}") == owner for i in range(2, 6)),
          f"echo connection from port {echo.port} is served by {owner} ({address})")

    step(f"fulcrumctl drain web {address}")
    r = ctl(lab, "drain", "web", address)
    check(r.returncode == 0 and r.stdout == f"drained {address} of web: existing flows stay, new flows go to "
                                            f"the others (kept across reloads and restarts)\n",
          f"drain exits 0: {r.stdout.strip()}", f"exit {r.returncode}: {r.stdout}{r.stderr}")
    check(all(echo.say(f"after drain {i}") == owner for i in range(20)),
          f"the existing connection keeps working, still answered by {owner} (20 lines)")
    got = http_names(lab, 100)
    check(owner not in got and len(set(got)) == 2,
          f"100 new HTTP connections all succeed and avoid {owner}: {dict(sorted((n, got.count(n)) for n in set(got)))}")

    def status_says_drained():
        text = ctl(lab, "status")
        st = json.loads(ctl(lab, "status", "--json").stdout)
        lines = [ln for ln in text.stdout.splitlines() if f" {address} " in ln]
        states = {(s["name"], b["address"]): (b["state"], b["drained_by"]) for s in st["services"]
                  for b in s["backends"]}
        # Two lines name the address: web's (drained) first, then dns's (untouched).
        return text.returncode == 0 and len(lines) == 2 and "draining (fulcrumctl drain)" in lines[0] \
            and " active " in lines[1] and states[("web", address)] == ("draining", "operator") \
            and states[("dns", address)] == ("active", ""), lines, states

    ok, lines, states = status_says_drained()
    check(ok, f"status shows {address} of web 'draining (fulcrumctl drain)' (JSON: draining, operator); "
              f"dns's {address} stays active", f"{lines}\n    {states}")
    r = ctl(lab, "lookup", "web", fl.CLIENT_V4, str(echo.port), "7", "--json")
    lk = json.loads(r.stdout) if r.returncode == 0 else {}
    check(lk.get("backend") == address and lk.get("source") == "flow_table",
          f"lookup of the echo flow (port {echo.port} -> 7): {address} from the flow table", r.stdout + r.stderr)

    step("the drain survives `fulcrumctl reload` of the unchanged file")
    r = ctl(lab, "reload")
    check(r.returncode == 0, f"reload exits 0: {r.stdout.strip()}", r.stdout + r.stderr)
    ok, lines, states = status_says_drained()
    check(ok, "status still shows it draining (fulcrumctl drain)", f"{lines}\n    {states}")
    got = http_names(lab, 100)
    check(owner not in got, f"100 more new HTTP connections avoid {owner}")
    check(all(echo.say(f"after reload {i}") == owner for i in range(5)), f"the echo connection still goes to {owner}")

    step("errors")
    for args, code, message in (
            (("drain", "nope", address), 1, 'no service "nope"'),
            (("drain", "web", "198.18.0.99"), 1, 'service web has no backend "198.18.0.99"'),
            (("drain", "web", address), 1, f"backend {address} of web is already drained by fulcrumctl"),
            (("undrain", "web", fl.backend_v4(1) if address != fl.backend_v4(1) else fl.backend_v4(2)), 1,
             f"backend {fl.backend_v4(1) if address != fl.backend_v4(1) else fl.backend_v4(2)} of web is not "
             f"drained by fulcrumctl"),
            (("undrain", "dns", address), 1, f"backend {address} of dns is not drained by fulcrumctl")):
        r = ctl(lab, *args)
        check(r.returncode == code and r.stderr == message + "\n" and not r.stdout,
              f"fulcrumctl {' '.join(args)}: exit {code}, \"{message}\"", f"exit {r.returncode}: {r.stdout!r} {r.stderr!r}")

    step(f"fulcrumctl undrain web {address}")
    r = ctl(lab, "undrain", "web", address)
    check(r.returncode == 0 and r.stdout == f"undrained {address} of web: it takes new flows again\n",
          f"undrain exits 0: {r.stdout.strip()}", f"exit {r.returncode}: {r.stdout}{r.stderr}")
    got = http_names(lab, 100)
    check(got.count(owner) >= 10 and len(set(got)) == 3,
          f"new connections reach {owner} again: {dict(sorted((n, got.count(n)) for n in set(got)))}")
    st = json.loads(ctl(lab, "status", "--json").stdout)
    check(all(b["state"] == "active" for s in st["services"] for b in s["backends"]), "status: every backend active")
    check(all(echo.say(f"after undrain {i}") == owner for i in range(5)), f"the echo connection still goes to {owner}")
    echo.close()


def lookups(lab, service, ports):
    """{port: lookup JSON} from `fulcrumctl lookup SERVICE CLIENT PORT --json`."""
    def one(port):
        r = ctl(lab, "lookup", service, fl.CLIENT_V4, str(port), "--json")
        if r.returncode != 0:
            raise TestFailure(f"lookup {service} {port}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return port, json.loads(r.stdout)
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, ports))


def send_flows(lab, ports):
    """{port: backend address that answered} for one UDP exchange per source port, client on CPU 0."""
    path, ports_file = f"{lab.workdir}/udp_flows.py", f"{lab.workdir}/ports.json"
    with open(path, "w") as f:
        f.write(UDP_FLOWS)
    with open(ports_file, "w") as f:
        json.dump(ports, f)
    out = lab.run(lab.client, f"taskset -c 0 {fl.PYTHON} {path} {fl.CLIENT_V4} {VIP} {ports_file}", capture=True)
    res = json.loads(out)
    names = Names(lab)
    lost = [p for p, n in res["names"].items() if n is None]
    if lost:
        raise TestFailure(f"{len(lost)} UDP flows got no answer in 3 tries: ports {lost[:10]}")
    if res["retries"]:
        print(f"    ({res['retries']} datagrams were asked again after a 1 s timeout)", flush=True)
    return {int(p): names.by_name[n] for p, n in res["names"].items()}


def agree(what, looked, real, source):
    bad = [(p, looked[p]["backend"], looked[p]["source"], real[p]) for p in real
           if looked[p]["backend"] != real[p] or looked[p]["source"] not in source]
    spread = {}
    for p in real:
        spread[real[p]] = spread.get(real[p], 0) + 1
    check(not bad, f"{what}: lookup ({'/'.join(source)}) names the backend that answered for all {len(real)} flows; "
                   f"spread {dict(sorted(spread.items()))}",
          f"{len(bad)} disagree, e.g. (port, lookup, source, real): {bad[:10]}")


def part_b(lab, backends, config):
    rng = random.Random(20240607)
    ports = rng.sample(range(20000, 30000), FLOWS)
    new_ports = rng.sample(range(30000, 40000), FLOWS)

    step(f"(b) {FLOWS} UDP flows to dns: lookup before they exist (Maglev), then real datagrams")
    t = time.time()
    before = lookups(lab, "dns", ports)
    print(f"    ({FLOWS} lookups in {time.time() - t:.1f}s)", flush=True)
    check(all(v["source"] == "maglev" and v["table_size"] == 65537 for v in before.values()),
          "every lookup of a flow not yet seen comes from the Maglev table")
    real = send_flows(lab, ports)
    agree("before the flows exist", before, real, ("maglev",))

    step("the same flows once they exist (flow table)")
    after = lookups(lab, "dns", ports)
    agree("existing flows", after, real, ("flow_table",))
    again = send_flows(lab, ports)
    check(again == real, "a second datagram of every flow goes to the same backend")

    removed = backends[-1]
    step(f"remove backend {removed} from dns in the file, fulcrumctl reload")
    with open(config, "w") as f:
        f.write(config_text(lab, backends, backends[:-1]))
    r = ctl(lab, "reload")
    check(r.returncode == 0, f"reload exits 0: {r.stdout.strip()}", r.stdout + r.stderr)
    moved = [p for p in ports if real[p] == removed]
    stayed = [p for p in ports if real[p] != removed]
    looked = lookups(lab, "dns", ports)
    check(all(looked[p]["source"] == "flow_table" and looked[p]["backend"] == real[p] for p in stayed),
          f"lookup: the {len(stayed)} flows of kept backends stay where they were (flow table)",
          str([(p, looked[p], real[p]) for p in stayed if looked[p]["backend"] != real[p]][:5]))
    check(all(looked[p]["source"] == "maglev" and looked[p]["backend"] != removed for p in moved),
          f"lookup: the {len(moved)} flows of the removed backend are re-hashed (Maglev) to the others",
          str([(p, looked[p]) for p in moved if looked[p]["backend"] == removed][:5]))
    real2 = send_flows(lab, ports)
    agree("existing flows after the reload", looked, real2, ("flow_table", "maglev"))
    looked_new = lookups(lab, "dns", new_ports)
    check(all(v["source"] == "maglev" for v in looked_new.values()), f"{FLOWS} new flows: lookup from Maglev")
    real_new = send_flows(lab, new_ports)
    agree("new flows after the reload", looked_new, real_new, ("maglev",))
    check(removed not in real_new.values() and removed not in real2.values(), f"no flow reached {removed}")
    agree("new flows once they exist", lookups(lab, "dns", new_ports), real_new, ("flow_table",))


def wait_dns_healthy(lab, addresses, timeout=15):
    """Waits until every backend of dns in `addresses` is health up (new backends start down)."""
    deadline = time.time() + timeout
    while True:
        st = json.loads(ctl(lab, "status", "--json").stdout)
        health = {b["address"]: b["health"] for s in st["services"] if s["name"] == "dns" for b in s["backends"]}
        if set(health) == set(addresses) and all(h == "up" for h in health.values()):
            return
        if time.time() > deadline:
            raise TestFailure(f"dns backends not all up after {timeout} s: {health}")
        time.sleep(0.2)


def part_c(lab, backends, config):
    step("(c) idle UDP flows: restart fulcrumd with udp_idle_timeout 2s, dns on 3 backends")
    lab.stop_fulcrumd()
    with open(config, "w") as f:
        f.write(config_text(lab, backends, backends, udp_idle_timeout="2s"))
    lab.start_fulcrumd(config)
    wait_dns_healthy(lab, backends)
    candidates = random.Random(7).sample(range(40000, 50000), 600)
    unused = candidates[450:]          # never sent: they show the 3-backend table is the same later
    table3 = {p: v["backend"] for p, v in lookups(lab, "dns", candidates).items()}

    step("reload with dns on 2 backends; pick flows whose 2-backend choice differs from the 3-backend one")
    with open(config, "w") as f:
        f.write(config_text(lab, backends, backends[:2], udp_idle_timeout="2s"))
    r = ctl(lab, "reload")
    check(r.returncode == 0, f"reload exits 0: {r.stdout.strip()}", r.stdout + r.stderr)
    table2 = {p: v["backend"] for p, v in lookups(lab, "dns", candidates[:450]).items()}
    movers = [p for p in candidates[:450] if table3[p] != table2[p]]
    stayers = [p for p in candidates[:450] if table3[p] == table2[p]][:100]
    check(len(movers) >= 100 and len(stayers) == 100,
          f"{len(movers)} flows whose backend over 3 backends differs from the one over 2 (the table's "
          f"choice after the change), {len(stayers)} whose choice stays",
          f"of 450 candidates: {len(movers)} differ")
    ports = stayers + movers           # movers last: the freshest entries are checked below
    real = send_flows(lab, ports)
    t_last = time.time()
    check(all(real[p] == table2[p] for p in ports), f"{len(ports)} flows sent: each went to its 2-backend choice")
    # Lookups take tens of ms each, so only the last few flows are surely younger than 2 s here.
    fresh = lookups(lab, "dns", ports[-8:])
    check(all(v["source"] == "flow_table" and v["backend"] == real[p] for p, v in fresh.items()),
          "the 8 flows sent last have live flow-table entries (their old backend)", str(fresh))

    step(f"add {backends[2]} back to dns, reload, let the flows idle past the 2 s timeout")
    with open(config, "w") as f:
        f.write(config_text(lab, backends, backends, udp_idle_timeout="2s"))
    r = ctl(lab, "reload")
    check(r.returncode == 0, f"reload exits 0: {r.stdout.strip()}", r.stdout + r.stderr)
    wait_dns_healthy(lab, backends)
    # Health changes reach the table in 200 ms batches: give the rebuild a moment to land.
    deadline = time.time() + 5
    while True:
        looked_unused = lookups(lab, "dns", unused)
        if all(looked_unused[p]["backend"] == table3[p] for p in unused) or time.time() > deadline:
            break
        time.sleep(0.3)
    check(all(looked_unused[p]["source"] == "maglev" and looked_unused[p]["backend"] == table3[p] for p in unused),
          f"the 3-backend table is the one seen before ({len(unused)} never-sent flows look up as before)",
          str([(p, looked_unused[p], table3[p]) for p in unused if looked_unused[p]["backend"] != table3[p]][:5]))
    time.sleep(max(0.0, t_last + 3.5 - time.time()))
    # The data plane re-hashes a UDP flow idle longer than the timeout (Maglev, now over 3
    # backends); lookup must say where its next packet goes: the table's choice, never the
    # expired entry's backend (for the movers the two differ).
    looked = lookups(lab, "dns", ports)
    stale = [(p, looked[p]) for p in ports if looked[p]["source"] != "maglev" or looked[p]["backend"] != table3[p]]
    check(not stale, f"lookup after {time.time() - t_last:.1f} s idle: all {len(ports)} flows re-hashed "
                     f"(source maglev, the 3-backend choice), none from the expired entries",
          f"{len(stale)} not, e.g. (port, lookup): {stale[:5]}")
    real2 = send_flows(lab, ports)
    moved = [p for p in movers if real2[p] == table3[p] and real2[p] != real[p]]
    check(len(moved) == len(movers), f"data plane: all {len(movers)} movers went to the table's choice, "
                                     f"not their old backend ({len(moved)} moved)",
          str([(p, real[p], real2[p], table3[p]) for p in movers if p not in moved][:5]))
    check(all(real2[p] == real[p] for p in stayers), f"data plane: the {len(stayers)} stayers stayed")


def main():
    lab = fl.Lab(backends=3, prefix=f"dl{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends, services web (TCP, every port) and dns (UDP 53)")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers()
        backends = [fl.backend_v4(i) for i in range(1, 4)]
        config = lab.write_config(config_text(lab, backends, backends))
        lab.start_fulcrumd(config)
        names = Names(lab)
        part_a(lab, names)
        part_b(lab, backends, config)
        part_c(lab, backends, config)
    except TestFailure as e:
        print(f"FAIL test_drain_lookup: {e}", flush=True)
        if lab.daemon_log and os.path.exists(lab.daemon_log):
            print("--- fulcrumd log (tail):\n" + "".join(open(lab.daemon_log).readlines()[-15:]), flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        print("FAIL test_drain_lookup: unexpected error (above)", flush=True)
        return 1
    finally:
        lab.down()
        subprocess.run(["rm", "-rf", lab.workdir])
    print(f"PASS test_drain_lookup ({time.time() - _T0:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
