#!/usr/bin/python3
"""Failover by health check, under traffic: a backend's server is killed for real, fulcrumd marks
it down within fall x interval (+ timeout), its flows move, the others' flows see nothing; the
server is restarted and the backend comes back after rise passes and takes new flows again.

  - lab: 1 client, the balancer, 3 backends (decap, VIP on lo, lab servers: HTTP 80, UDP 53,
    TCP 7 line echo); the balancer's eth0 gets threaded NAPI pinned to CPU 0 (load_gen.py);
  - services on VIP: echo 7/tcp, dns 53/udp, web 80/tcp; health: tcp connect to port 7 (echo, dns)
    or 80 (web), interval 500ms, timeout 300ms, rise 2, fall 2, jitter 0.1 (default);
  - load_gen.py (taskset -c 0): 12 long-lived TCP echo connections, 48 UDP flows, every 20 ms;
  - kill -9 backend 2's lab_server (found by `ip netns pids` + cmdline); `fulcrumctl status
    --json` polled every 50 ms: time to health "down" and to state "down" (out of the table)
    for every service, asserted <= fall x interval x (1 + jitter) + timeout + 500 ms slack;
  - new flows during the outage (40 UDP exchanges, 30 HTTP connections) all answered, none by
    backend 2;
  - restart the server with the lab's command: health "up" within rise x interval x (1 + jitter)
    + 500 ms of its listeners being up, and state "active" after the 200 ms batch; new flows
    reach backend 2 again;
  - load result: connections and UDP flows of backends 1 and 3: zero resets, zero lost lines or
    datagrams, one backend each; UDP flows of backend 2: later datagrams answered by another
    backend (moved), losses bounded by the kill->down window; TCP connections of backend 2 died
    with the server (expected, counted).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
import health_helpers as hh  # noqa: E402
import load_gen  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.40"
INTERVAL, TIMEOUT, RISE, FALL, JITTER = 0.5, 0.3, 2, 2, 0.1
BATCH = 0.2
SLACK = 0.5
# 20 TCP connections: the test needs some on the backend it kills, and with 12 all of them missed
# it once in CI ((2/3)^12 = 0.8 % a run; (2/3)^20 = 0.03 %).
TCP_CONNS, UDP_FLOWS, LOAD_INTERVAL = 20, 48, 0.02
TIME_LIMIT = 170
HEALTH = f"""defaults:
  healthcheck: {{type: tcp, interval: {int(INTERVAL * 1000)}ms, timeout: {int(TIMEOUT * 1000)}ms, rise: {RISE}, fall: {FALL}}}
"""


def services():
    out = ""
    for name, port, proto, check_port in (("echo", 7, "tcp", 7), ("dns", 53, "udp", 7), ("web", 80, "tcp", 80)):
        out += f"""  - name: {name}
    vip: {VIP}
    port: {port}
    protocol: {proto}
    healthcheck: {{port: {check_port}}}
    backends:
