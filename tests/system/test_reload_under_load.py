#!/usr/bin/python3
"""Real TCP connections held open and a steady UDP stream through the balancer while 50 reloads
alternate between two valid configs: zero resets, zero lost datagrams on flows whose backend
stayed in the config.

  - lab: 1 client, the balancer, 4 backends (decap, VIPs on lo, lab servers);
    the balancer's eth0 gets threaded NAPI with its kthread pinned to CPU 0 (see load_gen.py);
  - config A: `echo` (VIP:7/tcp, the line echo) and `dns` (VIP:53/udp), backends 1-3, weight 100;
  - config B: both services get backend 4, backend 2's weight in `echo` drops to 50, and a third
    service `web` (VIP2:80/tcp) appears. Every backend of A stays in B, so no existing flow may
    move: the flow table keeps them where they are, whatever Maglev now says for new flows;
  - load_gen.py in the client namespace (taskset -c 0): 16 long-lived TCP connections to VIP:7,
    a line every 20 ms on each, every echo checked; 32 UDP flows to VIP:53, a datagram every
    20 ms on each, every answer counted;
  - 50 reloads alternating B, A, B, ... (40 by `fulcrumctl reload`, exit status checked and
    timed; 10 by SIGHUP), each confirmed by fulcrum_config_generation and by the backend weight
    gauge showing the new config; a mid-run check that new flows do reach backend 4 under B;
  - then: zero resets/failed connections/unechoed lines, every connection answered by one backend
    only, zero lost datagrams and one backend per UDP flow, reloads_total{success} +50, no
    reload failure, the generation grew by 50. Reload latency (fulcrumctl reload, wall clock,
    process start included) is printed as min/median/max.
"""
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
import load_gen  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP, VIP2 = "198.18.100.30", "198.18.100.31"
RELOADS = 50
SIGHUP_EVERY = 5          # reloads number 5, 10, ..., 50 are sent as SIGHUP
PAUSE = 0.15              # seconds of load between reloads
TCP_CONNS, UDP_FLOWS = 16, 32
TIME_LIMIT = 230
FULCRUMCTL = os.path.join(fl.BUILD_DIR, "src", "cmd", "fulcrumctl")


def backend_lines(backends):
    # Backend 4 comes and goes with each A/B switch; a backend new to the config starts down until
    # it passes `rise` checks, so B lets it take flows at once (start_up) for this test.
    return "".join(f"      - address: {fl.backend_v4(i)}\n        weight: {w}\n" +
                   ("        healthcheck: {start_up: true}\n" if i == 4 else "") for i, w in backends)


