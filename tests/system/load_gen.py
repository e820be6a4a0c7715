"""Steady, checked load through a Fulcrum VIP, for tests that change the balancer under traffic
(reloads, restarts). Run it inside the client's namespace as its own process, e.g.

    nsenter --net=/run/netns/NS taskset -c 0 /usr/bin/python3 load_gen.py --vip 198.18.100.30 \
        --out /tmp/x/load.json --stop-file /tmp/x/stop --max-seconds 60

For at most --max-seconds (or until --stop-file appears, or SIGTERM/SIGINT) it keeps:
  - K (--tcp) long-lived TCP connections to VIP:--tcp-port (the lab's line echo, which answers
    each line with "NAME line"): one numbered line every --interval on each; every echo is
    matched to its line; a line not echoed within --line-timeout is lost; a reset, an early EOF or
    any socket error counts against the connection; the answering backend (NAME) must never
    change within a connection;
  - M (--udp) UDP flows to VIP:--udp-port, each its own connected socket (own source port): one
    numbered datagram every --interval; the responder answers every datagram with NAME, so
    lost = sent - answered per flow, counted after a --grace period once sending stops; the
    backends that answered each flow are recorded.
Everything runs in one thread (a selector loop), so it is bounded and needs no locks. It writes a
progress file (--progress, rewritten every 0.25 s) and, at the end, a JSON summary (--out).
Wall-clock times (time.time()) are used throughout so a test can line events up with them."""
import argparse
import errno
import json
import os
import selectors
import signal
import socket
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--vip", required=True)
    p.add_argument("--tcp-port", type=int, default=7)
    p.add_argument("--udp-port", type=int, default=53)
    p.add_argument("--tcp", type=int, default=16, help="long-lived TCP connections")
    p.add_argument("--udp", type=int, default=32, help="UDP flows")
    p.add_argument("--interval", type=float, default=0.02, help="seconds between sends, per connection/flow")
    p.add_argument("--max-seconds", type=float, default=60.0, help="hard bound on the sending time")
    p.add_argument("--stop-file", default=None, help="stop sending as soon as this file exists")
    p.add_argument("--grace", type=float, default=1.5, help="seconds to wait for late answers at the end")
    p.add_argument("--line-timeout", type=float, default=2.0, help="a TCP line not echoed by then is lost")
    p.add_argument("--connect-timeout", type=float, default=3.0)
    p.add_argument("--bucket", type=float, default=0.5, help="timeline bucket, seconds")
    p.add_argument("--progress", default=None)
    p.add_argument("--out", required=True)
    return p.parse_args()


def current_cpu():
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return -1


class Timeline:
    """Counts per time bucket: a place to look when something was lost."""

    def __init__(self, t0, width):
        self.t0, self.width, self.buckets = t0, width, {}

    def add(self, key, n=1, now=None):
        i = int(((now or time.time()) - self.t0) / self.width)
        b = self.buckets.setdefault(i, {})
        b[key] = b.get(key, 0) + n

    def export(self):
        return [dict(t=round(self.t0 + i * self.width, 3), **self.buckets[i]) for i in sorted(self.buckets)]


class TcpConn:
    def __init__(self, cid):
        self.id = cid
        self.sock = None
        self.sport = None
        self.backend = None          # NAME of the first echo
        self.backends = []           # every distinct NAME seen, in order
        self.seq = 0
        self.outstanding = {}        # seq -> send time
        self.rbuf = b""
        self.wbuf = b""
        self.sent = self.echoed = self.lost = self.late = self.bad = 0
        self.max_rtt = 0.0
        self.status = "new"          # open | connect_failed | reset | eof | error | closed
        self.error = None
        self.error_at = None

    @property
    def live(self):
        return self.status == "open"


class UdpFlow:
    def __init__(self, fid):
        self.id = fid
        self.sock = None
        self.sport = None
        self.seq = 0
        self.sent = self.answered = self.errors = 0
        self.backends = []
        self.first_answer = None
        self.last_answer = None
        self.error_list = []


