"""Is the balancer host reachable? Run in a client namespace during a flood:

    flood_probe.py ADDRESS PORT SECONDS OUT.json

For SECONDS, a TCP connect to ADDRESS:PORT starts every 100 ms, each in its own thread, and must
read a line within 7 s: a SYN lost in an overrun receive ring is retransmitted after 1 s and 3 s,
as any client would, and a slow probe does not hold back the next one. In parallel,
`ping -D -i 0.05 -W 1` to ADDRESS. Writes per-probe start times and results to OUT.json:
{"tcp": [[t, ok, ms], ...], "ping": [t of each reply, ...], "ping_sent": N}."""
import json
import re
import socket
import subprocess
import sys
import threading
import time

CONNECT_EVERY = 0.1
TCP_TIMEOUT = 7.0

address, port, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
count = max(1, int(seconds / 0.05))
ping = subprocess.Popen(["ping", "-n", "-D", "-i", "0.05", "-W", "1", "-c", str(count), address],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
tcp = []
lock = threading.Lock()


def probe(t0):
    ok = False
    try:
        with socket.create_connection((address, port), timeout=TCP_TIMEOUT) as s:
            s.settimeout(max(0.1, TCP_TIMEOUT - (time.time() - t0)))
            ok = s.recv(16).startswith(b"lb")
    except OSError:
        pass
    with lock:
        tcp.append([t0, ok, round(1000 * (time.time() - t0), 2)])


threads = []
end = time.time() + seconds
while time.time() < end:
    t = threading.Thread(target=probe, args=(time.time(),))
    t.start()
    threads.append(t)
    time.sleep(CONNECT_EVERY)
for t in threads:
    t.join()
tcp.sort()
try:
    text = ping.communicate(timeout=seconds + 5)[0]
except subprocess.TimeoutExpired:
    ping.kill()
    text = ping.communicate()[0]
replies = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", text, re.M)]
with open(out, "w") as f:
    json.dump({"tcp": tcp, "ping": replies, "ping_sent": count}, f)
