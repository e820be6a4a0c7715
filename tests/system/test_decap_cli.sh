#!/bin/bash
# fulcrum-decap end to end: attach the decap program to a backend's veth with --from the
# balancer's tunnel sources, send it real tunnelled packets (IPv4-in-IPv4, IPv6-in-IPv6,
# IPv4-in-IPv6) with Scapy, and check that the balancer's inner UDP datagrams reach a listener,
# that tunnels from another source or to an inner destination that is not local are dropped and
# counted (not delivered), that `sync` picks up a VIP added to lo after attach, that `status`
# shows the interface, its GUE port (--gue-port; GUE packets to it are stripped), prefixes, local
# addresses and counters, and that `detach` and the error
# paths behave as INTERFACE.md says.
#
# Topology (names unique per run):
#   fdc-PID-a: vethA 198.18.0.1/24 2001:db8:fdc::1/64   (the balancer, sends with Scapy; Scapy
#                                                         also forges other outer sources)
#   fdc-PID-b: vethB 198.18.0.2/24 2001:db8:fdc::2/64   (backend, decap on vethB)
#              lo    VIPs 198.18.1.10/32 2001:db8:fdd::10/128, UDP listener on every address
# Every fulcrum-decap call runs through `nsenter --net=...`, which keeps the host's mount
# namespace, so the pins live on a bpffs mounted for this test under /run and later calls see
# them (inside `ip netns exec` each call would get its own private /sys/fs/bpf).
set -u

BUILD=${FULCRUM_BUILD_DIR:?FULCRUM_BUILD_DIR must point to the build directory}
DECAP="$BUILD/src/cmd/fulcrum-decap"
PY=/usr/bin/python3   # Debian's Python, which has Scapy

ID="fdc-$$"
NSA="$ID-a"
NSB="$ID-b"
VA="fdca$$"
VB="fdcb$$"
VA=${VA:0:15}
VB=${VB:0:15}
BPFFS="/run/$ID-bpffs"
PIN="$BPFFS/decap"
WORK=$(mktemp -d "/tmp/$ID.XXXXXX")
LISTENER_PID=""

A4=198.18.0.1
B4=198.18.0.2
A6=2001:db8:fdc::1
B6=2001:db8:fdc::2
VIP4=198.18.1.10
VIP6=2001:db8:fdd::10
VIP4_LATE=198.18.1.20   # added to lo after attach: refused until `sync`
VIP6_LATE=2001:db8:fdd::20
SPOOF4=198.18.0.77      # another host on the backend's network, not a balancer
SPOOF6=2001:db8:fdc::77
CLIENT4=198.18.9.9      # inner sources: not configured anywhere, as for real clients
CLIENT6=2001:db8:fde::9
PORT=9999
GUE_PORT=7081           # the re-attach's --gue-port (not the default 6080): status must show it

failures=0
step() { echo "--- $*"; }
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*"; exit 1; }

