#!/usr/bin/python3
"""Down wins over drain (issue 13 point 4): a drained backend whose checks fail is `down`, so its
flows are re-hashed at once instead of being black-holed on a dead server.

Lab: 3 backends; service web = every TCP port of 198.18.100.10 (port 0: health checks on HTTP port
80, line echo on 7; checks every 500 ms, fall 2). The client is pinned to CPU 0 (`taskset -c 0`):
the flow table is per CPU, and the balancer's XDP runs on the CPU that sent the frame.

  1. A long-lived echo connection to VIP:7 learns its backend B from the echo.
  2. `fulcrumctl drain web B`: the connection is still answered by B (draining keeps flows);
     `lookup` of the flow names B from the flow table.
  3. B's server is stopped (killed): its health check fails. `status` shows B `down` and still
     drained by the operator (JSON: state down, drained_by operator), the service not in panic.
  4. `lookup` of the echo flow now names another backend C (Maglev: the entry of a down backend
     is not used), and the flow's next packet (a line sent on the connection) really reaches C
     and not B (tcpdump on every backend's eth0, behind the decap program).
  5. `undrain` while down keeps it down; nothing else changed for the other backends.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import Sniffer, TestFailure, check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.10"

# A long-lived connection to VIP:7. Prints its local port, then per stdin line:
#   "say TEXT"  -> sends TEXT, prints "ECHO <answer>" or "EOF" or "ERROR ..."
#   "send TEXT" -> sends TEXT, prints "SENT" or "ERROR ..." (the answer, if any, is not awaited)
CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 7), timeout=5)
print(s.getsockname()[1], flush=True)
replies = s.makefile("rb")
for command in sys.stdin:
    verb, _, text = command.rstrip("\n").partition(" ")
    try:
        s.sendall(text.encode() + b"\n")
        if verb == "send":
            print("SENT", flush=True)
            continue
        answer = replies.readline().decode()
        print("ECHO " + answer.rstrip("\n") if answer else "EOF", flush=True)
    except Exception as e:
        print(f"ERROR {type(e).__name__} {e}", flush=True)
"""


class Client:
    def __init__(self, lab):
        path = f"{lab.workdir}/drain_down_client.py"
        with open(path, "w") as f:
            f.write(CLIENT)
        cmd = lab.ns(lab.client, f"taskset -c 0 {fl.PYTHON} {path} {VIP}")
        self.proc = subprocess.Popen(cmd.split(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, start_new_session=True)
        lab.procs.append(self.proc)
        self.port = int(self.proc.stdout.readline())

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().rstrip("\n")

    def say(self, text):
        """The backend that echoed `text`."""
        answer = self.command("say " + text)
        verb, _, rest = answer.partition(" ")
        name, _, echoed = rest.partition(" ")
        if verb != "ECHO" or echoed != text:
            raise TestFailure(f"echo of {text!r} failed: {answer!r}")
        return name


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def web_backends(lab):
    st = json.loads(ctl(lab, "status", "--json").stdout)
    web = next(s for s in st["services"] if s["name"] == "web")
    return web, {b["address"]: b for b in web["backends"]}


def lookup(lab, port):
    r = ctl(lab, "lookup", "web", fl.CLIENT_V4, str(port), "7", "--json")
    if r.returncode != 0:
        raise TestFailure(f"lookup failed: exit {r.returncode}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def body(lab):
    step("lab up: 3 backends, service web (TCP, every port of the VIP), health on port 80")
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
    lab.start_fulcrumd(lab.write_config(lab.config_text(services)))

    step("a long-lived echo connection to VIP:7")
    client = Client(lab)
    owner = client.say("hello 1")
    address = address_of[owner]
    check(all(client.say(f"hello {i}") == owner for i in range(2, 6)),
          f"the connection from port {client.port} is served by {owner} ({address})")

    step(f"fulcrumctl drain web {address}")
    r = ctl(lab, "drain", "web", address)
    check(r.returncode == 0, f"drain exits 0: {r.stdout.strip()}", r.stdout + r.stderr)
    check(all(client.say(f"drained {i}") == owner for i in range(5)),
          f"draining: the connection is still answered by {owner}")
    lk = lookup(lab, client.port)
    check(lk["backend"] == address and lk["source"] == "flow_table",
          f"lookup of the flow: {address} from the flow table", str(lk))
    _, states = web_backends(lab)
    check(states[address]["state"] == "draining" and states[address]["drained_by"] == "operator",
          "status: draining, drained by the operator", str(states[address]))

    index = lab.backends.index(owner)
    step(f"stop {owner}'s server (its health check on port 80 fails)")
    os.killpg(lab.procs[index].pid, signal.SIGKILL)
    lab.procs[index].wait(10)
    t_kill = time.time()
    deadline = t_kill + 15
    while True:
        web, states = web_backends(lab)
        if states[address]["state"] == "down" or time.time() > deadline:
            break
        time.sleep(0.2)
    check(states[address]["state"] == "down" and states[address]["health"] == "down" and
          states[address]["drained_by"] == "operator",
          f"status after {time.time() - t_kill:.1f}s: {address} is down (health down), still drained by the "
          f"operator", str(states[address]))
    check(not web["panic"] and all(states[b]["state"] == "active" for b in backends if b != address),
          "the other two backends stay active; no panic")
    text = ctl(lab, "status").stdout
    line = next((ln for ln in text.splitlines() if f" {address} " in ln), "")
    check(" down " in line and "(fulcrumctl drain)" in line, f"status text: {' '.join(line.split())}", text)

    step("the echo flow is re-hashed: lookup, then a real packet of the flow")
    lk = lookup(lab, client.port)
    check(lk["backend"] in backends and lk["backend"] != address and lk["source"] == "maglev",
          f"lookup of the flow now names {lk['backend']} ({lk['source']}), not {address}", str(lk))
    sniffers = {b: Sniffer(lab, b, f"tcp and src host {fl.CLIENT_V4} and src port {client.port} and dst port 7")
                for b in lab.backends}
    marker = f"after-down-{os.getpid()}"
    answer = client.command(f"send {marker}")
    time.sleep(1.0)  # the segment (and its retransmits, if it were black-holed) on the wire
    seen = {}
    for b, sniffer in sniffers.items():
        packets = sniffer.stop()
        seen[b] = sum(1 for p in packets if marker.encode() in bytes(p))
    print(f"    (client: {answer}; segments carrying the line per backend: {seen})", flush=True)
    target = name_of[lk["backend"]]
    check(seen[target] >= 1, f"the flow's next packet reached {target} ({lk['backend']}), as lookup said",
          str(seen))
    check(seen[owner] == 0, f"and never reached the dead, drained {owner}", str(seen))

    step(f"undrain {address} while it is down: it stays down")
    r = ctl(lab, "undrain", "web", address)
    check(r.returncode == 0, "undrain exits 0", r.stdout + r.stderr)
    _, states = web_backends(lab)
    check(states[address]["state"] == "down" and states[address]["drained_by"] == "",
          "status: down, no longer drained", str(states[address]))
    log = open(lab.daemon_log).read()
    check("PANIC" not in log, "the service never went into panic", daemon_log_tail(lab))


if __name__ == "__main__":
    lab = fl.Lab(backends=3, prefix=f"dd{os.getpid() % 100000}")
    try:
        main("test_drain_down", lambda: body(lab))
    finally:
        lab.down()
