#!/usr/bin/python3
"""An apply waiting for a new backend's neighbour entry does not stop the event loop (issue 8,
point 2), and applies stay in order (src/daemon/apply_queue.h).

Lab: 2 backends; service web (TCP 80 on 198.18.100.10) on both. Each reload below adds a backend
on the balancer's own link that nobody answers (198.18.0.7x: ARP never resolves), so the reload
waits the whole neighbour bound (1 s) before it writes the maps.

(a) the loop serves during the wait: `fulcrumctl reload` is sent; once fulcrumd has logged that
    it is reloading, `fulcrumctl status --json` is sent and its answer must come while the reload
    is still pending: it says so (apply_in_progress "reload (fulcrumctl)"), shows the old
    generation, and the reload's own fulcrumctl has not got its answer yet. Then the reload
    answers ok with the next generation, and fulcrumd logged that the backend had no ARP entry
    (the wait ran out, and the apply went ahead). On a fulcrumd that waits on the loop, status is
    answered only after the reload: new generation, nothing in progress: this part fails.
(b) order: during a pending reload that adds backend U, `fulcrumctl drain web U` is sent (U exists
    only once the reload is applied), then, once status shows the drain queued, `undrain web U`.
    All three succeed, the log shows them applied in that order (reload, drain, undrain), and the
    final state is the last one asked for: U not drained.
(g) a backend behind a gateway waits for the gateway's entry, not its own (which never comes):
    198.19.250.0/24 is routed via backend 1 (resolved: it serves web), and a reload adding
    198.19.250.1 must not log "no ARP/ND entry yet" for it. A fulcrumd that waits for the
    backend's own entry runs out its 1 s wait and logs it: this part fails.
(c) stop during a pending apply: SIGTERM while a reload waits: fulcrumd exits 0 promptly, logs the
    apply it dropped, the waiting fulcrumctl gets no success, and XDP is detached (on_exit: detach).

The wait is 1 s; a machine too slow to send status within it makes an attempt inconclusive (the
reload finished first), so (a) and (b) try up to 3 fresh addresses each. None of the checks
measures a duration.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, check, daemon_log_tail, lab_up, main, step, service_yaml  # noqa: E402

VIP = "198.18.100.10"
ATTEMPTS = 3


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args], capture_output=True, text=True,
                          timeout=60)


def ctl_async(lab, *args):
    return subprocess.Popen([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def status(lab):
    r = ctl(lab, "status", "--json")
    if r.returncode != 0:
        raise TestFailure(f"fulcrumctl status failed ({r.returncode}): {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def write(lab, extra):
    backends = [(fl.backend_v4(1), None), (fl.backend_v4(2), None)] + [(a, None) for a in extra]
    lab.write_config(lab.config_text(service_yaml("web", VIP, 80, "tcp", backends)))


def log_text(lab):
    return open(lab.daemon_log).read()


def wait_for_log(lab, needle, count, what):
    """Until `needle` is in the log `count` times (the daemon started the step)."""
    deadline = time.time() + 30
    while log_text(lab).count(needle) < count:
        if time.time() > deadline:
            raise TestFailure(f"fulcrumd never logged {what}", daemon_log_tail(lab))
        time.sleep(0.005)


def finish(proc, what):
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err


def part_a(lab, extra, addresses):
    for attempt, address in enumerate(addresses, start=1):
        step(f"(a) attempt {attempt}: reload adding {address} (no one answers its ARP), status while it waits")
        extra.append(address)
        write(lab, extra)
        before = status(lab)["generation"]
        reloading = log_text(lab).count("config: reloading")
        reload = ctl_async(lab, "reload", "--json")
        wait_for_log(lab, "config: reloading", reloading + 1, "the reload's start")
        st = status(lab)
        reload_pending = reload.poll() is None  # its fulcrumctl had no answer when status came back
        code, out = finish(reload, "reload")
        check(code == 0 and json.loads(out)["ok"] and json.loads(out)["generation"] == before + 1,
              f"the reload answered ok, generation {before + 1}", out)
        check(f"no ARP/ND entry yet for backend {address}" in log_text(lab),
              "the neighbour wait ran out and the apply went ahead (logged)")
        if st["generation"] == before + 1 and not st.get("apply_in_progress") and attempt < len(addresses):
            print("    (inconclusive: status came after the reload; another address)", flush=True)
            continue
        check(st.get("apply_in_progress") == "reload (fulcrumctl)" and st["generation"] == before,
              f"status was answered while the reload was pending: apply_in_progress "
              f"{st.get('apply_in_progress')!r}, generation {st['generation']} (the reload's is {before + 1})",
              json.dumps({k: st.get(k) for k in ("generation", "apply_in_progress", "applies_queued")}))
        check(reload_pending, "the reload's fulcrumctl was still waiting for its answer when status's came")
        return
    raise TestFailure("unreachable")


def part_b(lab, extra, addresses):
    for attempt, address in enumerate(addresses, start=1):
        step(f"(b) attempt {attempt}: reload adding {address}; drain, then undrain it, asked while the reload waits")
        extra.append(address)
        write(lab, extra)
        log_start = len(log_text(lab))
        reloading = log_text(lab).count("config: reloading")
        reload = ctl_async(lab, "reload")
        wait_for_log(lab, "config: reloading", reloading + 1, "the reload's start")
        drain = ctl_async(lab, "drain", "web", address)
        queued = False
        while reload.poll() is None:  # until the daemon has the drain queued behind the reload
            st = status(lab)
            if st.get("applies_queued", 0) >= 1:
                queued = st.get("apply_in_progress") == "reload (fulcrumctl)"
                break
        undrain = ctl_async(lab, "undrain", "web", address) if queued else None
        results = {name: finish(p, name) for name, p in (("reload", reload), ("drain", drain), ("undrain", undrain))
                   if p is not None}
        if not queued and attempt < len(addresses):
            print("    (inconclusive: the reload ended before the drain was seen queued; another address)",
                  flush=True)
            if results["drain"][0] == 0:
                ctl(lab, "undrain", "web", address)
            continue
        check(queued, "status showed the drain queued behind the pending reload")
        for name, (code, out) in results.items():
            check(code == 0, f"{name} exited 0", out)
        log = log_text(lab)[log_start:]
        marks = [log.find("config: generation"), log.find(f"control: drain web {address}"),
                 log.find(f"control: undrain web {address}")]
        check(-1 not in marks and marks == sorted(marks),
              "applied in the order asked: reload, drain (of a backend only the reload added), undrain", str(marks))
        st = status(lab)
        web = [s for s in st["services"] if s["name"] == "web"][0]
        b = [b for b in web["backends"] if b["address"] == address]
        check(b and b[0]["drained_by"] == "", f"the last state asked for wins: {address} is not drained",
              json.dumps(b))
        check(not st.get("apply_in_progress") and st.get("applies_queued") == 0, "nothing left pending")
        return


def part_gateway(lab, extra):
    step("(g) reload adding 198.19.250.1, routed via backend 1 (whose ARP entry is valid)")
    lab.run(lab.balancer, f"ip route add 198.19.250.0/24 via {fl.backend_v4(1)}")
    extra.append("198.19.250.1")
    write(lab, extra)
    r = ctl(lab, "reload", "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["ok"], "the reload answered ok", r.stdout + r.stderr)
    check("no ARP/ND entry yet for backend 198.19.250.1" not in log_text(lab),
          "no neighbour wait ran out for a backend whose gateway is resolved", daemon_log_tail(lab))


def part_c(lab, extra, addresses):
    for attempt, address in enumerate(addresses, start=1):
        step(f"(c) attempt {attempt}: SIGTERM while a reload adding {address} waits")
        extra.append(address)
        write(lab, extra)
        reloading = log_text(lab).count("config: reloading")
        reload = ctl_async(lab, "reload")
        wait_for_log(lab, "config: reloading", reloading + 1, "the reload's start")
        if status(lab).get("apply_in_progress") != "reload (fulcrumctl)":
            finish(reload, "reload")
            if attempt < len(addresses):
                print("    (inconclusive: the reload ended before status; another address)", flush=True)
                continue
            raise TestFailure("status never showed the reload pending")
        lab.daemon.send_signal(signal.SIGTERM)
        try:
            code = lab.daemon.wait(10)
        except subprocess.TimeoutExpired:
            raise TestFailure("fulcrumd did not exit within 10 s of SIGTERM", daemon_log_tail(lab))
        lab.daemon = None
        check(code == 0, f"fulcrumd exited 0 (got {code})", daemon_log_tail(lab))
        rcode, out = finish(reload, "reload")
        check(rcode != 0 and "reloaded" not in out,
              f"the waiting fulcrumctl got no success (exit {rcode}: {out.strip()})")
        check("stopping with an apply pending (reload (fulcrumctl))" in log_text(lab),
              "fulcrumd logged the apply it dropped", daemon_log_tail(lab))
        check(not lab.xdp_attached(lab.balancer, "eth0"), "XDP detached (on_exit: detach)")
        return


def body():
    lab = fl.Lab(backends=2)
    try:
        step("lab: 2 backends, fulcrumd with web on both")
        lab_up(lab)
        lab.start_servers()
        extra = []
        write(lab, extra)
        lab.start_fulcrumd(f"{lab.workdir}/fulcrum.yaml")
        part_a(lab, extra, [f"198.18.0.{70 + i}" for i in range(ATTEMPTS)])
        part_gateway(lab, extra)
        part_b(lab, extra, [f"198.18.0.{80 + i}" for i in range(ATTEMPTS)])
        part_c(lab, extra, [f"198.18.0.{90 + i}" for i in range(ATTEMPTS)])
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_apply_pending", body)
