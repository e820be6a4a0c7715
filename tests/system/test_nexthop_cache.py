#!/usr/bin/python3
"""The next-hop cache (nexthops map, filled by fulcrumd from netlink) is used and stays correct:
1. with fulcrumd running, every backend's entry is valid with the backend's real MAC, the
   balancer's MAC and egress ifindex, and traffic to the services works;
2. a backend changes its MAC and the balancer's neighbour entry changes (ip neigh replace): the
   entry follows within 1 s and traffic to that backend works again;
3. a blackhole route for one backend: its entry is invalidated within 1 s, its packets are
   dropped and counted as no_route by the fib path (not sent with the stale entry; forwarding is
   turned on for this step, else the fib path answers forwarding_off first), the other backend
   keeps its entry; the route removed: valid again, traffic works.
The lab leaves forwarding off until step 3: steps 1-2 forward through the cache alone.
Bounded in time; the lab is removed also on failure."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import check, daemon_log_tail, lab_up, mac_of, main, service_yaml, step  # noqa: E402

VIP_BOTH, VIP_ONE, VIP6 = "198.18.100.10", "198.18.100.11", "2001:db8:100::10"
NEW_MAC = "02:fc:00:00:00:11"


def entry(lab, id_):
    """nexthops[id] as a dict {dmac, smac, ifindex, mtu, valid} (bpftool, pinned map)."""
    key = " ".join(str(b) for b in id_.to_bytes(4, "little"))
    out = fl.sh(f"bpftool -j map lookup pinned {lab.pin_path}/nexthops key {key}", capture=True)
    v = json.loads(out)
    if "formatted" in v:
        v = v["formatted"]["value"]
        mac = lambda bs: ":".join(f"{b:02x}" for b in bs)  # noqa: E731
        return {"dmac": mac(v["dmac"]), "smac": mac(v["smac"]), "ifindex": v["ifindex"], "mtu": v["mtu"],
                "valid": v["valid"]}
    raw = [int(b, 16) for b in v["value"]]
    mac = lambda bs: ":".join(f"{b:02x}" for b in bs)  # noqa: E731
    return {"dmac": mac(raw[0:6]), "smac": mac(raw[6:12]), "ifindex": int.from_bytes(bytes(raw[12:16]), "little"),
            "mtu": int.from_bytes(bytes(raw[16:20]), "little"), "valid": int.from_bytes(bytes(raw[20:24]), "little")}


def backend_ids(lab):
    """{address text: backend id} from the pinned backends map (ids are handed out from 1)."""
    import ipaddress
    ids = {}
    for id_ in range(1, 16):  # a few services, a few backends: low ids
        key = " ".join(str(b) for b in id_.to_bytes(4, "little"))
        v = json.loads(fl.sh(f"bpftool -j map lookup pinned {lab.pin_path}/backends key {key}", capture=True))
        if "formatted" in v:
            f = v["formatted"]["value"]
            if not f["state"]:
                continue
            words = [w & 0xffffffff for w in f["addr"]["w"]]
            raw = b"".join(w.to_bytes(4, "little") for w in words)
            family = f["family"]
        else:
            raw = bytes(int(b, 16) for b in v["value"])
            if not raw[17]:
                continue
            family = raw[16]
        addr = ipaddress.IPv4Address(raw[:4]) if family == 2 else ipaddress.IPv6Address(raw[:16])
        ids[str(addr)] = id_
    return ids


def wait_for(what, cond, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return time.time() - t0
        time.sleep(0.02)
    return None


def dropped(lab, reason):
    return lab.scrape().get(("fulcrum_packets_dropped_total", (("reason", reason),)), 0.0)


def test():
    lab = fl.Lab(backends=2, prefix=f"nh{os.getpid() % 100000}")
    try:
        step("lab up: 2 backends with decap and servers")
        lab_up(lab)
        for vip in (VIP_BOTH, VIP_ONE, VIP6):
            lab.add_vip_to_backends(vip)
        lab.attach_decap()
        lab.start_servers(tcp_port=80, udp_port=53)
        services = (service_yaml("both", VIP_BOTH, 80, "tcp", [(fl.backend_v4(1), None), (fl.backend_v4(2), None)])
                    + service_yaml("one", VIP_ONE, 80, "tcp", [(fl.backend_v4(1), None)])
                    + service_yaml("one-udp", VIP_ONE, 53, "udp", [(fl.backend_v4(1), None)])
                    + service_yaml("six", VIP6, 80, "tcp", [(fl.backend_v6(1), None), (fl.backend_v6(2), None)]))
        lab.start_fulcrumd(lab.write_config(lab.config_text(services)))

        step("1. the cache is filled and used")
        ids = backend_ids(lab)
        check(set(ids) == {fl.backend_v4(1), fl.backend_v4(2), fl.backend_v6(1), fl.backend_v6(2)},
              f"backend ids from the pinned backends map: {ids}")
        lb_mac = mac_of(lab, lab.balancer)
        lb_ifindex = json.loads(lab.run(lab.balancer, "ip -j link show dev eth0", capture=True))[0]["ifindex"]
        macs = {1: mac_of(lab, lab.backends[0]), 2: mac_of(lab, lab.backends[1])}
        for i in (1, 2):
            for addr in (fl.backend_v4(i), fl.backend_v6(i)):
                e = entry(lab, ids[addr])
                check(e["valid"] == 1 and e["dmac"] == macs[i] and e["smac"] == lb_mac and
                      e["ifindex"] == lb_ifindex and e["mtu"] == 1500,
                      f"nexthops[{ids[addr]}] ({addr}): valid, dmac {macs[i]} (backend's eth0), smac {lb_mac}, "
                      f"ifindex {lb_ifindex}, mtu 1500", f"entry: {e}")
        names = lab.http_get_many(VIP_BOTH, 20)
        check(None not in names and set(names) == set(lab.backends),
              f"20 HTTP requests to {VIP_BOTH} all answered, by both backends", f"{names}")
        names6 = lab.http_get_many(VIP6, 10)
        check(None not in names6, f"10 HTTP requests to {VIP6} all answered", f"{names6}")
        log = open(lab.daemon_log).read()
        n = len(ids) + 2  # backend ids: 198.18.0.11 serves three services, one id each
        check(f"nexthops: applied state: {n} backends use a cached next hop, 0 fall back" in log,
              f"fulcrumd logged: {n} backends (ids) use a cached next hop, 0 fall back", daemon_log_tail(lab))

        step("2. backend 1 changes its MAC; the balancer's neighbour entry is replaced")
        id1 = ids[fl.backend_v4(1)]
        lab.run(lab.backends[0], f"ip link set dev eth0 address {NEW_MAC}")
        t0 = time.time()
        lab.run(lab.balancer, f"ip neigh replace {fl.backend_v4(1)} lladdr {NEW_MAC} dev eth0 nud reachable")
        took = wait_for("new MAC", lambda: entry(lab, id1)["dmac"] == NEW_MAC and entry(lab, id1)["valid"] == 1, 1.0)
        check(took is not None, f"nexthops[{id1}] has the new MAC {NEW_MAC} and is valid "
                                f"{(time.time() - t0) * 1000:.0f} ms after the neighbour change",
              f"entry: {entry(lab, id1)}\n{daemon_log_tail(lab)}")
        names = lab.http_get_many(VIP_ONE, 5, timeout=2)
        check(names == [lab.backends[0]] * 5, f"5 HTTP requests to {VIP_ONE} (backend 1 only) answered by it",
              f"{names}")
        other = entry(lab, ids[fl.backend_v4(2)])
        check(other["valid"] == 1 and other["dmac"] == macs[2], "backend 2's entry untouched", f"{other}")

        step("3. a blackhole route for backend 1 on the balancer")
        # This step checks that an entry that cannot be cached hands the packet to the fib path,
        # which then decides (no_route). With forwarding off (the lab's default) bpf_fib_lookup
        # answers FWD_DISABLED before looking at any route, so turn it on for this step.
        for key in ("net.ipv4.conf.all.forwarding", "net.ipv4.conf.eth0.forwarding",
                    "net.ipv6.conf.all.forwarding"):
            lab.run(lab.balancer, f"sysctl -qw {key}=1")
        lab.run(lab.balancer, f"ip route add blackhole {fl.backend_v4(1)}/32")
        took = wait_for("invalidated", lambda: entry(lab, id1)["valid"] == 0, 1.0)
        check(took is not None, f"nexthops[{id1}] invalidated within {took * 1000 if took else 0:.0f} ms",
              f"entry: {entry(lab, id1)}")
        time.sleep(0.3)  # the batch re-resolve has run (100 ms): must still be invalid
        check(entry(lab, id1)["valid"] == 0, "still invalid after the re-resolve (a blackhole is not cacheable)")
        before = dropped(lab, "no_route")
        answers = lab.udp_ask_many(VIP_ONE, 5, timeout=0.3)
        after = dropped(lab, "no_route")
        check(answers == [None] * 5 and after - before >= 5,
              f"5 UDP requests to {VIP_ONE} unanswered; fulcrum_packets_dropped_total{{reason=\"no_route\"}} "
              f"+{after - before:.0f} (the fib path decided, not a stale entry)", f"{answers}")
        e2 = wait_for("backend 2 back", lambda: entry(lab, ids[fl.backend_v4(2)])["valid"] == 1, 1.0)
        check(e2 is not None, "backend 2's entry valid (a route event re-resolves entries, it does not drop them)")
        names = lab.http_get_many(VIP_BOTH, 10, timeout=1)
        check(lab.backends[1] in names, f"service both still answered by backend 2 ({names.count(lab.backends[1])} of 10)")

        step("   the blackhole removed")
        lab.run(lab.balancer, f"ip route del blackhole {fl.backend_v4(1)}/32")
        took = wait_for("valid", lambda: entry(lab, id1)["valid"] == 1, 1.0)
        check(took is not None and entry(lab, id1)["dmac"] == NEW_MAC,
              f"nexthops[{id1}] valid again with {NEW_MAC} within {took * 1000 if took else 0:.0f} ms",
              f"entry: {entry(lab, id1)}")
        answers = lab.udp_ask_many(VIP_ONE, 5)
        check(answers == [lab.backends[0]] * 5, f"5 UDP requests to {VIP_ONE} answered by backend 1", f"{answers}")

        step("4. the balancer's eth0 MTU changes: every entry follows (link notifications that change")
        step("   nothing a next hop uses, such as an XDP attach's, are ignored; this one is not)")
        lab.run(lab.balancer, "ip link set dev eth0 mtu 1400")
        v4_ids = [ids[fl.backend_v4(1)], ids[fl.backend_v4(2)]]
        took = wait_for("mtu 1400", lambda: all(entry(lab, i)["mtu"] == 1400 and entry(lab, i)["valid"] == 1
                                                for i in v4_ids), 1.0)
        check(took is not None, f"nexthops{v4_ids} (IPv4 backends): valid with mtu 1400 "
                                f"{took * 1000 if took else 0:.0f} ms after the link change",
              f"entries: {[entry(lab, i) for i in v4_ids]}\n{daemon_log_tail(lab)}")
        check(lab.daemon.poll() is None, "fulcrumd still running")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_nexthop_cache", test)
