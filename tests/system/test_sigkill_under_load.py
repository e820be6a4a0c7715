#!/usr/bin/python3
"""SIGKILL fulcrumd under load, restart it: zero lost datagrams, existing TCP connections
continue, flows keep their backends.

  - lab: 1 client, the balancer, 4 backends (decap, VIP on lo, lab servers);
    the balancer's eth0 gets threaded NAPI with its kthread pinned to CPU 0 (see load_gen.py);
  - config K (`on_exit: keep`): `echo` (VIP:7/tcp, the line echo) and `dns` (VIP:53/udp),
    backends 1-3, weight 100;
  - load_gen.py in the client namespace (taskset -c 0): 24 long-lived TCP connections to VIP:7,
    a line every 20 ms on each, every echo checked; 32 UDP flows to VIP:53, a datagram every
    20 ms on each, every answer counted;
  - a second fulcrumd on the same pin path while the first runs: it must exit non-zero at once
    with the lock message, and the first must be undisturbed (same program on eth0, control
    socket and metrics answering, load still flowing);
  - SIGKILL; with no daemon the XDP program (same id) stays on eth0 and the load keeps flowing;
    fulcrumd restarted with K: its log says it adopted the pinned maps; the program on eth0 is
    replaced in place (new id);
  - SIGKILL again; restarted with K2, changed but compatible (backend 4 added to both services,
    backend 2's weight in `echo` 100 -> 50): adopted again, new program id again, and new UDP
    flows do reach backend 4;
  - all along, `ip -j link show eth0` in the balancer every ~50 ms: XDP present in every sample;
  - then: zero resets/failed connections/unechoed lines, every connection answered by one
    backend only, zero lost datagrams and one backend per UDP flow.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
import load_gen  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.40"
TCP_CONNS, UDP_FLOWS = 24, 32
NO_DAEMON = 2.0           # seconds of load with no daemon running, after each SIGKILL
TIME_LIMIT = 230
FULCRUMCTL = os.path.join(fl.BUILD_DIR, "src", "cmd", "fulcrumctl")
LOCK_MESSAGE = "another fulcrumd already owns the pins"


def backend_lines(backends):
    return "".join(f"      - address: {fl.backend_v4(i)}\n        weight: {w}\n" for i, w in backends)


def config(lab, changed):
    if changed:
        echo = [(1, 100), (2, 50), (3, 100), (4, 100)]
        dns = [(1, 100), (2, 100), (3, 100), (4, 100)]
    else:
        echo = dns = [(1, 100), (2, 100), (3, 100)]
    services = f"""  - name: echo
    vip: {VIP}
    port: 7
    protocol: tcp
    healthcheck: {{type: tcp, port: 7}}
    backends:
{backend_lines(echo)}  - name: dns
    vip: {VIP}
    port: 53
    protocol: udp
    healthcheck: {{type: tcp, port: 80}}
    backends:
{backend_lines(dns)}"""
    text = lab.config_text(services)
    if text.count("on_exit: detach\n") != 1:
        raise RuntimeError("lab.config_text() no longer has exactly one 'on_exit: detach' line to replace")
    return text.replace("on_exit: detach\n", "on_exit: keep\n")


def log_text(lab):
    return open(lab.daemon_log).read() if lab.daemon_log and os.path.exists(lab.daemon_log) else ""


def adopted_counts(lab):
    return [int(n) for n in re.findall(r"(\d+) pinned maps adopted", log_text(lab))]


def prog_id(lab):
    out = subprocess.run(["ip", "-n", lab.balancer, "-j", "link", "show", "dev", "eth0"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return "error"
    link = json.loads(out.stdout)[0]
    return link.get("xdp", {}).get("prog", {}).get("id")


class XdpPoller(threading.Thread):
    """Samples the balancer's eth0 every ~50 ms: (time, XDP program id or None)."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab, self.samples, self.stopping = lab, [], threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.samples.append((time.time(), prog_id(self.lab)))
            self.stopping.wait(0.05)

    def stop(self):
        self.stopping.set()
        self.join(5)
        return self.samples


