#!/usr/bin/python3
"""A corpus of broken configuration files (tests/system/configs/bad/) is refused, with exactly the
expected messages, by `fulcrumd --check` and by a live `fulcrumctl reload`, and a refused reload
changes nothing: not the traffic, not the running configuration.

The corpus: every NN-KIND.yaml is the lab configuration BASE (below) with one realistic mistake
(the first line, a comment, says which); NN-KIND.expected holds every line `fulcrumd --check`
prints for it, with FILE standing for the file's path. The lab-specific values (pin path, control
socket, metrics port) are written ${PIN_PATH}, ${SOCKET}, ${METRICS_PORT} in the files and filled
in here, so a broken file differs from the running configuration only by its mistake (checked:
a small diff against BASE).

(a) `fulcrumd --check -c FILE`: exit 1, nothing on stdout, stderr exactly the expected lines.
(b) A lab runs fulcrumd with BASE while a client (on CPU 0) sends HTTP (IPv4 and IPv6 VIPs) and
    UDP through the balancer in a loop. Each broken file is copied over the daemon's config file and
    `fulcrumctl reload` must exit 1 with the same error lines plus "reload refused: ..." on
    stderr. Afterwards: zero failed requests during the whole corpus run; `fulcrumctl status
    --json` identical to before except rates and the failure counters; metrics
    fulcrum_config_generation unchanged and fulcrum_config_reloads_total{result="failure"} equal
    to the number of files. Finally a good file (one weight changed) applies: exit 0,
    generation + 1, the new weight in status and metrics.
"""
import difflib
import glob
import json
import os
import random
import string
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402

CORPUS = os.path.join(fl.SOURCE_DIR, "tests", "system", "configs", "bad")
FULCRUMCTL = os.path.join(fl.BUILD_DIR, "src", "cmd", "fulcrumctl")
VIP4, VIP6 = "198.18.100.10", "2001:db8:100::10"
REFUSED = "reload refused: the running configuration stays in force"

# The lab configuration every broken file starts from (keep the corpus in step with it: the test
# fails if a broken file differs from it by more than its mistake).
BASE = """interfaces:
  - name: eth0
    mode: native
tunnel:
  source_v4: 198.18.0.1
  source_v6: 2001:db8::1
flows:
  capacity: 65536
  udp_idle_timeout: 30s
bpf:
  pin_path: ${PIN_PATH}
  hash_seed: 7
control:
  socket: ${SOCKET}
metrics:
  listen: 127.0.0.1:${METRICS_PORT}
routes:
  table: 0
  need: 1
on_exit: detach
defaults:
  healthcheck:
    type: tcp
    interval: 2s
    timeout: 1s
    rise: 2
    fall: 3
services:
  - name: web
    vip: 198.18.100.10
    port: 80
    protocol: tcp
    table_size: 65537
    min_healthy: 1
    healthcheck:
      type: http
      path: /
      expect_status: 200
    backends:
      - address: 198.18.0.11
        weight: 100
      - address: 198.18.0.12
        weight: 100
      - address: 198.18.0.13
        weight: 200
  - name: dns
    vip: 198.18.100.10
    port: 53
    protocol: udp
    table_size: 251
    min_healthy: 50%
    healthcheck:
      port: 80
    backends:
      - address: 2001:db8::11
      - address: 2001:db8::12
      - address: 2001:db8::13
  - name: web6
    vip: 2001:db8:100::10
    port: 80
    protocol: tcp
    backends:
      - address: 2001:db8::11
      - address: 2001:db8::12
      - address: 2001:db8::13
"""
MAX_CHANGED_LINES = 6  # lines removed + added relative to BASE (the mistake, nothing else)

