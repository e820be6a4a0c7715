#!/bin/bash
# The systemd side of an install, checked offline (no systemd runs as PID 1 here):
#   1. `meson install` into a DESTDIR puts the programs, both units and the example config where
#      the build's prefix says, with the install paths substituted into the unit texts, and a
#      second install leaves an operator's fulcrum.yaml alone; the installed fulcrumd accepts the
#      installed example.
#   2. `systemd-analyze verify --root=DESTDIR` accepts fulcrum.service and fulcrum-decap@IFACE.service
#      without a single warning (it also checks that every Exec*= program exists in DESTDIR), and
#      refuses deliberately broken copies, so the check is known to bite.
#   3. `systemd-analyze security --offline=yes` for both units: the exposure table, the settings
#      that must hold, and the overall exposure at or below MAX_EXPOSURE.
set -u

BUILD=${FULCRUM_BUILD_DIR:?FULCRUM_BUILD_DIR must point to the build directory}

# Exposure is 0 (locked down) to 10 (nothing); systemd calls < 5 "OK", 5-7 "MEDIUM".
# fulcrum.service scores 2.8 (systemd 252). What remains is what an XDP balancer that health-checks
# with exec commands cannot give up, measured item by item with this systemd:
#   - CAP_SYS_ADMIN in the bounding set (+0.2): start-up opens BPF objects by id (pinned and
#     attached programs, libxdp's dispatcher); fulcrumd drops it from every set once up;
#   - CAP_NET_RAW in the bounding set (+0.1): the raw sockets of tcp health checks (SYN probes,
#     src/health/syn_prober.h) are opened at start; fulcrumd drops it from every set once up;
#   - CAP_SETUID/CAP_SETGID/CAP_SETPCAP (exec checks become healthcheck.user; cutting the bounding
#     set) and CAP_KILL (stopping them), CAP_NET_ADMIN, CAP_BPF;
#   - root (User=): bpffs is root's (mode 0700) and the pins are shared across restarts;
#   - the host's network (PrivateNetwork=, IPAddressDeny=): checks go to any backend, metrics are
#     scraped from anywhere; PrivateUsers=: capabilities must be real in the host's namespace;
#   - ProtectKernelTunables= off: it makes /sys/fs/bpf read-only (ReadOnlyPaths=/proc/sys instead,
#     which the score does not count); ProcSubset=pid would buy nothing measurable (2.8 either way).
# So 2.0 is out of reach for this daemon. The bound is the measured value: any sandboxing setting
# dropped fails it.
MAX_EXPOSURE=2.8

failures=0
step() { echo "--- $*"; }
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*"; exit 1; }

command -v systemd-analyze >/dev/null ||
    die "systemd-analyze not found (Debian package: systemd)"
command -v meson >/dev/null || die "meson not found"

ROOT=$(mktemp -d /tmp/fulcrum-units.XXXXXX)
cleanup() { rm -rf "${ROOT:?}"; }
trap cleanup EXIT

# --- where this build installs things ---------------------------------------------------------
# Each program, unit and the example config: its path as installed (without DESTDIR).
installed() {
    meson introspect "$BUILD" --installed | /usr/bin/python3 -c '
import json, sys
want = sys.argv[1]
for src, dst in json.load(sys.stdin).items():
    if dst.rsplit("/", 1)[-1] == want:
        print(dst)
        break
' "$1"
}
option() {
    meson introspect "$BUILD" --buildoptions | /usr/bin/python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))
' "$1"
}
PREFIX=$(option prefix)
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PREFIX/$1" ;; esac; }
SBINDIR=$(abs "$(option sbindir)")
SYSCONFDIR=$(abs "$(option sysconfdir)")

step "install plan of $BUILD (prefix $PREFIX)"
for f in fulcrumd fulcrumctl fulcrum-decap; do
    dst=$(installed "$f")
    if [ "$dst" = "$SBINDIR/$f" ]; then ok "$f -> $dst"; else bad "$f installs to '${dst}', want $SBINDIR/$f"; fi
done
SERVICE=$(installed fulcrum.service)
DECAP=$(installed fulcrum-decap@.service)
EXAMPLE=$(installed fulcrum.yaml.example)
[ -n "$SERVICE" ] && ok "fulcrum.service -> $SERVICE" || bad "fulcrum.service is not installed"
[ -n "$DECAP" ] && ok "fulcrum-decap@.service -> $DECAP" || bad "fulcrum-decap@.service is not installed"
if [ "$EXAMPLE" = "$SYSCONFDIR/fulcrum/fulcrum.yaml.example" ]; then
    ok "example config -> $EXAMPLE"
