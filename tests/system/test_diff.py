#!/usr/bin/python3
"""`fulcrumctl diff FILE` and `fulcrumd --check --diff` (issue 8 point 4): what a reload of FILE
would change, said before it happens, and then checked against what the reload does.

Lab: 4 backends. Running file: service web (UDP 53 on 198.18.100.30, backends 1-3) and service old
(TCP 80 on 198.18.100.31). The new file drops backend 3 from web, adds backend 4, drops old and
adds api (TCP 80 on 198.18.100.32).

  1. 60 UDP flows to web from the client (recorded in the flow tables); which backend each has.
     1000 tuples nobody sent are looked up (`fulcrumctl lookup`: the Maglev choice).
  2. `fulcrumctl diff NEW --json` exits 0 and says: web changed (backend 3 removed, 4 added,
     1 and 2 unchanged), old removed, api added; web's recorded flows = 60 and the flows that
     lose their backend = exactly those of the 60 that backend 3 has. The text form says the
     same in words; `fulcrumd --check --diff -c NEW` prints it too. Nothing changed: generation,
     and the 60 flows' backends, are as before.
  3. A file with an error: diff exits 1 naming FILE:LINE:COLUMN; nothing changed.
  4. The reload: the flows of backend 3, and only those, change backend (the count the diff gave);
     once backend 4 passes its checks, the 1000 looked-up tuples move in the share the diff gave
     for that moment (within 5 binomial standard deviations; at the reload itself only backend
     3's third moves, which the diff also gives); a diff of the same file now says "no change".
"""
import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, daemon_log_tail, lab_up, main, step  # noqa: E402

WEB, OLD, API = "198.18.100.30", "198.18.100.31", "198.18.100.32"
FLOWS, FIRST_PORT = 60, 41000
LOOKUPS, LOOKUP_SRC, LOOKUP_PORT = 1000, "203.0.113.7", 30000


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=120)


def service(name, vip, port, proto, backends):
    return (f"  - name: {name}\n    vip: {vip}\n    port: {port}\n    protocol: {proto}\n"
            "    healthcheck:\n      type: tcp\n      port: 80\n    backends:\n" +
            "".join(f"      - address: {fl.backend_v4(i)}\n" for i in backends))


def generation(lab):
    return json.loads(ctl(lab, "status", "--json").stdout)["generation"]


def backend_up(lab, address):
    st = json.loads(ctl(lab, "status", "--json").stdout)
    web = next(s for s in st["services"] if s["name"] == "web")
    return any(b["address"] == address and b["state"] == "active" for b in web["backends"])


def lookups(lab):
    """The backend of each of LOOKUPS tuples nobody sent (so the Maglev table decides)."""
    out = []
    for i in range(LOOKUPS):
        r = ctl(lab, "lookup", "web", LOOKUP_SRC, str(LOOKUP_PORT + i), "--json")
        a = json.loads(r.stdout) if r.returncode == 0 else {}
        if a.get("source") == "flow_table":
            raise TestFailure(f"tuple {LOOKUP_SRC}:{LOOKUP_PORT + i} is in the flow table")
        out.append(a.get("backend"))
    return out


