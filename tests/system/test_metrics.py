#!/usr/bin/python3
"""fulcrumd's Prometheus endpoint serves the contract's metric names (INTERFACE.md) with the
contract's types and label names, and values that match the traffic sent:
- exactly N UDP requests, each from its own socket and source port, to an IPv4 and to an IPv6
  UDP service: fulcrum_service_packets_total == N, fulcrum_service_new_flows_total == N, the
  per-backend packets sum to N and equal what each backend answered, bytes == N x the Ethernet
  frame length (14 + IP total length), per backend too;
- a service without traffic stays at 0; backend_weight is the configured (or default 100) weight,
  backend_up is 1;
- fulcrum_packets_dropped_total{reason="port_unserved"} counts exactly the K datagrams sent to
  an unserved port; reloads{result="success"} == 1, failure == 0, generation == 1, build_info has
  fulcrumd --version's version and value 1.
(Healthcheck metrics are not implemented yet and are not checked.)"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import lab_up, check, daemon_log_tail, main, service_yaml, step, udp_ask_connected  # noqa: E402

VIP4, VIP6 = "198.18.100.10", "2001:db8:100::10"
N = 150
K = 9
PAYLOAD = 100
WEIGHTS4 = {1: 100, 2: 200, 3: 300}

CONTRACT = {  # name: (type, label names)
    "fulcrum_service_packets_total": ("counter", {"service", "vip"}),
    "fulcrum_service_bytes_total": ("counter", {"service", "vip"}),
    "fulcrum_service_new_flows_total": ("counter", {"service"}),
    "fulcrum_backend_packets_total": ("counter", {"service", "backend"}),
    "fulcrum_backend_bytes_total": ("counter", {"service", "backend"}),
    "fulcrum_backend_up": ("gauge", {"service", "backend"}),
    "fulcrum_backend_weight": ("gauge", {"service", "backend"}),
    "fulcrum_packets_dropped_total": ("counter", {"reason"}),
    "fulcrum_packets_passed_total": ("counter", {"reason"}),
    "fulcrum_config_reloads_total": ("counter", {"result"}),
    "fulcrum_config_generation": ("gauge", set()),
    "fulcrum_build_info": ("gauge", {"version", "bpf_program"}),
}


def get(m, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    if key not in m:
        have = sorted(l for (n, l) in m if n == name)
        raise AssertionError(f"no sample {name}{labels}; samples of {name}: {have}")
    return m[key]


def test():
    lab = fl.Lab(backends=3, prefix=f"met{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends with decap and servers; VIPs on lo")
        lab_up(lab)
        lab.add_vip_to_backends(VIP4)
        lab.add_vip_to_backends(VIP6)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        services = (service_yaml("dns4", VIP4, 53, "udp", [(fl.backend_v4(i), w) for i, w in WEIGHTS4.items()])
                    + service_yaml("dns6", VIP6, 53, "udp", [(fl.backend_v6(i), None) for i in (1, 2, 3)])
                    + service_yaml("idle", VIP4, 80, "tcp", [(fl.backend_v4(1), 7)]))
        step("fulcrumd with UDP services dns4 (weights 100/200/300), dns6 (default weights), idle (TCP, weight 7)")
        lab.start_fulcrumd(lab.write_config(lab.config_text(services)))

        step("names, types and label names of the contract (INTERFACE.md), before any traffic")
        raw = lab.run(lab.balancer, f"curl -sf http://127.0.0.1:{lab.metrics_port()}/metrics", capture=True)
        m0 = lab.scrape()
        for name, (mtype, labels) in CONTRACT.items():
            samples = [dict(l) for (n, l) in m0 if n == name]
            check(re.search(rf"^# TYPE {name} {mtype}$", raw, re.M) and samples and
                  all(set(s) == labels for s in samples),
                  f"{name}: {mtype}, labels {sorted(labels)}, {len(samples)} samples",
                  f"samples: {samples}\nTYPE lines: {re.findall(rf'^# TYPE {name} .*$', raw, re.M)}")
        version = subprocess.run([fl.FULCRUMD, "--version"], capture_output=True, text=True).stdout.split()[1]
        check(get(m0, "fulcrum_build_info", version=version, bpf_program="balancer") == 1,
              f'fulcrum_build_info{{version="{version}",bpf_program="balancer"}} 1')
        check(get(m0, "fulcrum_config_reloads_total", result="success") == 1 and
              get(m0, "fulcrum_config_reloads_total", result="failure") == 0,
              "fulcrum_config_reloads_total: success 1, failure 0 (the start-up load)")
        check(get(m0, "fulcrum_config_generation") == 1, "fulcrum_config_generation 1")
        for svc, weights in (("dns4", {fl.backend_v4(i): w for i, w in WEIGHTS4.items()}),
                             ("dns6", {fl.backend_v6(i): 100 for i in (1, 2, 3)}),
                             ("idle", {fl.backend_v4(1): 7})):
            got = {b: get(m0, "fulcrum_backend_weight", service=svc, backend=b) for b in weights}
            check(got == weights, f"fulcrum_backend_weight{{service={svc}}}: {got}")
            up = {b: get(m0, "fulcrum_backend_up", service=svc, backend=b) for b in weights}
            check(set(up.values()) == {1}, f"fulcrum_backend_up{{service={svc}}} 1 for all")
        for name in ("fulcrum_service_packets_total", "fulcrum_service_bytes_total"):
            check(get(m0, name, service="dns4", vip=VIP4) == 0 and get(m0, name, service="dns6", vip=VIP6) == 0,
                  f"{name} starts at 0")

        for svc, vip, fam, base, iplen in (("dns4", VIP4, 4, 20000, 20), ("dns6", VIP6, 6, 30000, 40)):
            frame = 14 + iplen + 8 + PAYLOAD
            step(f"{svc}: exactly {N} UDP requests of {PAYLOAD} bytes (frame {frame} bytes), each from its own "
                 f"source port")
            answers = udp_ask_connected(lab, vip, N, port=53, payload=b"q" * PAYLOAD, src_port_base=base)
            names = [n for n, _ in answers]
            check(len(names) == N and None not in names, f"{N}/{N} answered",
                  f"{names.count(None)} failed\n{daemon_log_tail(lab)}")
            m = lab.scrape()
            check(get(m, "fulcrum_service_packets_total", service=svc, vip=vip) == N,
                  f"fulcrum_service_packets_total{{service={svc},vip={vip}}} == {N}",
                  f"got {get(m, 'fulcrum_service_packets_total', service=svc, vip=vip)}")
            check(get(m, "fulcrum_service_new_flows_total", service=svc) == N,
                  f"fulcrum_service_new_flows_total{{service={svc}}} == {N}",
                  f"got {get(m, 'fulcrum_service_new_flows_total', service=svc)}")
            check(get(m, "fulcrum_service_bytes_total", service=svc, vip=vip) == N * frame,
                  f"fulcrum_service_bytes_total{{service={svc}}} == {N} x {frame} = {N * frame}",
                  f"got {get(m, 'fulcrum_service_bytes_total', service=svc, vip=vip)}")
            per_be, per_answer = {}, {}
            for i, b in enumerate(lab.backends, start=1):
                addr = fl.backend_v4(i) if fam == 4 else fl.backend_v6(i)
                per_be[addr] = get(m, "fulcrum_backend_packets_total", service=svc, backend=addr)
                per_answer[addr] = names.count(b)
                check(get(m, "fulcrum_backend_bytes_total", service=svc, backend=addr) == per_answer[addr] * frame,
                      f"fulcrum_backend_bytes_total{{service={svc},backend={addr}}} == "
                      f"{per_answer[addr]} x {frame}",
                      f"got {get(m, 'fulcrum_backend_bytes_total', service=svc, backend=addr)}")
            check(sum(per_be.values()) == N, f"per-backend packets sum to {N}: {per_be}")
            check(per_be == per_answer, "and each equals how many requests that backend answered",
                  f"metrics {per_be}, answers {per_answer}")

        m = lab.scrape()
        for name in ("fulcrum_service_packets_total", "fulcrum_service_bytes_total"):
            check(get(m, name, service="idle", vip=VIP4) == 0, f"{name}{{service=idle}} stays 0")
        check(get(m, "fulcrum_service_new_flows_total", service="idle") == 0, "new_flows{service=idle} stays 0")

        step(f"exactly {K} UDP datagrams to the unserved port {VIP4}:9999")
        before = get(m, "fulcrum_packets_dropped_total", reason="port_unserved")
        script = (f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  f"for i in range({K}):\n    s.sendto(b'x', ('{VIP4}', 9999))\n")
        with open(f"{lab.workdir}/unserved.py", "w") as f:
            f.write(script)
        lab.run(lab.client, f"{fl.PYTHON} {lab.workdir}/unserved.py")
        m = lab.scrape()
        after = get(m, "fulcrum_packets_dropped_total", reason="port_unserved")
        check(before == 0 and after == K, f'fulcrum_packets_dropped_total{{reason="port_unserved"}}: 0 -> {K}',
              f"{before} -> {after}")
        check(get(m, "fulcrum_config_reloads_total", result="success") == 1 and
              get(m, "fulcrum_config_generation") == 1, "still one successful load, generation 1")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_metrics", test)