# Runs in the client namespace until STOP exists (or MAX seconds): HTTP to both VIPs and UDP to
# the dns service, one new connection / socket each time; writes counts and failures as JSON.
TRAFFIC = r"""
import json, os, socket, sys, time
stop, out, max_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
res = {"http4": 0, "http6": 0, "udp": 0, "failures": [], "backends": {}}
def http(vip):
    fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect((vip, 80))
        s.sendall(b"GET / HTTP/1.0\r\nHost: fulcrum\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode().strip()
def udp(vip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(b"who", (vip, 53))
        return s.recv(512).decode().strip()
t0 = time.time()
while not os.path.exists(stop) and time.time() - t0 < max_s:
    for kind, fn, vip in (("http4", http, "VIP4"), ("http6", http, "VIP6"), ("udp", udp, "VIP4")):
        try:
            name = fn(vip)
            if not name:
                raise RuntimeError("empty answer")
            res[kind] += 1
            res["backends"][kind + " " + name] = res["backends"].get(kind + " " + name, 0) + 1
        except Exception as e:
            res["failures"].append(f"{time.time() - t0:.2f}s {kind}: {type(e).__name__} {e}")
    time.sleep(0.01)
json.dump(res, open(out, "w"))
""".replace("VIP4", VIP4).replace("VIP6", VIP6)

# Shared with the other system tests: timing, step/check reporting, lab.up() with retries.
from st_helpers import _T0, TestFailure, check, lab_up, step  # noqa: E402


def lab_values(lab):
    return {"PIN_PATH": lab.pin_path, "SOCKET": f"{lab.workdir}/fulcrumd.sock",
            "METRICS_PORT": str(lab.metrics_port())}


def corpus():
    """[(name, template text, expected --check lines with FILE)], sorted by name."""
    files = sorted(glob.glob(os.path.join(CORPUS, "*.yaml")))
    out = []
    for path in files:
        name = os.path.basename(path)[:-5]
        with open(path) as f:
            text = f.read()
        expected_path = path[:-5] + ".expected"
        if not os.path.exists(expected_path):
            raise TestFailure(f"{name}: no {os.path.basename(expected_path)}")
        with open(expected_path) as f:
            expected = f.read().splitlines()
        out.append((name, text, expected))
    return out


def fill(template, lab):
    return string.Template(template).safe_substitute(lab_values(lab))


