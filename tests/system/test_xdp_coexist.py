#!/usr/bin/python3
"""Someone else's XDP program on our interface survives fulcrumd's and fulcrum-decap's attach,
restart and detach, in native and generic mode (dataplane/xdp_attach.h, issue 8 point 1).

The foreign program is floor_pass (XDP_PASS) from the build's xdp/floors.bpf.o, loaded and
attached with bpftool, in a namespace of its own with a veth (native XDP works on veth). This
kernel cannot run libxdp's dispatcher (LAB.md), so an interface holds one program, in one mode:
the kernel refuses native and generic at once. Every case checks that the foreign program still
runs afterwards with the same id, in the same mode.
1. attach: with the foreign program in native or generic mode, fulcrumd (mode native, generic)
   refuses to start and fulcrum-decap refuses to attach, in all four mode pairs; fulcrum-decap
   detach finds nothing of its own and leaves it.
2. restart: fulcrumd (on_exit: keep) leaves its balancer; the operator puts the foreign program in
   its place; fulcrumd started again with the same pins refuses rather than take the interface.
3. detach: fulcrumd (on_exit: detach) and fulcrum-decap attach their program; while they are
   attached the operator swaps it for the foreign one (same mode, or the other mode); at SIGTERM
   fulcrumd, which has given CAP_SYS_ADMIN up by then, and `fulcrum-decap detach` leave it.
Bounded in time; the namespace, pins and processes are removed also on failure."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, main, step  # noqa: E402

PREFIX = f"xc{os.getpid() % 100000}"
NS = f"{PREFIX}-lb"
WORK = f"/tmp/{PREFIX}-coexist"
PIN = f"/sys/fs/bpf/{PREFIX}-lb"
DECAP_PIN = f"/sys/fs/bpf/{PREFIX}-decap"
FOREIGN_PIN = f"/sys/fs/bpf/{PREFIX}-foreign"
SOCK = f"{WORK}/fulcrumd.sock"
PORT = 19000 + (os.getpid() + 700) % 1000
IFACE = "veth0"
MODES = {"native": 1, "generic": 2}  # `ip -j -d link` xdp modes
FLAG = {"native": "xdpdrv", "generic": "xdpgeneric"}  # bpftool / iproute2 names


def ns(cmd, check_=True):
    return fl.sh(f"nsenter --net=/run/netns/{NS} {cmd}", check=check_, capture=True)


def xdp_now():
    """(mode name, program id, program name) on IFACE, or None."""
    info = json.loads(ns(f"ip -j -d link show dev {IFACE}"))[0].get("xdp")
    if not info:
        return None
    mode = next(name for name, value in MODES.items() if value == info["mode"])
    return mode, info["prog"]["id"], info["prog"]["name"]


def clear():
    for flag in FLAG.values():
        ns(f"ip link set dev {IFACE} {flag} off", check_=False)
    check(xdp_now() is None, f"{IFACE} cleared", str(xdp_now()))


def put_foreign(mode):
    """The foreign program in place of whatever runs on IFACE; returns what runs then."""
    clear()
    ns(f"bpftool net attach {FLAG[mode]} pinned {FOREIGN_PIN}/floor_pass dev {IFACE}")
    now = xdp_now()
    check(now and now[0] == mode and now[2] == "floor_pass", f"foreign floor_pass attached in {mode} mode",
          str(now))
    return now


def survives(foreign, after):
    now = xdp_now()
    check(now == foreign, f"the foreign program survived {after}: {foreign[2]} id {foreign[1]}, {foreign[0]} mode",
          f"now: {now}")


def config(mode, on_exit):
    path = f"{WORK}/fulcrum-{mode}-{on_exit}.yaml"
    with open(path, "w") as f:
        f.write(f"""interfaces:
  - name: {IFACE}
    mode: {mode}
bpf:
  pin_path: {PIN}
control:
  socket: {SOCK}
metrics:
  listen: 127.0.0.1:{PORT}
