#!/usr/bin/python3
"""config/grafana/fulcrum.json, the Grafana dashboard, against a running fulcrumd:

- the JSON is a dashboard model Grafana imports: title, uid, schemaVersion, templating variables
  (a Prometheus data-source variable, the rest queries through it), panels of known types with
  unique ids, grid positions inside the 24-column grid that do not overlap, and on every panel
  with data the data-source variable and targets with unique refIds and an expression;
- every `$variable` of an expression is a templating variable or a Grafana built-in, and the
  brackets and quotes of every expression balance;
- a real fulcrumd (lab of namespaces, one healthy service and one whose health check is refused)
  is scraped: every metric the dashboard names exists as a sample, and every label an expression
  selects on or groups by is a label of those samples (Prometheus adds `instance`).
Grafana itself is not in Debian's archive, so the import is checked against the model's rules
here rather than by a running Grafana.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import TestFailure, lab_up, check, main, service_yaml, step  # noqa: E402
import time  # noqa: E402

DASHBOARD = os.path.join(fl.SOURCE_DIR, "config", "grafana", "fulcrum.json")
VIP4 = "198.18.100.10"
PANEL_TYPES = {"row", "timeseries", "table", "stat", "gauge", "bargauge", "text"}
BUILTINS = {"__rate_interval", "__interval", "__range"}
ADDED_BY_PROMETHEUS = {"instance", "job", "le"}   # le: the histogram's buckets


def expect(cond, msg, detail=""):
    """check() without the line it prints: for the checks made once per panel or expression."""
    if not cond:
        raise TestFailure(msg + (f"\n    {detail}" if detail else ""))


def model_checks(d):
    check(isinstance(d.get("title"), str) and d["title"], f"title {d.get('title')!r}")
    check(isinstance(d.get("uid"), str) and 0 < len(d["uid"]) <= 40, f"uid {d.get('uid')!r} (at most 40 characters)")
    check(isinstance(d.get("schemaVersion"), int) and d["schemaVersion"] >= 36,
          f"schemaVersion {d.get('schemaVersion')} (Grafana 9 and later)")
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = [v for v in variables.values() if v["type"] == "datasource"]
    check(len(ds) == 1 and ds[0]["query"] == "prometheus", "one data-source variable, of type prometheus")
    ds_ref = {"type": "prometheus", "uid": "${" + ds[0]["name"] + "}"}
    for v in variables.values():
        if v["type"] == "query":
            check(v.get("datasource") == ds_ref and v["query"]["query"],
                  f"variable ${v['name']}: a query through the data-source variable")
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    check(len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), f"{len(panels)} panels, unique ids")
    cells = {}
    targets = []
    for p in panels:
        g = p["gridPos"]
        where = f"panel {p['id']} {p['title']!r}"
        check(p["type"] in PANEL_TYPES, f"{where}: type {p['type']}")
        expect(all(isinstance(g[k], int) for k in "hwxy") and g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0
              and g["x"] + g["w"] <= 24, f"{where}: gridPos {g} inside 24 columns")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                expect((x, y) not in cells, f"{where} does not overlap {cells.get((x, y))}")
                cells[(x, y)] = where
        if p["type"] in ("row", "text"):
            continue
        expect(p.get("datasource") == ds_ref and p["targets"], f"{where}: the data-source variable, targets")
        refs = [t["refId"] for t in p["targets"]]
        expect(len(refs) == len(set(refs)), f"{where}: unique refIds {refs}")
        for t in p["targets"]:
            expect(t.get("expr") and t.get("datasource", ds_ref) == ds_ref, f"{where} {t['refId']}: an expression")
            targets.append((where, t["expr"]))
    print(f"ok: {len(panels)} panels inside the grid without overlap, {len(targets)} expressions")
    exprs = targets + [(f"variable ${v['name']}", v["query"]["query"])
                       for v in variables.values() if v["type"] == "query"]
    for where, e in exprs:
        for name in re.findall(r"\$\{?(\w+)", e):
            expect(name in variables or name in BUILTINS, f"{where}: ${name} is defined")
        for open_, close in ("()", "[]", "{}"):
            expect(e.count(open_) == e.count(close), f"{where}: {open_}{close} balance in {e}")
        expect(e.count('"') % 2 == 0, f"{where}: quotes balance in {e}")
    print(f"ok: every $variable defined, brackets and quotes balance in {len(exprs)} expressions")
    return exprs


def uses(expr):
    """[(metric, labels the expression selects on or groups by)] for each metric it names."""
    groups = set()
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        groups.update(x.strip() for x in m.group(1).split(",") if x.strip())
    out = []
    for m in re.finditer(r"\b(fulcrum_[a-z0-9_]+)(\{([^}]*)\})?", expr):
        selected = set(re.findall(r"(\w+)\s*[=!]~?", m.group(3) or ""))
        out.append((m.group(1), selected | groups))
    return out


def test():
    with open(DASHBOARD) as f:
        d = json.load(f)
    step(f"{os.path.relpath(DASHBOARD, fl.SOURCE_DIR)}: the dashboard model")
    exprs = model_checks(d)

    lab = fl.Lab(backends=2, prefix=f"gfn{os.getpid() % 100000}")
    try:
        step("lab up; fulcrumd with web (2 healthy backends) and dead (its health check refused)")
        lab_up(lab)
        lab.start_servers(tcp_port=80, udp_port=53)
        services = (service_yaml("web", VIP4, 80, "tcp", [(fl.backend_v4(1), None), (fl.backend_v4(2), None)])
                    + service_yaml("dead", VIP4, 81, "tcp", [(fl.backend_v4(1), None)])
                    .replace("    backends:", "    healthcheck: {port: 9}\n    backends:"))
        lab.start_fulcrumd(lab.write_config(lab.config_text(services)))
        deadline = time.time() + 20
        while not any(n == "fulcrum_healthcheck_failures_total" for (n, _) in lab.scrape()):
            check(time.time() < deadline, "a refused health check is counted within 20 s")
            time.sleep(0.2)
        samples = {}
        for (name, labels) in lab.scrape():
            samples.setdefault(name, set()).update(k for k, _ in labels)

        step("every metric the dashboard names exists, with the labels it selects on or groups by")
        named = 0
        for where, e in exprs:
            used = uses(e)
            expect(used, f"{where}: names a fulcrum_ metric")
            have = set().union(*(samples.get(n, set()) for n, _ in used))
            for name, labels in used:
                named += 1
                check(name in samples, f"{where}: {name} is served", f"served: {sorted(samples)}")
                expect(labels - ADDED_BY_PROMETHEUS <= have, f"{where}: labels {sorted(labels)} of {name}",
                      f"{name} has {sorted(samples.get(name, []))}; the expression: {e}")
        print(f"ok: {named} metric uses in {len(exprs)} expressions, each served with its labels")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_grafana_dashboard", test)
