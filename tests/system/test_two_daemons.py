#!/usr/bin/python3
"""Two fulcrumd in one lab never touch each other's socket, pins or program, and bpffs is mounted
only at /sys/fs/bpf (issue 13 point 8).

Daemon A runs the lab's balancer (eth0, pin path P_A, socket S_A). A second interface eth1 in the
balancer's namespace is for the other daemons. Each refused start must exit non-zero with its
reason, and leave A exactly as it was: its socket answers, eth0 runs the same program id, its
pinned maps are the same maps.
  1. B with A's control socket (own pins, eth1): "another fulcrumd answers on S_A".
  2. B with its own socket and pins but eth0: refuses to replace A's balancer, naming eth0.
  3. B with A's pin path spelled differently (P_A + "/", "/sys/fs/bpf//NAME"): the lock is the pin
     directory's, so both spellings are refused ("already owns the pins").
  4. B with a pin path that is on no bpffs (/tmp/...): refused with the advice to mount one, and
     nothing mounted there.
  5. B with everything its own (eth1), started in `ip netns exec` (a private /sys, where
     /sys/fs/bpf is not bpffs): it mounts bpffs at /sys/fs/bpf (only there), comes up, answers on
     its socket, and with on_exit: detach stops without touching A (eth0, pins, socket).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, lab_up, main, step  # noqa: E402

VIP_A, VIP_B = "198.18.100.16", "198.18.100.17"
MAPS = ["abi", "backends", "services", "flows", "operator_drains"]


def bpftool(*args):
    r = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"bpftool {' '.join(args)}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def xdp_id(lab, iface):
    info = json.loads(lab.run(lab.balancer, f"ip -j link show dev {iface}", capture=True))[0]
    return info.get("xdp", {}).get("prog", {}).get("id")


def ctl(socket_path, *args):
    return subprocess.run([fl.CTL, "-s", socket_path, *args], capture_output=True, text=True, timeout=30)


def b_config(lab, name, pin_path, socket_path, iface, on_exit="detach"):
    text = f"""interfaces:
  - name: {iface}
    mode: native
tunnel:
  source_v4: {fl.BALANCER_V4}
bpf:
  pin_path: {pin_path}
control:
  socket: {socket_path}
metrics:
  listen: 127.0.0.1:{lab.metrics_port() + 1}
on_exit: {on_exit}
services:
  - name: other
    vip: {VIP_B}
    port: 80
    protocol: tcp
    backends:
      - address: {fl.backend_v4(1)}