else
    bad "example config installs to '$EXAMPLE', want $SYSCONFDIR/fulcrum/fulcrum.yaml.example"
fi
[ -n "$SERVICE" ] && [ -n "$DECAP" ] || die "no units to check"
UNITDIR=$(dirname "$SERVICE")
CONFIG="$SYSCONFDIR/fulcrum/fulcrum.yaml"

# --- 1. install into DESTDIR ------------------------------------------------------------------
# systemd-analyze --root needs the distribution's units too (sysinit.target, network-online.target
# ...): copy them in first, without any fulcrum unit an earlier install may have left on the host.
mkdir -p "$ROOT/usr/lib/systemd/system"
for u in /lib/systemd/system/*; do
    case "${u##*/}" in fulcrum*) continue ;; esac
    cp -a "$u" "$ROOT/usr/lib/systemd/system/"
done

# ExecStopPost= runs /bin/sh, which every Debian system has: verify looks for it in DESTDIR.
mkdir -p "$ROOT/bin"
cp -L /bin/sh "$ROOT/bin/sh"

step "DESTDIR=$ROOT meson install"
if out=$(DESTDIR="$ROOT" meson install -C "$BUILD" --no-rebuild --quiet 2>&1); then
    ok "meson install exited 0"
else
    echo "$out" | tail -n 15
    die "meson install failed"
fi
for f in "$SBINDIR/fulcrumd" "$SBINDIR/fulcrumctl" "$SBINDIR/fulcrum-decap"; do
    [ -x "$ROOT$f" ] && ok "installed, executable: $f" || bad "missing or not executable: $ROOT$f"
done
for f in "$SERVICE" "$DECAP" "$EXAMPLE"; do
    [ -s "$ROOT$f" ] && ok "installed: $f" || bad "missing or empty: $ROOT$f"
done

step "install paths substituted into the units"
# expect_line FILE LINE: FILE has exactly this line.
expect_line() {
    if grep -qxF -- "$2" "$1"; then ok "${1##*/}: $2"; else bad "${1##*/} lacks the line: $2"; fi
}
expect_line "$ROOT$SERVICE" "ExecStartPre=$SBINDIR/fulcrumd --check -c $CONFIG"
expect_line "$ROOT$SERVICE" "ExecStart=$SBINDIR/fulcrumd -c $CONFIG"
expect_line "$ROOT$SERVICE" "ExecReload=$SBINDIR/fulcrumctl reload"
expect_line "$ROOT$SERVICE" "Type=notify"
# Least privilege (README "Security"): bpffs is required, never mounted by fulcrumd under the unit
# (no @mount), the sysctls are read-only, descriptors for thousands of checks, and the capabilities
# fulcrumd narrows further once it is up.
expect_line "$ROOT$SERVICE" "RequiresMountsFor=/sys/fs/bpf"
expect_line "$ROOT$SERVICE" "ReadOnlyPaths=/proc/sys"
expect_line "$ROOT$SERVICE" "LimitNOFILE=65536"
expect_line "$ROOT$SERVICE" "NoNewPrivileges=yes"
expect_line "$ROOT$SERVICE" "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SETUID CAP_SETGID CAP_KILL CAP_SETPCAP CAP_NET_RAW"
if grep -E '^SystemCallFilter=[^~]' "$ROOT$SERVICE" | grep -qE '@mount|(^|[ =])mount( |$)'; then
    bad "fulcrum.service allows mount(2) (@mount in SystemCallFilter=): bpffs must come from the host"
else
    ok "fulcrum.service: no @mount in SystemCallFilter="
fi
expect_line "$ROOT$DECAP" "EnvironmentFile=-$SYSCONFDIR/fulcrum/decap.env"
expect_line "$ROOT$DECAP" "ExecStart=$SBINDIR/fulcrum-decap attach %I --from \${FULCRUM_DECAP_FROM} \$FULCRUM_DECAP_ARGS"
expect_line "$ROOT$DECAP" "ExecReload=$SBINDIR/fulcrum-decap sync %I --from \${FULCRUM_DECAP_FROM}"
expect_line "$ROOT$DECAP" "ExecStop=$SBINDIR/fulcrum-decap detach %I"
if grep -n '@[a-z_]*@' "$ROOT$SERVICE" "$ROOT$DECAP"; then
    bad "a placeholder was left unsubstituted (above)"
else
    ok "no @placeholder@ left in the units"
fi

step "the installed fulcrumd accepts the installed example config"
if out=$("$ROOT$SBINDIR/fulcrumd" --check -c "$ROOT$EXAMPLE" 2>&1); then
    ok "fulcrumd --check -c fulcrum.yaml.example exited 0"