on_exit: {on_exit}
services: []
""")
    return path


def run(cmd, timeout=60):
    r = subprocess.run(f"nsenter --net=/run/netns/{NS} {cmd}", shell=True, text=True, capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def start_fulcrumd(mode, on_exit):
    """fulcrumd up and serving (its control socket answers: SIGTERM is handled from then on)."""
    log_path = f"{WORK}/fulcrumd.log"
    p = subprocess.Popen(f"nsenter --net=/run/netns/{NS} {fl.FULCRUMD} -c {config(mode, on_exit)}".split(),
                         stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if p.poll() is not None:
            raise TestFailure("fulcrumd exited early:\n" + open(log_path).read())
        if subprocess.run([fl.CTL, "-s", SOCK, "status"], capture_output=True, timeout=10).returncode == 0:
            return p, log_path
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    raise TestFailure("fulcrumd did not come up:\n" + open(log_path).read())


def stop_fulcrumd(p, log_path):
    p.send_signal(signal.SIGTERM)
    code = p.wait(30)
    return code, open(log_path).read()


def cleanup():
    fl.sh(f"ip netns pids {NS} 2>/dev/null | xargs -r kill -9", check=False)
    fl.sh(f"ip netns del {NS}", check=False)
    for path in (PIN, DECAP_PIN, FOREIGN_PIN):
        shutil.rmtree(path, ignore_errors=True)
    lock = "/run/fulcrum/lock" + PIN.replace("/", "_")
    if os.path.exists(lock):
        os.unlink(lock)
    shutil.rmtree(WORK, ignore_errors=True)


def attach_refused(foreign):
    for mode in MODES:
        step(f"   fulcrumd (mode {mode}) with the foreign program in {foreign[0]} mode")
        code, out = run(f"{fl.FULCRUMD} -c {config(mode, 'detach')}")
        check(code != 0 and 'already runs XDP program "floor_pass"' in out and "refusing to replace it" in out,
              f"fulcrumd refused to start (exit {code}), naming the foreign program", out)
        survives(foreign, f"fulcrumd's start in {mode} mode")
        step(f"   fulcrum-decap attach --mode {mode} with the foreign program in {foreign[0]} mode")
        code, out = run(f"{fl.DECAP} attach {IFACE} --mode {mode} --from 198.18.0.1/32 --pin-path {DECAP_PIN}")
        check(code != 0 and "not fulcrum-decap's" in out, f"fulcrum-decap refused (exit {code})", out)
        survives(foreign, f"fulcrum-decap attach --mode {mode}")
    code, out = run(f"{fl.DECAP} detach {IFACE} --pin-path {DECAP_PIN}")
    check(code != 0 and "left alone" in out, f"fulcrum-decap detach found nothing of its own (exit {code})", out)
    survives(foreign, "fulcrum-decap detach")


def test():
    cleanup()
    os.makedirs(WORK)
    try:
        step(f"namespace {NS}: {IFACE} (a veth: native XDP works); the foreign program pinned at {FOREIGN_PIN}")
        fl.sh(f"ip netns add {NS}")
        ns("ip link set lo up")
        ns(f"ip link add {IFACE} type veth peer name veth1")
        for i in (IFACE, "veth1"):
            ns(f"ip link set {i} up")
        ns("ip addr add 198.18.0.50/24 dev veth0")
        fl.sh(f"bpftool prog loadall {fl.FLOORS} {FOREIGN_PIN}")

        for mode in MODES:
            step(f"1. attach, foreign program in {mode} mode")
            attach_refused(put_foreign(mode))

        step("2. restart: fulcrumd (on_exit: keep) leaves its balancer attached")
        clear()
        p, log = start_fulcrumd("native", "keep")
        code, out = stop_fulcrumd(p, log)
        left = xdp_now()
        check(code == 0 and left and left[2] == "balancer", f"fulcrumd stopped (exit {code}) with its balancer attached",
              f"{left}\n{out}")
        for mode in MODES:
            foreign = put_foreign(mode)
            code, out = run(f"{fl.FULCRUMD} -c {config('native', 'keep')}")
            check(code != 0 and 'already runs XDP program "floor_pass"' in out,
                  f"restart with the same pins refused (exit {code}): the balancer it left is gone", out)
            survives(foreign, "fulcrumd's restart")

        for ours in MODES:
            for theirs in MODES:
                step(f"3. detach: fulcrumd in {ours} mode, swapped for the foreign program in {theirs} mode")
                clear()
                shutil.rmtree(PIN, ignore_errors=True)
                p, log = start_fulcrumd(ours, "detach")
                check(xdp_now()[0] == ours and xdp_now()[2] == "balancer", f"fulcrumd attached in {ours} mode",
                      str(xdp_now()))
                foreign = put_foreign(theirs)
                code, out = stop_fulcrumd(p, log)
                check(code == 0, f"fulcrumd stopped (exit {code})", out)
                survives(foreign, "fulcrumd's on_exit: detach")
                line = next((ln for ln in out.splitlines() if "left alone" in ln or "nothing detached" in ln), "")
                check(line, f"fulcrumd said so: {line.split('] ', 1)[-1]}", out)

                step(f"3. detach: fulcrum-decap in {ours} mode, swapped for the foreign program in {theirs} mode")
                clear()
                code, out = run(f"{fl.DECAP} attach {IFACE} --mode {ours} --from 198.18.0.1/32 --pin-path {DECAP_PIN}")
                check(code == 0 and xdp_now()[2] == "decap", f"fulcrum-decap attached in {ours} mode", out)
                foreign = put_foreign(theirs)
                code, out = run(f"{fl.DECAP} attach {IFACE} --mode {ours} --from 198.18.0.1/32 --pin-path {DECAP_PIN}")
                check(code != 0 and "not fulcrum-decap's" in out, f"attach again (a restart) refused (exit {code})", out)
                survives(foreign, "fulcrum-decap attach again")
                code, out = run(f"{fl.DECAP} detach {IFACE} --pin-path {DECAP_PIN}")
                check(code != 0 and "left alone" in out, f"fulcrum-decap detach left it (exit {code})", out)
                survives(foreign, "fulcrum-decap detach")
                shutil.rmtree(DECAP_PIN, ignore_errors=True)
    finally:
        cleanup()


if __name__ == "__main__":
    main("test_xdp_coexist", test)
