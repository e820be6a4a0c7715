#!/usr/bin/python3
"""No host setting is needed to forward: with the balancer namespace's forwarding sysctls at their
default (off), fulcrumd balances real TCP and UDP connections over IPv4 and IPv6 VIPs through its
next-hop cache (bpf_fib_lookup would answer "forwarding disabled").

1. the balancer's net.ipv4.conf.{all,default,eth0}.forwarding and
   net.ipv6.conf.{all,default,eth0}.forwarding read 0, before and after fulcrumd started (it
   does not turn them on), and fulcrumd logs that forwarding is off and not needed;
2. HTTP (TCP) and UDP to an IPv4 VIP and an IPv6 VIP, 3 backends each: every connection and
   exchange answered, every backend answered;
3. a reload adds a fourth backend: once it is up, new connections reach it too, none fails;
4. throughout, fulcrum_packets_dropped_total{reason="forwarding_off"} stays 0.
Bounded in time; the lab is removed also on failure."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, service_yaml, step, udp_ask_connected  # noqa: E402

VIP4, VIP6 = "198.18.100.10", "2001:db8:100::10"
N = 120
KEYS = [f"net.ipv4.conf.{i}.forwarding" for i in ("all", "default", "eth0")] + \
       [f"net.ipv6.conf.{i}.forwarding" for i in ("all", "default", "eth0")]


def sysctls(lab):
    return {k: lab.run(lab.balancer, f"sysctl -n {k}", capture=True).strip() for k in KEYS}


def forwarding_off_drops(lab):
    return lab.scrape().get(("fulcrum_packets_dropped_total", (("reason", "forwarding_off"),)), 0.0)


def services(count):
    text = ""
    for tag, vip, addr in (("v4", VIP4, fl.backend_v4), ("v6", VIP6, fl.backend_v6)):
        bes = [(addr(i), None) for i in range(1, count + 1)]
        text += service_yaml(f"web{tag}", vip, 80, "tcp", bes) + service_yaml(f"dns{tag}", vip, 53, "udp", bes)
    return text


def traffic(lab, expect_backends, port_base):
    for vip in (VIP4, VIP6):
        names = lab.http_get_many(vip, N, timeout=3)
        failed = names.count(None)
        check(failed == 0 and set(names) == set(expect_backends),
              f"{N} HTTP connections to {vip}: 0 failed, answered by {len(set(names) - {None})} backends",
              f"failed {failed}; answered by {sorted(set(n for n in names if n))}\n{daemon_log_tail(lab)}")
        answers = udp_ask_connected(lab, vip, N, timeout=2, src_port_base=port_base)
        got = [name for name, _ in answers]
        check(None not in got and set(got) == set(expect_backends),
              f"{N} UDP exchanges with {vip} (sockets connected to the VIP): 0 failed, answered by "
              f"{len(set(got) - {None})} backends",
              f"failed {got.count(None)}; answered by {sorted(set(n for n in got if n))}")


def test():
    lab = fl.Lab(backends=4, prefix=f"fo{os.getpid() % 100000}")
    try:
        step("lab up: 4 backends with decap and servers; the balancer's sysctls untouched")
        lab_up(lab)
        for vip in (VIP4, VIP6):
            lab.add_vip_to_backends(vip)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        before = sysctls(lab)
        check(set(before.values()) == {"0"}, "balancer namespace: every forwarding sysctl reads 0", str(before))

        step("1. fulcrumd with TCP and UDP services on an IPv4 and an IPv6 VIP, 3 backends each")
        cfg = lab.write_config(lab.config_text(services(3)))
        lab.start_fulcrumd(cfg)
        after = sysctls(lab)
        check(set(after.values()) == {"0"}, "fulcrumd did not turn forwarding on", str(after))
        log = open(lab.daemon_log).read()
        check("IP forwarding is off on eth0" in log and "not needed" in log,
              "fulcrumd logged that forwarding is off and not needed", daemon_log_tail(lab))
        check("0 fall back to bpf_fib_lookup" in log, "every backend has a cached next hop", daemon_log_tail(lab))

        step("2. real connections")
        traffic(lab, lab.backends[:3], port_base=30000)
        check(forwarding_off_drops(lab) == 0, 'fulcrum_packets_dropped_total{reason="forwarding_off"} is 0')

        step("3. reload: a fourth backend joins both services")
        with open(cfg, "w") as f:
            f.write(lab.config_text(services(4)))
        r = fl.sh(f"{fl.CTL} -s {lab.workdir}/fulcrumd.sock reload", check=False)
        check(r.returncode == 0, "fulcrumctl reload exits 0", r.stdout + r.stderr)
        deadline = time.time() + 10
        while time.time() < deadline:  # it starts down until its first check passes (rise 1)
            if lab.scrape().get(("fulcrum_backend_up", (("backend", fl.backend_v6(4)), ("service", "dnsv6"))), 0) == 1 \
                    and lab.scrape().get(("fulcrum_backend_up", (("backend", fl.backend_v4(4)), ("service", "webv4"))), 0) == 1:
                break
            time.sleep(0.1)
        time.sleep(0.5)  # the batched health apply
        traffic(lab, lab.backends, port_base=31000)
        check(forwarding_off_drops(lab) == 0, 'fulcrum_packets_dropped_total{reason="forwarding_off"} still 0')
        check(set(sysctls(lab).values()) == {"0"}, "forwarding still off everywhere in the balancer namespace")
        check(lab.daemon.poll() is None, "fulcrumd still running")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_forwarding_off", test)
