#!/usr/bin/python3
"""Pinned state is adopted only when its ABI version is this build's (issue 13 point 5).

fulcrumd pins FULCRUM_ABI_VERSION (xdp/abi.h) beside the maps (map `abi`). Lab: 2 backends,
service web (TCP 198.18.100.14:80), `on_exit: keep`:
  1. start on fresh pins; 20 HTTP connections; `fulcrumctl drain web BACKEND2`.
  2. equal version: SIGTERM, restart. Every pinned map is adopted (same map ids), the counters and
     the operator drain survive, and no "not adopted" line.
  3. another version: SIGTERM, the pinned version rewritten to 99 (bpftool), restart. The log names
     both versions ("ABI version 99 pinned, version N built"), 0 maps adopted, every pinned map is a
     new one (new ids, the pinned version now the built one), counters start at 0 and the operator
     drain is gone with the rest; the service still balances.
  4. no version at all (pins of a fulcrumd from before ABI versions: `abi` unpinned): replaced too,
     and the log says no version was pinned.
  5. an `abi` map of another shape (8-byte values): replaced, and the log says so (it is not read
     into a 4-byte value).
"""
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.14"
# The version this build pins: FULCRUM_ABI_VERSION of the xdp/abi.h it was built from.
BUILT = int(re.search(r"^#define FULCRUM_ABI_VERSION (\d+)$", open(os.path.join(fl.SOURCE_DIR, "xdp", "abi.h")).read(),
                      re.M).group(1))
MAPS = ["abi", "backends", "services", "maglev_tables", "flows", "service_stats", "operator_drains"]


def bpftool(*args):
    r = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"bpftool {' '.join(args)}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout) if r.stdout.strip() else None


def map_ids(lab):
    return {m: bpftool("map", "show", "pinned", f"{lab.pin_path}/{m}")["id"] for m in MAPS}


def pinned_version(lab):
    entries = bpftool("map", "dump", "pinned", f"{lab.pin_path}/abi")
    return int.from_bytes(bytes(int(b, 16) for b in entries[0]["value"]), "little")


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def drained_by(lab, address):
    st = json.loads(ctl(lab, "status", "--json").stdout)
    web = next(s for s in st["services"] if s["name"] == "web")
    return next(b for b in web["backends"] if b["address"] == address)["drained_by"]


def new_flows_total(lab):
    return lab.scrape().get(("fulcrum_service_new_flows_total", (("service", "web"),)), 0)


def restart(lab, cfg, before_start=None):
    rc = lab.stop_fulcrumd(signal.SIGTERM)
    check(rc == 0, f"fulcrumd stopped (SIGTERM, exit {rc}); program and pins stay (on_exit: keep)")
    if before_start:
        before_start()
    offset = os.path.getsize(lab.daemon_log)
    lab.start_fulcrumd(cfg)
    return open(lab.daemon_log).read()[offset:]


def body(lab):
    step("lab up: 2 backends, service web, on_exit: keep")
    lab_up(lab)
    lab.add_vip_to_backends(VIP)
    lab.attach_decap()
    lab.start_servers()
    b1, b2 = fl.backend_v4(1), fl.backend_v4(2)
    services = (f"  - name: web\n    vip: {VIP}\n    port: 80\n    protocol: tcp\n    backends:\n"
                f"      - address: {b1}\n      - address: {b2}\n")
    cfg = lab.write_config(lab.config_text(services, on_exit="keep"))
    lab.start_fulcrumd(cfg)
    check(pinned_version(lab) == BUILT, f"a fresh start pins ABI version {BUILT} (map abi)")
    answered = lab.http_get_many(VIP, 20)
    check(None not in answered, f"20 HTTP connections answered ({sorted(set(answered))})")
    flows_before = new_flows_total(lab)
    check(flows_before == 20, f"fulcrum_service_new_flows_total = {flows_before}")
    r = ctl(lab, "drain", "web", b2)
    check(r.returncode == 0, f"drain: {r.stdout.strip()}", r.stdout + r.stderr)
    ids = map_ids(lab)

    step("equal ABI version: restart adopts")
    log = restart(lab, cfg)
    check("not adopted" not in log and "not reusable" not in log, "no pinned map refused", daemon_log_tail(lab))
    check("pinned maps adopted" in log and " 0 pinned maps adopted" not in log,
          "the log says pinned maps were adopted", daemon_log_tail(lab))
    check(map_ids(lab) == ids, "every pinned map is the same map as before (ids unchanged)", str(map_ids(lab)))
    check(new_flows_total(lab) == flows_before, f"counters survived (new flows {new_flows_total(lab)})")
    check(drained_by(lab, b2) == "operator", f"{b2} still drained by the operator")

    step("another ABI version pinned (99): restart replaces everything")
    log = restart(lab, cfg, lambda: bpftool("map", "update", "pinned", f"{lab.pin_path}/abi",
                                            "key", "0", "0", "0", "0", "value", "99", "0", "0", "0"))
    line = next((ln for ln in log.splitlines() if "pinned state not adopted" in ln), "")
    check(f"ABI version 99 pinned, version {BUILT} built" in line,
          f"the log names both versions: {line.split('pin: ', 1)[-1]}", log)
    check(" 0 pinned maps adopted" in log, "the log says 0 pinned maps adopted", daemon_log_tail(lab))
    now = map_ids(lab)
    same = [m for m in MAPS if now[m] == ids[m]]
    check(not same, "every pinned map is a new one (ids changed)", f"kept: {same}")
    check(pinned_version(lab) == BUILT, f"the pinned ABI version is now the built one ({BUILT})")
    check(new_flows_total(lab) == 0, f"counters start fresh (new flows {new_flows_total(lab)})")
    check(drained_by(lab, b2) == "", f"the operator drain of {b2} went with the replaced state")
    answered = lab.http_get_many(VIP, 20)
    check(None not in answered and len(set(answered)) == 2,
          f"the service balances on the new maps ({sorted(set(answered))})", str(answered))

    step("no ABI version pinned (pins of an older fulcrumd): replaced")
    ids = map_ids(lab)
    log = restart(lab, cfg, lambda: os.unlink(f"{lab.pin_path}/abi"))
    line = next((ln for ln in log.splitlines() if "pinned state not adopted" in ln), "")
    check("no ABI version pinned" in line, f"the log says so: {line.split('pin: ', 1)[-1]}", log)
    now = map_ids(lab)
    check(all(now[m] != ids[m] for m in MAPS if m != "abi"), "every pinned map is a new one")
    check(pinned_version(lab) == BUILT, f"ABI version {BUILT} pinned again")

    step("an `abi` map of another shape (a later version's, say 8-byte values): replaced, not misread")
    ids = map_ids(lab)

    def other_shape():
        os.unlink(f"{lab.pin_path}/abi")
        bpftool("map", "create", f"{lab.pin_path}/abi", "type", "array", "key", "4", "value", "8",
                "entries", "1", "name", "abi")
    log = restart(lab, cfg, other_shape)
    line = next((ln for ln in log.splitlines() if "pinned state not adopted" in ln), "")
    check("is not a __u32 array" in line, f"the log says so: {line.split('pin: ', 1)[-1]}", log)
    now = map_ids(lab)
    check(all(now[m] != ids[m] for m in MAPS), "every pinned map is a new one")
    check(pinned_version(lab) == BUILT, f"ABI version {BUILT} pinned again")


if __name__ == "__main__":
    lab = fl.Lab(backends=2, prefix=f"pa{os.getpid() % 100000}")
    try:
        main("test_pin_abi", lambda: body(lab))
    finally:
        lab.down()
