#!/usr/bin/python3
"""Panic threshold and flap batching of fulcrumd's health checks, with real servers.

Panic (service `dns`, VIP:53/udp, 3 backends, min_healthy 2, tcp check on port 80, interval
500ms, timeout 300ms, rise 2, fall 2):
  - kill backend 2's server: it goes down, 2 healthy >= 2, no panic, 600 flows looked up with
    `fulcrumctl lookup` avoid it;
  - kill backend 3's server too: 1 healthy < 2 -> status panic true (healthy 1, min_healthy 2),
    fulcrum_service_panic 1, the log says PANIC; the table still holds all three backends
    (lookup over 600 flows reaches each), so real traffic (60 new UDP exchanges) is answered
    by the live backend 1 for its share and fails for the dead ones' share (expected in panic);
  - restart both servers: panic false, fulcrum_service_panic 0, "out of panic" in the log.
Flapping (service `flap`, VIP:8080/tcp, min_healthy 0, its 3 backends with an exec check
`test -e FILE`, rise 1, fall 1, interval 100ms, timeout 100ms, jitter 0): FILE toggled every
100 ms for 3 s; the up/down changes ("is UP"/"is DOWN" log lines) are counted against the table
rebuilds caused by health (fulcrum_applies_total{cause="health"}): at most one per 200 ms batch
window (<= 3 s / 0.2 s + 2) and far fewer than the changes (one backend alone changes at most
twice per window, three together six times). fulcrum_config_generation counts configuration
loads only (README, Reload and Metrics): flapping must not move it at all (exactly 0).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
import health_helpers as hh  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.41"
FLAP_SECONDS, TOGGLE, BATCH = 3.0, 0.1, 0.2
TIME_LIMIT = 170
HEALTH = """defaults:
  healthcheck: {type: tcp, interval: 500ms, timeout: 300ms, rise: 2, fall: 2}
