#!/usr/bin/python3
"""Health checks through the tunnel (healthcheck.via: tunnel) against real servers in the lab.

Backend 1 is set up right: decap, the VIPs on lo, servers. Backend 2 runs the same decap and
servers but lacks the VIPs on lo, the classic broken backend: it answers a check to its own
address, yet drops every balanced packet (its decap counts them inner_not_local).

1. `fulcrumd --check` refuses via: tunnel with exec, with healthcheck.address, with
   healthcheck.source, and an unknown `via`, each at its file:line:column.
2. Services on VIP_T check via: tunnel, one per check type (tcp, http, https, udp, dns), one with
   encap: gue, one IPv6 (http over IPv6 tunnels) and one IPv4 VIP over IPv6 backends; the same
   types on VIP_D check direct.
   Through the tunnel backend 1 is up and backend 2 down; direct, both are up.
3. The checks really travelled in the tunnels: backend 1's decap stripped IP-in-IP, GUE and
   IPv6-in-IPv6 and IPv4-in-IPv6 packets and backend 2's counted inner_not_local, with no client
   traffic at all.
4. What it buys: HTTP connections to VIP_T all succeed (backend 2 is out of its table); to VIP_D,
   whose direct checks call backend 2 up, some fail. (VIP_T's connections also prove the rule
   leaves the next-hop cache in use: forwarding is off in the lab, so without the cache every
   client packet would be dropped as forwarding_off.)
5. The kernel side: an `ip rule` per family sends fwmark 0x46II0000/0xffff0000 to table
   17920 + II (II: the balancer interface's index, low byte), whose default routes run the
   check-encap program (encap bpf) from the tunnel sources. A reload to a file without
   via: tunnel removes them and backend 2 of t_tcp comes up; a reload back puts them back and
   takes it down again. A reload whose tunnel source is not an address of the balancer is refused
   with that reason, and the running rules, routes and checks stay as they were. Routes deleted
   behind fulcrumd's back (as the kernel does when the interface goes down) come back. Stopping
   fulcrumd removes them. Another fulcrumd's rule and route (other numbers, planted before the
   start) are never touched; one that would share our mark (an interface index with the same
   low byte) makes a start with via: tunnel fail, naming its table, and is left alone.
Bounded in time; the lab is removed also on failure.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
import health_helpers as hh  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP_T, VIP_D, VIP6 = "198.18.100.50", "198.18.100.51", "2001:db8:100::50"
TIME_LIMIT = 200
HEALTH = """defaults:
  healthcheck: {interval: 300ms, timeout: 250ms, rise: 1, fall: 1}
"""
# (name suffix, port, protocol, check) per check type: the same on VIP_T (via: tunnel) and VIP_D.
TYPES = [
    ("tcp", 80, "tcp", "type: tcp"),
    ("http", 8080, "tcp", "type: http, port: 80"),
    ("https", 443, "tcp", "type: https, port: 8443"),
    ("udp", 53, "udp", "type: udp"),
    ("dns", 5353, "udp", "type: dns, query_name: ok.example, query_type: A"),
]


def service(name, vip, port, proto, hc, backends, encap=None):
    text = f"""  - name: {name}
    vip: {vip}
    port: {port}
    protocol: {proto}
    min_healthy: 0
"""
    if encap:
        text += f"    encap: {encap}\n"
    text += f"    healthcheck: {{{hc}}}\n    backends:\n"
    return text + "".join(f"      - address: {b}\n" for b in backends)


def config(lab, tunnel=True):
    v4 = [fl.backend_v4(1), fl.backend_v4(2)]
    v6 = [fl.backend_v6(1), fl.backend_v6(2)]
    via = ", via: tunnel" if tunnel else ""
    text = ""
    for suffix, port, proto, hc in TYPES:
        text += service(f"t_{suffix}", VIP_T, port, proto, hc + via, v4)
    text += service("t_gue", VIP_T, 81, "tcp", "type: tcp, port: 80" + via, v4, encap="gue")
    text += service("t_v6", VIP6, 80, "tcp", "type: http" + via, v6)
    text += service("t_mixed", VIP_T, 82, "tcp", "type: tcp, port: 80" + via, v6)
    for suffix, port, proto, hc in TYPES:
        text += service(f"d_{suffix}", VIP_D, port, proto, hc, v4)
    return lab.config_text(text, extra=HEALTH)


TUNNELLED = [f"t_{t[0]}" for t in TYPES] + ["t_gue", "t_v6", "t_mixed"]
DIRECT = [f"d_{t[0]}" for t in TYPES]


def backends_of(name):
    return (fl.backend_v6(1), fl.backend_v6(2)) if name in ("t_v6", "t_mixed") else (fl.backend_v4(1), fl.backend_v4(2))


def decap_counters(lab, ns):
    out = lab.run(ns, f"{fl.DECAP} status --pin-path /sys/fs/bpf/{ns} --json", capture=True)
    total = {}
    for i in json.loads(out)["interfaces"]:
        for reason, c in i["counters"].items():
            total[reason] = total.get(reason, 0) + c["packets"]
    return total


def numbers(lab):
    """This balancer's (mark, table) for checks through the tunnel (xdp/check_tunnel.h)."""
    # From netlink: nsenter enters the network namespace only, /sys stays the host's.
    i = json.loads(lab.run(lab.balancer, "ip -j link show dev eth0", capture=True))[0]["ifindex"]
    return 0x46000000 | (i & 0xff) << 16, 17920 + i