def main():
    a = parse_args()
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    fam = socket.AF_INET6 if ":" in a.vip else socket.AF_INET
    t_start = time.time()
    timeline = Timeline(t_start, a.bucket)
    sel = selectors.DefaultSelector()

    # -- set up: every TCP connection connected (blocking, with a timeout), every UDP flow open --
    conns = [TcpConn(i) for i in range(a.tcp)]
    for c in conns:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(a.connect_timeout)
        try:
            s.connect((a.vip, a.tcp_port))
        except OSError as e:
            c.status, c.error, c.error_at = "connect_failed", repr(e), time.time()
            s.close()
            continue
        s.setblocking(False)
        c.sock, c.sport, c.status = s, s.getsockname()[1], "open"
        sel.register(s, selectors.EVENT_READ, ("tcp", c))
    flows = [UdpFlow(i) for i in range(a.udp)]
    for f in flows:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.connect((a.vip, a.udp_port))   # only datagrams from VIP:port are delivered to it
        s.setblocking(False)
        f.sock, f.sport = s, s.getsockname()[1]
        sel.register(s, selectors.EVENT_READ, ("udp", f))
    t_ready = time.time()

    def fail_conn(c, status, err):
        if not c.live:
            return
        c.status, c.error, c.error_at = status, repr(err) if err else None, time.time()
        timeline.add("tcp_" + status)
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def tcp_flush(c):
        while c.live and c.wbuf:
            try:
                n = c.sock.send(c.wbuf)
            except BlockingIOError:
                return
            except ConnectionResetError as e:
                return fail_conn(c, "reset", e)
            except OSError as e:
                return fail_conn(c, "error", e)
            c.wbuf = c.wbuf[n:]

    def tcp_read(c, now):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError as e:
            return fail_conn(c, "reset", e)
        except OSError as e:
            return fail_conn(c, "error", e)
        if not data:
            return fail_conn(c, "eof", None)
        c.rbuf += data
        while b"\n" in c.rbuf:
            line, c.rbuf = c.rbuf.split(b"\n", 1)
            try:
                name, payload = line.decode().split(" ", 1)
                cid, seq = payload.split("-")
                seq = int(seq)
                assert int(cid) == c.id
            except (ValueError, AssertionError, UnicodeDecodeError):
                c.bad += 1
                continue
            if name not in c.backends:
                c.backends.append(name)
                if c.backend is None:
                    c.backend = name
                else:
                    timeline.add("tcp_backend_changed", now=now)
            sent_at = c.outstanding.pop(seq, None)
            if sent_at is None:
                c.late += 1   # echoed after it was given up as lost (or a duplicate)
                continue
            c.echoed += 1
            timeline.add("tcp_echoed", now=now)
            c.max_rtt = max(c.max_rtt, now - sent_at)

    def udp_read(f, now):
        while True:
            try:
                data = f.sock.recv(2048)
            except BlockingIOError:
                return
            except OSError as e:   # e.g. ECONNREFUSED from an ICMP error
                f.errors += 1
                if len(f.error_list) < 5:
                    f.error_list.append([round(now, 3), errno.errorcode.get(e.errno, str(e.errno))])
                timeline.add("udp_error", now=now)
                continue
            name = data.decode(errors="replace").strip()
            f.answered += 1
            f.first_answer = f.first_answer or now
            f.last_answer = now
            if name not in f.backends:
                f.backends.append(name)
            timeline.add("udp_answered", now=now)

    def poll(timeout):
        for key, _ in sel.select(max(0.0, timeout)):
            kind, obj = key.data
            now = time.time()
            if kind == "tcp":
                tcp_read(obj, now)
            else:
                udp_read(obj, now)

    def expire(now, limit):
        for c in conns:
            for seq in [s for s, t in c.outstanding.items() if now - t > limit]:
                del c.outstanding[seq]
                c.lost += 1
                timeline.add("tcp_line_lost", now=now)

    last_progress = 0.0

    def progress(now, phase):
        nonlocal last_progress
        if not a.progress or now - last_progress < 0.25:
            return
        last_progress = now
        doc = {"t": now, "phase": phase,
               "tcp_live": sum(c.live for c in conns),
               "tcp_echoed": sum(c.echoed for c in conns),
               "tcp_lost": sum(c.lost for c in conns),
               "udp_sent": sum(f.sent for f in flows),
               "udp_answered": sum(f.answered for f in flows)}
        tmp = a.progress + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, a.progress)

    # -- the steady phase ------------------------------------------------------------------------
    deadline = t_ready + a.max_seconds
    next_tick = time.time()
    stop_reason = "max-seconds"
    while True:
        now = time.time()
        if stop["flag"]:
            stop_reason = "signal"
            break
        if a.stop_file and os.path.exists(a.stop_file):
            stop_reason = "stop-file"
            break
        if now >= deadline:
            break
        if now >= next_tick:
            for c in conns:
                if c.live:
                    c.seq += 1
                    c.wbuf += f"{c.id}-{c.seq}\n".encode()
                    c.outstanding[c.seq] = now
                    c.sent += 1
                    tcp_flush(c)
            timeline.add("tcp_sent", sum(c.live for c in conns), now=now)
            for f in flows:
                f.seq += 1
                try:
                    f.sock.send(f"{f.id} {f.seq}".encode())
                    f.sent += 1
                except OSError as e:
                    f.errors += 1
                    if len(f.error_list) < 5:
                        f.error_list.append([round(now, 3), "send " + errno.errorcode.get(e.errno, str(e.errno))])
            timeline.add("udp_sent", len(flows), now=now)
            next_tick = max(next_tick + a.interval, now)   # no bursts to catch up
            expire(now, a.line_timeout)
        for c in conns:
            if c.wbuf:
                tcp_flush(c)
        progress(now, "load")
        poll(min(next_tick, deadline) - time.time())
    t_stop_sending = time.time()

    # -- grace: late echoes and answers, then everything still outstanding is lost ---------------
    grace_end = t_stop_sending + a.grace
    while time.time() < grace_end:
        if all(not c.outstanding for c in conns if c.live) and all(f.answered >= f.sent for f in flows):
            break
        poll(min(0.05, grace_end - time.time()))
        progress(time.time(), "grace")
    expire(time.time(), -1.0)
    for c in conns:
        if c.live:
            c.status = "closed"
            sel.unregister(c.sock)
            c.sock.close()
    for f in flows:
        sel.unregister(f.sock)
        f.sock.close()

    tcp_summary = {
        "connections": a.tcp,
        "connect_failed": sum(c.status == "connect_failed" for c in conns),
        "resets": sum(c.status == "reset" for c in conns),
        "eofs": sum(c.status == "eof" for c in conns),
        "errors": sum(c.status == "error" for c in conns),
        "lines_sent": sum(c.sent for c in conns),
        "lines_echoed": sum(c.echoed for c in conns),
        "lines_lost": sum(c.lost for c in conns),
        "late_echoes": sum(c.late for c in conns),
        "bad_lines": sum(c.bad for c in conns),
        "backend_changed": sum(len(c.backends) > 1 for c in conns),
        "max_rtt_ms": round(1000 * max([c.max_rtt for c in conns] or [0]), 1),
        "per_conn": [{"id": c.id, "sport": c.sport, "status": c.status, "backend": c.backend,
                      "backends": c.backends, "sent": c.sent, "echoed": c.echoed, "lost": c.lost,
                      "late": c.late, "error": c.error, "error_at": c.error_at} for c in conns],
    }
    udp_summary = {
        "flows": a.udp,
        "sent": sum(f.sent for f in flows),
        "answered": sum(f.answered for f in flows),
        "lost": sum(max(0, f.sent - f.answered) for f in flows),
        "extra": sum(max(0, f.answered - f.sent) for f in flows),
        "errors": sum(f.errors for f in flows),
        "backend_changed": sum(len(f.backends) > 1 for f in flows),
        "per_flow": [{"id": f.id, "sport": f.sport, "backends": f.backends, "sent": f.sent,
                      "answered": f.answered, "lost": max(0, f.sent - f.answered), "errors": f.errors,
                      "error_list": f.error_list} for f in flows],
    }
    summary = {
        "vip": a.vip, "interval": a.interval,
        "started": t_start, "ready": t_ready, "stopped_sending": t_stop_sending, "ended": time.time(),
        "stop_reason": stop_reason,
        "cpu_affinity": sorted(os.sched_getaffinity(0)), "cpu_at_end": current_cpu(),
        "tcp": tcp_summary, "udp": udp_summary, "timeline": timeline.export(),
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(summary, fh, indent=1)
    os.replace(tmp, a.out)
    print(f"load_gen: {stop_reason} after {t_stop_sending - t_ready:.1f}s; "
          f"tcp {tcp_summary['lines_echoed']}/{tcp_summary['lines_sent']} lines echoed, "
          f"{tcp_summary['resets']} resets, {tcp_summary['lines_lost']} lost; "
          f"udp {udp_summary['answered']}/{udp_summary['sent']} answered, {udp_summary['lost']} lost", flush=True)


if __name__ == "__main__":
    main()


# -- for the tests: run load_gen.py in a lab's client namespace ----------------------------------
class Runner:
    """load_gen.py as a separate process in `lab`'s client namespace, pinned to one CPU (the
    balancer's flow table is per CPU, and on veth the receiving CPU is the sender's)."""

    def __init__(self, lab, vip, tag="load", tcp=16, udp=32, max_seconds=120.0, cpu=0, extra=()):
        self.lab, self.tag = lab, tag
        base = f"{lab.workdir}/{tag}"
        self.out, self.progress_path, self.stop_file, self.log = (
            f"{base}.json", f"{base}.progress.json", f"{base}.stop", f"{base}.log")
        for p in (self.out, self.progress_path, self.stop_file):
            if os.path.exists(p):
                os.unlink(p)
        self.cmd = ["nsenter", f"--net=/run/netns/{lab.client}", "taskset", "-c", str(cpu),
                    "/usr/bin/python3", os.path.abspath(__file__), "--vip", vip,
                    "--tcp", str(tcp), "--udp", str(udp), "--max-seconds", str(max_seconds),
                    "--stop-file", self.stop_file, "--progress", self.progress_path,
                    "--out", self.out, *extra]
        self.proc = None

    def start(self, ready_timeout=15.0):
        import subprocess
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            p = self.progress()
            if p and p["tcp_echoed"] > 0 and p["udp_answered"] > 0:
                return p
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"load_gen did not get going: progress {self.progress()}, log:\n"
                           + open(self.log).read())

    def progress(self):
        try:
            with open(self.progress_path) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0):
        """Ask it to stop (stop file), wait for it, return its JSON summary."""
        open(self.stop_file, "w").close()
        try:
            self.proc.wait(timeout)
        except Exception:
            self.kill()
            raise RuntimeError("load_gen did not stop; log:\n" + open(self.log).read())
        if self.proc.returncode != 0 or not os.path.exists(self.out):
            raise RuntimeError(f"load_gen exited {self.proc.returncode}; log:\n" + open(self.log).read())
        with open(self.out) as fh:
            return json.load(fh)

    def kill(self):
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def napi_threads():
    import subprocess
    out = subprocess.run(["ps", "-e", "-o", "pid=,comm="], capture_output=True, text=True).stdout
    return {int(pid): comm for pid, comm in (line.split(None, 1) for line in out.splitlines())
            if comm.startswith("napi/")}