"""


def services(flag):
    be = lambda i: f"      - address: {fl.backend_v4(i)}\n"  # noqa: E731
    return f"""  - name: dns
    vip: {VIP}
    port: 53
    protocol: udp
    min_healthy: 2
    healthcheck: {{port: 80}}
    backends:
{be(1)}{be(2)}{be(3)}  - name: flap
    vip: {VIP}
    port: 8080
    protocol: tcp
    min_healthy: 0
    healthcheck: {{type: exec, command: "test -e {flag}", interval: 100ms, timeout: 100ms, rise: 1, fall: 1, jitter: 0}}
    backends:
{be(1)}{be(2)}{be(3)}"""


def spread(names):
    return sorted((str(n), names.count(n)) for n in set(names))


def body():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"over {TIME_LIMIT}s")))
    signal.alarm(TIME_LIMIT)
    lab = fl.Lab(backends=3, clients=1, prefix=f"hp{os.getpid() % 100000}")
    try:
        step(f"lab {lab.prefix}: client, balancer, 3 backends with lab servers")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        flag = f"{lab.workdir}/flap-up"
        open(flag, "w").close()
        cfg = lab.write_config(lab.config_text(services(flag), extra=HEALTH))
        lab.start_fulcrumd(cfg)
        poller = hh.StatusPoller(lab, 0.05)
        addrs = [fl.backend_v4(i) for i in (1, 2, 3)]
        flows = [(f"198.18.{60 + i // 200}.{1 + i % 200}", 1024 + (i * 7919) % 60000) for i in range(600)]
        t, st = poller.wait(lambda s: s["dns"]["healthy"] == 3 and not s["dns"]["panic"], 10)
        check(t is not None, "dns: 3 healthy, min_healthy 2, no panic", str(st and st["dns"]))

        step(f"kill backend 2's server ({lab.backends[1]})")
        hh.kill_server(lab, lab.backends[1])
        t, st = poller.wait(lambda s: s["dns"]["backends"][addrs[1]]["state"] == "down", 5)
        check(t is not None and st["dns"]["healthy"] == 2 and not st["dns"]["panic"],
              f"after {t:.2f} s: {addrs[1]} down, dns healthy 2 (min 2), no panic",
              str(st and st["dns"]))
        chosen = hh.lookups(lab, "dns", flows)
        check(len(chosen) == 600 and addrs[1] not in chosen and set(chosen) == {addrs[0], addrs[2]},
              f"600 looked-up flows avoid {addrs[1]}: {spread(chosen)}")

        step(f"kill backend 3's server ({lab.backends[2]}): 1 healthy < min_healthy 2")
        log0 = hh.log_size(lab)
        hh.kill_server(lab, lab.backends[2])
        t, st = poller.wait(lambda s: s["dns"]["panic"], 5)
        check(t is not None, f"status: dns panic true after {t and round(t, 2)} s "
                             f"(healthy {st['dns']['healthy']}, min_healthy {st['dns']['min_healthy']})",
              str(st and st["dns"]))
        b = st["dns"]["backends"]
        check(st["dns"]["healthy"] == 1 and st["dns"]["min_healthy"] == 2 and
              [b[a]["health"] for a in addrs] == ["up", "down", "down"] and
              all(b[a]["state"] == "active" for a in addrs),
              "status: healthy 1, min_healthy 2; health up/down/down, yet all three backends in use (state active)",
              str(st["dns"]))
        m = lab.scrape()
        check(hh.metric(m, "fulcrum_service_panic", service="dns") == 1, "fulcrum_service_panic{service=\"dns\"} 1")
        check(hh.metric(m, "fulcrum_service_panic", service="flap") == 0, "fulcrum_service_panic{service=\"flap\"} 0")
        check([hh.metric(m, "fulcrum_backend_up", service="dns", backend=a) for a in addrs] == [1, 0, 0],
              "fulcrum_backend_up for dns: 1, 0, 0")
        check(hh.log_count(lab, "service dns in PANIC", log0) == 1, "the log says: service dns in PANIC (once)")
        chosen = hh.lookups(lab, "dns", flows)
        check(len(chosen) == 600 and set(chosen) == set(addrs),
              f"the table holds all three backends (600 looked-up flows): {spread(chosen)}")
        answers = lab.udp_ask_many(VIP, 60, timeout=0.5)
        names = set(answers) - {None}
        check(names == {lab.backends[0]} and answers.count(None) > 0,
              f"60 new UDP exchanges: answered only by the live {lab.backends[0]} "
              f"({answers.count(lab.backends[0])}), {answers.count(None)} to the dead ones failed (expected in panic)")

        step("restart both servers")
        log0 = hh.log_size(lab)
        hh.start_server(lab, lab.backends[1])
        hh.start_server(lab, lab.backends[2])
        t, st = poller.wait(lambda s: s["dns"]["healthy"] == 3 and not s["dns"]["panic"], 6)
        check(t is not None, f"status: dns healthy 3, panic false after {t and round(t, 2)} s", str(st and st["dns"]))
        m = lab.scrape()
        check(hh.metric(m, "fulcrum_service_panic", service="dns") == 0, "fulcrum_service_panic{service=\"dns\"} 0")
        check(hh.log_count(lab, "service dns out of panic", log0) == 1, "the log says: service dns out of panic")
        answers = lab.udp_ask_many(VIP, 60)
        check(None not in answers and len(set(answers)) == 3, f"60 new UDP exchanges all answered: {spread(answers)}")

        step(f"flap: the 3 backends of service flap (exec `test -e FILE`, rise 1 fall 1 interval 100ms); "
             f"FILE toggled every {int(TOGGLE * 1000)} ms for {FLAP_SECONDS:.0f} s")
        m0 = lab.scrape()
        app0 = hh.metric(m0, "fulcrum_applies_total", cause="health") or 0
        gen0 = hh.metric(m0, "fulcrum_config_generation")
        log0 = hh.log_size(lab)
        t0 = time.time()
        toggles = 0
        while time.time() - t0 < FLAP_SECONDS:
            if os.path.exists(flag):
                os.unlink(flag)
            else:
                open(flag, "w").close()
            toggles += 1
            time.sleep(TOGGLE)
        duration = time.time() - t0
        open(flag, "w").close()
        t, st = poller.wait(lambda s: all(b["state"] == "active" for b in s["flap"]["backends"].values()), 3)
        time.sleep(2 * BATCH)   # the last batch has fired
        m1 = lab.scrape()
        app1 = hh.metric(m1, "fulcrum_applies_total", cause="health") or 0
        gen1 = hh.metric(m1, "fulcrum_config_generation")
        with open(lab.daemon_log) as f:
            f.seek(log0)
            lines = [x for x in f.read().splitlines() if "health: flap backend " in x]
        ups = sum(" is UP " in x for x in lines)
        downs = sum(" is DOWN " in x for x in lines)
        one = (hh.log_count(lab, f"flap backend {addrs[0]} is UP", log0) +
               hh.log_count(lab, f"flap backend {addrs[0]} is DOWN", log0))
        other = hh.log_count(lab, "health: dns backend", log0)
        applies = app1 - app0
        limit = duration / BATCH + 2
        print(f"    measured: {toggles} toggles in {duration:.2f} s -> {ups} UP + {downs} DOWN = {ups + downs} "
              f"state changes of flap's 3 backends ({one} of {addrs[0]} alone; dns: {other}); table rebuilds by health "
              f"(fulcrum_applies_total{{cause=\"health\"}}) +{applies:.0f}; fulcrum_config_generation "
              f"{gen0:.0f} -> {gen1:.0f}")
        check(one >= 10 and ups + downs >= 30, f"the backends really flapped: {ups + downs} state changes in {duration:.1f} s")
        check(applies >= 1, f"health changes were applied: {applies:.0f} rebuilds")
        check(applies <= limit, f"at most one rebuild per {int(BATCH * 1000)} ms window: {applies:.0f} <= "
                                f"{duration:.2f}/{BATCH} + 2 = {limit:.1f}")
        check(applies <= (ups + downs) / 4, f"far fewer rebuilds ({applies:.0f}) than state changes ({ups + downs}): "
                                     f"{(ups + downs) / applies:.1f} changes per rebuild")
        gen_delta = gen1 - gen0
        check(gen_delta == 0, f"fulcrum_config_generation unchanged by {ups + downs} health changes: "
                              f"{gen0:.0f} -> {gen1:.0f} (it counts configuration loads only)")
        check(t is not None, f"flap's backends active again after the flapping stopped")
        check(lab.daemon.poll() is None, "fulcrumd still running")
    except Exception:
        print("fulcrumd log (last lines):\n" + daemon_log_tail(lab, 25))
        raise
    finally:
        signal.alarm(0)
        lab.down()


if __name__ == "__main__":
    main("test_health_panic_flap", body)
