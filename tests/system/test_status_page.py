#!/usr/bin/python3
"""The status page of metrics.listen (issue 11 point 7), in a real browser: Debian's chromium,
headless, loads http://127.0.0.1:PORT/ from the balancer's namespace and the test reads the DOM
the page's own script drew from /status.json.

Lab: 3 backends; services web (TCP 80, the three) and dns (UDP 53, the three); checks every 500 ms,
fall 2. Backend 2 of web is drained with `fulcrumctl drain`.

  1. Load 1: the page lists every service and every backend of `fulcrumctl status --json`, each
     row with the same state, health and weight, and the drain shown as the operator's; the drops
     table has one row per reason of fulcrum_packets_dropped_total; it refreshed by itself
     (its script drew /status.json more than once within the load's virtual time).
  2. Backend 3's server is killed; once `fulcrumctl status` shows it down in both services, load 2
     shows it down (state and health) in both, and every row again equals `fulcrumctl status`.
  3. Same port, by curl: /metrics still serves the Prometheus text (fulcrum_build_info), / carries
     the Content-Security-Policy (inline script/style, same-origin fetch only) and no external
     script or stylesheet; HEAD / answers 200 with no body; POST / is 405; /nope is 404.
"""
import html.parser
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from health_helpers import StatusPoller, ctl, kill_server, status  # noqa: E402
from st_helpers import check, lab_up, main, service_yaml, step  # noqa: E402

VIP = "198.18.100.10"
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class PageRows(html.parser.HTMLParser):
    """The rows the page's script drew: backends (tr.backend with data-* and cell texts), drops
    (tr.drop), the service bodies (tbody.service), and #meta's data-loads."""

    def __init__(self):
        super().__init__()
        self.backends, self.drops, self.services, self.loads = [], [], [], 0
        self._row, self._cell = None, None
        self.scripts_from_elsewhere = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tbody" and a.get("class") == "service":
            self.services.append(a.get("data-service"))
        if tag == "tr" and a.get("class") in ("backend", "drop"):
            self._row = {"kind": a["class"], "attrs": a, "cells": []}
        if tag == "td" and self._row is not None:
            self._cell = ""
        if tag == "p" and a.get("id") == "meta":
            self.loads = int(a.get("data-loads", "0"))
        if tag in ("script", "link", "img", "iframe") and (a.get("src") or a.get("href")):
            self.scripts_from_elsewhere.append((tag, a))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append(self._cell)
            self._cell = None
        if tag == "tr" and self._row is not None:
            (self.backends if self._row["kind"] == "backend" else self.drops).append(self._row)
            self._row = None


def browse(lab, budget_ms=9000):
    """The DOM after chromium ran the page for budget_ms of virtual time (timers run, fetches
    are waited for), parsed."""
    url = f"http://127.0.0.1:{lab.metrics_port()}/"
    cmd = (f"chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir={lab.workdir}/chromium "
           f"--virtual-time-budget={budget_ms} --dump-dom {url}")
    r = subprocess.run(lab.ns(lab.balancer, cmd).split(), capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and "<html" in r.stdout, f"chromium loaded {url}", r.stderr[-800:])
    rows = PageRows()
    rows.feed(r.stdout)
    return rows, r.stdout


def compare(rows, st, label):
    """Every backend of `fulcrumctl status` is a row of the page with its state, health, weight."""
    check(rows.services == list(st), f"{label}: the page lists the services of fulcrumctl status "
          f"in its order ({list(st)})", f"page: {rows.services}")
    seen = {(r["attrs"]["data-service"], r["attrs"]["data-backend"]): r for r in rows.backends}
    want = {(s, b) for s in st for b in st[s]["backends"]}
    check(set(seen) == want, f"{label}: one row per backend of every service ({len(want)})",
          f"page: {sorted(seen)}\nstatus: {sorted(want)}")
    for (s, b), row in sorted(seen.items()):
        be = st[s]["backends"][b]
        cells = row["cells"]
        shown = (row["attrs"]["data-state"], row["attrs"]["data-health"], cells[0], cells[2], int(cells[4]))
        expected = (be["state"], be["health"], b, be["health"], be["weight"])
        check(shown == expected, f"{label}: {s} {b}: state {be['state']}, health {be['health']}, "
              f"weight {be['weight']} as fulcrumctl status says", f"page: {shown}")
        if be["drained_by"]:
            check(f"drained by {be['drained_by']}" in cells[1], f"{label}: {s} {b} shows who drained it",
                  f"page: {cells[1]}")


