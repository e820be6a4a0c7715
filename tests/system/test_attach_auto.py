#!/usr/bin/python3
"""`mode: auto` is native XDP or a loud failure, never a silent fall-back to generic mode.

In a namespace of its own with a veth (native XDP works) and a bridge (no native XDP driver):
1. fulcrumd with [veth: auto, bridge: auto] exits non-zero, says the bridge's driver lacks native
   XDP and that `mode: generic` accepts the slow path, and leaves nothing attached: the veth it had
   attached first is detached again, the bridge never got a program;
2. fulcrumd with [veth: auto, bridge: generic] starts: native mode on the veth, generic on the
   bridge (as written), and on SIGTERM (on_exit: detach) removes both.
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
from st_helpers import check, main, step  # noqa: E402

PREFIX = f"aa{os.getpid() % 100000}"
NS = f"{PREFIX}-lb"
WORK = f"/tmp/{PREFIX}-attach"
PIN = f"/sys/fs/bpf/{PREFIX}-lb"
PORT = 19000 + (os.getpid() + 500) % 1000


def ns(cmd, check_=True, capture=True):
    return fl.sh(f"nsenter --net=/run/netns/{NS} {cmd}", check=check_, capture=capture)


def xdp_of(iface):
    """The link's xdp info from `ip -j link` ({} if no program): mode 1 = native, 2 = generic."""
    return json.loads(ns(f"ip -j -d link show dev {iface}"))[0].get("xdp", {})


def config(modes):
    interfaces = "".join(f"  - name: {name}\n    mode: {mode}\n" for name, mode in modes)
    path = f"{WORK}/fulcrum.yaml"
    with open(path, "w") as f:
        f.write(f"""interfaces:
{interfaces}bpf:
  pin_path: {PIN}
control:
  socket: {WORK}/fulcrumd.sock
metrics:
  listen: 127.0.0.1:{PORT}
on_exit: detach
services: []
""")
    return path


def cleanup():
    fl.sh(f"ip netns pids {NS} 2>/dev/null | xargs -r kill -9", check=False)
    fl.sh(f"ip netns del {NS}", check=False)
    shutil.rmtree(PIN, ignore_errors=True)
    lock = "/run/fulcrum/lock" + PIN.replace("/", "_")
    if os.path.exists(lock):
        os.unlink(lock)
    shutil.rmtree(WORK, ignore_errors=True)


def test():
    cleanup()
    os.makedirs(WORK)
    try:
        step(f"namespace {NS}: veth0 (native XDP) and br0 (a bridge: no native XDP)")
        fl.sh(f"ip netns add {NS}")
        ns("ip link set lo up")
        ns("ip link add veth0 type veth peer name veth1")
        ns("ip link add br0 type bridge")
        for i in ("veth0", "veth1", "br0"):
            ns(f"ip link set {i} up")

        step("1. mode auto on both: fulcrumd must refuse to start")
        r = subprocess.run(f"nsenter --net=/run/netns/{NS} {fl.FULCRUMD} -c {config([('veth0', 'auto'), ('br0', 'auto')])}",
                           shell=True, text=True, capture_output=True, timeout=60)
        out = r.stdout + r.stderr
        check(r.returncode != 0, f"fulcrumd exits non-zero ({r.returncode})", out)
        check("cannot attach to br0 in native mode (mode auto)" in out and "lacks native XDP" in out and
              "`mode: generic`" in out and "slow generic" in out,
              "its message says br0's driver lacks native XDP and that `mode: generic` accepts the slow path",
              out)
        check("falling back to generic" not in out.lower() and "generic mode" not in out.replace("generic (skb)", ""),
              "no fall-back to generic mode was attempted", out)
        check(xdp_of("br0") == {}, "nothing attached to br0", str(xdp_of("br0")))
        check(xdp_of("veth0") == {}, "veth0 (attached natively first) was detached again", str(xdp_of("veth0")))
        print("    fulcrumd said: " + next(line for line in out.splitlines() if "lacks native XDP" in line))

        step("2. br0 with mode generic (written in the file): fulcrumd starts")
        log = open(f"{WORK}/fulcrumd.log", "w")
        p = subprocess.Popen(f"nsenter --net=/run/netns/{NS} {fl.FULCRUMD} -c {config([('veth0', 'auto'), ('br0', 'generic')])}".split(),
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline and p.poll() is None and not (xdp_of("br0") and xdp_of("veth0")):
            time.sleep(0.1)
        text = open(f"{WORK}/fulcrumd.log").read()
        check(p.poll() is None, "fulcrumd is running", text)
        check(xdp_of("veth0").get("mode") == 1, "veth0: attached in native mode (auto)", f"{xdp_of('veth0')}\n{text}")
        check(xdp_of("br0").get("mode") == 2, "br0: attached in generic mode (as written)", f"{xdp_of('br0')}\n{text}")
        check("attached to br0 in generic mode" in text and "attached to veth0 in native mode" in text,
              "the log names the mode of each interface", text)
        p.send_signal(signal.SIGTERM)
        code = p.wait(15)
        check(code == 0 and xdp_of("br0") == {} and xdp_of("veth0") == {},
              "SIGTERM: exit 0, both detached (on_exit: detach)", open(f"{WORK}/fulcrumd.log").read())
    finally:
        cleanup()


if __name__ == "__main__":
    main("test_attach_auto", test)
