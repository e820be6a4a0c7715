#!/usr/bin/python3
"""Every health-check type through fulcrumd against real servers in the lab: per type a service
with two backends, backend 1 passing and backend 2 failing for a type-specific reason. For each,
`fulcrumctl status --json` shows backend 1 health up with last check "passed" and backend 2
health down (state down: out of the table) with last check "REASON: detail", and
fulcrum_healthcheck_failures_total{service, backend 2, reason} counts that reason while backend 1
has no failure.

  service      check                                    backend 2 fails because           reason
  tcp          tcp connect to port 7                    its check goes to port 9 (closed) refused
  http         http GET /, expect_body "<be1's name>"   the lab server answers its name   bad_body
  http_status  http GET /, expect_status 200-299        its check wants 404               bad_status
  https        https to 8443 (python ssl server with an a plain HTTP server on 8443       tls
               `openssl req` self-signed cert)
  udp          udp payload "who", expect "<be1's name>" the responder answers its name    bad_reply
  dns          dns A ok.example to 5353 (python        its check asks nx.example          dns_error
               responder: NOERROR for ok.example)       (NXDOMAIN)
  exec         exec `test -e FILE`                      its command tests a missing file  exec_failed
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
import health_helpers as hh  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, main, step  # noqa: E402

VIP = "198.18.100.42"
TIME_LIMIT = 150
HEALTH = """defaults:
  healthcheck: {interval: 300ms, timeout: 200ms, rise: 1, fall: 1}
"""


def services(lab, present, missing):
    be1, be2 = fl.backend_v4(1), fl.backend_v4(2)
    name1 = lab.backends[0]
    rows = [
        ("tcp", 7, "tcp", "{type: tcp}", "{port: 9}", "refused"),
        ("http", 80, "tcp", f'{{type: http, path: /, expect_body: "{name1}"}}', "{}", "bad_body"),
        ("http_status", 8080, "tcp", '{type: http, port: 80, expect_status: "200-299"}', "{expect_status: 404}",
         "bad_status"),
        ("https", 443, "tcp", '{type: https, port: 8443, expect_status: 200}', "{}", "tls"),
        ("udp", 53, "udp", f'{{type: udp, payload: "who", expect: "{name1}"}}', "{}", "bad_reply"),
        ("dns", 5353, "udp", "{type: dns, query_name: ok.example, query_type: A}", "{query_name: nx.example}",
         "dns_error"),
        ("exec", 8081, "tcp", f'{{type: exec, command: "test -e {present}"}}', f'{{command: "test -e {missing}"}}',
         "exec_failed"),
    ]
    text = ""
    for name, port, proto, hc, hc2, _ in rows:
        text += f"""  - name: {name}
    vip: {VIP}
    port: {port}
    protocol: {proto}
    min_healthy: 0
    healthcheck: {hc}
    backends:
      - address: {be1}
      - address: {be2}
        healthcheck: {hc2}
"""
    return text, [(r[0], r[5]) for r in rows]


def body():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"over {TIME_LIMIT}s")))
    signal.alarm(TIME_LIMIT)
    lab = fl.Lab(backends=2, clients=1, prefix=f"hc{os.getpid() % 100000}")
    try:
        step(f"lab {lab.prefix}: balancer, 2 backends: lab servers (HTTP 80, UDP 53, echo 7), HTTPS/plain "
             f"on 8443, DNS on 5353")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        cert, key = f"{lab.workdir}/cert.pem", f"{lab.workdir}/key.pem"
        fl.sh(f"openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=backend -days 1 -keyout {key} -out {cert}")
        hh.start_health_server(lab, lab.backends[0], "https", "8443", cert, key, lab.backends[0])
        hh.start_health_server(lab, lab.backends[1], "plain", "8443", lab.backends[1])
        for ns in lab.backends:
            hh.start_health_server(lab, ns, "dns", "5353", "ok.example")
        for ns in lab.backends:
            hh.wait_listen(lab, ns, "t", 8443)
            hh.wait_listen(lab, ns, "u", 5353)
        present, missing = f"{lab.workdir}/present", f"{lab.workdir}/missing"
        open(present, "w").close()
        text, rows = services(lab, present, missing)
        lab.start_fulcrumd(lab.write_config(lab.config_text(text, extra=HEALTH)))
        be1, be2 = fl.backend_v4(1), fl.backend_v4(2)

        def settled(s):
            return all(s[n]["backends"][be1]["health"] == "up" and s[n]["backends"][be2]["state"] == "down" and
                       s[n]["backends"][be2]["last_check"] not in ("-", "passed") for n, _ in rows)
        t, st = hh.StatusPoller(lab, 0.1).wait(settled, 10)
        time.sleep(0.7)   # a few more checks each, for the failure counters
        st = hh.status(lab)
        m = lab.scrape()
        step("per check type: backend 1 up, backend 2 down with the right reason (status and metrics)")
        for name, reason in rows:
            b1, b2 = st[name]["backends"][be1], st[name]["backends"][be2]
            f1 = hh.metric_sum(m, "fulcrum_healthcheck_failures_total", service=name, backend=be1)
            f2 = hh.metric(m, "fulcrum_healthcheck_failures_total", service=name, backend=be2, reason=reason) or 0
            f2all = hh.metric_sum(m, "fulcrum_healthcheck_failures_total", service=name, backend=be2)
            up1 = hh.metric(m, "fulcrum_backend_up", service=name, backend=be1)
            up2 = hh.metric(m, "fulcrum_backend_up", service=name, backend=be2)
            check(b1["health"] == "up" and b1["state"] == "active" and b1["last_check"] == "passed" and f1 == 0
                  and up1 == 1,
                  f"{name}: {be1} up, active, last check passed, no failures counted, fulcrum_backend_up 1",
                  f"{b1}; failures {f1}; up {up1}")
            check(b2["health"] == "down" and b2["state"] == "down" and b2["last_check"].startswith(reason + ":")
                  and f2 > 0 and f2 == f2all and up2 == 0,
                  f"{name}: {be2} down, out of the table, fulcrum_backend_up 0, "
                  f"failures_total{{reason=\"{reason}\"}} {f2:.0f}; last check \"{b2['last_check']}\"",
                  f"{b2}; failures {reason} {f2} of {f2all}; up {up2}")
        check(lab.daemon.poll() is None, "fulcrumd still running")
    except Exception:
        print("fulcrumd log (last lines):\n" + daemon_log_tail(lab, 25))
        raise
    finally:
        signal.alarm(0)
        lab.down()


if __name__ == "__main__":
    main("test_health_check_types", body)