def curl(lab, *args):
    """curl -i in the balancer's namespace: status line, headers and body (line ends as \\n)."""
    url_args = " ".join(args)
    return lab.run(lab.balancer, f"curl -s -S -i --max-time 10 {url_args}", capture=True)


def test():
    lab = fl.Lab(backends=3, prefix=f"sp{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends; fulcrumd with web (TCP 80) and dns (UDP 53), each on the three")
        lab_up(lab)
        lab.add_vip_to_backends(VIP)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        backends = [fl.backend_v4(i) for i in (1, 2, 3)]
        services = (service_yaml("web", VIP, 80, "tcp", [(b, None) for b in backends]) +
                    service_yaml("dns", VIP, 53, "udp", [(backends[0], 2), (backends[1], None), (backends[2], 1)]))
        lab.start_fulcrumd(lab.write_config(lab.config_text(services)))
        waited, st = StatusPoller(lab).wait(
            lambda s: all(b["health"] == "up" for sv in s.values() for b in sv["backends"].values()), 20)
        check(waited is not None, "every backend of both services up", json.dumps(st)[:500])
        ctl(lab, "drain", "web", backends[1])

        step("1. load 1 in chromium: every service and backend as fulcrumctl status reports it")
        rows, dom = browse(lab)
        st = status(lab)
        check(st["web"]["backends"][backends[1]]["state"] == "draining", "status: web's backend 2 is draining")
        compare(rows, st, "load 1")
        dropped = sorted(dict(labels)["reason"] for (name, labels) in lab.scrape()
                         if name == "fulcrum_packets_dropped_total")
        check(sorted(r["attrs"]["data-reason"] for r in rows.drops) == dropped,
              f"drops table: one row per reason of fulcrum_packets_dropped_total ({len(dropped)})",
              f"page: {[r['attrs']['data-reason'] for r in rows.drops]}")
        check(rows.loads >= 3, f"the page refreshed by itself: /status.json drawn {rows.loads} times in 9 s "
              "of the browser's virtual time (every 2 s)")
        check(not rows.scripts_from_elsewhere, "no script, stylesheet or image loaded from anywhere",
              str(rows.scripts_from_elsewhere))

        step("2. backend 3's server killed: once fulcrumctl status shows it down, load 2 shows it down")
        kill_server(lab, lab.backends[2])
        waited, st = StatusPoller(lab).wait(
            lambda s: all(s[sv]["backends"][backends[2]]["health"] == "down" for sv in ("web", "dns")), 20)
        check(waited is not None, f"fulcrumctl status: {backends[2]} down in web and dns", json.dumps(st)[:500])
        rows, dom = browse(lab, budget_ms=3000)
        st = status(lab)
        for sv in ("web", "dns"):
            row = [r for r in rows.backends if r["attrs"]["data-service"] == sv
                   and r["attrs"]["data-backend"] == backends[2]]
            check(len(row) == 1 and row[0]["attrs"]["data-state"] == "down" and
                  row[0]["attrs"]["data-health"] == "down", f"load 2: {sv} {backends[2]} shows down",
                  str(row))
        compare(rows, st, "load 2")

        step("3. the same port by curl: /metrics, headers, HEAD, 405, 404")
        port = lab.metrics_port()
        out = curl(lab, f"http://127.0.0.1:{port}/metrics")
        check(out.startswith("HTTP/1.1 200") and "\nfulcrum_build_info{" in out and
              "text/plain; charset=utf-8" in out, "/metrics serves the Prometheus text on the same port")
        out = curl(lab, f"http://127.0.0.1:{port}/")
        check(out.startswith("HTTP/1.1 200") and f"Content-Security-Policy: {CSP}\n" in out,
              "/ carries the Content-Security-Policy: inline script and style, same-origin fetch, nothing else")
        check("text/html; charset=utf-8" in out and 'src="' not in out and "<link" not in out,
              "/ is HTML with no external script or stylesheet")
        out = curl(lab, "-I", f"http://127.0.0.1:{port}/")
        check(out.startswith("HTTP/1.1 200") and "Content-Length: " in out and "<html" not in out,
              "HEAD / answers 200 with the headers only", out[-300:])
        out = curl(lab, "-X", "POST", "-d", "x=1", f"http://127.0.0.1:{port}/")
        check(out.startswith("HTTP/1.1 405") and "Allow: GET, HEAD\n" in out, "POST / is 405 (read-only)",
              out[:200])
        out = curl(lab, f"http://127.0.0.1:{port}/nope")
        check(out.startswith("HTTP/1.1 404"), "/nope is 404", out[:200])
        json.loads(curl(lab, f"http://127.0.0.1:{port}/status.json").split("\n\n", 1)[1])
        check(True, "/status.json is JSON")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_status_page", test)
