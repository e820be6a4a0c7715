#!/usr/bin/python3
"""VIP routes outlive a restart and go when fulcrumd stops for good (issue 13 point 6).

Lab: 3 backends, service web on VIP:80 with `routes: {table: 100, need: 1}` and `on_exit: keep`
(the default: the pinned program keeps forwarding while no daemon runs). Table 100 also holds a
route of another protocol (static), which fulcrumd must never touch.

  1. fulcrumd up, backends healthy: table 100 has VIP/32 proto 201.
  2. Restarts are hitless for the routes: while fulcrumd is stopped with SIGTERM and started
     again, then killed with SIGKILL and started again, a sampler in the balancer reads table 100
     every 20 ms: not one sample may lack the VIP route (a withdrawal, even a short one, makes BGP
     routers send the VIP elsewhere and back).
  3. fulcrumd stops (SIGTERM) and stays stopped: the route is still there (the daemon cannot
     tell a stop from a restart); `fulcrumd --withdraw-routes -c FILE` (what systemd runs when the
     stop is for good: fulcrum.service's ExecStopPost= on a stop job, fulcrum-withdraw.service on
     failure; test_systemd_units.sh checks that wiring) exits 0 and removes it, leaves the static
     route, and leaves the data plane alone: XDP still attached, and new connections to the VIP
     still answered by the backends.
  4. `--withdraw-routes` with route injection off says there is nothing to withdraw (exit 0); with
     a bad file it names the error, withdraws nothing and exits 1."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, lab_up, main, step  # noqa: E402

VIP = "198.18.100.10"
TABLE = 100
PROTO = 201
FOREIGN = "198.18.100.98"

# Reads table 100 every 20 ms until its stop file appears; prints "samples missing".
SAMPLER = r"""
import os, subprocess, sys, time
vip, table, stop = sys.argv[1], sys.argv[2], sys.argv[3]
samples = missing = 0
while not os.path.exists(stop):
    out = subprocess.run(["ip", "-4", "route", "show", "table", table, "proto", "201"],
                         capture_output=True, text=True).stdout
    samples += 1
    missing += vip not in out.split()
    time.sleep(0.02)
print(samples, missing, flush=True)
"""


def our_routes(lab):
    out = lab.run(lab.balancer, f"ip -4 route show table {TABLE} proto {PROTO}", capture=True)
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def withdraw(lab, config):
    return subprocess.run(lab.ns(lab.balancer, f"{fl.FULCRUMD} --withdraw-routes -c {config}").split(),
                          capture_output=True, text=True, timeout=30)


def restart(lab, config, sig):
    code = lab.stop_fulcrumd(sig)
    lab.start_fulcrumd(config)
    return code


def body(lab):
    step("lab up: 3 backends, service web on VIP:80, routes: {table: 100, need: 1}, on_exit: keep")
    lab_up(lab)
    lab.add_vip_to_backends(VIP)
    lab.attach_decap()
    lab.start_servers()
    services = (f"  - name: web\n    vip: {VIP}\n    port: 80\n    protocol: tcp\n    backends:\n" +
                "".join(f"      - address: {fl.backend_v4(i)}\n" for i in range(1, 4)))
    config = lab.write_config(lab.config_text(services, extra=f"routes: {{table: {TABLE}, need: 1}}\n",
                                              on_exit="keep"))
    lab.run(lab.balancer, f"ip route add {FOREIGN}/32 dev lo table {TABLE} proto static")
    lab.start_fulcrumd(config)
    check(our_routes(lab) == {VIP}, f"table {TABLE} has {VIP} proto {PROTO} (3 healthy >= need 1)",
          str(our_routes(lab)))

    step("restarts (SIGTERM, then SIGKILL) while a sampler reads the table every 20 ms")
    sampler_path, stop = f"{lab.workdir}/route_sampler.py", f"{lab.workdir}/route_sampler.stop"
    with open(sampler_path, "w") as f:
        f.write(SAMPLER)
    sampler = subprocess.Popen(lab.ns(lab.balancer, f"{fl.PYTHON} {sampler_path} {VIP} {TABLE} {stop}").split(),
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    lab.procs.append(sampler)
    time.sleep(0.3)
    term = restart(lab, config, signal.SIGTERM)
    kill = restart(lab, config, signal.SIGKILL)
    time.sleep(0.3)
    open(stop, "w").close()
    samples, missing = (int(x) for x in sampler.communicate(timeout=10)[0].split())
    check(term == 0, f"fulcrumd exited 0 on SIGTERM and came back up", f"exit {term}")
    check(kill == -signal.SIGKILL, "fulcrumd was killed by SIGKILL and came back up", f"exit {kill}")
    check(samples > 20 and missing == 0,
          f"the VIP route was in table {TABLE} in every one of {samples} samples across both restarts",
          f"missing in {missing} samples")

    step("fulcrumd stops (SIGTERM) and is not started again")
    check(lab.stop_fulcrumd(signal.SIGTERM) == 0, "fulcrumd exited 0")
    check(our_routes(lab) == {VIP}, "the route stays when fulcrumd exits (it cannot tell a stop from a restart)",
          str(our_routes(lab)))

    step(f"fulcrumd --withdraw-routes -c {os.path.basename(config)}")
    r = withdraw(lab, config)
    print("    " + (r.stdout + r.stderr).strip().replace("\n", "\n    "))
    check(r.returncode == 0, "exit 0", f"exit {r.returncode}")
    check(our_routes(lab) == set(), f"table {TABLE} has no route of protocol {PROTO} left", str(our_routes(lab)))
    foreign = lab.run(lab.balancer, f"ip route show table {TABLE} {FOREIGN}", capture=True)
    check("proto static" in foreign, f"the static route {FOREIGN} in table {TABLE} is untouched", foreign)
    check(lab.xdp_attached(lab.balancer, "eth0"), "the balancer's XDP program is still attached")
    answers = lab.http_get_many(VIP, 30)
    check(all(answers) and len(set(answers)) >= 2,
          f"30 new connections to {VIP}:80 answered by the backends ({sorted(set(answers))}): "
          "the data plane was not touched", str(answers))

    step("--withdraw-routes with route injection off, and with a bad file")
    off = lab.write_config(lab.config_text(services, on_exit="keep"), name="off.yaml")
    lab.run(lab.balancer, f"ip route add {VIP}/32 dev lo table {TABLE} proto {PROTO}")
    r = withdraw(lab, off)
    check(r.returncode == 0 and "nothing to withdraw" in r.stdout + r.stderr,
          "routes off: exit 0, says there is nothing to withdraw", f"exit {r.returncode}: {r.stdout}{r.stderr}")
    check(our_routes(lab) == {VIP}, "routes off: table 100 left alone", str(our_routes(lab)))
    bad = lab.write_config(lab.config_text(services, extra="routes: {table: many}\n", on_exit="keep"),
                           name="bad.yaml")
    r = withdraw(lab, bad)
    out = r.stdout + r.stderr
    check(r.returncode == 1 and "bad.yaml:" in out and "no route withdrawn" in out,
          "bad file: exit 1, the error with its position, no route withdrawn", f"exit {r.returncode}: {out}")
    check(our_routes(lab) == {VIP}, "bad file: table 100 left alone", str(our_routes(lab)))


def test():
    lab = fl.Lab()
    try:
        body(lab)
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_routes_stop", test)