"""
    return lab.write_config(text, f"{name}.yaml")


def run_refused(lab, cfg, expect, netns_exec=False):
    """Runs fulcrumd on cfg in the balancer's namespace; it must exit non-zero saying `expect`."""
    cmd = (f"ip netns exec {lab.balancer} {fl.FULCRUMD} -c {cfg}" if netns_exec
           else lab.ns(lab.balancer, f"{fl.FULCRUMD} -c {cfg}"))
    log_path = f"{lab.workdir}/refused.log"
    p = subprocess.Popen(cmd.split(), stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = p.wait(30)  # a refusal comes before any check or packet; an accepted start runs on
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise TestFailure(f"fulcrumd -c {os.path.basename(cfg)} did not refuse: still running after 30 s\n"
                          + "".join(open(log_path).readlines()[-8:]))
    out = open(log_path).read()
    line = next((ln for ln in out.splitlines() if expect in ln), "")
    check(rc != 0 and line, f"refused (exit {rc}): {line.split('] ', 1)[-1]}", out)
    return out


class StateOfA:
    def __init__(self, lab, sock):
        self.lab, self.sock = lab, sock
        self.prog = xdp_id(lab, "eth0")
        self.maps = self.map_ids()

    def map_ids(self):
        return {m: bpftool("map", "show", "pinned", f"{self.lab.pin_path}/{m}")["id"] for m in MAPS}

    def unchanged(self):
        r = ctl(self.sock, "status", "--json")
        check(r.returncode == 0 and json.loads(r.stdout)["services"][0]["name"] == "web",
              f"A still answers on its socket {self.sock}", r.stdout + r.stderr)
        check(xdp_id(self.lab, "eth0") == self.prog, f"eth0 still runs A's program (id {self.prog})")
        check(self.map_ids() == self.maps, "A's pinned maps are the same maps")
        check(self.lab.daemon.poll() is None, "A is still running")


def body(lab):
    step("lab up; eth1 in the balancer's namespace; daemon A on eth0")
    lab_up(lab)
    lab.start_servers()
    peer = f"{lab.prefix}x1"[-15:]
    fl.sh(f"ip link add eth1 netns {lab.balancer} type veth peer name {peer} netns {lab.switch}")
    lab.run(lab.switch, f"ip link set {peer} up")
    lab.run(lab.balancer, "ip link set eth1 up")
    services = (f"  - name: web\n    vip: {VIP_A}\n    port: 80\n    protocol: tcp\n    backends:\n"
                f"      - address: {fl.backend_v4(1)}\n")
    sock_a = f"{lab.workdir}/fulcrumd.sock"
    lab.start_fulcrumd(lab.write_config(lab.config_text(services)))
    a = StateOfA(lab, sock_a)
    check(a.prog is not None, f"A attached to eth0 (program id {a.prog})")
    pin_b, sock_b = f"/sys/fs/bpf/{lab.prefix}-b", f"{lab.workdir}/b.sock"
    lab.extra_pins = [pin_b]

    step("1. B with A's control socket")
    run_refused(lab, b_config(lab, "b1", pin_b, sock_a, "eth1"), f"another fulcrumd answers on {sock_a}")
    check(os.path.exists(sock_a), f"{sock_a} is still there")
    a.unchanged()
    check(xdp_id(lab, "eth1") is None, "B attached nothing to eth1")

    step("2. B with its own socket and pins, on A's eth0")
    run_refused(lab, b_config(lab, "b2", pin_b, sock_b, "eth0"), "eth0 already runs a Fulcrum balancer")
    a.unchanged()
    check(not os.path.exists(sock_b), "B removed its own socket on the way out")

    for n, spelling in enumerate([lab.pin_path + "/", "/sys/fs/bpf//" + os.path.basename(lab.pin_path)]):
        step(f"3. B on A's pin path spelled {spelling!r}")
        run_refused(lab, b_config(lab, f"b3{n}", spelling, sock_b, "eth1"), "already owns the pins")
        a.unchanged()
        check(xdp_id(lab, "eth1") is None, "B attached nothing to eth1")

    step("4. B with a pin path on no bpffs")
    not_bpffs = f"/tmp/{lab.prefix}-notbpffs"
    lab.extra_dirs = [not_bpffs]
    os.makedirs(not_bpffs, exist_ok=True)
    mounts_before = open("/proc/self/mountinfo").read()
    run_refused(lab, b_config(lab, "b4", f"{not_bpffs}/pins", sock_b, "eth1"), "mount a bpffs for it first")
    check(open("/proc/self/mountinfo").read() == mounts_before and
          subprocess.run(["mountpoint", "-q", not_bpffs]).returncode != 0,
          f"nothing was mounted (not on {not_bpffs} nor elsewhere)")
    a.unchanged()

    step("4b. the same inside `ip netns exec` (private /sys)")
    run_refused(lab, b_config(lab, "b4n", f"{not_bpffs}/pins", sock_b, "eth1"), "mount a bpffs for it first",
                netns_exec=True)

    step("5. B with everything its own, in `ip netns exec`: comes up beside A")
    pin_b5 = f"/sys/fs/bpf/{lab.prefix}-b5"
    lab.extra_pins.append(pin_b5)
    cfg = b_config(lab, "b5", pin_b5, sock_b, "eth1")
    log_path = f"{lab.workdir}/b.log"
    b = subprocess.Popen(f"ip netns exec {lab.balancer} {fl.FULCRUMD} -c {cfg}".split(),
                         stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    lab.procs.append(b)
    deadline = time.time() + 30
    while ctl(sock_b, "status").returncode != 0:
        if b.poll() is not None or time.time() > deadline:
            raise TestFailure("B did not come up:\n" + open(log_path).read())
        time.sleep(0.2)
    log = open(log_path).read()
    check("mounted a BPF filesystem on /sys/fs/bpf" in log, "B mounted bpffs at /sys/fs/bpf (its private /sys)", log)
    check(xdp_id(lab, "eth1") is not None, f"B attached to eth1 (program id {xdp_id(lab, 'eth1')})")
    check(not os.path.exists(pin_b5), f"B's pins are in its own bpffs, not the host's ({pin_b5} absent here)")
    a.unchanged()
    b.send_signal(signal.SIGTERM)
    check(b.wait(20) == 0, "B stopped (SIGTERM, exit 0)", open(log_path).read())
    check(xdp_id(lab, "eth1") is None, "B detached from eth1 (on_exit: detach)")
    check(not os.path.exists(sock_b), "B removed its socket")
    a.unchanged()


def cleanup(lab):
    for path in getattr(lab, "extra_pins", []):
        shutil.rmtree(path, ignore_errors=True)
    for path in getattr(lab, "extra_dirs", []):
        if subprocess.run(["mountpoint", "-q", f"{path}/pins"]).returncode == 0:
            subprocess.run(["umount", f"{path}/pins"])
        shutil.rmtree(path, ignore_errors=True)
    lab.down()


if __name__ == "__main__":
    lab = fl.Lab(backends=1, prefix=f"td{os.getpid() % 100000}")
    try:
        main("test_two_daemons", lambda: body(lab))
    finally:
        cleanup(lab)