""" + "".join(f"      - address: {fl.backend_v4(i)}\n" for i in (1, 2, 3))
    return out


def body():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"over {TIME_LIMIT}s")))
    signal.alarm(TIME_LIMIT)
    lab = fl.Lab(backends=3, clients=1, prefix=f"hf{os.getpid() % 100000}")
    load = None
    try:
        step(f"lab {lab.prefix}: client, balancer, 3 backends with lab servers")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        cfg = lab.write_config(lab.config_text(services(), extra=HEALTH))
        lab.start_fulcrumd(cfg)
        if hasattr(lab, "pin_balancer_rx"):
            lab.pin_balancer_rx(0)   # idempotent (start_fulcrumd does it too)
        else:
            load_gen.pin_rx_to_cpu(lab, lab.balancer, 0)
        threads = {pid: c for pid, c in load_gen.napi_threads().items()
                   if os.sched_getaffinity(pid) == {0}}
        print(f"    balancer's eth0: threaded NAPI pinned to CPU 0 (per-CPU flow table); pinned napi "
              f"kthreads on this host: {sorted(threads.values())}")
        poller = hh.StatusPoller(lab, 0.05)
        dead_ns, dead = lab.backends[1], fl.backend_v4(2)
        others = {lab.backends[0], lab.backends[2]}
        t, st = poller.wait(lambda s: all(b["health"] == "up" and b["state"] == "active"
                                          for svc in s.values() for b in svc["backends"].values()), 10)
        check(t is not None, "every backend of echo/dns/web is health up and active", str(st))

        step(f"load: {TCP_CONNS} TCP echo connections and {UDP_FLOWS} UDP flows to {VIP}, every 20 ms, CPU 0")
        load = load_gen.Runner(lab, VIP, tcp=TCP_CONNS, udp=UDP_FLOWS, max_seconds=90)
        load.start()
        time.sleep(1.5)

        step(f"kill -9 the lab server of {dead_ns} ({dead})")
        t_kill = hh.kill_server(lab, dead_ns)
        check(not hh.server_pids(lab, dead_ns), f"no lab_server.py left in {dead_ns}")
        seen = {}   # (service, what) -> seconds after the kill

        def watch(s):
            now = time.time() - t_kill
            for name, svc in s.items():
                b = svc["backends"][dead]
                if b["health"] == "down":
                    seen.setdefault((name, "health"), (now, b["last_check"]))
                if b["state"] == "down":
                    seen.setdefault((name, "state"), (now, b["last_check"]))
            return len(seen) == 6
        t, st = poller.wait(watch, 6, since=t_kill)
        check(t is not None, f"{dead} marked down in echo, dns and web", f"seen {seen}; status {st}")
        bound = FALL * INTERVAL * (1 + JITTER) + TIMEOUT + SLACK
        for name in ("echo", "dns", "web"):
            h, s_ = seen[(name, "health")], seen[(name, "state")]
            check(s_[0] <= bound,
                  f"{name}: {dead} health down {1000 * h[0]:.0f} ms, out of the table {1000 * s_[0]:.0f} ms "
                  f"after the kill (bound fall*interval*(1+jitter)+timeout+slack = {1000 * bound:.0f} ms; "
                  f"last check: {h[1]})")
        t_down = t_kill + max(v[0] for v in seen.values())

        step("new flows during the outage")
        udp = lab.udp_ask_many(VIP, 40)
        http = lab.http_get_many(VIP, 30)
        # A UDP datagram can be lost (CI saw 1 of 40 unanswered twice in ~8 runs, no wrong
        # backend): one unanswered flow is asked again as a new flow, as a client would retry.
        # A new flow sent to the dead backend is never answered, so more than one loss fails.
        lost = udp.count(None)
        if lost == 1:
            retry = lab.udp_ask_many(VIP, 1)
            print(f"    1 of 40 UDP flows got no answer; asked again as a new flow: {retry}")
            udp = [n for n in udp if n is not None] + retry
        check(None not in udp and dead_ns not in udp and lost <= 1,
              f"40 new UDP flows all answered ({lost} asked twice), none by {dead_ns}: "
              f"{sorted((str(n), udp.count(n)) for n in set(udp))}")
        check(None not in http and dead_ns not in http,
              f"30 new HTTP connections all answered, none by {dead_ns}: "
              f"{sorted((str(n), http.count(n)) for n in set(http))}")
        time.sleep(1.0)

        step(f"restart the lab server of {dead_ns}")
        t_start = hh.start_server(lab, dead_ns)
        seen_up = {}

        def watch_up(s):
            now = time.time() - t_start
            for name, svc in s.items():
                b = svc["backends"][dead]
                if b["health"] == "up":
                    seen_up.setdefault((name, "health"), now)
                if b["state"] == "active":
                    seen_up.setdefault((name, "state"), now)
            return len(seen_up) == 6
        t, st = poller.wait(watch_up, 6, since=t_start)
        check(t is not None, f"{dead} back up and active in echo, dns and web", f"seen {seen_up}; status {st}")
        bound_up = RISE * INTERVAL * (1 + JITTER) + SLACK
        for name in ("echo", "dns", "web"):
            h, s_ = seen_up[(name, "health")], seen_up[(name, "state")]
            check(h <= bound_up and s_ <= bound_up + BATCH,
                  f"{name}: {dead} health up {1000 * h:.0f} ms, active {1000 * s_:.0f} ms after its listeners "
                  f"were up (bounds: rise*interval*(1+jitter)+slack = {1000 * bound_up:.0f} ms, "
                  f"+{1000 * BATCH:.0f} ms batch for the table)")
        udp = lab.udp_ask_many(VIP, 60)
        http = lab.http_get_many(VIP, 30)
        check(None not in udp and udp.count(dead_ns) > 0,
              f"new UDP flows reach {dead_ns} again: {sorted((n, udp.count(n)) for n in set(udp))}")
        check(None not in http and http.count(dead_ns) > 0,
              f"new HTTP connections reach {dead_ns} again: {sorted((str(n), http.count(n)) for n in set(http))}")
        time.sleep(1.0)
        summary = load.stop()
        load = None

        step("load result")
        tt, u = summary["tcp"], summary["udp"]
        print("    info: " + load_gen.flow_table_report(lab.pin_path, summary), flush=True)
        check(summary["ready"] < t_kill and summary["stopped_sending"] > t_start + 1,
              f"the load covered the kill, the outage and the restart "
              f"({summary['stopped_sending'] - summary['ready']:.1f} s)")
        conns_ok = [c for c in tt["per_conn"] if c["backend"] in others]
        conns_dead = [c for c in tt["per_conn"] if c["backend"] == dead_ns]
        bad = [c for c in conns_ok if c["status"] != "closed" or c["lost"] or len(c["backends"]) > 1]
        check(len(conns_ok) + len(conns_dead) == TCP_CONNS and conns_ok and conns_dead,
              f"TCP connections: {len(conns_ok)} on backends 1/3, {len(conns_dead)} on {dead_ns}")
        check(not bad, f"{len(conns_ok)} TCP connections of backends 1/3: zero resets, "
                       f"{sum(c['echoed'] for c in conns_ok)}/{sum(c['sent'] for c in conns_ok)} lines echoed, "
                       f"one backend each", str(bad[:5]))
        check(all(c["status"] in ("reset", "eof", "error") and c["error_at"] >= t_kill for c in conns_dead),
              f"the {len(conns_dead)} TCP connections of {dead_ns} ended when its server died "
              f"({sorted(set(c['status'] for c in conns_dead))}; expected: their server is gone)")
        flows_ok = [f for f in u["per_flow"] if f["backends"] and f["backends"][0] in others]
        flows_dead = [f for f in u["per_flow"] if f["backends"] and f["backends"][0] == dead_ns]
        check(len(flows_ok) + len(flows_dead) == UDP_FLOWS and flows_dead,
              f"UDP flows: {len(flows_ok)} started on backends 1/3, {len(flows_dead)} on {dead_ns}")
        bad = [f for f in flows_ok if f["lost"] or f["errors"] or len(f["backends"]) > 1]
        check(not bad, f"{len(flows_ok)} UDP flows of backends 1/3: zero lost "
                       f"({sum(f['answered'] for f in flows_ok)}/{sum(f['sent'] for f in flows_ok)} answered), "
                       f"zero errors, one backend each", str(bad[:5]))
        window = t_down - t_kill + 0.3
        max_lost = int(window / LOAD_INTERVAL) + 10
        moved = [f for f in flows_dead if len(f["backends"]) == 2 and f["backends"][1] in others]
        check(len(moved) == len(flows_dead),
              f"all {len(flows_dead)} UDP flows of {dead_ns} moved: later datagrams answered by "
              f"{sorted(set(f['backends'][1] for f in moved))}", str([f for f in flows_dead if f not in moved][:5]))
        worst = max(f["lost"] for f in flows_dead)
        check(worst <= max_lost,
              f"their losses are bounded by the kill->down window ({1000 * window:.0f} ms): worst flow lost "
              f"{worst} datagrams of {LOAD_INTERVAL * 1000:.0f} ms each (limit {max_lost}); ICMP errors seen "
              f"{sum(f['errors'] for f in flows_dead)}")
        m = lab.scrape()
        print(f"    info: failures of {dead}: "
              f"{ {k[1]: v for k, v in m.items() if k[0] == 'fulcrum_healthcheck_failures_total' and ('backend', dead) in k[1] and v} }")
        check(hh.metric(m, "fulcrum_backend_up", service="echo", backend=dead) == 1,
              f"fulcrum_backend_up{{service=echo,backend={dead}}} is 1 again")
        check(lab.daemon.poll() is None, "fulcrumd still running")
    except Exception:
        print("fulcrumd log (last lines):\n" + daemon_log_tail(lab, 25))
        raise
    finally:
        signal.alarm(0)
        if load:
            load.kill()
        lab.down()


if __name__ == "__main__":
    main("test_health_failover", body)
