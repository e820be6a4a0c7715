#!/usr/bin/python3
"""bench/RESULTS.md: every figure of the performance issue (10), measured on this machine.

    sudo ./run bench --all [--only NAMES] [--render]
    sudo FULCRUM_BUILD_DIR=build /usr/bin/python3 bench/results.py [--only NAMES] [--render]

Runs each bench with --json, one after the other (they share the machine's two cores, so never
two at once), keeps each one's JSON in bench/results/NAME.json, and writes bench/RESULTS.md:
the issue's figures, each with its value now, the value when the issue was filed, its target and
"met" / "not met", the command that measures it and the machine line; plus three plots
(bench/results/*.png, python3-matplotlib): per-packet cost by case against the floors,
forwarding rate by path, and start / reload time and RSS against the number of services.

--only packet,daemon runs only those benches and takes the others' figures from their saved
JSON (the page says which file is from which run). --render runs nothing: it rewrites the page
and the plots from the saved JSON. The table is printed on stdout as well. It reports; it does
not assert: exit 1 only if a bench could not run or its figures are missing.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
BUILD_DIR = os.path.abspath(os.environ.get("FULCRUM_BUILD_DIR", os.path.join(SOURCE_DIR, "build")))
RESULTS_DIR = os.path.join(HERE, "results")
PAGE = os.path.join(HERE, "RESULTS.md")
PYTHON = "/usr/bin/python3"

# The daemon bench runs at these service counts (100 backends each) for the scaling plot; the
# issue's figures are the 1000-service run's.
SCALE_SERVICES = (125, 250, 500, 1000)


# ---------------------------------------------------------------------------------------------
# The benches: what runs, with which arguments

def benches():
    """name -> (argv, what it measures). Every argv prints one JSON object on stdout."""
    b = BUILD_DIR
    out = {
        "packet": ([f"{b}/bench/fulcrum-bench", "--json"],
                   "per-packet cost next to the floors (live frames), program time per case (bpf_stats), flood"),
        "forwarding": ([PYTHON, f"{HERE}/forwarding_bench.py", "--json"],
                       "frames/s through the balancer with trafgen, 65,536 flows, beside floors, kernel, nftables"),
        "maglev": ([f"{b}/bench/fulcrum-reload-bench", "--maglev", "--json"],
                   "one maglev::build_table, 65537 slots, 100 and 1000 backends"),
        "kernel_memory": ([f"{b}/bench/fulcrum-reload-bench", "--services", "10", "--backends", "100",
                           "--table-sizes", "65537,4099", "--reps", "1", "--json"],
                          "kernel memory of one Maglev table (map memlock), among the reload bench's floors"),
        "health": ([PYTHON, f"{HERE}/health_bench.py", "--json", "--seconds", "20", "--capture", "0"],
                   "fulcrumd checking 10,000 backends (tcp, every second): CPU and RSS"),
    }
    for n in SCALE_SERVICES:
        reps = "3" if n == 1000 else "1"
        out[f"daemon-{n}"] = ([PYTHON, f"{HERE}/daemon_bench.py", "--services", str(n), "--backends", "100",
                               "--reps", reps, "--json"],
                              f"a real fulcrumd on {n} services x 100 backends x 65537 slots: start, reload, RSS")
    return out


def command_text(argv):
    """The argv as an operator would type it (paths inside the source tree made relative)."""
    return " ".join(os.path.relpath(w, SOURCE_DIR) if w.startswith(SOURCE_DIR + "/") else w
                    for w in argv if w != PYTHON)


def machine_line():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = int(next(x for x in open("/proc/meminfo") if x.startswith("MemTotal")).split()[1])
    return f"{platform.node()}: Linux {platform.release()}, {os.cpu_count()} CPUs ({cpu}), {mem_kib / 2**20:.1f} GiB"


def git_commit():
    r = subprocess.run(["git", "-C", SOURCE_DIR, "describe", "--always", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def run_bench(name, argv):
    """Runs one bench; saves {meta, result} in results/NAME.json and its stderr in results/NAME.log."""
    print(f"results: {name}: {command_text(argv)}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    load = open("/proc/loadavg").read().split()[:3]
    with open(os.path.join(RESULTS_DIR, f"{name}.log"), "w") as log:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=log, text=True,
                           env=dict(os.environ, FULCRUM_BUILD_DIR=BUILD_DIR))
    seconds = time.monotonic() - t0
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed (exit {p.returncode}); its stderr is in bench/results/{name}.log")
    saved = {"meta": {"command": command_text(argv), "date": datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(), "machine": machine_line(),
                      "loadavg_at_start": load, "seconds": round(seconds, 1)},
             "result": json.loads(lines[-1])}
    with open(os.path.join(RESULTS_DIR, f"{name}.json"), "w") as f:
        json.dump(saved, f, indent=1)
        f.write("\n")
    print(f"results: {name}: done in {seconds:.0f} s", file=sys.stderr, flush=True)


def load_saved():
    saved = {}
    for name in benches():
        path = os.path.join(RESULTS_DIR, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                saved[name] = json.load(f)
    return saved


# ---------------------------------------------------------------------------------------------
# The figures: where each one's value comes from

class Missing(Exception):
    pass


class Unjudged(Exception):
    """The figure was measured, but says nothing about its target: (value, why)."""


def ratio(packet, key):
    """The fulcrum-bench ratio with this key (bench/main.cpp, --json)."""
    for q in packet["ratios"]:
        if q.get("key") == key:
            return q["value"]
    raise Missing(f"fulcrum-bench ratio {key!r}")


def above_ns(packet, key):
    for q in packet["ratios"]:
        if q.get("key") == key and q.get("above_ns") is not None:
            return f"{q['above_ns']:.0f} ns above the floor"
    return ""


def case(rows, key, field):
    for r in rows:
        if r.get("case", r.get("key")) == key:
            if r.get("path_ok") is False:
                raise Missing(f"{key}: its frames did not take its path")
            if r.get(field) is None:
                raise Missing(f"{key}.{field} is empty")
            return r[field]
    raise Missing(f"case {key}")


def forwarding_ratio(f, key, field, floor):
    """A forwarding case's rate against its floor's, unless the generator was the limit: with
    trafgen's queue never full (no qdisc drops) in both cases, both rates are what trafgen sent,
    and the ratio says nothing about the balancer."""
    value = case(f["cases"], key, field)
    drops = [case(f["cases"], k, "qdisc_drop_share") for k in (key, floor)]
    if max(drops) < 0.01:
        raise Unjudged(value, f"trafgen was the limit: {max(drops) * 100:.1f} % of its frames dropped at its "
                              f"queue, so both rates are what it sent")
    return value


def forwarding_note(f, key):
    above = case(f["cases"], key, "prog_ns_above_floor")
    return f"program {case(f['cases'], key, 'prog_ns_per_run'):.0f} ns per run, {above:.0f} ns above its floor's"


def maglev_ms(m, backends):
    for c in m["cases"]:
        if c["table_size"] == 65537 and c["backends"] == backends:
            return c["min_ms"]
    raise Missing(f"maglev case 65537 x {backends}")


def slot_bytes(k):
    """Kernel bytes per Maglev slot: the memlock of two table maps of different sizes, the
    difference over the difference in slots (what each slot adds; the map's fixed header and
    the page rounding of its last page are not per slot)."""
    runs = sorted(k["table_sizes"], key=lambda run: run["table_size"])
    if len(runs) < 2:
        raise Missing("kernel_memory: needs two table sizes")
    small, large = runs[0], runs[-1]
    # Rounded to 0.01 B: both maps' memlock is whole pages, so the quotient carries up to one
    # page over ~61,000 slots (0.07 %) of rounding either way.
    return round((large["floors"]["table_memlock_bytes"] - small["floors"]["table_memlock_bytes"])
                 / (large["table_size"] - small["table_size"]), 2)


def table_memlock_per_slot(k):
    run = max(k["table_sizes"], key=lambda run: run["table_size"])
    return run["floors"]["table_memlock_bytes"] / run["table_size"]


def above_udp_hit(packet, key):
    """The ns a UDP row's program time lies above (or below) the IP-in-IP UDP hit of the same run."""
    for q in packet["ratios"]:
        if q.get("key") == key and q.get("above_ns") is not None:
            return f"{q['above_ns']:+.0f} ns per packet against it, kernel bpf_stats, same run"
    return ""


