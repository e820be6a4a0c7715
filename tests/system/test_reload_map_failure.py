#!/usr/bin/python3
"""A change that fails in the maps changes nothing (issue 13, points 2 and 3).

(a) The issue's file: 5000 services on 5000 VIPs. `fulcrumd --check` refuses it at the first
    service that does not fit (FILE:LINE:COLUMN and the limit); a live reload with it is refused
    with the same line and changes nothing.
(b) A reload the file checks cannot catch, failing in the kernel: the pinned `services` map is
    filled to its size from outside (bpftool, junk keys on addresses no VIP has), so the reload's
    insert of a new service fails with E2BIG after earlier writes of the same reload (a new VIP,
    web's new table, web's backend 198.18.0.13 freed) went in. No file alone reaches such a
    failure any more once --check counts what the maps hold (README: Operations > Reload); this
    is the same kernel error a full map gives. The reload also moves routes.table 100 -> 101.
    Afterwards, exactly as before:
      - fulcrumctl reload exits 1 naming the write (map, key, errno) and "undone";
      - fulcrumctl status --json (rates, reload counters and session counters aside; each
        backend's seconds_since_change has only grown: no health state was re-created);
      - the VIP route in table 100, nothing in table 101;
      - 30 recorded UDP flows keep their backends (fulcrumctl lookup, then real packets), also
        after an operator drain/undrain (an apply with the health the daemon holds: a backend
        re-created as new by a failed reload would start down and its flows would be re-hashed);
      - HTTP through the VIP reaches all three backends.
    Then the junk goes and the same file applies: generation + 1, routes in table 101.
"""
import json
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import _T0, TestFailure, check, lab_up, step  # noqa: E402

CTL = os.path.join(fl.BUILD_DIR, "src", "cmd", "fulcrumctl")
VIP, VIP_NEW = "198.18.100.10", "198.18.100.20"
SERVICES_MAX = 4096   # the services hash map (xdp/abi.h FULCRUM_MAX_SERVICES)
FLOW_PORTS = 30

# Health: rise 3 at 1 s, so a backend that health re-created as new would stay down for seconds.
HEALTH = """defaults:
  healthcheck: {type: tcp, interval: 1s, timeout: 500ms, rise: 3, fall: 3}
"""


def services_text(extra=False, drop_third=False):
    web = [fl.backend_v4(i) for i in (1, 2, 3)]
    if drop_third:
        web = web[:2]
    out = f"""  - name: web
    vip: {VIP}
    port: 80
    protocol: tcp
    table_size: 251
    backends:
""" + "".join(f"      - address: {a}\n" for a in web) + f"""  - name: dns
    vip: {VIP}
    port: 53
    protocol: udp
    table_size: 251
    healthcheck: {{port: 80}}
    backends:
""" + "".join(f"      - address: {fl.backend_v4(i)}\n" for i in (1, 2, 3))
    if extra:
        out += f"""  - name: extra
    vip: {VIP_NEW}
    port: 80
    protocol: tcp
    table_size: 251
    backends:
      - address: {fl.backend_v4(1)}
"""
    return out


def config(lab, table, **kw):
    return lab.config_text(services_text(**kw), extra=f"routes: {{table: {table}, need: 1}}\n" + HEALTH)


def ctl(lab, *args):
    return subprocess.run([CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args], capture_output=True, text=True,
                          timeout=60)