def pin_rx_to_cpu(lab, ns, cpu=0, iface="eth0"):
    """Make every frame received on `iface` in `ns` go through XDP on one CPU, as RSS does for a
    flow on a real NIC. The balancer's flow table is per CPU. A veth has no RSS: a frame is
    processed on whichever CPU has the veth's NAPI scheduled at that moment, and any sender on
    any CPU can schedule it (ACKs sent from softirq or timers, ARP/ND, IPv6 multicast; under
    load a softirq deferred to ksoftirqd keeps the NAPI on the other CPU for many ms). A flow
    whose packets land on the other CPU after a Maglev change is balanced afresh there and may
    go to another backend (seen: flow-table entries with different backends on CPU 0 and 1, and
    TCP resets). So: threaded NAPI on `iface` (the device must have its NAPI, i.e. an XDP program
    attached), and its kthread pinned to `cpu`. Returns the kthreads it pinned."""
    import subprocess
    before = napi_threads()
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo 1 > /sys/class/net/{iface}/threaded"],
                   check=True, capture_output=True)
    deadline = time.time() + 5
    new = {}
    while time.time() < deadline and not new:
        new = {pid: comm for pid, comm in napi_threads().items() if pid not in before}
        time.sleep(0.02)
    if not new:
        raise RuntimeError(f"no napi/{iface}-* kthread appeared after enabling threaded NAPI in {ns}")
    for pid in new:
        subprocess.run(["taskset", "-p", "-c", str(cpu), str(pid)], check=True, capture_output=True)
    return new