else
    echo "$out" | tail -n 10
    bad "fulcrumd --check rejects the installed example"
fi

step "a second install leaves the operator's fulcrum.yaml alone"
echo "# the operator's own" > "$ROOT$CONFIG"
DESTDIR="$ROOT" meson install -C "$BUILD" --no-rebuild --quiet >/dev/null 2>&1 || bad "second meson install failed"
if [ "$(cat "$ROOT$CONFIG")" = "# the operator's own" ]; then
    ok "$CONFIG untouched"
else
    bad "meson install overwrote $CONFIG"
fi
rm -f "$ROOT$CONFIG"

# --- 2. systemd-analyze verify ----------------------------------------------------------------
# verify UNIT_PATH: passes only if systemd-analyze exits 0 AND prints nothing: it exits 0 on
# unknown keys and unparsable values (it only warns), so the warnings have to count too.
VERIFY_OUT=""
verify() {
    VERIFY_OUT=$(cd / && systemd-analyze verify --root="$ROOT" --man=no "$1" 2>&1)
    local rc=$?
    [ $rc -eq 0 ] && [ -z "$VERIFY_OUT" ]
}

step "systemd-analyze verify --root=DESTDIR ($(systemd-analyze --version | head -n 1))"
for unit in "$SERVICE" "$UNITDIR/fulcrum-decap@eth0.service" "$UNITDIR/fulcrum-decap@br\\x2dlan.service"; do
    if verify "$unit"; then
        ok "verify ${unit##*/}: no errors, no warnings"
    else
        echo "$VERIFY_OUT"
        bad "verify ${unit##*/}"
    fi
done

step "verify refuses broken units (so the check above can fail)"
# broken NAME SED_EXPR WHAT: a copy of fulcrum.service edited by SED_EXPR must fail verify.
broken() {
    local copy="$UNITDIR/fulcrum-$1.service"
    sed -e "$2" "$ROOT$SERVICE" > "$ROOT$copy"
    if cmp -s "$ROOT$SERVICE" "$ROOT$copy"; then
        bad "broken copy '$1': the edit changed nothing"
    elif verify "$copy"; then
        bad "verify accepted a unit with $3"
    else
        ok "verify refuses a unit with $3: $(echo "$VERIFY_OUT" | head -n 1 | sed "s|$ROOT||")"
    fi
    rm -f "$ROOT$copy"
}
broken typo 's/^ProtectSystem=strict/ProtectSystm=strict/' "a misspelled key"
broken badtype 's/^Type=notify/Type=notfy/' "a bad Type="
broken nobinary "s|^ExecReload=$SBINDIR/fulcrumctl|ExecReload=$SBINDIR/fulcrumctl-missing|" "a missing ExecReload= program"
broken badtime 's/^WatchdogSec=10s/WatchdogSec=10 parsecs/' "an unparsable WatchdogSec="

