#!/usr/bin/python3
"""QUIC connection-ID routing (services[].quic, backends[].server_id) with real datagrams through
the balancer to real backends.

Lab: 3 backends with decap and a UDP responder on port 443 (answers every datagram with its name,
from the VIP: DSR). Services: h3 (VIP1 UDP 443, quic {server_id_offset: 1, server_id_bits: 16},
server ids 0x0101, 0x0202, 0x0303) and plain (VIP2 UDP 443, no quic). Every datagram is a QUIC
header built with Scapy (long header: an Initial with the client's random DCID; short header:
the DCID of a backend's server id), sent from a real socket bound to a chosen source port and
connected to the VIP, so only the VIP's answer counts.
1. `fulcrumd --check` refuses a server_id wider than server_id_bits at its file:line:column;
2. handshake: an Initial from port P is answered by the hash's backend X; a short header with X's
   id from P is answered by X;
3. the client migrates: 40 new source ports, short headers with X's id: all answered by X. The
   control: Initials from those 40 ports reach more than one backend (the hash would move it);
4. fulcrum_quic_packets_total counts each outcome (routed_by_id, long_header, unknown_id);
5. `fulcrumctl drain h3 X`: X's id is no longer followed (answered by others, unusable_id);
   undrain: followed again;
6. a reload that gives X another server id: the old id is unknown (hashed), the new one reaches X;
7. the plain UDP service: short headers with X's id from 30 ports spread; no QUIC counter moves.
In 3-6, `fulcrumctl lookup h3 CLIENT PORT --quic-dcid HEX`, asked before each datagram is sent,
names the backend that then answers it and the path (quic_id, or Maglev with the outcome
unknown_id / unusable_id); without --quic-dcid (control) it answers for the 5-tuple.
Bounded in time; the lab is removed also on failure."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, lab_up, main, step  # noqa: E402

from scapy.fields import BitField, FieldLenField, StrField, StrLenField, XIntField  # noqa: E402
from scapy.packet import Packet  # noqa: E402

VIP1, VIP2 = "198.18.100.10", "198.18.100.11"
PORT = 443
IDS = {1: 0x0101, 2: 0x0202, 3: 0x0303}  # backend index -> server id


class QUICLongHeader(Packet):
    """RFC 9000 17.2: first byte 1 (form) 1 (fixed) type(2) reserved(2) pn_len(2), version, DCID, SCID."""
    name = "QUIC long header"
    fields_desc = [BitField("form", 1, 1), BitField("fixed", 1, 1), BitField("type", 0, 2),
                   BitField("reserved", 0, 2), BitField("pn_len", 0, 2), XIntField("version", 1),
                   FieldLenField("dcid_len", None, length_of="dcid", fmt="B"),
                   StrLenField("dcid", b"", length_from=lambda p: p.dcid_len),
                   FieldLenField("scid_len", None, length_of="scid", fmt="B"),
                   StrLenField("scid", b"", length_from=lambda p: p.scid_len),
                   StrField("rest", b"")]


class QUICShortHeader(Packet):
    """RFC 9000 17.3: first byte 0 (form) 1 (fixed) spin reserved(2) key_phase pn_len(2), then the
    DCID (its length is not on the wire) and the protected payload."""
    name = "QUIC short header"
    fields_desc = [BitField("form", 0, 1), BitField("fixed", 1, 1), BitField("spin", 0, 1),
                   BitField("reserved", 0, 2), BitField("key_phase", 0, 1), BitField("pn_len", 0, 2),
                   StrField("dcid", b""), StrField("rest", b"")]


def initial(seed):
    dcid = bytes((seed * 37 + i * 11) & 0xff for i in range(8))
    return bytes(QUICLongHeader(type=0, dcid=dcid, scid=b"\x07\x07\x07\x07", rest=b"\x00" * 40))


def dcid_of(server_id):
    # offset 1: the id is the DCID's 2nd and 3rd bytes (payload bytes 2..3)
    return bytes([0x5a, server_id >> 8, server_id & 0xff]) + b"\xa1\xa2\xa3\xa4\xa5"


def short(server_id):
    return bytes(QUICShortHeader(dcid=dcid_of(server_id), rest=b"\x01" * 24))


def config(lab, ids):
    backends = "\n".join(f"      - {{address: {fl.backend_v4(i)}, server_id: {ids[i]}}}" for i in (1, 2, 3))
    plain = "\n".join(f"      - {{address: {fl.backend_v4(i)}}}" for i in (1, 2, 3))
    services = (f"  - name: h3\n    vip: {VIP1}\n    port: {PORT}\n    protocol: udp\n"
                f"    quic: {{server_id_offset: 1, server_id_bits: 16}}\n    healthcheck: {{type: udp}}\n"
                f"    backends:\n{backends}\n"
                f"  - name: plain\n    vip: {VIP2}\n    port: {PORT}\n    protocol: udp\n"
                f"    healthcheck: {{type: udp}}\n    backends:\n{plain}\n")
    return lab.config_text(services, extra="flows: {udp_idle_timeout: 10m}\n")


def ask(lab, vip, datagrams):
    """datagrams: [(source port, payload bytes)]; each from its own socket bound to that port and
    connected to VIP:443. Returns the name of the backend that answered each (None: no answer)."""
    script = f"""
