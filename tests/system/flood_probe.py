"""Is the balancer host reachable? Run in a client namespace during a flood:

    flood_probe.py ADDRESS PORT SECONDS OUT.json

For SECONDS (a hard bound), every 50 ms: a TCP connect to ADDRESS:PORT that must read a line (3 s
timeout, so a SYN lost in an overrun receive ring is retransmitted once), and, in parallel, `ping -D -i 0.05 -W 1` to ADDRESS. Writes per-probe times and results
to OUT.json: {"tcp": [[t, ok, ms], ...], "ping": [t of each reply, ...], "ping_sent": N}."""
import json
import re
import socket
import subprocess
import sys
import time

address, port, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
count = max(1, int(seconds / 0.05))
ping = subprocess.Popen(["ping", "-n", "-D", "-i", "0.05", "-W", "1", "-c", str(count), address],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
tcp = []
end = time.time() + seconds
while time.time() < end:
    t0 = time.time()
    ok = False
    try:
        with socket.create_connection((address, port), timeout=3.0) as s:
            s.settimeout(3.0)
            ok = s.recv(16).startswith(b"lb")
    except OSError:
        pass
    tcp.append([t0, ok, round(1000 * (time.time() - t0), 2)])
    time.sleep(max(0.0, 0.05 - (time.time() - t0)))
try:
    text = ping.communicate(timeout=seconds + 5)[0]
except subprocess.TimeoutExpired:
    ping.kill()
    text = ping.communicate()[0]
replies = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", text, re.M)]
with open(out, "w") as f:
    json.dump({"tcp": tcp, "ping": replies, "ping_sent": count}, f)
