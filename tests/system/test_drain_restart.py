#!/usr/bin/python3
"""Operator drains survive a daemon restart (issue 13 point 9): `fulcrumctl drain` is kept with the
pinned state (map operator_drains) and restored before the first apply, so no flow moves.

Lab: 3 backends; service web = every TCP port of 198.18.100.12 (health checks on HTTP port 80,
line echo on 7), `on_exit: keep`. The client is pinned to CPU 0 (`taskset -c 0`), as in
test_drain_down.py.

  1. A long-lived echo connection to VIP:7 learns its backend B; `fulcrumctl drain web B`.
  2. For SIGTERM, then SIGKILL: fulcrumd stopped that way and started again with the same file.
     Its log says the drain was restored; `status` shows B draining, drained by the operator;
     the echo connection is still answered by B (its flow did not move); 30 new HTTP connections
     all reach the other backends, none B.
  3. `undrain` is kept too: after another restart B is active and takes new flows again.
"""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.12"
NEW_FLOWS = 30

CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 7), timeout=5)
print(s.getsockname()[1], flush=True)
replies = s.makefile("rb")
for line in sys.stdin:
    try:
        s.sendall(line.encode())
        answer = replies.readline().decode()
        print("ECHO " + answer.rstrip("\n") if answer else "EOF", flush=True)
    except Exception as e:
        print(f"ERROR {type(e).__name__} {e}", flush=True)
"""


class Echo:
    """A long-lived TCP connection to VIP:7; say() returns the backend that echoed the line."""

    def __init__(self, lab):
        path = f"{lab.workdir}/drain_restart_client.py"
        with open(path, "w") as f:
            f.write(CLIENT)
        self.proc = subprocess.Popen(lab.ns(lab.client, f"taskset -c 0 {fl.PYTHON} {path} {VIP}").split(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     start_new_session=True)
        lab.procs.append(self.proc)
        self.port = int(self.proc.stdout.readline())

    def say(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().rstrip("\n")
        verb, _, rest = answer.partition(" ")
        name, _, echoed = rest.partition(" ")
        if verb != "ECHO" or echoed != text:
            raise TestFailure(f"echo of {text!r} failed: {answer!r}")
        return name


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def backend_states(lab):
    st = json.loads(ctl(lab, "status", "--json").stdout)
    web = next(s for s in st["services"] if s["name"] == "web")
    return {b["address"]: b for b in web["backends"]}


def new_flows(lab):
    """Backend names that answered NEW_FLOWS new HTTP connections (client on CPU 0)."""
    return lab.http_get_many(VIP, NEW_FLOWS)


def restart(lab, cfg, sig):
    lab.stop_fulcrumd(sig)
    offset = os.path.getsize(lab.daemon_log)
    lab.start_fulcrumd(cfg)
    return open(lab.daemon_log).read()[offset:]


def body(lab):
    step("lab up: 3 backends, service web (TCP, every port of the VIP), on_exit: keep")
    lab_up(lab)
    lab.add_vip_to_backends(VIP)
    lab.attach_decap()
    lab.start_servers()
    backends = [fl.backend_v4(i) for i in range(1, 4)]
    name_of = {fl.backend_v4(i): b for i, b in enumerate(lab.backends, start=1)}
    address_of = {b: a for a, b in name_of.items()}
    services = (f"  - name: web\n    vip: {VIP}\n    port: 0\n    protocol: tcp\n"
                "    healthcheck:\n      port: 80\n    backends:\n" +
                "".join(f"      - address: {b}\n" for b in backends))
    cfg = lab.write_config(lab.config_text(services, on_exit="keep"))
    lab.start_fulcrumd(cfg)

    step("a long-lived echo connection, then fulcrumctl drain of its backend")
    echo = Echo(lab)
    owner = echo.say("hello")
    address = address_of[owner]
    check(all(echo.say(f"hello {i}") == owner for i in range(3)),
          f"the connection from port {echo.port} is served by {owner} ({address})")
    r = ctl(lab, "drain", "web", address)
    check(r.returncode == 0, f"drain: {r.stdout.strip()}", r.stdout + r.stderr)
    answered = new_flows(lab)
    check(None not in answered and owner not in answered,
          f"before any restart: {NEW_FLOWS} new connections avoid {owner}", str(answered))

    for sig in (signal.SIGTERM, signal.SIGKILL):
        step(f"fulcrumd stopped with {sig.name}, started again with the same file")
        log = restart(lab, cfg, sig)
        check(f"operator drain of {address} in web restored" in log,
              "the new fulcrumd's log says the drain was restored", daemon_log_tail(lab))
        b = backend_states(lab)[address]
        check(b["state"] == "draining" and b["drained_by"] == "operator",
              f"status: {address} draining, drained by the operator", str(b))
        text = ctl(lab, "status").stdout
        line = next((ln for ln in text.splitlines() if f" {address} " in ln), "")
        check("(fulcrumctl drain)" in line, f"status text: {' '.join(line.split())}", text)
        check(all(echo.say(f"after {sig.name} {i}") == owner for i in range(5)),
              f"the existing connection is still answered by {owner}: its flow did not move")
        answered = new_flows(lab)
        check(None not in answered and owner not in answered,
              f"{NEW_FLOWS} new connections all reach the other backends: "
              + ", ".join(f"{n}={answered.count(n)}" for n in sorted(set(answered))), str(answered))

    step(f"undrain {address}, restart: it takes new flows again")
    r = ctl(lab, "undrain", "web", address)
    check(r.returncode == 0, f"undrain: {r.stdout.strip()}", r.stdout + r.stderr)
    log = restart(lab, cfg, signal.SIGTERM)
    check("restored" not in log, "no drain restored at this start", daemon_log_tail(lab))
    b = backend_states(lab)[address]
    check(b["state"] == "active" and b["drained_by"] == "", f"status: {address} active, not drained", str(b))
    answered = new_flows(lab)
    check(owner in answered, f"new connections reach {owner} again ({answered.count(owner)} of {NEW_FLOWS})",
          str(answered))
    check(echo.say("last") == owner, f"the long-lived connection still answered by {owner}")


if __name__ == "__main__":
    lab = fl.Lab(backends=3, prefix=f"dr{os.getpid() % 100000}")
    try:
        main("test_drain_restart", lambda: body(lab))
    finally:
        lab.down()