def wait_started(lab, starts, timeout=20):
    """lab.start_fulcrumd returns once metrics answer; the program is attached (or replaced) a
    moment later. Wait for the start-up line number `starts` in the log."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(re.findall(r"fulcrumd \S+: \d+ services on \d+ interfaces", log_text(lab))) >= starts:
            return True
        if lab.daemon.poll() is not None:
            break
        time.sleep(0.02)
    return False


def flowing(load, seconds):
    """Progress of the load over `seconds`: (TCP lines echoed, UDP answers) in that window."""
    a = load.progress()
    time.sleep(seconds)
    b = load.progress()
    return b["tcp_echoed"] - a["tcp_echoed"], b["udp_answered"] - a["udp_answered"], b["t"] - a["t"]


def expect_flowing(load, seconds, what):
    tcp, udp, dt = flowing(load, seconds)
    want_tcp, want_udp = TCP_CONNS * dt / 0.02, UDP_FLOWS * dt / 0.02
    check(tcp > 0.5 * want_tcp and udp > 0.5 * want_udp,
          f"{what}: traffic flowing: {tcp} TCP lines echoed and {udp} datagrams answered in {dt:.1f}s "
          f"(nominal {want_tcp:.0f} and {want_udp:.0f})")


def kill9(lab):
    pid = lab.daemon.pid
    lab.daemon.send_signal(signal.SIGKILL)
    rc = lab.daemon.wait(10)
    lab.daemon = None
    return pid, rc


def body():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"over {TIME_LIMIT}s")))
    signal.alarm(TIME_LIMIT)
    lab = fl.Lab(backends=4, clients=1, prefix=f"sk{os.getpid() % 100000}")
    load = poller = None
    try:
        step(f"lab {lab.prefix}: client, balancer, 4 backends")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        cfg_path = f"{lab.workdir}/fulcrum.yaml"
        with open(cfg_path, "w") as f:
            f.write(config(lab, changed=False))
        lab.start_fulcrumd(cfg_path)
        check(wait_started(lab, 1), "fulcrumd started with config K (on_exit: keep, backends 1-3)")
        lab.pin_balancer_rx()  # (start_fulcrumd did it already; idempotent)
        threads = "napi/eth0"
        print(f"    balancer's eth0: threaded NAPI, kthread {threads} pinned to CPU 0 (the flow "
              f"table is per CPU; this is RSS's one-CPU-per-flow on a veth: see load_gen.py)")
        check(adopted_counts(lab) == [0], f"fresh pins: log says {adopted_counts(lab)} pinned maps adopted")
        id0 = prog_id(lab)
        check(isinstance(id0, int), f"XDP program id {id0} on the balancer's eth0")

        step(f"load: {TCP_CONNS} TCP connections to {VIP}:7 and {UDP_FLOWS} UDP flows to {VIP}:53, "
             f"every 20 ms each, from the client namespace on CPU 0")
        load = load_gen.Runner(lab, VIP, tcp=TCP_CONNS, udp=UDP_FLOWS, max_seconds=120)
        load.start()
        expect_flowing(load, 1.0, "before anything")
        poller = XdpPoller(lab)
        poller.start()

        step("a second fulcrumd on the same pin path while the first runs")
        t0 = time.time()
        r = subprocess.run(lab.ns(lab.balancer, f"{fl.FULCRUMD} -c {cfg_path}").split(),
                           capture_output=True, text=True, timeout=20)
        second = (r.stdout + r.stderr).strip()
        print("    second fulcrumd said: " + " | ".join(second.splitlines()[-3:]))
        check(r.returncode != 0 and LOCK_MESSAGE in second,
              f"it exited {r.returncode} after {time.time() - t0:.2f}s naming the lock ('{LOCK_MESSAGE}')", second)
        check(lab.daemon.poll() is None, "the first fulcrumd still runs")
        check(prog_id(lab) == id0, f"the same XDP program (id {id0}) still on eth0")
        st = subprocess.run([FULCRUMCTL, "-s", f"{lab.workdir}/fulcrumd.sock", "status"],
                            capture_output=True, text=True)
        check(st.returncode == 0 and "echo" in st.stdout,
              "the first one's control socket still answers (fulcrumctl status)", st.stdout + st.stderr)
        check(lab.metrics_up(), "and its metrics endpoint too")
        expect_flowing(load, 1.0, "after the refused second daemon")

        # -- SIGKILL 1, no daemon, restart with K -------------------------------------------------
        step("SIGKILL fulcrumd")
        pid, rc = kill9(lab)
        t_kill1 = time.time()
        check(rc == -signal.SIGKILL, f"fulcrumd (pid {pid}) killed by SIGKILL (returncode {rc})")
        expect_flowing(load, NO_DAEMON, "no daemon running")
        check(prog_id(lab) == id0, f"with no daemon, XDP program id {id0} still attached to eth0")
        step("restart fulcrumd with the same config K")
        lab.start_fulcrumd(cfg_path)
        check(wait_started(lab, 2), "fulcrumd restarted", daemon_log_tail(lab))
        t_up1 = time.time()
        adopted = adopted_counts(lab)
        check(len(adopted) == 2 and adopted[-1] > 0, f"its log says \"{adopted[-1]} pinned maps adopted\"",
              str(adopted))
        id1 = prog_id(lab)
        check(isinstance(id1, int) and id1 != id0, f"the program on eth0 was replaced: id {id0} -> {id1}")
        expect_flowing(load, 2.0, "after the restart")

        # -- SIGKILL 2, restart with K2 (changed but compatible) ----------------------------------
        step("SIGKILL again, restart with K2: backend 4 added, echo weight of backend 2 100 -> 50")
        with open(cfg_path + ".tmp", "w") as f:
            f.write(config(lab, changed=True))
        os.replace(cfg_path + ".tmp", cfg_path)
        pid, rc = kill9(lab)
        t_kill2 = time.time()
        check(rc == -signal.SIGKILL, f"fulcrumd (pid {pid}) killed by SIGKILL (returncode {rc})")
        expect_flowing(load, NO_DAEMON, "no daemon running")
        check(prog_id(lab) == id1, f"with no daemon, XDP program id {id1} still attached to eth0")
        lab.start_fulcrumd(cfg_path)
        check(wait_started(lab, 3), "fulcrumd restarted with K2", daemon_log_tail(lab))
        t_up2 = time.time()
        adopted = adopted_counts(lab)
        check(len(adopted) == 3 and adopted[-1] > 0, f"its log says \"{adopted[-1]} pinned maps adopted\"",
              str(adopted))
        id2 = prog_id(lab)
        check(isinstance(id2, int) and id2 not in (id0, id1), f"the program on eth0 was replaced: id {id1} -> {id2}")
        m = lab.scrape()
        w2 = m.get(("fulcrum_backend_weight", (("backend", fl.backend_v4(2)), ("service", "echo"))))
        check(w2 == 50, f"K2 in force: echo weight of backend 2 is {w2}")
        answers = lab.udp_ask_many(VIP, 40)
        b4 = answers.count(lab.backends[3])
        check(None not in answers and b4 > 0, f"new UDP flows reach the added backend 4: {b4} of 40 "
                                              f"(spread {sorted((str(n), answers.count(n)) for n in set(answers))})",
                      f"balancer drops by reason: {load_gen.dropped(lab.scrape())}")
        expect_flowing(load, 2.0, "after the second restart")

        samples = poller.stop()
        poller = None
        summary = load.stop()
        load = None

        # -- verdicts -----------------------------------------------------------------------------
        during = [s for s in samples if t_kill1 - 1 <= s[0] <= t_up2 + 1]
        gaps = [b[0] - a[0] for a, b in zip(samples, samples[1:])]
        ids = []
        for _, i in samples:
            if not ids or ids[-1] != i:
                ids.append(i)
        missing = [(round(t, 3), i) for t, i in samples if not isinstance(i, int)]
        check(not missing, f"XDP on eth0 in every one of {len(samples)} samples (every {1000 * min(gaps):.0f}-"
                           f"{1000 * max(gaps):.0f} ms, {len(during)} of them across the kills and restarts); "
                           f"program ids in order: {ids}", f"samples without XDP: {missing[:10]}")
        check(ids == [id0, id1, id2], f"program ids went {id0} -> {id1} -> {id2}, each replaced in place")
        print(f"    info: no daemon for {t_up1 - t_kill1:.1f}s and {t_up2 - t_kill2:.1f}s "
              f"(kill to fully started)")

        t, u = summary["tcp"], summary["udp"]
        print("    info: " + load_gen.flow_table_report(lab.pin_path, summary), flush=True)
        step(f"load ran {summary['stopped_sending'] - summary['ready']:.1f}s on CPUs {summary['cpu_affinity']}: "
             f"TCP {t['lines_echoed']}/{t['lines_sent']} lines echoed (max RTT {t['max_rtt_ms']} ms), "
             f"UDP {u['answered']}/{u['sent']} answered")
        check(summary["cpu_affinity"] == [0], "load generator pinned to CPU 0")
        check(summary["ready"] < t_kill1 and summary["stopped_sending"] > t_up2,
              "the load covered both kills and restarts")
        bad = load_gen.problems(summary)
        check(t["connect_failed"] == 0 and t["resets"] == 0 and t["eofs"] == 0 and t["errors"] == 0,
              f"zero TCP resets/failures: connect_failed={t['connect_failed']} resets={t['resets']} "
              f"eofs={t['eofs']} errors={t['errors']}", "\n    ".join(bad[:15]))
        check(t["lines_lost"] == 0 and t["lines_echoed"] == t["lines_sent"] and t["bad_lines"] == 0,
              f"existing TCP connections continued: every one of {t['lines_sent']} lines echoed "
              f"(lost {t['lines_lost']}, late {t['late_echoes']})", "\n    ".join(bad[:15]))
        per_be = {}
        for c in t["per_conn"]:
            per_be[c["backend"]] = per_be.get(c["backend"], 0) + 1
        check(t["backend_changed"] == 0, f"every TCP connection answered by one backend throughout "
                                         f"(connections per backend: {dict(sorted(per_be.items()))})",
              "\n    ".join(bad[:15]))
        flows_be = {}
        for f in u["per_flow"]:
            flows_be[",".join(f["backends"])] = flows_be.get(",".join(f["backends"]), 0) + 1
        check(u["lost"] == 0 and u["errors"] == 0,
              f"zero lost datagrams: {u['answered']} answered of {u['sent']} sent over {UDP_FLOWS} flows "
              f"(lost {u['lost']}, socket errors {u['errors']})", "\n    ".join(bad[:15]))
        check(u["backend_changed"] == 0, f"every UDP flow kept its backend "
                                         f"(flows per backend: {dict(sorted(flows_be.items()))})",
              "\n    ".join(bad[:15]))
        m = lab.scrape()
        print(f"    info: balancer drops by reason: {load_gen.dropped(m) or 'none'}")
    except Exception:
        print("fulcrumd log (last lines):\n" + daemon_log_tail(lab, 25))
        raise
    finally:
        signal.alarm(0)
        if poller:
            poller.stop()
        if load:
            load.kill()
        lab.down()


if __name__ == "__main__":
    main("test_sigkill_under_load", body)