def kernel_side(lab, table=None):
    """(IPv4 rules, IPv6 rules, IPv4 routes, IPv6 routes) of fulcrumd's check table in the balancer."""
    table = table or numbers(lab)[1]
    mark = f"{0x46000000 | ((table - 17920) & 0xff) << 16:#x}/0xffff0000"
    # Both of a fulcrumd's rules: to its table, and `unreachable` one priority later.
    rules4 = [r for r in lab.run(lab.balancer, "ip rule show", capture=True).splitlines()
              if f"lookup {table}" in r or (mark in r and "unreachable" in r)]
    rules6 = [r for r in lab.run(lab.balancer, "ip -6 rule show", capture=True).splitlines()
              if f"lookup {table}" in r or (mark in r and "unreachable" in r)]
    routes4 = lab.run(lab.balancer, f"ip route show table {table}", capture=True, check=False).strip()
    routes6 = lab.run(lab.balancer, f"ip -6 route show table {table}", capture=True, check=False).strip()
    return rules4, rules6, routes4, routes6


def refused_at(lab, text, needle, want):
    """fulcrumd --check of `text`: exit 1 and `want` at the line holding `needle`."""
    path = lab.write_config(text, "bad.yaml")
    r = subprocess.run([fl.FULCRUMD, "--check", "-c", path], capture_output=True, text=True, timeout=30)
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if needle in t)
    out = r.stdout + r.stderr
    check(r.returncode == 1 and f"{path}:{line}:" in out and want in out,
          f"--check refuses it at {os.path.basename(path)}:{line}: {want}", out)


