#!/usr/bin/python3
"""A service with one backend removed from the file and fulcrumd restarted: only the removed
backend's flows move.

With `on_exit: keep`, the XDP program and its pinned maps (flow table included) outlive fulcrumd:
  1. config A, 4 equal backends: 2,000 TCP SYN flows (Scapy, client pinned to CPU 0, the flow
     table being per CPU), each captured undecapsulated on exactly one backend's eth0;
  2. SIGTERM: the program stays attached to the balancer's eth0, pins stay, and with no daemon
     running re-sent flows are still forwarded, each to the same backend as before;
  3. fulcrumd restarted with config B = A minus one backend adopts the pins; the same 2,000 flows
     again: every flow of a kept backend stays where it was (zero moved), every flow of the
     removed backend goes to a kept one, nothing reaches the removed backend; only those flows
     count as new flows;
  4. a reload to `on_exit: detach` and SIGTERM: program detached and pins removed.
"""
import glob
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scapy_flows as sf  # noqa: E402
from fulcrum_lab import BALANCER_V4, CLIENT_V4, Lab, backend_v4  # noqa: E402

VIP, PORT = "198.18.100.20", 80
FLOWS = 2000
BACKENDS = 4
REMOVED = 2           # backend index (1-based) taken out of the file for the restart
NO_DAEMON_FLOWS = 200  # flows re-sent while no daemon runs
SPORTS = list(range(30000, 30000 + FLOWS))
TIME_LIMIT = 240


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print(f"ok: {what}")


def timed_out(*_):
    raise Failed(f"time limit of {TIME_LIMIT}s exceeded")


def config(lab, indexes, on_exit):
    backends = "".join(f"      - address: {backend_v4(i)}\n        weight: 100\n" for i in indexes)
    services = f"""  - name: web
    vip: {VIP}
    port: {PORT}
    protocol: tcp
    backends:
{backends}"""
    text = lab.config_text(services)
    # The lab writes `on_exit: detach`; this test needs to choose.
    if text.count("on_exit: detach\n") != 1:
        raise Failed("lab.config_text() no longer has exactly one 'on_exit: detach' line to replace")
    return text.replace("on_exit: detach\n", f"on_exit: {on_exit}\n")


def pins(lab):
    return sorted(os.path.basename(p) for p in glob.glob(f"{lab.pin_path}/*"))


def log_text(lab):
    return open(lab.daemon_log).read() if lab.daemon_log and os.path.exists(lab.daemon_log) else ""


def log_size(lab):
    return len(log_text(lab))


def adopted(text):
    """N of the "N pinned maps adopted" line in a piece of fulcrumd's log, or None."""
    found = re.findall(r"(\d+) pinned maps adopted", text)
    return int(found[-1]) if found else None


def start(lab, cfg, backends):
    """Starts fulcrumd, waits for the backends to be up; returns the log it wrote meanwhile."""
    offset = log_size(lab)
    lab.start_fulcrumd(cfg)
    up = sf.wait_backends_up(lab, "web", [backend_v4(i) for i in backends])
    check(all(u == 1 for u in up), f"fulcrum_backend_up = 1 for backends {backends} ({up})")
    return log_text(lab)[offset:]


def round_checked(lab, tag, frames, namespaces, lb_mac, be_macs, wait):
    addresses = [backend_v4(i) for i in range(1, BACKENDS + 1)]
    r = sf.run_round(lab, tag, frames, namespaces, addresses, lb_mac, be_macs, BALANCER_V4, wait=wait)
    check(r["sent"]["cpu"] == 0, f"{tag}: the sender ran on CPU 0 (taskset)")
    if (r["missing"] or r["problems"]) and lab.daemon:
        print(f"{tag}: balancer drops by reason: {sf.dropped(lab.scrape())}")
    check(not r["problems"], f"{tag}: every captured frame is a flow we sent, " + sf.ENCAP_OK
                             + (f" ({len(r['problems'])} problems)" if r["problems"] else ""))
    check(not r["missing"], f"{tag}: all {len(frames)} sent packets arrived at a backend"
                            + (f" (missing {len(r['missing'])}, e.g. ports {r['missing'][:10]})"
                               if r["missing"] else ""))
    return r


