"""Idle TCP connections held open through a Fulcrum VIP, for the flood test. Run it inside the
client's namespace as its own process:

    flood_conns.py VIP PORT COUNT DIR MAX_SECONDS

It opens COUNT connections to VIP:PORT (the lab's line echo, which answers "NAME line"), sends one
line on each and records which backend answered, writes DIR/ready.json, then leaves them idle
(no keepalives: not one packet) until DIR/ask-N appears. Then it sends line N on every connection,
reads each answer (3 s timeout) and writes DIR/answer-N.json: per connection its source port and
the backend that answered, or what went wrong (reset, eof, timeout, error). It exits when
DIR/quit appears or after MAX_SECONDS (a hard bound)."""
import json
import os
import socket
import sys
import time

vip, port, count, workdir, max_seconds = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                          float(sys.argv[5]))
deadline = time.time() + max_seconds
fam = socket.AF_INET6 if ":" in vip else socket.AF_INET


def write(name, doc):
    tmp = os.path.join(workdir, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, os.path.join(workdir, name))


def ask(conns, n):
    """Line n on every connection; [{'sport', 'backend' or None, 'error' or None}]."""
    out = []
    for i, c in enumerate(conns):
        if c is None:
            out.append({"sport": None, "backend": None, "error": "not connected"})
            continue
        s, sport, buf = c["sock"], c["sport"], b""
        try:
            s.sendall(f"c{i}-{n}\n".encode())
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise EOFError("eof")
                buf += chunk
            name, payload = buf.split(b"\n", 1)[0].decode().split(" ", 1)
            if payload != f"c{i}-{n}":
                raise ValueError(f"wrong echo {payload!r}")
            out.append({"sport": sport, "backend": name, "error": None})
        except ConnectionResetError:
            out.append({"sport": sport, "backend": None, "error": "reset"})
            conns[i] = None
        except socket.timeout:
            out.append({"sport": sport, "backend": None, "error": "timeout"})
        except Exception as e:  # noqa: BLE001 (reported, not hidden)
            out.append({"sport": sport, "backend": None, "error": f"{type(e).__name__}: {e}"})
            conns[i] = None
    return out


conns = []
for i in range(count):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(3.0)
    try:
        s.connect((vip, port))
        conns.append({"sock": s, "sport": s.getsockname()[1]})
    except OSError as e:
        print(f"connection {i}: {e!r}", flush=True)
        s.close()
        conns.append(None)
write("ready.json", {"t": time.time(), "conns": ask(conns, 0)})

n = 1
while time.time() < deadline and not os.path.exists(os.path.join(workdir, "quit")):
    if os.path.exists(os.path.join(workdir, f"ask-{n}")):
        t0 = time.time()
        answers = ask(conns, n)
        write(f"answer-{n}.json", {"t": t0, "conns": answers})
        n += 1
        continue
    time.sleep(0.05)
for c in conns:
    if c:
        c["sock"].close()
