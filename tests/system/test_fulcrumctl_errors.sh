#!/bin/bash
# fulcrumctl without a real daemon: its argument checks (exit 2), the ways the control socket can
# be unreachable (exit 3), and the protocol of src/control/protocol.h against a fake fulcrumd (a
# small Python unix-socket server that records the request line and sends a prepared answer):
# the exact request bytes, the body on stdout (code 0) or stderr (other codes), the daemon's exit
# code passed through, and exit 4 for answers that do not follow the protocol.
set -u

BUILD=${FULCRUM_BUILD_DIR:?FULCRUM_BUILD_DIR must point to the build directory}
CTL="$BUILD/src/cmd/fulcrumctl"
PY=/usr/bin/python3

WORK=$(mktemp -d "/tmp/fctl-$$.XXXXXX")
SERVER_PID=""

failures=0
step() { echo "--- $*"; }
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

cleanup() {
    local rc=$?
    set +e
    stop_server
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

[ -x "$CTL" ] || { echo "FAIL: $CTL not built"; exit 1; }

# A fake fulcrumd: serves ONE connection on SOCKET, records what it read up to the first LF in
# RECORD, then sends ANSWER's bytes and closes; with "hang" it never answers. READY appears once
# it listens, so the client never races bind/listen.
cat >"$WORK/fake_fulcrumd.py" <<'EOF'
import os, socket, sys, time
path, answer_file, record_file, ready_file, mode = sys.argv[1:6]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
open(ready_file, "w").close()
conn, _ = server.accept()
conn.settimeout(10)
request = b""
while not request.endswith(b"\n"):
    chunk = conn.recv(4096)
    if not chunk:
        break
    request += chunk
with open(record_file, "wb") as f:
    f.write(request)
if mode == "hang":
    time.sleep(120)
conn.sendall(open(answer_file, "rb").read())
conn.close()
server.close()
os.unlink(path)
EOF

SOCK="$WORK/fulcrumd.sock"

# start_server ANSWER-BYTES (printf format) [hang]
start_server() {
    rm -f "$SOCK" "$WORK/ready" "$WORK/request"
    printf -- "$1" >"$WORK/answer"
    "$PY" "$WORK/fake_fulcrumd.py" "$SOCK" "$WORK/answer" "$WORK/request" "$WORK/ready" "${2:-once}" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        [ -e "$WORK/ready" ] && return 0
        sleep 0.05
    done
    bad "the fake fulcrumd did not start"
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=""
    fi
}

# ctl ARGS...: runs fulcrumctl, leaving its exit code in $rc and its output in $WORK/out, $WORK/err.
ctl() {
    "$CTL" "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
}

# expect_rc WHAT CODE
expect_rc() {
    if [ "$rc" -eq "$2" ]; then ok "$1: exit $rc"; else bad "$1: exit $rc, expected $2"; show; fi
}

# expect_exact WHAT FILE CONTENT (printf format): the file's bytes, exactly.
expect_exact() {
    if printf -- "$3" | cmp -s - "$2"; then
        ok "$1"
    else
        bad "$1: $(basename "$2") is not exactly '$3'"
        show
    fi
}

# expect_has WHAT FILE TEXT: the file contains TEXT (fixed string).
expect_has() {
    if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1: $(basename "$2") lacks '$3'"; show; fi
}

show() {
    echo "    stdout: $(head -c 600 "$WORK/out")"
    echo "    stderr: $(head -c 600 "$WORK/err")"
}

# ---------------------------------------------------------------- bad arguments: exit 2, no connection
# Every case points at a socket that does not exist: had fulcrumctl connected, it would exit 3.
NOSOCK="$WORK/absent.sock"

# usage_case WHAT MESSAGE USAGE-LINE ARGS...
usage_case() {
    local what=$1 message=$2 usage=$3
    shift 3
    step "usage error: $what"
    ctl -s "$NOSOCK" "$@"
    expect_rc "$what" 2
    expect_has "$what: names the problem" "$WORK/err" "$message"
    expect_has "$what: shows the usage" "$WORK/err" "$usage"
    expect_exact "$what: nothing on stdout" "$WORK/out" ""
}

LOOKUP_USAGE="usage: fulcrumctl [-s SOCKET] lookup SERVICE SRC_IP SRC_PORT [DST_PORT] [--quic-dcid HEX] [--json]"
DRAIN_USAGE="usage: fulcrumctl [-s SOCKET] drain SERVICE BACKEND [--json]"
usage_case "no command" "fulcrumctl: no command given" "usage: fulcrumctl [-s SOCKET] status [--json]"
usage_case "unknown command" 'fulcrumctl: unknown command "frobnicate"' \
    "usage: fulcrumctl [-s SOCKET] status [--json]" frobnicate
usage_case "unknown option" 'fulcrumctl: unknown option "--frob"' \
    "       fulcrumctl [-s SOCKET] stats [--json]" --frob status
usage_case "status with an argument" "fulcrumctl: status: expected 0 arguments, got 1" \
    "usage: fulcrumctl [-s SOCKET] status [--json]" status web
usage_case "drain with one argument" "fulcrumctl: drain: expected 2 arguments, got 1" "$DRAIN_USAGE" drain web
usage_case "undrain with three arguments" "fulcrumctl: undrain: expected 2 arguments, got 3" \
    "usage: fulcrumctl [-s SOCKET] undrain SERVICE BACKEND [--json]" undrain web 10.1.0.11 extra
usage_case "lookup with two arguments" "fulcrumctl: lookup: expected 3 or 4 arguments, got 2" \
    "$LOOKUP_USAGE" lookup web 198.18.0.100
usage_case "lookup with five arguments" "fulcrumctl: lookup: expected 3 or 4 arguments, got 5" \
    "$LOOKUP_USAGE" lookup web 198.18.0.100 40000 80 9
usage_case "SRC_IP not an address" 'fulcrumctl: lookup: SRC_IP "198.18.0" is not an IPv4 or IPv6 address' \
    "$LOOKUP_USAGE" lookup web 198.18.0 40000
usage_case "SRC_IP a name" 'fulcrumctl: lookup: SRC_IP "client.example" is not an IPv4 or IPv6 address' \
    "$LOOKUP_USAGE" lookup web client.example 40000
usage_case "SRC_PORT 0" 'fulcrumctl: lookup: SRC_PORT "0" is not a port (1..65535)' \
    "$LOOKUP_USAGE" lookup web 198.18.0.100 0
usage_case "SRC_PORT 65536" 'fulcrumctl: lookup: SRC_PORT "65536" is not a port (1..65535)' \
    "$LOOKUP_USAGE" lookup web 2001:db8::1 65536
usage_case "SRC_PORT not a number" 'fulcrumctl: lookup: SRC_PORT "http" is not a port (1..65535)' \
    "$LOOKUP_USAGE" lookup web 198.18.0.100 http
usage_case "SRC_PORT negative-looking" 'fulcrumctl: lookup: SRC_PORT "+80" is not a port (1..65535)' \
    "$LOOKUP_USAGE" lookup web 198.18.0.100 +80
usage_case "DST_PORT 0" 'fulcrumctl: lookup: DST_PORT "0" is not a port (1..65535)' \
    "$LOOKUP_USAGE" lookup web 198.18.0.100 40000 0
usage_case "--quic-dcid odd digits" 'fulcrumctl: --quic-dcid "5a0" is not a connection ID: 1..20 bytes in hex' \
    "$LOOKUP_USAGE" lookup h3 198.18.0.100 40000 --quic-dcid 5a0
usage_case "--quic-dcid not hex" 'fulcrumctl: --quic-dcid "5g" is not a connection ID' \
    "$LOOKUP_USAGE" lookup h3 198.18.0.100 40000 --quic-dcid 5g
usage_case "--quic-dcid of 21 bytes" 'is not a connection ID: 1..20 bytes' \
    "$LOOKUP_USAGE" lookup h3 198.18.0.100 40000 --quic-dcid 000102030405060708090a0b0c0d0e0f1011121314
usage_case "--quic-dcid without a value" "fulcrumctl: --quic-dcid needs a value" "usage: fulcrumctl [-s SOCKET] status" \
    lookup h3 198.18.0.100 40000 --quic-dcid
usage_case "--quic-dcid with status" "fulcrumctl: --quic-dcid goes with lookup" \
    "usage: fulcrumctl [-s SOCKET] status [--json]" status --quic-dcid 5a01
usage_case "argument with a space" 'fulcrumctl: drain: SERVICE "my web" must be one word' \
    "$DRAIN_USAGE" drain "my web" 10.1.0.11
usage_case "-s without a path" "fulcrumctl: -s needs a value" "usage: fulcrumctl [-s SOCKET] status" status -s
usage_case "bad --timeout" 'fulcrumctl: --timeout "0" is not a number of seconds' \
    "usage: fulcrumctl [-s SOCKET] status" --timeout 0 status

step "--help and --version"
ctl --help
expect_rc "--help" 0
expect_has "--help: usage on stdout" "$WORK/out" "fulcrumctl [-s SOCKET] lookup SERVICE SRC_IP SRC_PORT [DST_PORT] [--quic-dcid HEX] [--json]"
expect_has "--help: explains exit codes" "$WORK/out" "3 no daemon at the socket"
expect_exact "--help: nothing on stderr" "$WORK/err" ""
ctl status -h
expect_rc "-h after a command" 0
ctl --version
expect_rc "--version" 0
expect_has "--version prints it" "$WORK/out" "fulcrumctl "

# ---------------------------------------------------------------- unreachable daemon: exit 3
step "no daemon at the given socket"
ctl -s "$NOSOCK" status
expect_rc "missing socket" 3
expect_exact "missing socket: message" "$WORK/err" \
    "fulcrumctl: no fulcrumd at $NOSOCK (socket not found): is fulcrumd running? (systemctl status fulcrum)\n"
FULCRUM_SOCKET="$NOSOCK" ctl status
expect_rc "missing socket from \$FULCRUM_SOCKET" 3
expect_has "\$FULCRUM_SOCKET is used" "$WORK/err" "no fulcrumd at $NOSOCK (socket not found)"

# The default socket, whatever this host has at /run/fulcrum (a running fulcrumd must not turn
# the check into a skip): fulcrumctl runs in a private mount namespace with an empty tmpfs on /run.
step "no daemon at the default socket (private mount namespace, empty /run)"
unshare --mount --propagation private -- bash -c \
    'mount -t tmpfs fctl-run /run && exec env -u FULCRUM_SOCKET "$0" status' "$CTL" >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_rc "default socket" 3
expect_exact "default socket: message" "$WORK/err" \
    "fulcrumctl: no fulcrumd at /run/fulcrum/fulcrumd.sock (socket not found): is fulcrumd running? (systemctl status fulcrum)\n"

step "the default socket is the one used (fake fulcrumd at /run/fulcrum/fulcrumd.sock, private /run)"
printf -- '0\nok\n' >"$WORK/answer"
rm -f "$WORK/request"
unshare --mount --propagation private -- bash -c '
    mount -t tmpfs fctl-run /run && mkdir /run/fulcrum || exit 90
    "$1" "$2" /run/fulcrum/fulcrumd.sock "$3/answer" "$3/request" "$3/ready-default" once &
    for _ in $(seq 100); do [ -e "$3/ready-default" ] && break; sleep 0.05; done
    env -u FULCRUM_SOCKET "$0" status
    rc=$?
    wait
    exit $rc' "$CTL" "$PY" "$WORK/fake_fulcrumd.py" "$WORK" >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_rc "default socket, fake daemon" 0
expect_exact "default socket: request" "$WORK/request" 'text status\n'
expect_exact "default socket: body on stdout" "$WORK/out" 'ok\n'

step "a regular file as the socket"
echo "not a socket" >"$WORK/regular"
ctl -s "$WORK/regular" status
expect_rc "regular file" 3
expect_exact "regular file: message" "$WORK/err" \
    "fulcrumctl: no fulcrumd at $WORK/regular: not a socket (wrong path? see -s SOCKET)\n"

step "a directory as the socket"
ctl -s "$WORK" status
expect_rc "directory" 3
expect_has "directory: message" "$WORK/err" "not a socket"

step "a stale socket (bound, then closed without unlinking)"
STALE="$WORK/stale.sock"
"$PY" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.close()' "$STALE"
[ -S "$STALE" ] || bad "could not create the stale socket"
ctl -s "$STALE" status
expect_rc "stale socket" 3
expect_exact "stale socket: message" "$WORK/err" \
    "fulcrumctl: no fulcrumd at $STALE: socket exists but nobody listens (stale socket: fulcrumd not running)\n"

step "a socket path longer than sun_path"
LONG="$WORK/$(printf 'x%.0s' $(seq 120)).sock"
ctl -s "$LONG" status
expect_rc "long path" 3
expect_has "long path: message" "$WORK/err" "socket path too long"

# Permission denied needs an unprivileged user who can still run the binary and reach the socket:
# a copy of fulcrumctl in $WORK (0755), so it does not matter whether nobody can reach the build
# directory (a clone under /root cannot be).
step "permission denied (as nobody, on a root-only socket)"
chmod 0755 "$WORK"
install -m 0755 "$CTL" "$WORK/fulcrumctl"
chmod 0600 "$STALE"
if ! command -v setpriv >/dev/null; then
    bad "permission denied: setpriv (util-linux) is missing"
elif ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$WORK/fulcrumctl"; then
    bad "permission denied: nobody cannot run $WORK/fulcrumctl"
else
    setpriv --reuid=65534 --regid=65534 --clear-groups "$WORK/fulcrumctl" -s "$STALE" status >"$WORK/out" 2>"$WORK/err"
    rc=$?
    expect_rc "permission denied" 3
    expect_exact "permission denied: message" "$WORK/err" \
        "fulcrumctl: cannot reach fulcrumd at $STALE: permission denied (run as root)\n"
fi
chmod 0700 "$WORK"

# ---------------------------------------------------------------- the protocol, against a fake fulcrumd
# exchange WHAT ANSWER REQUEST -- ARGS...: one request/answer; checks the exact request bytes.
exchange() {
    local what=$1 answer=$2 request=$3
    shift 4
    step "$what"
    start_server "$answer"
    ctl -s "$SOCK" "$@"
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
    expect_exact "$what: request" "$WORK/request" "$request"
}

exchange "status, text" '0\nweb 192.0.2.10:80 tcp\n  10.1.0.11 active up\n' 'text status\n' -- status
expect_rc "status" 0
expect_exact "status: body on stdout" "$WORK/out" 'web 192.0.2.10:80 tcp\n  10.1.0.11 active up\n'
expect_exact "status: nothing on stderr" "$WORK/err" ""

exchange "lookup, json (--json first)" '0\n{"backend":"10.1.0.11"}' \
    'json lookup web 198.18.0.100 40000\n' -- --json lookup web 198.18.0.100 40000
expect_rc "lookup" 0
expect_exact "lookup: body on stdout, final newline added" "$WORK/out" '{"backend":"10.1.0.11"}\n'
expect_exact "lookup: nothing on stderr" "$WORK/err" ""

exchange "lookup with DST_PORT over IPv6, --json last" '0\n{}\n' \
    'json lookup all 2001:db8::1 40000 443\n' -- lookup all 2001:db8::1 40000 443 --json
expect_rc "lookup v6" 0
exchange "lookup with --quic-dcid before the arguments: the option goes last, as NAME=VALUE" '0\n{}\n' \
    'text lookup h3 198.18.0.100 40000 quic-dcid=5A0202a1\n' -- lookup --quic-dcid 5A0202a1 h3 198.18.0.100 40000
expect_rc "lookup --quic-dcid" 0

exchange "drain, the daemon says it failed" '1\nfulcrumctl: unknown service "web"\n' \
    'text drain web 10.1.0.11\n' -- drain web 10.1.0.11
expect_rc "drain failed" 1
expect_exact "drain failed: body on stderr" "$WORK/err" 'fulcrumctl: unknown service "web"\n'
expect_exact "drain failed: nothing on stdout" "$WORK/out" ""

exchange "reload, the daemon's exit code passes through" '2\nbad request\n' 'text reload\n' -- reload
expect_rc "reload" 2
expect_exact "reload: body on stderr" "$WORK/err" 'bad request\n'

step "the socket from \$FULCRUM_SOCKET"
start_server '0\n'
FULCRUM_SOCKET="$SOCK" ctl undrain web 10.1.0.11
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=""
expect_exact "env socket: request" "$WORK/request" 'text undrain web 10.1.0.11\n'
expect_rc "undrain, empty body" 0
expect_exact "undrain: empty stdout" "$WORK/out" ""

# Malformed answers: exit 4 and a message saying what was wrong.
malformed() {
    local what=$1 answer=$2 message=$3
    exchange "malformed: $what" "$answer" 'text stats\n' -- stats
    expect_rc "malformed: $what" 4
    expect_has "malformed: $what: message" "$WORK/err" "$message"
    expect_exact "malformed: $what: nothing on stdout" "$WORK/out" ""
}
BAD_CODE="fulcrumctl: malformed answer from fulcrumd (expected an exit code on the first line"
malformed "no exit code" 'hello\nworld\n' "$BAD_CODE, got \"hello\")"
malformed "no newline after the code" '0' "$BAD_CODE, got \"0\")"
malformed "code out of range" '300\nbody\n' "$BAD_CODE, got \"300\")"
malformed "negative code" '-1\nbody\n' "$BAD_CODE, got \"-1\")"
malformed "empty answer" '' "fulcrumctl: fulcrumd closed the connection without answering"

step "a daemon that never answers (--timeout 1)"
start_server '0\n' hang
start=$(date +%s)
ctl -s "$SOCK" --timeout 1 status
elapsed=$(($(date +%s) - start))
stop_server
expect_rc "timeout" 3
expect_exact "timeout: message" "$WORK/err" "fulcrumctl: fulcrumd at $SOCK did not answer in 1 s\n"
if [ "$elapsed" -le 5 ]; then ok "timeout: gave up after ${elapsed} s"; else bad "timeout took ${elapsed} s"; fi

echo
if [ "$failures" -ne 0 ]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "all fulcrumctl checks passed"