def service_wait(lab, total):
    return lambda: sf.wait_for_counter(lab, "fulcrum_service_packets_total",
                                       {"service": "web", "vip": VIP}, total)


def main():
    signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(TIME_LIMIT)
    started = time.time()
    lab = Lab(backends=BACKENDS, clients=1, prefix=f"fr{os.getpid() % 100000}")
    try:
        lab.up()
        print(f"lab {lab.prefix}: client, balancer, {BACKENDS} backends (no decap); pins in {lab.pin_path}")
        lab.start_servers(tcp_port=PORT, udp_port=53)  # live backends for health checks
        all_idx = list(range(1, BACKENDS + 1))
        kept_idx = [i for i in all_idx if i != REMOVED]
        cfg_a = lab.write_config(config(lab, all_idx, "keep"), "a.yaml")
        cfg_b = lab.write_config(config(lab, kept_idx, "keep"), "b.yaml")

        # -- 1. config A --------------------------------------------------------------------
        log_a = start(lab, cfg_a, all_idx)
        check(adopted(log_a) == 0, f"fulcrumd started with config A (4 backends, on_exit: keep) "
                                   f"on fresh pins: log says \"{adopted(log_a)} pinned maps adopted\"")
        lb_mac = sf.mac_of(lab, lab.balancer)
        client_mac = sf.mac_of(lab, lab.client)
        be_macs = {i: sf.mac_of(lab, ns) for i, ns in enumerate(lab.backends, start=1)}
        frames = sf.syn_frames(client_mac, lb_mac, CLIENT_V4, VIP, PORT, SPORTS)
        r1 = round_checked(lab, "A", frames, lab.backends, lb_mac, be_macs, service_wait(lab, FLOWS))
        where1 = r1["where"]
        print("A: flows per backend: " + ", ".join(f"{backend_v4(i)}={r1['counts'][i]}" for i in all_idx))
        check(all(r1["counts"][i] > 0 for i in all_idx), "A: every backend got flows")
        m = lab.scrape()
        nf = sf.metric(m, "fulcrum_service_new_flows_total", service="web")
        check(nf == FLOWS, f"A: fulcrum_service_new_flows_total = {nf} (want {FLOWS})")
        prog_before = sf.link(lab, lab.balancer).get("xdp", {}).get("prog", {}).get("id")

        # -- 2. no daemon -------------------------------------------------------------------
        rc = lab.stop_fulcrumd(signal.SIGTERM)
        check(rc == 0, f"fulcrumd stopped on SIGTERM with exit code {rc}")
        check("stays attached and pinned" in log_text(lab), "its log says the balancer stays attached and pinned")
        mode, name = sf.xdp_prog(lab, lab.balancer) or (None, None)
        prog_now = sf.link(lab, lab.balancer).get("xdp", {}).get("prog", {}).get("id")
        check(name == "balancer" and prog_now == prog_before,
              f"with no daemon, ip -j link shows XDP program \"{name}\" (id {prog_now}, mode {mode}) "
              f"still on the balancer's eth0")
        left = pins(lab)
        check("flows" in left and "backends" in left, f"pins left in {lab.pin_path}: {', '.join(left)}")
        subset = {sp: frames[sp] for sp in SPORTS[:NO_DAEMON_FLOWS]}
        r2 = round_checked(lab, "no-daemon", subset, lab.backends, lb_mac, be_macs, wait=None)
        moved = [sp for sp in subset if r2["where"][sp] != where1[sp]]
        check(not moved, f"no-daemon: all {len(subset)} re-sent flows forwarded to the same backend as before"
                         + (f" ({len(moved)} moved)" if moved else ""))

        # -- 3. config B: one backend removed, restart --------------------------------------
        log_b = start(lab, cfg_b, kept_idx)
        n = adopted(log_b)
        check(n is not None and n > 0, f"fulcrumd restarted with config B (backend {backend_v4(REMOVED)} "
                                       f"removed): log says \"{n} pinned maps adopted\"")
        refused = [line.strip() for line in log_b.splitlines() if "not reusable" in line]
        check(not refused, "no pinned map refused at the restart (a refused map other than the "
                           "counters makes fulcrumd start with fresh state and an empty flow table)"
                           + ("; log: " + " | ".join(refused) if refused else ""))
        mode, name = sf.xdp_prog(lab, lab.balancer) or (None, None)
        check(name == "balancer", f"XDP program \"{name}\" attached after the restart")
        before = sf.metric(lab.scrape(), "fulcrum_service_packets_total", service="web", vip=VIP) or 0
        r3 = round_checked(lab, "B", frames, lab.backends, lb_mac, be_macs,
                           service_wait(lab, before + FLOWS))
        where3 = r3["where"]
        kept_flows = [sp for sp in SPORTS if where1[sp] != REMOVED]
        removed_flows = [sp for sp in SPORTS if where1[sp] == REMOVED]
        moved = [sp for sp in kept_flows if where3[sp] != where1[sp]]
        check(not moved, f"B: all {len(kept_flows)} flows of kept backends stayed on the same backend "
                         f"(moved: {len(moved)}"
                         + (f", e.g. {[(sp, where1[sp], where3[sp]) for sp in moved[:5]]}" if moved else "")
                         + ")")
        check(r3["counts"][REMOVED] == 0, f"B: nothing reached the removed backend {backend_v4(REMOVED)} "
                                          f"({r3['counts'][REMOVED]} frames)")
        spread = {i: sum(1 for sp in removed_flows if where3[sp] == i) for i in kept_idx}
        check(all(where3[sp] in kept_idx for sp in removed_flows),
              f"B: all {len(removed_flows)} flows of the removed backend went to kept backends: "
              + ", ".join(f"{backend_v4(i)}={n}" for i, n in spread.items()))
        m = lab.scrape()
        nf = sf.metric(m, "fulcrum_service_new_flows_total", service="web")
        check(nf == FLOWS + len(removed_flows),
              f"B: fulcrum_service_new_flows_total = {nf} = {FLOWS} + {len(removed_flows)}: the pinned "
              f"counters survived and only the removed backend's flows were new (the rest: flow-table hits)")
        for i in kept_idx:
            bp = sf.metric(m, "fulcrum_backend_packets_total", service="web", backend=backend_v4(i))
            cap = r1["counts"][i] + r2["counts"][i] + r3["counts"][i]
            check(bp == cap, f"B: fulcrum_backend_packets_total{{backend={backend_v4(i)}}} = {bp} equals "
                             f"the {cap} frames captured there over the three rounds")
        drops = sf.dropped(m)
        check(not drops, f"B: no packet dropped by the balancer (drops by reason: {drops})")

        # -- 4. detach on exit --------------------------------------------------------------
        lab.write_config(config(lab, kept_idx, "detach"), "b.yaml")
        lab.daemon.send_signal(signal.SIGHUP)
        gen = sf.wait_for_counter(lab, "fulcrum_config_generation", {}, 2)
        check(gen == 2, f"reloaded (SIGHUP) to the same config with on_exit: detach "
                        f"(fulcrum_config_generation = {gen})")
        rc = lab.stop_fulcrumd(signal.SIGTERM)
        check(rc == 0, f"fulcrumd stopped on SIGTERM with exit code {rc}")
        check(sf.xdp_prog(lab, lab.balancer) is None, "no XDP program left on the balancer's eth0")
        check(pins(lab) == [], f"no pins left in {lab.pin_path} ({pins(lab)})")
        print(f"PASS test_restart_flows in {time.time() - started:.1f}s")
        return 0
    except Failed as e:
        print(f"FAIL: {e}")
        print("fulcrumd log (last lines):\n" + "".join(log_text(lab).splitlines(True)[-20:]))
        return 1
    finally:
        signal.alarm(0)
        lab.down()
        sf.remove_own_files(lab)


if __name__ == "__main__":
    sys.exit(main())