def body():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"over {TIME_LIMIT}s")))
    signal.alarm(TIME_LIMIT)
    lab = fl.Lab(backends=2, clients=1, prefix=f"vt{os.getpid() % 100000}")
    try:
        step(f"lab {lab.prefix}: 2 backends with decap and servers; the VIPs on backend 1's lo only")
        lab_up(lab)
        be1, be2 = lab.backends
        for vip, plen in ((VIP_T, 32), (VIP_D, 32), (VIP6, 128)):
            lab.run(be1, f"ip addr add {vip}/{plen} dev lo" + (" nodad" if plen == 128 else ""))
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        cert, key = f"{lab.workdir}/cert.pem", f"{lab.workdir}/key.pem"
        fl.sh(f"openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=backend -days 1 -keyout {key} -out {cert}")
        for ns in lab.backends:
            hh.start_health_server(lab, ns, "https", "8443", cert, key, ns)
            hh.start_health_server(lab, ns, "dns", "5353", "ok.example")
        for ns in lab.backends:
            hh.wait_listen(lab, ns, "t", 8443)
            hh.wait_listen(lab, ns, "u", 5353)

        step("1. --check: via: tunnel with exec, address or source, and an unknown via, at file:line:column")
        good = config(lab)
        refused_at(lab, good.replace("type: tcp, via: tunnel", 'type: exec, command: "true", via: tunnel', 1),
                   "type: exec", "via: tunnel needs a check that sends packets")
        refused_at(lab, good.replace("type: tcp, via: tunnel", f"type: tcp, address: {fl.backend_v4(1)}, via: tunnel", 1),
                   "address: ", "it excludes healthcheck.address")
        refused_at(lab, good.replace("type: tcp, via: tunnel", f"type: tcp, source: {fl.BALANCER_V4}, via: tunnel", 1),
                   "source: ", "it excludes healthcheck.source")
        refused_at(lab, good.replace("type: tcp, via: tunnel", "type: tcp, via: tunel", 1),
                   "via: tunel", 'expected direct or tunnel, got "tunel"')

        step("2. fulcrumd: through the tunnel backend 1 up and backend 2 down; direct, both up")
        counters_before = {ns: decap_counters(lab, ns) for ns in lab.backends}
        # Another fulcrumd's rule and route (as one on an interface with another index makes).
        other_i = numbers(lab)[1] - 17920 + 7
        other_mark, other_table = 0x46000000 | (other_i & 0xff) << 16, 17920 + other_i
        lab.run(lab.balancer, f"ip rule add fwmark {other_mark:#x}/0xffff0000 lookup {other_table} priority 17920")
        lab.run(lab.balancer, f"ip route add unreachable default table {other_table} proto 201")
        other = kernel_side(lab, other_table)
        lab.start_fulcrumd(lab.write_config(good))

        def settled(s):
            for name in TUNNELLED:
                a, b = backends_of(name)
                if s[name]["backends"][a]["health"] != "up" or s[name]["backends"][b]["health"] != "down":
                    return False
            return all(s[n]["backends"][a]["health"] == "up" for n in DIRECT for a in backends_of(n))
        waited, st = hh.StatusPoller(lab, 0.1).wait(settled, 15)
        for name in TUNNELLED + DIRECT:
            a, b = backends_of(name)
            ba, bb = st[name]["backends"][a], st[name]["backends"][b]
            if name in TUNNELLED:
                check(ba["health"] == "up" and ba["last_check"] == "passed" and bb["health"] == "down" and
                      bb["last_check"] not in ("-", "passed"),
                      f"{name} (via: tunnel): {a} up, {b} down (\"{bb['last_check']}\")", f"{ba}\n{bb}")
            else:
                check(ba["health"] == "up" and bb["health"] == "up" and bb["last_check"] == "passed",
                      f"{name} (direct): {a} and {b} both up", f"{ba}\n{bb}")
        check(waited is not None, "every service as expected within 15 s")

        step("3. the checks travelled in the tunnels (no client traffic yet)")
        time.sleep(1)
        got = {ns: decap_counters(lab, ns) for ns in lab.backends}

        def moved(ns, reason):
            return got[ns].get(reason, 0) - counters_before[ns].get(reason, 0)
        check(moved(be1, "decap_v4_in_v4") > 0 and moved(be1, "decap_gue_v4_in_v4") > 0 and
              moved(be1, "decap_v6_in_v6") > 0 and moved(be1, "decap_v4_in_v6") > 0,
              f"backend 1 stripped IP-in-IP ({moved(be1, 'decap_v4_in_v4')}), GUE ({moved(be1, 'decap_gue_v4_in_v4')}), "
              f"IPv6-in-IPv6 ({moved(be1, 'decap_v6_in_v6')}) and IPv4-in-IPv6 ({moved(be1, 'decap_v4_in_v6')}) "
              f"check packets", str(got[be1]))
        check(moved(be2, "inner_not_local") > 0,
              f"backend 2 dropped {moved(be2, 'inner_not_local')} tunnelled checks to VIPs it lacks (inner_not_local)",
              str(got[be2]))

        step("4. clients: VIP_T (tunnel-checked) always answered by backend 1; VIP_D (direct) loses some")
        answered = lab.http_get_many(VIP_T, 12, timeout=1)
        check(answered == [be1] * 12, "12 of 12 HTTP connections to VIP_T answered by backend 1", str(answered))
        blind = lab.http_get_many(VIP_D, 12, timeout=1)
        check(None in blind and be1 in blind,
              f"{blind.count(None)} of 12 to VIP_D failed: direct checks keep backend 2 in its table", str(blind))

        step("5. kernel side: rules and routes while a check goes via: tunnel, none after")
        mark, table = numbers(lab)
        rules4, rules6, routes4, routes6 = kernel_side(lab)
        check(len(rules4) == 2 and f"17920:\tfrom all fwmark {mark:#x}/0xffff0000 lookup {table}" in rules4 and
              f"17921:\tfrom all fwmark {mark:#x}/0xffff0000 unreachable" in rules4 and len(rules6) == 2,
              f"two rules per family: {rules4}", f"{rules4}\n{rules6}")
        check("encap bpf" in routes4 and f"src {fl.BALANCER_V4}" in routes4 and "encap bpf" in routes6 and
              f"src {fl.BALANCER_V6}" in routes6, f"table {table}: {routes4}", f"{routes4}\n{routes6}")
        lab.write_config(config(lab, tunnel=False))
        r = hh.ctl(lab, "reload")
        check(r.returncode == 0, "reload to a file without via: tunnel applied", r.stdout + r.stderr)
        rules4, rules6, routes4, routes6 = kernel_side(lab)
        check(not rules4 and not rules6 and not routes4 and not routes6, "its rules and routes are gone",
              f"{rules4}\n{rules6}\n{routes4}\n{routes6}")
        up, st = hh.StatusPoller(lab, 0.1).wait(
            lambda s: s["t_tcp"]["backends"][fl.backend_v4(2)]["health"] == "up", 10)
        check(up is not None, "t_tcp checked direct now: backend 2 up", str(st["t_tcp"] if st else None))
        lab.write_config(good)
        r = hh.ctl(lab, "reload")
        check(r.returncode == 0, "reload back to via: tunnel applied", r.stdout + r.stderr)
        rules4, rules6, routes4, routes6 = kernel_side(lab)
        check(len(rules4) == 2 and len(rules6) == 2 and "encap bpf" in routes4 and "encap bpf" in routes6,
              "rules and routes are back", f"{rules4}\n{rules6}\n{routes4}\n{routes6}")
        down, st = hh.StatusPoller(lab, 0.1).wait(
            lambda s: s["t_tcp"]["backends"][fl.backend_v4(2)]["health"] == "down" and
            s["t_tcp"]["backends"][fl.backend_v4(1)]["health"] == "up", 10)
        check(down is not None, "t_tcp via: tunnel again: backend 2 down, backend 1 up", str(st["t_tcp"] if st else None))
        before = kernel_side(lab)
        lab.write_config(good.replace(f"source_v4: {fl.BALANCER_V4}", "source_v4: 198.18.0.99"))
        r = hh.ctl(lab, "reload", check=False)
        out = r.stdout + r.stderr
        check(r.returncode != 0 and "is the source a local address" in out and "198.18.0.99" in out,
              "a reload with a tunnel source that is not the balancer's is refused, naming it", out)
        check(kernel_side(lab) == before, "the running rules and routes are unchanged", str(kernel_side(lab)))
        time.sleep(1)
        st = hh.status(lab)
        check(all(st[n]["backends"][backends_of(n)[0]]["health"] == "up" and
                  st[n]["backends"][backends_of(n)[0]]["last_check"] == "passed" for n in TUNNELLED),
              "every tunnelled check of backend 1 still passes", str({n: st[n]["backends"] for n in TUNNELLED}))
        lab.write_config(good)
        # The kernel deletes the route when the interface goes down or the source goes away;
        # meanwhile the unreachable rule fails the checks, and fulcrumd puts the route back.
        lab.run(lab.balancer, f"ip route del default table {table}")
        lab.run(lab.balancer, f"ip -6 route del default table {table}")
        deadline = time.time() + 6
        while time.time() < deadline and not ("encap bpf" in kernel_side(lab)[2] and "encap bpf" in kernel_side(lab)[3]):
            time.sleep(0.2)
        check("encap bpf" in kernel_side(lab)[2] and "encap bpf" in kernel_side(lab)[3],
              "routes deleted by hand are back within 6 s (fulcrumd refreshes every 2 s)", str(kernel_side(lab)))
        up, st = hh.StatusPoller(lab, 0.1).wait(
            lambda s: all(s[n]["backends"][backends_of(n)[0]]["last_check"] == "passed" for n in TUNNELLED), 5)
        check(up is not None, "and backend 1's tunnelled checks pass again", str(st))
        code = lab.stop_fulcrumd()
        check(code == 0, "fulcrumd stopped (exit 0)", str(code))
        check(kernel_side(lab) == ([], [], "", ""), "stopping removed the rules and routes", str(kernel_side(lab)))
        check(kernel_side(lab, other_table) == other and other[0] and other[2],
              f"the other fulcrumd's rule and route (table {other_table}) are still there", str(kernel_side(lab, other_table)))
        # One whose interface index shares our low byte would share our mark base: refused.
        clash = numbers(lab)[1] + 256  # the table of interface index + 256
        lab.run(lab.balancer, f"ip rule add fwmark {mark:#x}/0xffff0000 lookup {clash} priority 17920")
        size = os.path.getsize(lab.daemon_log)
        daemon = lab.start_fulcrumd(lab.write_config(good), wait=False)
        code = daemon.wait(timeout=60)
        log = open(lab.daemon_log).read()[size:]
        lab.daemon = None
        check(code != 0 and f"already sends fwmark {mark:#x}/0xffff0000 to table {clash}" in log,
              f"a fulcrumd whose mark base another rule (table {clash}) uses refuses via: tunnel, naming it "
              f"(exit {code})", log[-1500:])
        rules = lab.run(lab.balancer, "ip rule show", capture=True)
        check(f"lookup {clash}" in rules and f"lookup {table}" not in rules,
              "and leaves that rule alone, adding none of its own", rules)
    except Exception:
        print("fulcrumd log (last lines):\n" + daemon_log_tail(lab, 30))
        raise
    finally:
        signal.alarm(0)
        lab.down()


if __name__ == "__main__":
    main("health checks through the tunnel", body)