def health_cpu_at_10k(h):
    """fulcrumd's CPU scaled to 10,000 checks/s (the bench runs slightly below that rate)."""
    return h["cpu_percent"] * 10000 / h["checks_per_second"]


# (figure, the value when filed, unit, target, "<=" or ">=", bench, how to read it, note: text
# or a function of the results). Target and op None: informational, measured and shown but not
# judged nor counted (figures of other issues that state no target).
FIGURES = [
    ("service hit vs floor_tx, XDP_DROP on the veth peer (next-hop cache)", "2.34 x", "x", 1.5, "<=", "packet",
     lambda r: ratio(r["packet"], "hit_cache_vs_floor_tx_drop_peer"),
     lambda r: above_ns(r["packet"], "hit_cache_vs_floor_tx_drop_peer")),
    ("service hit vs floor_tx, XDP_DROP on the veth peer (bpf_fib_lookup)", "2.34 x", "x", 1.5, "<=", "packet",
     lambda r: ratio(r["packet"], "hit_fib_vs_floor_tx_drop_peer"),
     lambda r: above_ns(r["packet"], "hit_fib_vs_floor_tx_drop_peer")),
    ("service hit vs floor_tx, floor_pass on the peer (next-hop cache)", "1.60 x", "x", 1.25, "<=", "packet",
     lambda r: ratio(r["packet"], "hit_cache_vs_floor_tx_pass_peer"),
     lambda r: above_ns(r["packet"], "hit_cache_vs_floor_tx_pass_peer")),
    ("service hit vs floor_tx, floor_pass on the peer (bpf_fib_lookup)", "1.93 x", "x", 1.25, "<=", "packet",
     lambda r: ratio(r["packet"], "hit_fib_vs_floor_tx_pass_peer"),
     lambda r: above_ns(r["packet"], "hit_fib_vs_floor_tx_pass_peer")),
    ("new flow vs hit, program time, live trafgen (distinct flows)", "4.4 x (estimate)", "x", 2.0, "<=", "packet",
     lambda r: ratio(r["packet"], "prog_live_new_vs_hit"), "kernel bpf_stats, every new-flow frame a new source"),
    ("non-service vs empty XDP_PASS", "1.03-1.07 x", "x", 1.05, "<=", "packet",
     lambda r: ratio(r["packet"], "non_service_vs_floor_pass"),
     lambda r: above_ns(r["packet"], "non_service_vs_floor_pass")),
    ("forwarding, two interfaces, vs the XDP redirect floor", "0.62 x", "x", 0.9, ">=", "forwarding",
     lambda r: forwarding_ratio(r["forwarding"], "fulcrumd", "vs_redirect_floor", "redirect_floor"),
     lambda r: forwarding_note(r["forwarding"], "fulcrumd")),
    ("on a stick (XDP_TX), vs the XDP_TX floor", "0.60 x", "x", 0.9, ">=", "forwarding",
     lambda r: forwarding_ratio(r["forwarding"], "fulcrumd_stick", "vs_tx_floor", "tx_floor"),
     lambda r: forwarding_note(r["forwarding"], "fulcrumd_stick")),
    ("maglev::build_table, 65537 slots x 1000 backends", "4.0 ms at 100 backends", "ms", 1.0, "<=", "maglev",
     lambda r: maglev_ms(r["maglev"], 1000), "min of the runs"),
    ("first apply (exec to control socket answering), 1000 x 100", "10.7 s", "s", 1.0, "<=", "daemon-1000",
     lambda r: r["daemon-1000"]["start_s"], "includes parse, validate, every table built and written"),
    ("one weight change end to end (fulcrumctl reload), 1000 x 100", "1.35 s", "s", 0.5, "<=", "daemon-1000",
     lambda r: r["daemon-1000"]["weight_change_reload_s"], "median of 3"),
    ("daemon RSS at 1000 x 100 x 65537, after start", "584 MB", "MiB", 128, "<=", "daemon-1000",
     lambda r: r["daemon-1000"]["rss_at_start_mib"], ""),
    ("daemon RSS at 1000 x 100 x 65537, after reloads", "584 MB", "MiB", 128, "<=", "daemon-1000",
     lambda r: r["daemon-1000"]["rss_after_reloads_mib"], ""),
    ("kernel memory per Maglev slot", "8 bytes", "B", 4.0, "<=", "kernel_memory",
     lambda r: slot_bytes(r["kernel_memory"]),
     lambda r: f"memlock of a 65537-slot table less a 4099-slot one, per slot; whole map "
               f"{table_memlock_per_slot(r['kernel_memory']):.3f} B/slot with header and page rounding"),
    ("10,000 TCP checks/s: fulcrumd CPU, % of one core", "85 %", "%", 10.0, "<=", "health",
     lambda r: health_cpu_at_10k(r["health"]), "measured rate scaled to 10,000 checks/s"),
    ("10,000 TCP checks/s: fulcrumd RSS at 10,000 backends", "223 MiB", "MiB", 32.0, "<=", "health",
     lambda r: r["health"]["rss_mib"], ""),
    # Issue 9: what a GUE service's own hit and a QUIC packet routed by its server id cost, against a
    # UDP flow-table hit of an IP-in-IP service in the same run (bench/README.md, "Issue 9").
    ("issue 9: GUE service's UDP hit vs an IP-in-IP UDP hit, program time", "not measured", "x", None, None,
     "packet", lambda r: ratio(r["packet"], "prog_once_udp_gue_vs_udp_ipip"),
     lambda r: above_udp_hit(r["packet"], "prog_once_udp_gue_vs_udp_ipip")),
    ("issue 9: QUIC routed by server id vs an IP-in-IP UDP hit, program time", "not measured", "x",
     None, None, "packet", lambda r: ratio(r["packet"], "prog_once_quic_vs_udp_ipip"),
     lambda r: above_udp_hit(r["packet"], "prog_once_quic_vs_udp_ipip")),
]