def services(b_side):
    """Config A (b_side False) or B (True)."""
    if b_side:
        echo = [(1, 100), (2, 50), (3, 100), (4, 100)]
        dns = [(1, 100), (2, 100), (3, 100), (4, 100)]
    else:
        echo = dns = [(1, 100), (2, 100), (3, 100)]
    text = f"""  - name: echo
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
    if b_side:
        text += f"""  - name: web
    vip: {VIP2}
    port: 80
    protocol: tcp
    backends:
{backend_lines([(1, 100), (2, 100), (3, 100), (4, 100)])}"""
    return text


def write_atomically(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def metric(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def wait_generation(lab, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        m = lab.scrape()
        gen = metric(m, "fulcrum_config_generation")
        if gen is not None and gen >= want:
            return m
        if time.time() > deadline:
            return m
        time.sleep(0.02)


def body():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"over {TIME_LIMIT}s")))
    signal.alarm(TIME_LIMIT)
    lab = fl.Lab(backends=4, clients=1, prefix=f"rl{os.getpid() % 100000}")
    load = None
    try:
        step(f"lab {lab.prefix}: client, balancer, 4 backends")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.add_vip_to_backends(VIP2)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        cfg_path = f"{lab.workdir}/fulcrum.yaml"
        text = {side: lab.config_text(services(side)) for side in (False, True)}
        write_atomically(cfg_path, text[False])
        lab.start_fulcrumd(cfg_path)
        lab.pin_balancer_rx()  # (start_fulcrumd did it already; idempotent)
        threads = "napi/eth0"
        print(f"    balancer's eth0: threaded NAPI, kthread {threads} pinned to CPU 0 (the flow "
              f"table is per CPU; this is RSS's one-CPU-per-flow on a veth: see load_gen.py)")
        sock = f"{lab.workdir}/fulcrumd.sock"
        m0 = lab.scrape()
        gen0 = metric(m0, "fulcrum_config_generation")
        ok0 = metric(m0, "fulcrum_config_reloads_total", result="success") or 0
        fail0 = metric(m0, "fulcrum_config_reloads_total", result="failure") or 0
        step(f"fulcrumd up with config A (echo, dns: backends 1-3); generation {gen0}, "
             f"reloads success={ok0} failure={fail0}")

        step(f"load: {TCP_CONNS} TCP connections to {VIP}:7 and {UDP_FLOWS} UDP flows to {VIP}:53, "
             f"every 20 ms each, from the client namespace on CPU 0")
        load = load_gen.Runner(lab, VIP, tcp=TCP_CONNS, udp=UDP_FLOWS, max_seconds=150)
        p = load.start()
        time.sleep(1.0)
        p = load.progress()
        check(p["tcp_live"] == TCP_CONNS, f"all {TCP_CONNS} TCP connections open before the reloads "
                                          f"(echoed so far {p['tcp_echoed']}, UDP answered {p['udp_answered']})")

        step(f"{RELOADS} reloads alternating B/A ({RELOADS // SIGHUP_EVERY} of them by SIGHUP)")
        latencies = []
        t_first = time.time()
        b4_seen = None
        for i in range(1, RELOADS + 1):
            side = i % 2 == 1            # odd: B, even: A
            write_atomically(cfg_path, text[side])
            if i % SIGHUP_EVERY == 0:
                lab.daemon.send_signal(signal.SIGHUP)
                how = "SIGHUP"
            else:
                t0 = time.monotonic()
                r = subprocess.run([FULCRUMCTL, "-s", sock, "reload"], capture_output=True, text=True)
                latencies.append(time.monotonic() - t0)
                how = "fulcrumctl"
                if r.returncode != 0:
                    check(False, f"reload {i} ({'B' if side else 'A'}) by fulcrumctl exited 0",
                          f"exit {r.returncode}: {r.stdout}{r.stderr}")
            m = wait_generation(lab, gen0 + i)
            gen = metric(m, "fulcrum_config_generation")
            w2 = metric(m, "fulcrum_backend_weight", service="echo", backend=fl.backend_v4(2))
            has_web = any(k[0] == "fulcrum_service_packets_total" and ("service", "web") in k[1] for k in m)
            want_w2 = 50 if side else 100
            if gen != gen0 + i or w2 != want_w2:
                check(False, f"reload {i} by {how} applied",
                      f"generation {gen} (want {gen0 + i}), echo weight of backend 2 {w2} (want {want_w2}), "
                      f"web service present {has_web}\n{daemon_log_tail(lab)}")
            if i == 25:
                answers = lab.udp_ask_many(VIP, 40)
                b4_seen = answers.count(lab.backends[3])
                check(None not in answers and b4_seen > 0,
                      f"under B (reload {i}), new UDP flows reach backend 4: {b4_seen} of 40 "
                      f"(spread {sorted((str(n), answers.count(n)) for n in set(answers))})",
                      f"balancer drops by reason: {load_gen.dropped(lab.scrape())}")
            time.sleep(PAUSE)
        t_last = time.time()
        check(len(latencies) == RELOADS - RELOADS // SIGHUP_EVERY, f"all {len(latencies)} fulcrumctl reloads exited 0")
        check(True, f"every reload confirmed: generation stepped by one each time, echo weight of "
                    f"backend 2 alternated 50/100 (B/A)")
        time.sleep(1.0)   # a little load after the last reload
        summary = load.stop()
        load = None

        t, u = summary["tcp"], summary["udp"]
        print("    info: " + load_gen.flow_table_report(lab.pin_path, summary), flush=True)
        step(f"load ran {summary['stopped_sending'] - summary['ready']:.1f}s on CPUs {summary['cpu_affinity']}: "
             f"TCP {t['lines_echoed']}/{t['lines_sent']} lines echoed (max RTT {t['max_rtt_ms']} ms), "
             f"UDP {u['answered']}/{u['sent']} answered")
        check(summary["cpu_affinity"] == [0], "load generator pinned to CPU 0")
        check(summary["ready"] < t_first and summary["stopped_sending"] > t_last,
              f"the load covered all {RELOADS} reloads ({t_last - t_first:.1f}s)")
        bad = load_gen.problems(summary)
        check(t["connect_failed"] == 0 and t["resets"] == 0 and t["eofs"] == 0 and t["errors"] == 0,
              f"zero TCP resets/failures: connect_failed={t['connect_failed']} resets={t['resets']} "
              f"eofs={t['eofs']} errors={t['errors']}", "\n    ".join(bad[:15]))
        check(t["lines_lost"] == 0 and t["lines_echoed"] == t["lines_sent"] and t["bad_lines"] == 0,
              f"every one of {t['lines_sent']} TCP lines echoed (lost {t['lines_lost']}, late {t['late_echoes']})",
              "\n    ".join(bad[:15]))
        per_be = {}
        for c in t["per_conn"]:
            per_be[c["backend"]] = per_be.get(c["backend"], 0) + 1
        check(t["backend_changed"] == 0, f"every TCP connection answered by one backend throughout "
                                         f"(connections per backend: {dict(sorted(per_be.items()))})",
              "\n    ".join(bad[:15]))
        # Every backend of A stays in B, so every UDP flow's backend stayed: all must be whole.
        flows_be = {}
        for f in u["per_flow"]:
            flows_be[",".join(f["backends"])] = flows_be.get(",".join(f["backends"]), 0) + 1
        check(u["lost"] == 0 and u["errors"] == 0,
              f"zero lost datagrams: {u['answered']} answered of {u['sent']} sent over {UDP_FLOWS} flows "
              f"(lost {u['lost']}, socket errors {u['errors']})", "\n    ".join(bad[:15]))
        check(u["backend_changed"] == 0, f"every UDP flow answered by one backend throughout "
                                         f"(flows per backend: {dict(sorted(flows_be.items()))})",
              "\n    ".join(bad[:15]))

        m = lab.scrape()
        ok1 = metric(m, "fulcrum_config_reloads_total", result="success") or 0
        fail1 = metric(m, "fulcrum_config_reloads_total", result="failure") or 0
        gen1 = metric(m, "fulcrum_config_generation")
        check(ok1 - ok0 == RELOADS, f"fulcrum_config_reloads_total{{result=\"success\"}} {ok0:.0f} -> {ok1:.0f} (+{RELOADS})")
        check(fail1 == fail0, f"fulcrum_config_reloads_total{{result=\"failure\"}} unchanged ({fail1:.0f})")
        check(gen1 == gen0 + RELOADS, f"fulcrum_config_generation {gen0:.0f} -> {gen1:.0f}")
        print(f"    info: balancer drops by reason: {load_gen.dropped(m) or 'none'}")
        check(lab.daemon.poll() is None, "fulcrumd still running")
        lat = sorted(latencies)
        print(f"    reload latency (fulcrumctl reload, {len(lat)} runs, wall clock incl. process start): "
              f"min {1000 * lat[0]:.1f} ms, median {1000 * statistics.median(lat):.1f} ms, "
              f"max {1000 * lat[-1]:.1f} ms")
    except Exception:
        print("fulcrumd log (last lines):\n" + daemon_log_tail(lab, 25))
        raise
    finally:
        signal.alarm(0)
        if load:
            load.kill()
        lab.down()


if __name__ == "__main__":
    main("test_reload_under_load", body)