import socket
for port, payload in {[(p, d) for p, d in datagrams]!r}:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.bind(('', port))
        s.connect(({vip!r}, {PORT}))
        s.send(payload)
        print(s.recv(512).decode().strip())
    except Exception as e:
        print('ERROR', type(e).__name__)
    finally:
        s.close()
"""
    path = f"{lab.workdir}/client-quic.py"
    with open(path, "w") as f:
        f.write(script)
    out = lab.run(lab.client, f"{fl.PYTHON} {path}", capture=True)
    return [None if n.startswith("ERROR") else n for n in out.splitlines()]


def quic_counts(lab):
    m = lab.scrape()
    return {o: m.get(("fulcrum_quic_packets_total", (("outcome", o),)), 0)
            for o in ("routed_by_id", "long_header", "unknown_id", "unusable_id", "truncated", "not_quic")}


def ctl(lab, *args):
    return subprocess.run([fl.CTL, "-s", f"{lab.workdir}/fulcrumd.sock", *args],
                          capture_output=True, text=True, timeout=60)


def lookup(lab, port, server_id=None, service="h3"):
    """fulcrumctl lookup --json for the client's flow from `port`, as a short header carrying
    server_id's connection ID (None: the 5-tuple alone)."""
    dcid = ["--quic-dcid", dcid_of(server_id).hex()] if server_id is not None else []
    r = ctl(lab, "lookup", service, fl.CLIENT_V4, str(port), *dcid, "--json")
    return json.loads(r.stdout or r.stderr)


def predicted(lab, ports, server_id, names):
    """lookup for each port before anything is sent: [(backend name, source, quic outcome)]."""
    out = []
    for p in ports:
        a = lookup(lab, p, server_id)
        out.append((names.get(a["backend"]), a["source"], a.get("quic", {}).get("outcome")))
    return out