def ctl(lab, *args):
    return subprocess.run([FULCRUMCTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def status_json(lab):
    r = ctl(lab, "status", "--json")
    if r.returncode != 0:
        raise TestFailure(f"fulcrumctl status --json exited {r.returncode}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def without_rates(status):
    """status without the fields that move by themselves or with a refused reload: rates, the
    age of the last health change, failure counters, and the control socket's own session
    counters (every fulcrumctl call is a session)."""
    s = json.loads(json.dumps(status))
    for key in ("reloads_failed", "last_reload_error", "control"):
        s.pop(key, None)
    for svc in s.get("services", []):
        svc.pop("packets_per_second", None)
        for b in svc.get("backends", []):
            b.pop("packets_per_second", None)
            b.pop("seconds_since_change", None)
    return s


def metric(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def part_a(lab, cases):
    step(f"(a) fulcrumd --check on each of the {len(cases)} broken files")
    check(len(cases) >= 30, f"the corpus has {len(cases)} broken files (at least 30)")
    checkdir = f"{lab.workdir}/check"
    os.makedirs(checkdir, exist_ok=True)
    good = f"{checkdir}/good.yaml"
    with open(good, "w") as f:
        f.write(fill(BASE, lab))
    r = subprocess.run([fl.FULCRUMD, "--check", "-c", good], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0 and r.stdout == f"{good}: OK (3 services)\n",
          "the base configuration itself passes --check", r.stdout + r.stderr)
    base_lines = BASE.splitlines()
    problems = []
    for name, template, expected in cases:
        # Only the mistake differs from BASE (the comment on line 1 names it).
        lines = template.splitlines()
        if not lines[0].startswith("# Mistake: "):
            problems.append(f"{name}: line 1 should be '# Mistake: ...'")
        diff = [d for d in difflib.ndiff(base_lines, lines[1:]) if d[:1] in "+-"]
        if not 0 < len(diff) <= MAX_CHANGED_LINES:
            problems.append(f"{name}: differs from BASE by {len(diff)} lines (1..{MAX_CHANGED_LINES}): {diff}")
        path = f"{checkdir}/{name}.yaml"
        with open(path, "w") as f:
            f.write(fill(template, lab))
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", path], capture_output=True, text=True, timeout=20)
        got = r.stderr.replace(path, "FILE").splitlines()
        if r.returncode != 1 or r.stdout or got != expected:
            problems.append(f"{name}: exit {r.returncode}, stdout {r.stdout!r}\n      expected: {expected}"
                            f"\n      got:      {got}")
        else:
            print(f"    {name}: {expected[0][:110]}", flush=True)
    check(not problems, "every broken file: only its mistake differs from BASE; --check exits 1 and prints "
                        "exactly the expected lines", "\n    ".join(problems))


def part_b(lab, cases):
    step("(b) lab up: 3 backends, fulcrumd with BASE")
    lab_up(lab)
    lab.add_vip_to_backends(VIP4)
    lab.add_vip_to_backends(VIP6)
    lab.attach_decap()
    lab.start_servers()
    config = lab.write_config(fill(BASE, lab))
    lab.start_fulcrumd(config)
    names = lab.http_get_many(VIP4, 20) + lab.http_get_many(VIP6, 20) + lab.udp_ask_many(VIP4, 20)
    check(None not in names and len(set(names)) == 3, f"traffic flows before the corpus run: {sorted(set(names))}",
          str(names))

    step("background traffic: HTTP to both VIPs and UDP, in a loop from the client")
    stop, result = f"{lab.workdir}/traffic.stop", f"{lab.workdir}/traffic.json"
    script = f"{lab.workdir}/traffic.py"
    with open(script, "w") as f:
        f.write(TRAFFIC)
    # On CPU 0: the flow table is per CPU and XDP on a veth runs on the sender's CPU, so a client
    # that migrates between CPUs mid-connection would meet an empty flow table on the other CPU
    # and be re-hashed when the good reload below moves Maglev slots (real NICs keep a flow on one
    # queue by RSS; the lab has no RSS).
    traffic = subprocess.Popen(lab.ns(lab.client, f"taskset -c 0 {fl.PYTHON} {script} {stop} {result} 180").split(),
                               start_new_session=True)
    lab.procs.append(traffic)
    time.sleep(1.0)

    before = status_json(lab)
    m0 = lab.scrape()
    gen0 = metric(m0, "fulcrum_config_generation")
    fail0 = metric(m0, "fulcrum_config_reloads_total", result="failure")
    ok0 = metric(m0, "fulcrum_config_reloads_total", result="success")
    print(f"    before: generation {gen0:.0f}, reloads ok {ok0:.0f} / failed {fail0:.0f}", flush=True)

    step(f"copy each of the {len(cases)} broken files over {config} and run fulcrumctl reload")
    problems = []
    t_start = time.time()
    for name, template, expected in cases:
        with open(config, "w") as f:
            f.write(fill(template, lab))
        r = ctl(lab, "reload")
        time.sleep(0.1)  # let the traffic loop run between reloads
        want = [line.replace("FILE", config, 1) if line.startswith("FILE") else line
                for line in expected[:-1]] + [REFUSED]
        # The last line of --check is the count ("N errors"); reload ends with REFUSED instead.
        if not expected[-1].endswith(("error", "errors")):
            problems.append(f"{name}: .expected does not end with the error count")
        got = r.stderr.splitlines()
        if r.returncode != 1 or r.stdout or got != want:
            problems.append(f"{name}: exit {r.returncode}, stdout {r.stdout!r}\n      expected: {want}"
                            f"\n      got:      {got}")
    elapsed = time.time() - t_start
    check(not problems, f"every reload exited 1 with exactly the --check lines plus \"{REFUSED}\" on stderr "
                        f"({len(cases)} reloads in {elapsed:.1f}s)", "\n    ".join(problems))

    after = status_json(lab)
    m1 = lab.scrape()
    check(without_rates(after) == without_rates(before),
          "fulcrumctl status --json is identical before/after (rates and failure counters aside)",
          f"before: {json.dumps(without_rates(before))}\n    after:  {json.dumps(without_rates(after))}")
    check(after["reloads_failed"] - before["reloads_failed"] == len(cases) and after["generation"] == before["generation"],
          f"status: reloads_failed +{len(cases)}, generation still {after['generation']}",
          f"before {before['reloads_failed']}, after {after['reloads_failed']}")
    last_name, _, last_expected = cases[-1]
    want_last = "\n".join([line.replace("FILE", config, 1) for line in last_expected[:-1]] + [REFUSED])
    check(after["last_reload_error"] == want_last, f"status: last_reload_error is the last file's ({last_name})",
          repr(after["last_reload_error"]))
    gen1 = metric(m1, "fulcrum_config_generation")
    fail1 = metric(m1, "fulcrum_config_reloads_total", result="failure")
    ok1 = metric(m1, "fulcrum_config_reloads_total", result="success")
    check(gen1 == gen0, f"metrics: fulcrum_config_generation unchanged ({gen1:.0f})")
    check(fail1 - fail0 == len(cases) and fail1 == len(cases) and ok1 == ok0,
          f"metrics: fulcrum_config_reloads_total{{result=\"failure\"}} == {len(cases)} (the number of files), "
          f"success unchanged ({ok1:.0f})", f"failure {fail0} -> {fail1}, success {ok0} -> {ok1}")

    step("a good file (web backend 198.18.0.13 weight 200 -> 100) applies normally")
    good = fill(BASE, lab).replace("        weight: 200\n", "        weight: 100\n")
    with open(config, "w") as f:
        f.write(good)
    r = ctl(lab, "reload")
    check(r.returncode == 0 and r.stdout == f"reloaded {config}: generation {int(gen0) + 1}\n" and not r.stderr,
          f"reload exits 0: {r.stdout.strip()}", f"exit {r.returncode}: {r.stdout}{r.stderr}")
    m2 = lab.scrape()
    st = status_json(lab)
    weight = [b["weight"] for s in st["services"] if s["name"] == "web" for b in s["backends"]
              if b["address"] == "198.18.0.13"]
    check(metric(m2, "fulcrum_config_generation") == gen0 + 1 and st["generation"] == before["generation"] + 1,
          f"generation +1 ({gen0:.0f} -> {metric(m2, 'fulcrum_config_generation'):.0f})")
    check(metric(m2, "fulcrum_config_reloads_total", result="success") == ok0 + 1 and
          metric(m2, "fulcrum_config_reloads_total", result="failure") == fail1 and st["last_reload_error"] == "",
          "reloads_total{success} +1, failure unchanged, last_reload_error cleared")
    check(weight == [100] and metric(m2, "fulcrum_backend_weight", service="web", backend="198.18.0.13") == 100,
          "the new weight is in force (status and fulcrum_backend_weight)", f"status weight {weight}")

    time.sleep(0.5)
    step("stop the traffic and count")
    open(stop, "w").close()
    traffic.wait(30)
    with open(result) as f:
        res = json.load(f)
    print(f"    HTTP IPv4 {res['http4']}, HTTP IPv6 {res['http6']}, UDP {res['udp']} exchanges; "
          f"by backend: {dict(sorted(res['backends'].items()))}", flush=True)
    check(not res["failures"], "zero failed requests during the whole corpus run and the good reload",
          "\n    ".join(res["failures"][:20]))
    check(min(res["http4"], res["http6"], res["udp"]) >= 20 and len(res["backends"]) == 9,
          "traffic really flowed throughout: >= 20 of each kind, every backend answered every kind")


def main():
    lab = fl.Lab(backends=3, prefix=f"rbc{os.getpid() % 100000}")
    try:
        cases = corpus()
        os.makedirs(lab.workdir, exist_ok=True)
        part_a(lab, cases)
        part_b(lab, cases)
    except TestFailure as e:
        print(f"FAIL test_reload_bad_configs: {e}", flush=True)
        if lab.daemon_log and os.path.exists(lab.daemon_log):
            print("--- fulcrumd log (tail):\n" + "".join(open(lab.daemon_log).readlines()[-15:]), flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        print("FAIL test_reload_bad_configs: unexpected error (above)", flush=True)
        return 1
    finally:
        lab.down()
        subprocess.run(["rm", "-rf", lab.workdir])
    print(f"PASS test_reload_bad_configs ({time.time() - _T0:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