def status(lab):
    r = ctl(lab, "status", "--json")
    if r.returncode != 0:
        raise TestFailure(f"fulcrumctl status --json exited {r.returncode}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def comparable(st):
    """status without what moves by itself or with a refused reload; seconds_since_change apart."""
    s = json.loads(json.dumps(st))
    for key in ("reloads_failed", "last_reload_error", "control"):
        s.pop(key, None)
    for svc in s["services"]:
        svc.pop("packets_per_second", None)
        for b in svc["backends"]:
            b.pop("packets_per_second", None)
            b.pop("seconds_since_change", None)
    return s


def ages(st):
    return {(s["name"], b["address"]): b["seconds_since_change"] for s in st["services"] for b in s["backends"]}


def routes(lab, table):
    return lab.run(lab.balancer, f"ip -4 route show table {table} proto 201", capture=True, check=False).split()


def lookups(lab, first_port):
    out = []
    for i in range(FLOW_PORTS):
        r = ctl(lab, "lookup", "dns", fl.CLIENT_V4, str(first_port + i), "--json")
        j = json.loads(r.stdout) if r.stdout.strip() else {}
        out.append((j.get("backend"), j.get("source")))
    return out


def services_map(lab):
    found = subprocess.run(["find", lab.pin_path, "-name", "services"], capture_output=True, text=True).stdout.split()
    if len(found) != 1:
        raise TestFailure(f"expected one pinned services map under {lab.pin_path}, found {found}")
    return found[0]


# struct fulcrum_service_value (xdp/abi.h): id 4095, table_size 3, hash_omit 0 (5-tuple),
# quic_id_offset 0 (no QUIC routing), quic_id_bits 0, encap 0 (ipip), pad: 16 bytes since ABI 4.
JUNK_SERVICE_VALUE = "ff 0f 00 00 03 00 00 00 00 00 00 00 00 00 00 00"


def junk_batch(lab, path, verb):
    """bpftool batch: `verb` (update/delete) of junk services keys 198.19.X.Y port 9 udp."""
    lines = []
    for i in range(SERVICES_MAX - 2):  # web and dns are in the map
        key = f"c6 13 {i >> 8:02x} {i & 255:02x} " + "00 " * 12 + "00 09 11 02"
        if verb == "update":
            lines.append(f"map update pinned {path} key hex {key} value hex {JUNK_SERVICE_VALUE}")
        else:
            lines.append(f"map delete pinned {path} key hex {key}")
    batch = f"{lab.workdir}/junk-{verb}.txt"
    with open(batch, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run(["bpftool", "batch", "file", batch], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise TestFailure(f"bpftool batch {verb} failed: {r.stdout[-500:]}{r.stderr[-500:]}")


def part_a(lab, path):
    step("(a) 5000 services on 5000 VIPs: refused by --check and by a reload, with a position")
    text = open(path).read()
    big = text.split("services:\n")[0] + "services:\n"
    for i in range(5000):
        big += (f"  - name: s{i}\n    vip: 198.19.{i // 250}.{1 + i % 250}\n    port: 80\n    protocol: tcp\n"
                f"    table_size: 3\n    backends: []\n")
    lines_before = big.split("services:\n")[0].count("\n") + 1
    line = lines_before + 1 + 6 * 4095
    want = (f"{path}:{line}:5: services[4095]: service 4096 is one too many: the data plane holds at most 4095 "
            f"services (services and maglev_tables maps, ids 1..4095)")
    check_path = f"{lab.workdir}/big.yaml"
    with open(check_path, "w") as f:
        f.write(big)
    r = subprocess.run([fl.FULCRUMD, "--check", "-c", check_path], capture_output=True, text=True, timeout=60)
    got = r.stderr.splitlines()
    check(r.returncode == 1 and got == [want.replace(path, check_path), "1 error"],
          f"--check exits 1: {got[0] if got else ''}", f"exit {r.returncode}: {r.stdout}{r.stderr}")
    before = status(lab)
    with open(path, "w") as f:
        f.write(big)
    r = ctl(lab, "reload")
    check(r.returncode == 1 and r.stderr.splitlines()[:1] == [want],
          "a reload with it is refused with the same line", r.stdout + r.stderr)
    with open(path, "w") as f:
        f.write(text)
    check(comparable(status(lab)) == comparable(before), "status unchanged after the refused reload")


def main():
    lab = fl.Lab(backends=3, prefix=f"rmf{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends, fulcrumd with web (tcp) and dns (udp) on one VIP, routes in table 100")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.add_vip_to_backends(VIP_NEW)
        lab.attach_decap()
        lab.start_servers()
        path = lab.write_config(config(lab, 100))
        lab.start_fulcrumd(path)
        names = lab.http_get_many(VIP, 30)
        check(None not in names and len(set(names)) == 3, f"HTTP reaches the 3 backends: {sorted(set(names))}")
        first_port = 40000 + os.getpid() % 10000
        answers = lab.udp_ask_many(VIP, FLOW_PORTS, first_port=first_port)
        answers2 = lab.udp_ask_many(VIP, FLOW_PORTS, first_port=first_port)  # second packet: confirmed flows
        check(None not in answers and answers == answers2, "30 UDP flows answered, each by one backend")
        flows_before = lookups(lab, first_port)
        check(all(src == "flow_table" for _, src in flows_before),
              "every UDP flow is recorded (fulcrumctl lookup: flow_table)", str(flows_before))
        check(routes(lab, 100)[:1] == [VIP] and routes(lab, 101) == [], f"route: {VIP} in table 100 only")

        part_a(lab, path)

        step("(b) fill the pinned services map from outside, reload with a new service, web minus .13, table 101")
        time.sleep(1.0)  # ages grow measurably
        before = status(lab)
        gen = before["generation"]
        smap = services_map(lab)
        junk_batch(lab, smap, "update")
        with open(path, "w") as f:
            f.write(config(lab, 101, extra=True, drop_third=True))
        log_start = os.path.getsize(lab.daemon_log)
        r = ctl(lab, "reload")
        msg = r.stderr
        print(f"    fulcrumctl reload: exit {r.returncode}: {msg.strip()[:300]}", flush=True)
        check(r.returncode == 1, "the reload fails")
        check(f"cannot write the services entry {VIP_NEW} port 80/tcp of service extra" in msg and
              "Argument list too long" in msg and "every earlier write was undone" in msg,
              "its error names the write (map, key), the errno and that the earlier writes were undone")
        log = open(lab.daemon_log).read()[log_start:]
        check("config: reload failed: apply: cannot write the services entry" in log,
              "the log has the reason, not only \"reload failed\"")

        after = status(lab)
        check(comparable(after) == comparable(before), "fulcrumctl status --json is as before",
              f"before {json.dumps(comparable(before))}\n    after  {json.dumps(comparable(after))}")
        a0, a1 = ages(before), ages(after)
        check(a0.keys() == a1.keys() and all(a1[k] >= a0[k] for k in a0),
              "no backend's health was re-created (seconds_since_change only grew)", f"{a0}\n    {a1}")
        check(after["generation"] == gen and after["reloads_failed"] == before["reloads_failed"] + 1,
              f"generation still {gen}, reloads_failed + 1")
        check(routes(lab, 100)[:1] == [VIP] and routes(lab, 101) == [],
              f"routes: {VIP} still in table 100, nothing in table 101", f"{routes(lab, 100)} / {routes(lab, 101)}")
        check(lookups(lab, first_port) == flows_before, "the 30 UDP flows keep their backends (lookup)")
        r1, r2 = ctl(lab, "drain", "web", fl.backend_v4(1)), ctl(lab, "undrain", "web", fl.backend_v4(1))
        check(r1.returncode == 0 and r2.returncode == 0, "an operator drain and undrain apply", r1.stderr + r2.stderr)
        check(lookups(lab, first_port) == flows_before, "... and the flows still keep their backends")
        check(lab.udp_ask_many(VIP, FLOW_PORTS, first_port=first_port) == answers,
              "real packets of the 30 flows reach the same backends")
        names = lab.http_get_many(VIP, 30)
        check(None not in names and len(set(names)) == 3, f"HTTP still reaches the 3 backends: {sorted(set(names))}")
        check(lab.http_get_many(VIP_NEW, 1, timeout=2) == [None], f"the new service's VIP {VIP_NEW} is not served")

        step("remove the junk; the same file now applies")
        junk_batch(lab, smap, "delete")
        r = ctl(lab, "reload")
        check(r.returncode == 0, f"reload exits 0: {r.stdout.strip()}", r.stdout + r.stderr)
        st = status(lab)
        web = [s for s in st["services"] if s["name"] == "web"][0]
        check(st["generation"] == gen + 1 and [b["address"] for b in web["backends"]] == [fl.backend_v4(1), fl.backend_v4(2)],
              "generation + 1, web has two backends")
        check(routes(lab, 100) == [] and routes(lab, 101)[:1] in ([VIP], [VIP_NEW]),
              f"routes moved to table 101: {routes(lab, 101)}")
    except TestFailure as e:
        print(f"FAIL test_reload_map_failure: {e}", flush=True)
        if lab.daemon_log and os.path.exists(lab.daemon_log):
            print("--- fulcrumd log (tail):\n" + "".join(open(lab.daemon_log).readlines()[-15:]), flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        print("FAIL test_reload_map_failure: unexpected error (above)", flush=True)
        return 1
    finally:
        lab.down()
        subprocess.run(["rm", "-rf", lab.workdir])
    print(f"PASS test_reload_map_failure ({time.time() - _T0:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