# --- 3. systemd-analyze security --------------------------------------------------------------
# exposure UNIT_PATH: prints the table's remaining exposures and the overall line; checks the
# settings that must hold and the overall exposure.
exposure() {
    local unit=$1 name=${1##*/} out score
    out=$(cd / && systemd-analyze security --offline=yes --root="$ROOT" "$unit" 2>&1)
    echo "$out" | grep -E '^✗' | sed -E 's/ {2,}/  /g'
    for want in 'ProtectSystem=' 'NoNewPrivileges=' 'PrivateTmp=' 'PrivateDevices=' \
                'ProtectHome=' 'ProtectKernelModules=' 'SystemCallArchitectures=' \
                'CapabilityBoundingSet=~CAP_SYS_MODULE' 'CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)' \
                'RestrictAddressFamilies=~AF_PACKET' 'SystemCallFilter=~@debug' 'MemoryDenyWriteExecute='; do
        if echo "$out" | grep -qF "✓ $want "; then :; else bad "$name: '$want' is not satisfied"; fi
    done
    score=$(echo "$out" | sed -n -E "s/.*Overall exposure level for .*: ([0-9.]+) .*/\1/p")
    echo "$out" | grep 'Overall exposure level'
    if [ -z "$score" ]; then
        echo "$out" | tail -n 5
        bad "$name: no overall exposure level in systemd-analyze's output"
    elif awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
        ok "$name: exposure $score <= $MAX_EXPOSURE"
    else
        bad "$name: exposure $score, want <= $MAX_EXPOSURE"
    fi
}
step "systemd-analyze security --offline=yes fulcrum.service (remaining exposures)"
exposure "$SERVICE"
# fulcrum.service only (fulcrum-decap may mount bpffs): mounts and resource changes are refused.
for want in 'SystemCallFilter=~@mount' 'SystemCallFilter=~@resources'; do
    if (cd / && systemd-analyze security --offline=yes --root="$ROOT" "$SERVICE" 2>&1) | grep -qF "✓ $want "; then
        ok "fulcrum.service: '$want' is satisfied"
    else
        bad "fulcrum.service: '$want' is not satisfied"
    fi
done
step "systemd-analyze security --offline=yes fulcrum-decap@eth0.service (remaining exposures)"
exposure "$UNITDIR/fulcrum-decap@eth0.service"

# --- 4. stopping for good withdraws the VIP routes --------------------------------------------
# fulcrumd leaves its routes on every exit (a restart must not withdraw them); systemd knows when
# the stop is for good. test_routes_stop.py proves what `fulcrumd --withdraw-routes` does in a lab;
# this proves the units call it then and only then.
step "stopped for good: fulcrum-withdraw.service (OnFailure=) and ExecStopPost= on a stop job"
WITHDRAW=$(installed fulcrum-withdraw.service)
if [ -n "$WITHDRAW" ] && [ -s "$ROOT$WITHDRAW" ]; then ok "fulcrum-withdraw.service -> $WITHDRAW"; else bad "fulcrum-withdraw.service is not installed"; fi
expect_line "$ROOT$SERVICE" "OnFailure=fulcrum-withdraw.service"
expect_line "$ROOT$WITHDRAW" "ExecStart=$SBINDIR/fulcrumd --withdraw-routes -c $CONFIG"
if verify "$WITHDRAW"; then ok "verify ${WITHDRAW##*/}: no errors, no warnings"; else echo "$VERIFY_OUT"; bad "verify ${WITHDRAW##*/}"; fi
exposure "$WITHDRAW"

# The ExecStopPost= command as systemd would run it (%n expanded), with a fake systemctl that
# lists one job of the given type (or none) and a fake fulcrumd that records its arguments.
STOP_POST=$(sed -n 's/^ExecStopPost=//p' "$ROOT$SERVICE")
FAKE="$ROOT/fake-bin"
mkdir -p "$FAKE"
cat > "$FAKE/systemctl" <<'FAKE_SYSTEMCTL'
#!/bin/sh
echo "$*" >> "$FAKE_LOG.systemctl"
[ "$1" = list-jobs ] && [ -n "$FAKE_JOB" ] && echo "42 fulcrum.service $FAKE_JOB running"
exit 0
FAKE_SYSTEMCTL
printf '#!/bin/sh\necho "$*" > "$FAKE_LOG.fulcrumd"\n' > "$FAKE/fulcrumd"
chmod +x "$FAKE/systemctl" "$FAKE/fulcrumd"
stop_post() {   # stop_post JOB_TYPE: runs ExecStopPost=; prints what the fake fulcrumd got
    rm -f "$ROOT/fake.systemctl" "$ROOT/fake.fulcrumd"
    local cmd=${STOP_POST//%n/fulcrum.service}
    cmd=${cmd//"$SBINDIR/fulcrumd"/"$FAKE/fulcrumd"}
    (export PATH="$FAKE:$PATH" FAKE_JOB="$1" FAKE_LOG="$ROOT/fake"; eval "$cmd") || echo "exit $?"
    cat "$ROOT/fake.fulcrumd" 2>/dev/null
}
if [ -z "$STOP_POST" ]; then
    bad "fulcrum.service has no ExecStopPost="
else
    got=$(stop_post stop)
    [ "$got" = "--withdraw-routes -c $CONFIG" ] && ok "a stop job: fulcrumd --withdraw-routes -c $CONFIG" ||
        bad "a stop job: want fulcrumd --withdraw-routes -c $CONFIG, got '$got'"
    grep -q "list-jobs .*fulcrum.service" "$ROOT/fake.systemctl" && ok "it asks systemctl for fulcrum.service's jobs" ||
        bad "it did not ask for fulcrum.service's jobs: $(cat "$ROOT/fake.systemctl" 2>/dev/null)"
    got=$(stop_post restart)
    [ -z "$got" ] && ok "a restart job: routes kept (fulcrumd not run)" || bad "a restart job: got '$got'"
    got=$(stop_post "")
    [ -z "$got" ] && ok "no job (a crash Restart= follows): routes kept" || bad "no job: got '$got'"
fi

echo
if [ "$failures" -eq 0 ]; then
    echo "test_systemd_units: all checks passed"
    exit 0
fi
echo "test_systemd_units: $failures check(s) failed"
exit 1
