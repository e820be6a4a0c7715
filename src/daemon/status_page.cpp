// The status page (status_page.h): the HTML document and the JSON it polls.
#include "daemon/status_page.h"

#include "util/json.h"

namespace fulcrum::daemon {

std::string status_json(const StatusView& view, const std::vector<DropView>& drops, const std::string& version,
                        const std::string& time)
{
    JsonWriter j;
    j.begin_object().field("version", version).field("generation", view.generation).field("time", time);
    j.field("refresh_ms", kStatusRefreshMs).key("services").begin_array();
    for (const ServiceView& s : view.services) {
        j.begin_object().field("name", s.name).field("vip", s.vip).field("v6", s.v6).field("port", s.port);
        j.field("protocol", s.protocol).field("healthy", s.healthy).field("min_healthy", s.min_healthy);
        j.field("backends_total", s.backends.size()).field("panic", s.panic);
        j.field("packets_per_second", s.packets_per_second).field("bits_per_second", s.bits_per_second);
        j.field("new_flows_per_second", s.new_flows_per_second).key("backends").begin_array();
        for (const BackendView& b : s.backends) {
            // The same words as `fulcrumctl status --json`.
            j.begin_object().field("address", b.address).field("state", b.state).field("drained_by", b.drained_by);
            j.field("health", !b.up ? "unknown" : *b.up ? "up" : "down").field("last_check", b.last_check);
            j.field("seconds_since_change", b.seconds_since_change).field("weight", b.weight);
            j.field("packets_per_second", b.packets_per_second).field("bits_per_second", b.bits_per_second);
            j.end_object();
        }
        j.end_array().end_object();
    }
    j.end_array().key("drops").begin_array();
    for (const DropView& d : drops)
        j.begin_object().field("reason", d.reason).field("packets", d.packets)
            .field("packets_per_second", d.packets_per_second).end_object();
    j.end_array().end_object();
    return j.str();
}

// Everything the script writes into the page goes in through textContent and attributes, never
// as markup: service names and check details come from the config and from backends.
const std::string& status_html()
{
    static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fulcrumd status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; margin-bottom: 0; }
h2 { font-size: 1.1em; margin: 1.2em 0 0.3em; }
#meta { color: #666; margin-top: 0.2em; }
#meta.stale { color: #b00; font-weight: bold; }
table { border-collapse: collapse; margin-bottom: 0.5em; }
th, td { padding: 2px 10px; text-align: left; border-bottom: 1px solid #ddd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.service-head th { background: #eef; }
.active { color: #070; } .draining { color: #a60; } .down { color: #b00; font-weight: bold; }
.up { color: #070; } .unknown { color: #888; }
.panic { color: #fff; background: #b00; padding: 0 4px; margin-left: 6px; }
</style>
</head>
<body>
<h1>fulcrumd <span id="version"></span></h1>
<p id="meta">loading /status.json&hellip;</p>
<noscript><p>This page draws itself from <a href="status.json">/status.json</a> with a little
JavaScript; the same data: <code>fulcrumctl status</code>.</p></noscript>
<h2>Services and backends</h2>
<table id="services">
<thead><tr><th>backend</th><th>state</th><th>health</th><th>last check</th><th class="num">weight</th>
<th class="num">packets/s</th><th class="num">bits/s</th></tr></thead>
</table>
<h2>Drops by reason</h2>
<table id="drops">
<thead><tr><th>reason</th><th class="num">packets/s</th><th class="num">packets since start</th></tr></thead>
<tbody></tbody>
</table>
<p><a href="metrics">/metrics</a> &middot; <a href="status.json">/status.json</a> &middot; read-only</p>
<script>
"use strict";
let refreshMs = 2000, loads = 0;
function si(v) {
  const units = ["", "k", "M", "G", "T"];
  let u = 0;
  while (v >= 1000 && u < 4) { v /= 1000; u++; }
  return u === 0 ? v.toFixed(0) : v.toFixed(2) + units[u];
}
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
function draw(doc) {
  document.getElementById("version").textContent = doc.version;
  const table = document.getElementById("services");
  for (const old of table.querySelectorAll("tbody")) old.remove();
  for (const s of doc.services) {
    const body = document.createElement("tbody");
    body.className = "service";
    body.dataset.service = s.name;
    const head = document.createElement("tr");
    head.className = "service-head";
    const th = document.createElement("th");
    th.colSpan = 5;
    const vip = s.v6 ? "[" + s.vip + "]" : s.vip;
    th.textContent = s.name + "  " + vip + ":" + (s.port || "*") + "/" + s.protocol + "  \u2014  " +
      s.healthy + "/" + s.backends_total + " healthy (need " + s.min_healthy + "), " +
      si(s.new_flows_per_second) + " new flows/s";
    if (s.panic) {
      const p = document.createElement("span");
      p.className = "panic";
      p.textContent = "PANIC";
      th.appendChild(p);
    }
    head.appendChild(th);
    const pps = document.createElement("th"); pps.className = "num"; pps.textContent = si(s.packets_per_second);
    const bps = document.createElement("th"); bps.className = "num"; bps.textContent = si(s.bits_per_second);
    head.append(pps, bps);
    body.appendChild(head);
    for (const b of s.backends) {
      const row = document.createElement("tr");
      row.className = "backend";
      row.dataset.service = s.name;
      row.dataset.backend = b.address;
      row.dataset.state = b.state;
      row.dataset.health = b.health;
      cell(row, b.address);
      cell(row, b.state + (b.drained_by ? " (drained by " + b.drained_by + ")" : ""), b.state);
      cell(row, b.health, b.health);
      cell(row, b.last_check);
      cell(row, String(b.weight), "num");
      cell(row, si(b.packets_per_second), "num");
      cell(row, si(b.bits_per_second), "num");
      body.appendChild(row);
    }
    table.appendChild(body);
  }
  const drops = document.querySelector("#drops tbody");
  drops.replaceChildren();
  for (const d of doc.drops) {
    const row = document.createElement("tr");
    row.className = "drop";
    row.dataset.reason = d.reason;
    cell(row, d.reason);
    cell(row, si(d.packets_per_second), "num");
    cell(row, String(d.packets), "num");
    drops.appendChild(row);
  }
  const meta = document.getElementById("meta");
  meta.className = "";
  meta.dataset.loads = String(++loads);
  meta.textContent = "generation " + doc.generation + ", " + doc.time + "; refreshed every " +
    refreshMs / 1000 + " s (rates: the last second)";
}
async function refresh() {
  try {
    const r = await fetch("status.json", {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    const doc = await r.json();
    refreshMs = doc.refresh_ms || refreshMs;
    draw(doc);
  } catch (e) {
    const meta = document.getElementById("meta");
    meta.className = "stale";
    meta.textContent = "cannot read /status.json (" + e.message + "): the figures below are stale";
  }
  setTimeout(refresh, refreshMs);
}
refresh();
</script>
</body>
</html>
)HTML";
    return page;
}

}  // namespace fulcrum::daemon