def problems(summary, tcp_backends_must_stay=True, udp_flows_that_must_keep=None):
    """Human-readable list of everything that went wrong in a summary (empty: all good)."""
    out = []
    t, u = summary["tcp"], summary["udp"]
    for c in t["per_conn"]:
        if c["status"] not in ("closed",):
            out.append(f"tcp conn {c['id']} (sport {c['sport']}, backend {c['backend']}): {c['status']} "
                       f"{c['error'] or ''} at {c['error_at']}")
        if c["lost"]:
            out.append(f"tcp conn {c['id']} (sport {c['sport']}): {c['lost']} lines not echoed")
        if tcp_backends_must_stay and len(c["backends"]) > 1:
            out.append(f"tcp conn {c['id']} (sport {c['sport']}): backend changed {c['backends']}")
    keep = udp_flows_that_must_keep
    for f in u["per_flow"]:
        if keep is not None and f["id"] not in keep:
            continue
        if f["lost"]:
            out.append(f"udp flow {f['id']} (sport {f['sport']}, {f['backends']}): {f['lost']} of {f['sent']} lost")
        if len(f["backends"]) > 1:
            out.append(f"udp flow {f['id']} (sport {f['sport']}): backend changed {f['backends']}")
        if f["errors"]:
            out.append(f"udp flow {f['id']} (sport {f['sport']}): {f['errors']} socket errors {f['error_list']}")
    return out