def evaluate(saved):
    """[(figure, then, value or None, unit, target, op, met or None, bench, note, problem)]."""
    results = {name: s["result"] for name, s in saved.items()}
    rows = []
    for title, then, unit, target, op, bench, get, note in FIGURES:
        value, met, problem = None, None, ""
        try:
            try:
                value = float(get(results))
                if target is not None:
                    met = value <= target if op == "<=" else value >= target
            except Unjudged as u:
                value, why = float(u.args[0]), u.args[1]
                met, problem = None, ""
                note = (why + "; " if why else "") + (note(results) if callable(note) else note)
            else:
                note = note(results) if callable(note) else note
        except KeyError as e:
            problem = f"not measured ({bench}: no {e})"
        except Missing as e:
            problem = f"not measured ({e})"
        rows.append((title, then, value, unit, target, op, met, bench, "" if callable(note) else note, problem))
    return rows


def fmt(value, unit):
    if value is None:
        return "-"
    if unit in ("x", "B"):
        return f"{value:.2f} {unit}"
    if unit in ("s", "ms"):
        return f"{value:.3g} {unit}" if value < 10 else f"{value:.1f} {unit}"
    return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def verdict(met, target=0):
    if target is None:
        return "informational"
    return "not judged" if met is None else ("met" if met else "**not met**")


