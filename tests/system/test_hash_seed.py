#!/usr/bin/python3
"""The flow-hash seed: generated when the file sets none, kept with the pins across restarts,
overridden by bpf.hash_seed, and used everywhere (settings map, Maglev tables, fulcrumctl lookup,
the data plane).

1. fulcrumd without bpf.hash_seed: the log says "from generated" (and never prints the seed); the
   pinned settings hold a seed that is not 0; `fulcrumctl lookup` for 100 flows; 50 real UDP
   flows go where lookup said;
2. restart on the same pins (on_exit: keep): "from pinned", the same seed in the settings, the
   same 100 lookups;
3. a fulcrumd on fresh pins with bpf.hash_seed set to the seed read from the pins: "from config",
   the same 100 lookups (tables built from that seed alone agree);
4. back on the first pins with another bpf.hash_seed: "from config", the settings hold it, and
   the lookups change (most of them);
5. `fulcrumd --check`: a note when hash_seed is unset, a warning (exit 0) when it is 0.
Bounded in time; the lab and both pin directories are removed also on failure."""
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, lab_up, main, service_yaml, step, udp_ask_connected  # noqa: E402

VIP = "198.18.100.10"
FLOWS = 100


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def detach_balancer(lab):
    """What an operator does before moving fulcrumd to another pin path: detach the balancer the
    old one left attached (on_exit: keep). fulcrumd replaces only the balancer pinned under its own
    pin path; another pin path's is another instance's, and it refuses to touch it."""
    lab.run(lab.balancer, "ip link set dev eth0 xdp off")


def pinned_seed(pin_path):
    """hash_seed of the pinned settings map (bpftool; BTF-formatted or raw bytes, offset 28)."""
    v = json.loads(fl.sh(f"bpftool -j map lookup pinned {pin_path}/settings key 0 0 0 0", capture=True))
    if "formatted" in v:
        return v["formatted"]["value"]["hash_seed"]
    raw = bytes(int(b, 16) for b in v["value"])
    return int.from_bytes(raw[28:32], "little")


def lookups(lab, ports):
    out = {}
    for port in ports:
        r = ctl(lab, "lookup", "dns", fl.CLIENT_V4, str(port), "--json")
        if r.returncode != 0:
            check(False, f"fulcrumctl lookup dns {fl.CLIENT_V4} {port} exits 0", r.stdout + r.stderr)
        out[port] = json.loads(r.stdout)["backend"]
    return out


def start(lab, seed=None):
    """fulcrumd on lab.pin_path (on_exit: keep), with `bpf.hash_seed: seed` unless seed is None;
    returns what it logged."""
    backends = [(fl.backend_v4(i), None) for i in range(1, 4)]
    text = lab.config_text(service_yaml("dns", VIP, 53, "udp", backends), on_exit="keep")
    if seed is not None:
        text = text.replace(f"  pin_path: {lab.pin_path}\n", f"  pin_path: {lab.pin_path}\n  hash_seed: {seed}\n")
    path = lab.write_config(text)
    size = os.path.getsize(lab.daemon_log) if lab.daemon_log and os.path.exists(lab.daemon_log) else 0
    lab.start_fulcrumd(path)
    return open(lab.daemon_log).read()[size:]