cleanup() {
    local rc=$?
    set +e
    [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null && wait "$LISTENER_PID" 2>/dev/null
    # Detach whatever is still on the backend's veth (the namespace's deletion would too).
    [ -e "/var/run/netns/$NSB" ] && nsenter --net="/var/run/netns/$NSB" timeout 10 "$DECAP" detach "$VB" \
        --pin-path "$PIN" >/dev/null 2>&1
    ip netns del "$NSA" 2>/dev/null
    ip netns del "$NSB" 2>/dev/null
    if mountpoint -q "$BPFFS"; then
        rm -rf "${BPFFS:?}"/* 2>/dev/null
        umount "$BPFFS"
    fi
    rmdir "$BPFFS" 2>/dev/null
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_a() { ip netns exec "$NSA" "$@"; }
in_b() { ip netns exec "$NSB" "$@"; }
# fulcrum-decap in the backend's network namespace, host mount namespace; bounded in time.
decap() { nsenter --net="/var/run/netns/$NSB" timeout 30 "$DECAP" "$@"; }

[ -x "$DECAP" ] || die "no $DECAP (build it: ninja -C \$FULCRUM_BUILD_DIR src/cmd/fulcrum-decap)"
"$PY" -c 'import scapy.all' 2>/dev/null || die "$PY has no Scapy (apt-get install python3-scapy)"

step "topology: $NSA/$VA <-> $NSB/$VB, VIPs on $NSB's lo"
ip netns add "$NSA" || die "cannot create namespace $NSA"
ip netns add "$NSB" || die "cannot create namespace $NSB"
ip link add "$VA" type veth peer name "$VB" || die "cannot create veth pair"
ip link set "$VA" netns "$NSA"
ip link set "$VB" netns "$NSB"
in_a ip link set lo up
in_b ip link set lo up
in_a ip addr add "$A4/24" dev "$VA"
in_b ip addr add "$B4/24" dev "$VB"
in_a ip -6 addr add "$A6/64" dev "$VA" nodad
in_b ip -6 addr add "$B6/64" dev "$VB" nodad
in_b ip addr add "$VIP4/32" dev lo
in_b ip -6 addr add "$VIP6/128" dev lo nodad
in_a ip link set "$VA" up
in_b ip link set "$VB" up
# The decapsulated packets come from client addresses the backend has no route back to.
in_b sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    "net.ipv4.conf.$VB.rp_filter=0" || die "cannot turn rp_filter off in $NSB"
# Scapy's frames carry complete checksums (no partial checksum offload as from a socket), so
# `ethtool -K tx off` is not needed on the sender here.
MAC_A=$(in_a cat "/sys/class/net/$VA/address")
MAC_B=$(in_b cat "/sys/class/net/$VB/address")
mkdir -p "$BPFFS" && mount -t bpf bpf "$BPFFS" || die "cannot mount a bpffs on $BPFFS"

step "UDP listener on every address of $NSB, port $PORT"
cat >"$WORK/listen.py" <<'EOF'
# Records every datagram received on any local address as "SOURCE PAYLOAD" lines (so a packet the
# decap wrongly let through to any address would show); stops after 120 s.
import select, socket, sys, time
port, out, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(("0.0.0.0", port))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); s6.bind(("::", port))
open(ready, "w").close()
deadline = time.time() + 120
with open(out, "a", buffering=1) as f:
    while time.time() < deadline:
        for s in select.select([s4, s6], [], [], 1)[0]:
            data, src = s.recvfrom(2048)
            f.write(f"{src[0]} {data.decode(errors='replace')}\n")
EOF
: >"$WORK/received"
in_b "$PY" "$WORK/listen.py" "$PORT" "$WORK/received" "$WORK/ready" &
LISTENER_PID=$!
for _ in $(seq 50); do [ -e "$WORK/ready" ] && break; sleep 0.1; done
[ -e "$WORK/ready" ] || die "the UDP listener did not start"

cat >"$WORK/send.py" <<'EOF'
# send.py IFACE SRC_MAC DST_MAC KIND TOKEN OUTER_SRC4 B4 OUTER_SRC6 B6 INNER_DST4 INNER_DST6 C4 C6
# PORT GUE_PORT: 3 copies of one tunnelled UDP datagram, built whole by Scapy (any outer source).
import sys
from scapy.all import Ether, IP, IPv6, UDP, Raw, sendp
iface, src_mac, dst_mac, kind, token, a4, b4, a6, b6, vip4, vip6, c4, c6, port, gue_port = sys.argv[1:]
port = int(port)
inner4 = IP(src=c4, dst=vip4) / UDP(sport=40000, dport=port) / Raw(token.encode())
inner6 = IPv6(src=c6, dst=vip6) / UDP(sport=40000, dport=port) / Raw(token.encode())
outer = {
    "4in4": IP(src=a4, dst=b4, proto=4) / inner4,
    "6in6": IPv6(src=a6, dst=b6, nh=41) / inner6,
    "4in6": IPv6(src=a6, dst=b6, nh=4) / inner4,
    # GUE variant 1: the inner IPv4 packet right after the UDP header
    "gue4in4": IP(src=a4, dst=b4) / UDP(sport=50000, dport=int(gue_port)) / inner4,
}[kind]
sendp(Ether(src=src_mac, dst=dst_mac) / outer, iface=iface, count=3, verbose=False)
EOF
# send_from OUTER_SRC4 OUTER_SRC6 INNER_DST4 INNER_DST6 KIND TOKEN: 3 copies of one tunnelled
# datagram from the balancer's namespace, with the given outer sources and inner destinations.
send_from() {
    in_a timeout 30 "$PY" "$WORK/send.py" "$VA" "$MAC_A" "$MAC_B" "$5" "$6" \
        "$1" "$B4" "$2" "$B6" "$3" "$4" "$CLIENT4" "$CLIENT6" "$PORT" "$GUE_PORT" || die "Scapy could not send $5"
}
# send KIND TOKEN: from the balancer's tunnel sources to the VIPs.
send() { send_from "$A4" "$A6" "$VIP4" "$VIP6" "$1" "$2"; }
# counter REASON: the packets counted under REASON by `status --json` (0 if absent).
counter() {
    decap status --pin-path "$PIN" --json | "$PY" -c '
import json, sys
s = json.load(sys.stdin)
print(sum(i["counters"].get(sys.argv[1], {}).get("packets", 0) for i in s["interfaces"]))' "$1"
}
# wait_counter REASON WANT: the counter once it reaches WANT, or its value after 10 s. veth hands
# frames to the peer's XDP asynchronously, so a counter may lag the sender by a moment.
wait_counter() {
    local i n
    for i in $(seq 100); do
        n=$(counter "$1")
        [ "$n" -ge "$2" ] && break
        sleep 0.1
    done
    echo "$n"
}
# not_delivered TOKEN WHAT: after a later good datagram arrived, TOKEN must not have (same path,
# sent earlier: had it been delivered, it would be there already).
not_delivered() {
    local marker="marker-$1"
    send 4in4 "$marker"
    arrived "$marker" 10 || { bad "the marker datagram did not arrive: cannot judge $2"; return; }
    if grep -q " $1\$" "$WORK/received"; then bad "$2: delivered"; else ok "$2: not delivered"; fi
}
# arrived TOKEN SECONDS: whether the listener got TOKEN within SECONDS.
arrived() {
    local i
    for i in $(seq $(($2 * 10))); do
        grep -q " $1\$" "$WORK/received" && return 0
        sleep 0.1
    done
    return 1
}

step "control: before attach, a tunnelled packet is not delivered (no ipip module here)"
send 4in4 "before-$ID"
if arrived "before-$ID" 2; then bad "an IPv4-in-IPv4 packet arrived without decap: the test proves nothing"
else ok "without fulcrum-decap the IPv4-in-IPv4 packet does not reach the VIP"; fi

step "attach without --from is a usage error"
decap attach "$VB" --mode native --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 2 ] && grep -q "attach: --from PREFIX is required" "$WORK/out" \
    && ok "attach without --from exits 2 and says --from is required" || bad "attach without --from exited $rc"
decap attach "$VB" --from "" --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 2 ] && grep -q "^fulcrum-decap: --from: empty value" "$WORK/out" && ok "an empty --from exits 2" \
    || bad "an empty --from exited $rc"
decap attach "$VB" --from 198.18.0.1/24 --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 2 ] && grep -q "'198.18.0.1/24': address has bits set beyond /24" "$WORK/out" \
    && ok "a prefix with host bits exits 2 naming it" || bad "a prefix with host bits exited $rc"
in_b ip link show "$VB" | grep -q xdp && bad "a refused attach left XDP on $VB" || ok "refused attaches left nothing attached"

step "attach $VB --mode native --from $A4/32 --from $A6/128, local addresses taken from the host"
if decap attach "$VB" --mode native --from "$A4/32" --from "$A6/128" --pin-path "$PIN" >"$WORK/out" 2>"$WORK/err"; then
    ok "attach exited 0"
else
    cat "$WORK/out" "$WORK/err"
    die "attach failed"
fi
cat "$WORK/out" "$WORK/err"
for addr in "$B4" "$B6" "$VIP4" "$VIP6"; do
    grep -qx "local address $addr" "$WORK/out" && ok "attach added local address $addr" || bad "attach did not add $addr"
done
grep -Eq 'fe80:|127\.0\.0\.1|^local address ::1$' "$WORK/out" && bad "attach added a loopback or link-local address" \
    || ok "no loopback or link-local address added"
grep -qx "tunnel source $A4/32" "$WORK/out" && grep -qx "tunnel source $A6/128" "$WORK/out" \
    && ok "attach took the two tunnel sources" || bad "attach did not report the tunnel sources"
grep -q "in native mode" "$WORK/out" && ok "attach reports native mode" || bad "attach did not report native mode"
in_b ip link show "$VB" | grep -q "prog/xdp id" && ok "ip link shows an XDP program on $VB" || bad "no XDP program on $VB"
gue=$(decap status --pin-path "$PIN" --json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["interfaces"][0]["gue_port"])')
[ "$gue" = 6080 ] && ok "status --json: gue_port 6080 (attach's default)" || bad "status --json: gue_port is $gue, expected 6080"

step "attach again with the sources in one comma-separated --from and --gue-port $GUE_PORT: replaces the program"
if decap attach "$VB" -v --mode native --from "$A4/32,$A6/128" --gue-port "$GUE_PORT" --pin-path "$PIN" >"$WORK/out" 2>"$WORK/err"; then

    ok "re-attach exited 0"
else
    cat "$WORK/out" "$WORK/err"
    die "re-attach failed"
fi
cat "$WORK/out"
grep -q "^replacing decap program id" "$WORK/out" && ok "re-attach says it replaced the old program" \
    || bad "re-attach did not say it replaced the program"
[ "$(grep -c '^tunnel source' "$WORK/out")" = 2 ] && ok "re-attach took exactly the 2 given sources" \
    || bad "re-attach did not take exactly the given sources"
# libbpf's and libxdp's own messages go through fulcrum-decap's logger (with -v, at debug level),
# each once prefixed, never printed raw by the libraries' default printers.
grep -q '^<7>debug: libbpf: ' "$WORK/err" && grep -q '^<7>debug: libxdp: ' "$WORK/err" \
    && ok "-v: libbpf's and libxdp's messages come through the logger" \
    || bad "-v: no libbpf or no libxdp message through the logger: $(head -c 600 "$WORK/err")"
grep -Eq '^(libbpf|libxdp): |libxdp: libxdp: ' "$WORK/err" \
    && bad "a libbpf/libxdp message bypassed the logger or was prefixed twice: $(grep -Em3 '^(libbpf|libxdp): |libxdp: libxdp: ' "$WORK/err")" \
    || ok "no libbpf/libxdp message bypassed the logger"
decap attach "$VB" --from "$A4/32" --address "$B4" --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 2 ] && grep -q "^fulcrum-decap: --address is gone" "$WORK/out" && ok "the removed --address exits 2 explaining why" \
    || bad "--address exited $rc"

step "real traffic from the balancer ($A4 / $A6): tunnelled UDP datagrams to $B4 / $B6"
for kind in 4in4 6in6 4in6; do
    send "$kind" "$kind-$ID"
    if arrived "$kind-$ID" 5; then
        ok "$kind: the inner datagram reached the listener on the VIP ($(grep " $kind-$ID\$" "$WORK/received" | head -1 | cut -d' ' -f1))"
    else
        bad "$kind: the inner datagram did not reach the listener"
    fi
done
grep -q "^$CLIENT4 4in4-$ID\$" "$WORK/received" && grep -q "^$CLIENT6 6in6-$ID\$" "$WORK/received" \
    && grep -q "^$CLIENT4 4in6-$ID\$" "$WORK/received" \
    && ok "each datagram arrived from the inner (client) source address" || bad "unexpected source addresses"
send gue4in4 "gue-$ID"
arrived "gue-$ID" 5 && ok "GUE to UDP port $GUE_PORT (the --gue-port): the inner datagram reached the listener" \
    || bad "GUE to UDP port $GUE_PORT: the inner datagram did not reach the listener"

step "spoofed tunnels: outer source $SPOOF4 / $SPOOF6 is not a balancer"
before=$(counter source_not_allowed)
for kind in 4in4 6in6 4in6; do
    send_from "$SPOOF4" "$SPOOF6" "$VIP4" "$VIP6" "$kind" "spoof-$kind-$ID"
done
after=$(wait_counter source_not_allowed $((before + 9)))
[ $((after - before)) = 9 ] && ok "source_not_allowed counted the 9 spoofed packets ($before -> $after)" \
    || bad "source_not_allowed went $before -> $after, expected +9"
for kind in 4in4 6in6 4in6; do not_delivered "spoof-$kind-$ID" "spoofed $kind"; done

step "from the balancer, inner destination not local ($VIP4_LATE / $VIP6_LATE are not on lo yet)"
before=$(counter inner_not_local)
send_from "$A4" "$A6" "$VIP4_LATE" "$VIP6_LATE" 4in4 "late4-$ID"
send_from "$A4" "$A6" "$VIP4_LATE" "$VIP6_LATE" 6in6 "late6-$ID"
after=$(wait_counter inner_not_local $((before + 6)))
[ $((after - before)) = 6 ] && ok "inner_not_local counted the 6 packets ($before -> $after)" \
    || bad "inner_not_local went $before -> $after, expected +6"
not_delivered "late4-$ID" "IPv4 inner destination not local"
not_delivered "late6-$ID" "IPv6 inner destination not local"

step "a VIP added to lo after attach is refused until sync"
in_b ip addr add "$VIP4_LATE/32" dev lo
in_b ip -6 addr add "$VIP6_LATE/128" dev lo nodad
before=$(counter inner_not_local)
send_from "$A4" "$A6" "$VIP4_LATE" "$VIP6_LATE" 4in4 "stale-$ID"
after=$(wait_counter inner_not_local $((before + 3)))
[ $((after - before)) = 3 ] && ok "before sync the new VIP is still not local to decap (documented)" \
    || bad "inner_not_local went $before -> $after before sync, expected +3"
if decap sync "$VB" --pin-path "$PIN" >"$WORK/out" 2>&1; then ok "sync exited 0"; else bad "sync failed"; fi
cat "$WORK/out"
grep -qx "local address $VIP4_LATE added" "$WORK/out" && grep -qx "local address $VIP6_LATE added" "$WORK/out" \
    && ok "sync added the new VIPs" || bad "sync did not add the new VIPs"
for kind in 4in4 6in6 4in6; do
    send_from "$A4" "$A6" "$VIP4_LATE" "$VIP6_LATE" "$kind" "synced-$kind-$ID"
    arrived "synced-$kind-$ID" 10 && ok "$kind to the new VIP is delivered after sync" \
        || bad "$kind to the new VIP was not delivered after sync"
done
in_b ip -6 addr del "$VIP6_LATE/128" dev lo
decap sync "$VB" --pin-path "$PIN" >"$WORK/out" 2>&1 || bad "second sync failed"
cat "$WORK/out"
grep -qx "local address $VIP6_LATE removed" "$WORK/out" && ok "sync removed the VIP taken off lo" \
    || bad "sync did not remove $VIP6_LATE"
decap sync "$VB" --from "$A4/32" --from "$A6/128" --from 198.18.7.0/24 --pin-path "$PIN" >"$WORK/out" 2>&1 \
    || bad "sync --from failed"
cat "$WORK/out"
grep -qx "tunnel source 198.18.7.0/24 added" "$WORK/out" && ok "sync --from added a prefix" || bad "sync --from did not add"
decap sync "$VB" --from "$A4/32,$A6/128" --pin-path "$PIN" >"$WORK/out" 2>&1 || bad "sync --from failed"
grep -qx "tunnel source 198.18.7.0/24 removed" "$WORK/out" && ok "sync --from removed it again" || bad "sync --from did not remove"
decap sync "nosuch$$" --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 1 ] && grep -q "^fulcrum-decap: sync: no decap maps pinned for nosuch$$" "$WORK/out" \
    && ok "sync with nothing pinned exits 1 naming the interface" || bad "sync with nothing pinned exited $rc"

step "status lists the interface, its GUE port, prefixes, local addresses and the decap counters"
decap status --pin-path "$PIN" >"$WORK/status" 2>&1 || bad "status exited non-zero"
cat "$WORK/status"
grep -q "^$VB: decap program id [0-9]* attached in native mode (matches the pinned program)" "$WORK/status" \
    && ok "status shows $VB, attached, native, matching the pins" || bad "status does not show $VB attached"
grep -qx "  GUE: UDP port $GUE_PORT (attach --gue-port)" "$WORK/status" \
    && ok "status shows the GUE port the program was attached with" || bad "status does not show GUE port $GUE_PORT"
grep -qx "    $B4" "$WORK/status" && grep -qx "    $B6" "$WORK/status" && grep -qx "    $VIP4" "$WORK/status" \
    && grep -qx "    $VIP4_LATE" "$WORK/status" && ! grep -qx "    $VIP6_LATE" "$WORK/status" \
    && ok "status shows the local addresses from the pinned map" || bad "status shows the wrong local addresses"
grep -qx "    $A4/32" "$WORK/status" && grep -qx "    $A6/128" "$WORK/status" \
    && ok "status shows the tunnel source prefixes" || bad "status does not show the prefixes"
for reason in decap_v4_in_v4 decap_v6_in_v6 decap_v4_in_v6 decap_gue_v4_in_v4 source_not_allowed inner_not_local; do
    n=$(awk -v r="$reason" '$1 == r {print $2}' "$WORK/status")
    [ "${n:-0}" -ge 3 ] && ok "counter $reason = $n (3 or more sent)" || bad "counter $reason is ${n:-missing}, expected >= 3"
done
decap status --pin-path "$PIN" --json >"$WORK/status.json" || bad "status --json exited non-zero"
if "$PY" - "$WORK/status.json" "$VB" <<'EOF'; then ok "status --json agrees"; else bad "status --json is wrong"; fi
import json, sys
s = json.load(open(sys.argv[1]))
i = [x for x in s["interfaces"] if x["interface"] == sys.argv[2]][0]
assert i["attached"] and i["matches_pinned"] and i["mode"] == "native", i
assert i["attached_program_id"] == i["pinned_program_id"] != 0, i
assert i["gue_port"] == 7081, i
assert all(i["counters"][r]["packets"] >= 3 for r in ("decap_v4_in_v4", "decap_v6_in_v6", "decap_v4_in_v6")), i
assert i["counters"]["source_not_allowed"]["packets"] == 9, i
assert i["counters"]["ecn_ce_not_ect"]["packets"] == 0, i
assert i["sources"] == ["198.18.0.1/32", "2001:db8:fdc::1/128"], i
assert "198.18.1.10" in i["local_addresses"] and "2001:db8:fdd::10" in i["local_addresses"], i
EOF

step "detach"
decap detach "$VB" --pin-path "$PIN" >"$WORK/out" 2>&1 && ok "detach exited 0" || bad "detach failed"
cat "$WORK/out"
in_b ip link show "$VB" | grep -q xdp && bad "ip link still shows XDP on $VB" || ok "ip link shows no XDP on $VB"
decap status --pin-path "$PIN" >"$WORK/status" 2>&1 || bad "status after detach exited non-zero"
cat "$WORK/status"
grep -q "^nothing attached" "$WORK/status" && ok "status after detach: nothing attached" || bad "status still lists something"
[ -z "$(ls -A "$PIN" 2>/dev/null)" ] && ok "the pins are gone" || bad "pins left under $PIN"
send 4in4 "after-$ID"
arrived "after-$ID" 2 && bad "a tunnelled packet was delivered after detach" \
    || ok "after detach tunnelled packets are no longer decapsulated"

step "error paths"
decap detach "$VB" --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 1 ] && ok "detach with nothing attached exits 1" || bad "detach with nothing attached exited $rc"
decap attach "nosuch$$" --from "$A4" --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 1 ] && grep -q "nosuch$$: No such device" "$WORK/out" && ok "attach on a missing interface exits 1 naming it" \
    || bad "attach on a missing interface: exit $rc"
decap attach "$VB" --mode turbo --from "$A4" --pin-path "$PIN" >"$WORK/out" 2>&1
rc=$?
cat "$WORK/out"
[ $rc = 2 ] && grep -q "^usage:" "$WORK/out" && ok "a bad --mode exits 2 with usage" || bad "a bad --mode exited $rc"
in_b ip link show "$VB" | grep -q xdp && bad "a failed attach left XDP on $VB" || ok "failed attaches left nothing attached"

echo
if [ $failures -eq 0 ]; then echo "test_decap_cli: all checks passed"; else echo "test_decap_cli: $failures check(s) failed"; fi
[ $failures -eq 0 ]