def test():
    lab = fl.Lab(backends=3, prefix=f"qr{os.getpid() % 100000}")
    try:
        step("lab up: 3 backends with decap and UDP responders on 443; VIP1 and VIP2 on their lo")
        lab_up(lab)
        lab.add_vip_to_backends(VIP1)
        lab.add_vip_to_backends(VIP2)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=PORT)
        name_of = {i: b for i, b in enumerate(lab.backends, start=1)}
        index_of = {b: i for i, b in name_of.items()}
        by_address = {fl.backend_v4(i): b for i, b in name_of.items()}

        step("1. fulcrumd --check: a server_id wider than server_id_bits is an error at its place")
        bad = lab.write_config(config(lab, {1: IDS[1], 2: 70000, 3: IDS[3]}), "bad.yaml")
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", bad], capture_output=True, text=True, timeout=30)
        line = next(n for n, t in enumerate(open(bad).read().splitlines(), start=1) if "server_id: 70000" in t)
        col = open(bad).read().splitlines()[line - 1].index("70000") + 1
        want = f"{bad}:{line}:{col}: services[0].backends[1].server_id: expected an integer 1..65535, got \"70000\""
        check(r.returncode == 1 and want in r.stdout + r.stderr, f"exit 1 and '{want}'", r.stdout + r.stderr)

        step("2. fulcrumd; a QUIC handshake (Initial, long header) then 1-RTT (short header) from one port")
        lab.start_fulcrumd(lab.write_config(config(lab, IDS)))
        base = quic_counts(lab)
        got = ask(lab, VIP1, [(21000, initial(1))])
        check(got[0] is not None, f"the Initial from port 21000 is answered by {got[0]} (the hash's choice)")
        x = index_of[got[0]]
        got = ask(lab, VIP1, [(21000, short(IDS[x]))])
        check(got == [name_of[x]], f"a short header with server id {IDS[x]:#06x} from the same port reaches {name_of[x]}",
              str(got))

        step("3. the client migrates: 40 new source ports, the same connection ID")
        ports = list(range(22000, 22040))
        said = predicted(lab, ports, IDS[x], by_address)
        check(said == [(name_of[x], "quic_id", "routed_by_id")] * 40,
              f"lookup --quic-dcid {dcid_of(IDS[x]).hex()} for the 40 ports, before: {name_of[x]} by its server id",
              str(said[:3]))
        hashed = predicted(lab, [p + 100 for p in ports], None, by_address)
        moved = ask(lab, VIP1, [(p, short(IDS[x])) for p in ports])
        check(moved == [name_of[x]] * 40, f"all 40 answered by {name_of[x]}", str(moved))
        control = ask(lab, VIP1, [(p + 100, initial(p)) for p in ports])
        check(None not in control and len(set(control)) >= 2,
              f"control: Initials (hashed) from 40 other ports reach {len(set(control))} backends", str(control))
        check([h[0] for h in hashed] == control and all(h[1] == "maglev" and h[2] is None for h in hashed),
              "lookup without --quic-dcid, before, named each Initial's backend (Maglev)",
              str(list(zip(hashed, control))[:3]))
        r = ctl(lab, "lookup", "h3", fl.CLIENT_V4, "22000", "--quic-dcid", dcid_of(IDS[x]).hex())
        check(r.returncode == 0 and f"carries server id {IDS[x]}" in r.stdout and "  encap ipip\n" in r.stdout,
              "the text answer names the server id and the tunnel", r.stdout + r.stderr)
        others = {i: ask(lab, VIP1, [(23000 + i, short(IDS[i]))])[0] for i in (1, 2, 3)}
        check(others == name_of, "each backend's id reaches that backend", str(others))

        step("4. the counters")
        c = quic_counts(lab)
        routed = c["routed_by_id"] - base["routed_by_id"]
        longs = c["long_header"] - base["long_header"]
        check(routed == 1 + 40 + 3, f"fulcrum_quic_packets_total{{outcome=\"routed_by_id\"}} grew by {routed} (44)")
        check(longs == 1 + 40, f"outcome=\"long_header\" grew by {longs} (41)")
        said = predicted(lab, [24000 + i for i in range(20)], 0x0909, by_address)
        got = ask(lab, VIP1, [(24000 + i, short(0x0909)) for i in range(20)])
        check(None not in got and len(set(got)) >= 2, f"an unknown id (0x0909) is hashed: {len(set(got))} backends",
              str(got))
        check(said == [(g, "maglev", "unknown_id") for g in got],
              "lookup --quic-dcid, before, said unknown_id and named each one's backend (Maglev)",
              str(list(zip(said, got))[:3]))
        a = json.loads(ctl(lab, "lookup", "h3", fl.CLIENT_V4, "24100", "--quic-dcid", "5a01", "--json").stdout)
        check(a["quic"] == {"dcid": "5a01", "server_id": None, "outcome": "truncated"} and a["source"] == "maglev",
              "a connection ID that ends before the id: truncated, the 5-tuple's answer", str(a))
        r = ctl(lab, "lookup", "plain", fl.CLIENT_V4, "24100", "--quic-dcid", dcid_of(IDS[x]).hex())
        check(r.returncode == 1 and "has no quic" in r.stderr, "--quic-dcid on a service without quic: exit 1",
              r.stdout + r.stderr)
        c2 = quic_counts(lab)
        check(c2["unknown_id"] - c["unknown_id"] == 20, "outcome=\"unknown_id\" grew by 20")

        step(f"5. drain {name_of[x]}: its id is not followed; undrain: followed again")
        r = ctl(lab, "drain", "h3", fl.backend_v4(x))
        check(r.returncode == 0, f"fulcrumctl drain h3 {fl.backend_v4(x)}", r.stdout + r.stderr)
        said = predicted(lab, [25000 + i for i in range(20)], IDS[x], by_address)
        got = ask(lab, VIP1, [(25000 + i, short(IDS[x])) for i in range(20)])
        check(None not in got and name_of[x] not in got,
              f"20 short headers with the drained backend's id from new ports reach {sorted(set(got))}", str(got))
        check(said == [(g, "maglev", "unusable_id") for g in got],
              "lookup --quic-dcid, before, said unusable_id and named each one's backend (Maglev)",
              str(list(zip(said, got))[:3]))
        c3 = quic_counts(lab)
        check(c3["unusable_id"] - c2["unusable_id"] == 20, "outcome=\"unusable_id\" grew by 20")
        r = ctl(lab, "undrain", "h3", fl.backend_v4(x))
        check(r.returncode == 0, "fulcrumctl undrain", r.stdout + r.stderr)
        said = predicted(lab, [26000 + i for i in range(10)], IDS[x], by_address)
        got = ask(lab, VIP1, [(26000 + i, short(IDS[x])) for i in range(10)])
        check(got == [name_of[x]] * 10, f"after undrain the id reaches {name_of[x]} again", str(got))
        check(said == [(name_of[x], "quic_id", "routed_by_id")] * 10, "as lookup --quic-dcid said before", str(said[:3]))

        step(f"6. reload: {name_of[x]} gets server id 0x0404")
        ids = dict(IDS)
        ids[x] = 0x0404
        lab.write_config(config(lab, ids))
        r = ctl(lab, "reload")
        check(r.returncode == 0, "reload applied", r.stdout + r.stderr)
        c4 = quic_counts(lab)
        said = predicted(lab, [27000 + i for i in range(10)], 0x0404, by_address)
        got = ask(lab, VIP1, [(27000 + i, short(0x0404)) for i in range(10)])
        check(got == [name_of[x]] * 10, f"the new id reaches {name_of[x]}", str(got))
        check(said == [(name_of[x], "quic_id", "routed_by_id")] * 10, "as lookup --quic-dcid said before", str(said[:3]))
        said = predicted(lab, [27100 + i for i in range(20)], IDS[x], by_address)
        got = ask(lab, VIP1, [(27100 + i, short(IDS[x])) for i in range(20)])
        check(None not in got and len(set(got)) >= 2, f"the old id is unknown now: hashed to {len(set(got))} backends",
              str(got))
        check(said == [(g, "maglev", "unknown_id") for g in got], "as lookup --quic-dcid said before (unknown_id)",
              str(list(zip(said, got))[:3]))
        c5 = quic_counts(lab)
        check(c5["unknown_id"] - c4["unknown_id"] == 20 and c5["routed_by_id"] - c4["routed_by_id"] == 10,
              "10 routed by id, 20 unknown", str(c5))

        step("7. the plain UDP service (no quic): QUIC-shaped datagrams are hashed, nothing counted")
        got = ask(lab, VIP2, [(28000 + i, short(0x0404)) for i in range(30)])
        check(None not in got and len(set(got)) >= 2, f"30 short headers to plain reach {len(set(got))} backends",
              str(got))
        check(quic_counts(lab) == c5, "fulcrum_quic_packets_total unchanged")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_quic_routing", test)