def flow_table(pin_path):
    """The balancer's pinned flow table of confirmed flows, read with bpftool:
    {(proto, source port, destination port): {cpu: backend id}} (only CPUs with an entry; the
    table is one shared by every CPU, whose entries show as cpu "any").
    The key is struct fulcrum_flow_key: two 16-byte addresses, sport, dport (network order),
    proto; the value starts with the backend id (host order, 0 = no entry on that CPU)."""
    import subprocess
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", f"{pin_path}/flows"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    table = {}
    for e in json.loads(out.stdout):
        key = bytes(int(b, 16) for b in e["key"])
        sport, dport, proto = int.from_bytes(key[32:34], "big"), int.from_bytes(key[34:36], "big"), key[36]
        cpus = {}
        for v in e.get("values", []):  # a per-CPU map (older pins)
            be = int.from_bytes(bytes(int(b, 16) for b in v["value"][:4]), "little")
            if be:
                cpus[v["cpu"]] = be
        if "value" in e:  # one value shared by every CPU (LRU_HASH, xdp/lib/maps.h)
            be = int.from_bytes(bytes(int(b, 16) for b in e["value"][:4]), "little")
            if be:
                cpus["any"] = be
        table[(proto, sport, dport)] = cpus
    return table


def flow_table_report(pin_path, summary):
    """One line: on which CPUs the balancer's flow table holds this load's flows, and whether a
    flow has entries with different backends on different CPUs (a flow that was balanced on two
    CPUs, whose per-CPU flow tables disagree)."""
    table = flow_table(pin_path)
    if table is None:
        return "flow table: cannot read it with bpftool"
    ours = [(6, c["sport"], None) for c in summary["tcp"]["per_conn"] if c["sport"]]
    ours += [(17, f["sport"], None) for f in summary["udp"]["per_flow"]]
    by_port = {(p, s): cpus for (p, s, _), cpus in table.items()}
    where, split = {}, []
    for proto, sport, _ in ours:
        cpus = by_port.get((proto, sport), {})
        k = ("tcp" if proto == 6 else "udp") + " on CPU " + (",".join(str(c) for c in sorted(cpus)) or "none")
        where[k] = where.get(k, 0) + 1
        if len(set(cpus.values())) > 1:
            split.append(f"{'tcp' if proto == 6 else 'udp'}:{sport} {cpus}")
    return (f"flow table: this load's {len(ours)} flows: "
            + ", ".join(f"{k}: {n}" for k, n in sorted(where.items()))
            + f"; {len(split)} with different backends per CPU" + (f" (e.g. {split[:4]})" if split else ""))


def dropped(metrics):
    """{reason: count} of fulcrum_packets_dropped_total from a lab.scrape(), non-zero only."""
    return {dict(k[1]).get("reason"): v for k, v in metrics.items()
            if k[0] == "fulcrum_packets_dropped_total" and v}