def body(lab):
    step("lab up: 4 backends; web (UDP, backends 1-3) and old (TCP)")
    lab_up(lab)
    for vip in (WEB, OLD, API):
        lab.add_vip_to_backends(vip)
    lab.attach_decap()
    lab.start_servers()
    running = lab.write_config(lab.config_text(service("web", WEB, 53, "udp", (1, 2, 3)) +
                                               service("old", OLD, 80, "tcp", (1, 2))))
    lab.start_fulcrumd(running)
    gen = generation(lab)

    step(f"1. {FLOWS} UDP flows to web; {LOOKUPS} tuples looked up")
    names = lab.udp_ask_many(WEB, FLOWS, first_port=FIRST_PORT)
    check(None not in names, f"{FLOWS} flows answered: " + ", ".join(f"{n}={names.count(n)}" for n in sorted(set(names))),
          str(names))
    name3 = lab.backends[2]
    on3 = names.count(name3)
    check(on3 > 0, f"{on3} of them on backend 3 ({name3})")
    before = lookups(lab)

    step("2. fulcrumctl diff of the new file")
    new = lab.write_config(lab.config_text(service("web", WEB, 53, "udp", (1, 2, 4)) +
                                           service("api", API, 80, "tcp", (1, 4))), name="new.yaml")
    r = ctl(lab, "diff", new, "--json")
    check(r.returncode == 0, "diff --json exits 0", r.stdout + r.stderr + daemon_log_tail(lab))
    d = json.loads(r.stdout)
    by_name = {s["name"]: s for s in d["services"]}
    web = by_name.get("web", {})
    changes = {b["address"]: (b["before"], b["after"]) for b in web.get("backends", [])}
    check(web.get("change") == "changed" and set(changes) == {fl.backend_v4(3), fl.backend_v4(4)} and
          changes[fl.backend_v4(3)][1] is None and changes[fl.backend_v4(4)][0] is None,
          f"web changed: {fl.backend_v4(3)} removed, {fl.backend_v4(4)} added, 1 and 2 unchanged", str(web))
    check(web.get("flows") == FLOWS and web.get("flows_moving") == on3,
          f"web: {web.get('flows')} recorded flows, {web.get('flows_moving')} lose their backend "
          f"(want {FLOWS} and {on3})", str(web))
    at_reload, share = web.get("slots_moved", -1), web.get("slots_moved_when_up", -1)
    check(web.get("table_rebuilt") is True and 0.3 < at_reload < 0.4 and at_reload < share < 0.7,
          f"web's table is rebuilt; {at_reload:.3f} of flow hashes go to another backend at the reload "
          f"(backend 3's third; backend 4 starts down), {share:.3f} once backend 4 is up", str(web))
    check(by_name.get("old", {}).get("change") == "removed" and by_name.get("api", {}).get("change") == "added",
          "old removed, api added", str(d))
    text = ctl(lab, "diff", new)
    print("\n".join("    | " + line for line in text.stdout.splitlines()))
    for want in ("service web (198.18.100.30 port 53/udp): changed", f"backend {fl.backend_v4(3)}: removed",
                 f"backend {fl.backend_v4(4)}: added", f"recorded flows: {on3} of {FLOWS} lose their backend",
                 "service old (198.18.100.31 port 80/tcp): removed", "service api (198.18.100.32 port 80/tcp): added"):
        check(want in text.stdout, f"text: \"{want}\"", text.stdout + text.stderr)
    fd = subprocess.run(lab.ns(lab.balancer, f"{fl.FULCRUMD} --check --diff -c {new}").split(),
                        capture_output=True, text=True, timeout=60)
    check(fd.returncode == 0 and "OK (2 services)" in fd.stdout and
          f"recorded flows: {on3} of {FLOWS} lose their backend" in fd.stdout,
          "fulcrumd --check --diff -c NEW: the check, then the same diff", fd.stdout + fd.stderr)
    check(generation(lab) == gen, f"nothing applied: generation still {gen}")
    again = lab.udp_ask_many(WEB, FLOWS, first_port=FIRST_PORT)
    check(again == names, "the 60 flows keep their backends")

    step("3. a file with an error")
    bad = lab.write_config(lab.config_text(service("web", WEB, 53, "udp", (1, 2)).replace("port: 53", "port: 99999")),
                           name="bad.yaml")
    r = ctl(lab, "diff", bad)
    first = (r.stderr.splitlines() or [""])[0]
    check(r.returncode == 1 and first.startswith(f"{bad}:") and "would be refused" in r.stderr,
          f"diff of a bad file exits 1, naming FILE:LINE:COLUMN: {first}", r.stdout + r.stderr)
    check(generation(lab) == gen, f"nothing applied: generation still {gen}")

    step("4. the reload does what the diff said")
    os.replace(new, running)
    r = ctl(lab, "reload")
    check(r.returncode == 0 and generation(lab) == gen + 1, "reload applied", r.stdout + r.stderr)
    after = lab.udp_ask_many(WEB, FLOWS, first_port=FIRST_PORT)
    moved = [i for i in range(FLOWS) if after[i] != names[i]]
    check(None not in after and len(moved) == on3 and all(names[i] == name3 for i in moved),
          f"{len(moved)} flows changed backend, all of them backend 3's (the diff said {on3})",
          f"before {names}\nafter {after}")
    deadline = time.time() + 15
    while time.time() < deadline and not backend_up(lab, fl.backend_v4(4)):
        time.sleep(0.2)
    check(backend_up(lab, fl.backend_v4(4)), f"backend 4 ({fl.backend_v4(4)}) passed its checks", daemon_log_tail(lab))
    now = lookups(lab)
    measured = sum(1 for a, b in zip(before, now) if a != b) / LOOKUPS
    sd = math.sqrt(share * (1 - share) / LOOKUPS)
    check(abs(measured - share) <= 5 * sd,
          f"{measured:.3f} of {LOOKUPS} looked-up tuples moved; the diff said {share:.3f} once backend 4 is up "
          f"(5 sd = {5 * sd:.3f})")
    r = ctl(lab, "diff", running)
    check(r.returncode == 0 and "no change" in r.stdout, "a diff of the applied file: no change", r.stdout + r.stderr)


if __name__ == "__main__":
    lab = fl.Lab(backends=4, prefix=f"df{os.getpid() % 100000}")
    try:
        main("test_diff", lambda: body(lab))
    finally:
        lab.down()