def target_text(target, op, unit):
    return "none" if target is None else f"{op} {fmt(target, unit)}"


def judged(rows):
    """The rows with a target: those the page counts."""
    return [r for r in rows if r[4] is not None]


def print_table(rows):
    for title, then, value, unit, target, op, met, bench, note, problem in rows:
        verdict_text = verdict(met, target).strip("*")
        shown = problem or f"{fmt(value, unit):>12s}  target {target_text(target, op, unit)}: {verdict_text}"
        print(f"  {title:68s} {shown}")


# ---------------------------------------------------------------------------------------------
# The plots

def plots(saved):
    """Writes the three PNGs; returns [(file, caption)] of those it could draw."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("results: python3-matplotlib is not installed: no plots (./run bench --all installs it)",
              file=sys.stderr)
        return []
    out = []
    if "packet" in saved:
        p = saved["packet"]["result"]
        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
        labels = [c["key"] for c in p["cases"]]
        a.barh(labels, [c["ns_per_packet"] for c in p["cases"]],
               color=["#999999" if c["key"].startswith("floor") else "#1f77b4" for c in p["cases"]])
        a.invert_yaxis()
        a.set_xlabel("ns per packet, wall clock, live frames (median)")
        a.set_title("Per packet, next to the floors (grey)")
        rows = p["program_time"]
        y = range(len(rows))
        b.barh([i - 0.2 for i in y], [r["once_ns"] for r in rows], height=0.4, label="once per frame (test run)")
        b.barh([i + 0.2 for i in y], [r["live_ns"] or 0 for r in rows], height=0.4, label="live trafgen")
        b.set_yticks(list(y), [r["key"] for r in rows])
        b.invert_yaxis()
        b.set_xlabel("program ns per run (kernel bpf_stats, median)")
        b.set_title("Program time by case")
        b.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS_DIR, "packet.png"), dpi=90)
        plt.close(fig)
        out.append(("packet.png", "Per-packet cost by case against the floors (fulcrum-bench)"))
    if "forwarding" in saved:
        rows = saved["forwarding"]["result"]["cases"]
        fig, a = plt.subplots(figsize=(10, 4.5))
        a.barh([r["case"] for r in rows], [r["delivered_pps"] / 1000 for r in rows],
               color=["#999999" if "floor" in r["case"] else "#1f77b4" for r in rows])
        a.invert_yaxis()
        a.set_xlabel("thousand frames per second delivered at the sink (median of rounds)")
        a.set_title(f"Forwarding on veth by path, {saved['forwarding']['result']['flows']:,} flows (floors grey)")
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS_DIR, "forwarding.png"), dpi=90)
        plt.close(fig)
        out.append(("forwarding.png", "Forwarding rate by path (forwarding_bench.py)"))
    scale = [(n, saved[f"daemon-{n}"]["result"]) for n in SCALE_SERVICES if f"daemon-{n}" in saved]
    if scale:
        n = [s for s, _ in scale]
        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
        a.plot(n, [r["start_s"] for _, r in scale], "o-", label="start (exec to control socket)")
        a.plot(n, [r["weight_change_reload_s"] for _, r in scale], "o-", label="reload, one weight changed")
        a.plot(n, [r["no_change_reload_s"] for _, r in scale], "o-", label="reload, no change")
        a.axhline(1.0, color="grey", ls="--", lw=0.8, label="targets at 1000: start 1 s, reload 0.5 s")
        a.axhline(0.5, color="grey", ls="--", lw=0.8)
        a.set_xlabel("services (100 backends each, 65537 slots)")
        a.set_ylabel("seconds")
        a.set_title("Start and reload time")
        a.legend()
        b.plot(n, [r["rss_at_start_mib"] for _, r in scale], "o-", label="RSS after start")
        b.plot(n, [r["rss_after_reloads_mib"] for _, r in scale], "o-", label="RSS after reloads")
        b.plot(n, [r["peak_rss_mib"] for _, r in scale], "o-", label="peak RSS (VmHWM)")
        b.axhline(128, color="grey", ls="--", lw=0.8, label="target 128 MiB at 1000")
        b.set_xlabel("services (100 backends each, 65537 slots)")
        b.set_ylabel("MiB")
        b.set_title("fulcrumd memory")
        b.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS_DIR, "scale.png"), dpi=90)
        plt.close(fig)
        out.append(("scale.png", "Start and reload time and RSS against services (daemon_bench.py)"))
    return out


# ---------------------------------------------------------------------------------------------
# The page

def write_page(saved, rows, pictures):
    met = sum(1 for r in judged(rows) if r[6])
    measured = sum(1 for r in judged(rows) if r[6] is not None)
    lines = [
        "# Benchmark results",
        "",
        "Generated by `./run bench --all` (bench/results.py) from the JSON in bench/results/; do not edit by",
        "hand. Every figure of issue 10's table, measured on the machine below, with the value when the",
        "issue was filed, the target, and whether it is met. Ratios are against floors measured in the",
        "same run; absolute times on this shared 2-vCPU VM drift from day to day (LAB.md), so compare",
        "ratios, and absolute figures only within one run. \"not judged\": measured, but the run",
        "cannot tell whether the target is met (the reason is beside the value). \"informational\": a",
        "figure of another issue that states no target (bench/README.md says how it is measured); not",
        "counted below.",
        "",
        f"{met} of {len(judged(rows))} figures met ({measured} measured).",
        "",
        "| figure | when filed | now | target | | bench |",
        "|---|---|---|---|---|---|",
    ]
    for title, then, value, unit, target, op, ok, bench, note, problem in rows:
        now = problem or fmt(value, unit)
        if note and not problem:
            now += f" ({note})"
        lines.append(f"| {title} | {then} | {now} | {target_text(target, op, unit)} | {verdict(ok, target)} | `{bench}` |")
    lines += ["", "## Runs", "", "| bench | what | command | date | commit | load at start | took |",
              "|---|---|---|---|---|---|---|"]
    for name, (argv, what) in benches().items():
        if name not in saved:
            lines.append(f"| `{name}` | {what} | `{command_text(argv)}` | not run | | | |")
            continue
        m = saved[name]["meta"]
        lines.append(f"| `{name}` | {what} | `sudo {m['command']}` | {m['date']} | {m['commit']} | "
                     f"{' '.join(m['loadavg_at_start'])} | {m['seconds']:.0f} s |")
    machines = sorted({s["meta"]["machine"] for s in saved.values()})
    lines += ["", "Machine: " + "; ".join(machines) + ".", ""]
    if pictures:
        lines += ["## Plots", ""]
        for file, caption in pictures:
            lines += [f"### {caption}", "", f"![{caption}](results/{file})", ""]
    lines += ["## Where the detail is", "",
              "Each bench's own table (every case, every run, the paths it checked) is in its JSON here and",
              "in bench/README.md, which says what each bench measures and how. bench/results/NAME.log holds",
              "what the bench printed on stderr during the run (not kept in git).", ""]
    with open(PAGE, "w") as f:
        f.write("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", type=lambda t: t.split(","), default=None,
                   help="comma-separated benches to run: " + ", ".join(benches()))
    p.add_argument("--render", action="store_true", help="run nothing: rewrite the page and plots from saved JSON")
    args = p.parse_args()
    names = list(benches())
    unknown = set(args.only or []) - set(names)
    if unknown:
        p.error("--only: unknown " + ", ".join(sorted(unknown)))
    os.makedirs(RESULTS_DIR, exist_ok=True)
    if not args.render:
        if os.geteuid() != 0:
            sys.exit("results: needs root (the benches build namespaces and load BPF programs)")
        load = float(open("/proc/loadavg").read().split()[0])
        if load > 1.0:
            print(f"results: load average {load:.2f} at start: figures will be noisy (run it on a quiet machine)",
                  file=sys.stderr)
        for name in args.only or names:
            try:
                run_bench(name, benches()[name][0])
            except RuntimeError as e:
                sys.exit(f"results: {e}")
    saved = load_saved()
    rows = evaluate(saved)
    pictures = plots(saved)
    write_page(saved, rows, pictures)
    print(f"bench/RESULTS.md ({sum(1 for r in judged(rows) if r[6])} of {len(judged(rows))} figures met):")
    print_table(rows)
    if any(r[9] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