def test():
    lab = fl.Lab(backends=3, prefix=f"hs{os.getpid() % 100000}")
    first_pins = lab.pin_path
    other_pins = f"{first_pins}-b"
    rng = random.Random(12)
    ports = rng.sample(range(20000, 30000), FLOWS)        # looked up only: always from Maglev
    sent = rng.sample(range(40000, 50000), 50)            # real flows
    try:
        step("lab up: 3 backends with decap and UDP servers; service dns (UDP 53)")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers()

        step("1. fulcrumd without bpf.hash_seed")
        log = start(lab)
        check("bpf: flow-hash seed from generated" in log, "log: 'flow-hash seed from generated'", log)
        seed = pinned_seed(first_pins)
        check(seed != 0, "the pinned settings hold a seed that is not 0")
        check(str(seed) not in log, "the seed itself is not in the log")
        first = lookups(lab, ports)
        check(len(set(first.values())) == 3, f"{FLOWS} lookups spread over the 3 backends")
        expect = lookups(lab, sent)
        names = {fl.backend_v4(i): b for i, b in enumerate(lab.backends, start=1)}
        real = {}
        for port in sent:
            (name, _), = udp_ask_connected(lab, VIP, 1, src_port_base=port)
            real[port] = name
        wrong = [p for p in sent if names[expect[p]] != real[p]]
        check(not wrong, f"{len(sent)} real UDP flows answered by the backend lookup named (data plane and "
                         f"lookup use the same seed)", str([(p, expect[p], real[p]) for p in wrong][:5]))

        step("2. restart on the same pins (on_exit: keep)")
        lab.stop_fulcrumd()
        log = start(lab)
        check("bpf: flow-hash seed from pinned" in log, "log: 'flow-hash seed from pinned'", log)
        check(pinned_seed(first_pins) == seed, "the pinned seed is unchanged")
        again = lookups(lab, ports)
        check(again == first, f"the {FLOWS} lookups agree across the restart",
              str([(p, first[p], again[p]) for p in ports if first[p] != again[p]][:5]))

        step("3. a fulcrumd on fresh pins with bpf.hash_seed = the seed read from the first pins")
        lab.stop_fulcrumd()
        detach_balancer(lab)
        lab.pin_path = other_pins
        log = start(lab, seed)
        check("bpf: flow-hash seed from config" in log, "log: 'flow-hash seed from config'", log)
        check(pinned_seed(other_pins) == seed, "the fresh pins hold the seed of the file")
        third = lookups(lab, ports)
        check(third == first, f"the {FLOWS} lookups agree with those made with the generated seed",
              str([(p, first[p], third[p]) for p in ports if first[p] != third[p]][:5]))

        step("4. the first pins again, with another bpf.hash_seed")
        lab.stop_fulcrumd()
        detach_balancer(lab)
        lab.pin_path = first_pins
        other = seed ^ 0x5A5A5A5A
        log = start(lab, other)
        check("bpf: flow-hash seed from config" in log,
              "log: 'flow-hash seed from config' (the file overrides the pinned seed)", log)
        check(pinned_seed(first_pins) == other, "the pinned settings now hold the file's seed")
        fourth = lookups(lab, ports)
        moved = sum(1 for p in ports if fourth[p] != first[p])
        check(moved >= FLOWS // 4, f"{moved} of {FLOWS} lookups changed with the seed (3 backends: ~2/3 expected)")
        lab.stop_fulcrumd()

        step("5. fulcrumd --check: note when unset, warning when 0")
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", lab.write_config(
            lab.config_text(service_yaml("dns", VIP, 53, "udp", [(fl.backend_v4(1), None)])), "unset.yaml")],
            capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and "note: bpf.hash_seed is not set" in r.stdout and "ECMP" in r.stdout,
              "unset: exit 0 and a note that ECMP groups need one set", r.stdout + r.stderr)
        zero = lab.config_text(service_yaml("dns", VIP, 53, "udp", [(fl.backend_v4(1), None)])).replace(
            f"  pin_path: {lab.pin_path}\n", f"  pin_path: {lab.pin_path}\n  hash_seed: 0\n")
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", lab.write_config(zero, "zero.yaml")],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and ":9:14: bpf.hash_seed: warning: 0 is the well-known seed" in r.stdout,
              "0: exit 0 and a warning at its line and column", r.stdout + r.stderr)
        print("    " + r.stdout.strip().splitlines()[-1][:160])
    finally:
        lab.pin_path = first_pins
        lab.down()
        shutil.rmtree(other_pins, ignore_errors=True)
        lock = "/run/fulcrum/lock" + other_pins.replace("/", "_")
        if os.path.exists(lock):
            os.unlink(lock)


if __name__ == "__main__":
    main("test_hash_seed", test)
