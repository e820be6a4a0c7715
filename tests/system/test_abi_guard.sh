#!/bin/bash
# The ABI guard (xdp/abi_guard.py, run by the build before the balancer object is compiled):
# pinned maps are adopted only when their pinned FULCRUM_ABI_VERSION equals the built one, so a
# change of xdp/abi.h or xdp/lib/maps.h without a new version must fail the build. On copies of
# the real files: the tree as it is passes; a comment-only change passes; a flipped flag bit, a
# changed enum value and a changed inner-map template each fail with a message that says to bump
# the version; the bump alone (without its history line) fails; bump + the printed history line
# passes; a history that reuses a checksum or lowers a version fails.
set -u

SRC=${FULCRUM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
GUARD="$SRC/xdp/abi_guard.py"
WORK=$(mktemp -d "/tmp/abiguard-$$.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

failures=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

fresh() {
    mkdir -p "$WORK/xdp/lib"
    cp "$SRC/xdp/abi.h" "$WORK/xdp/abi.h"
    cp "$SRC/xdp/lib/maps.h" "$WORK/xdp/lib/maps.h"
    cp "$SRC/xdp/abi_history" "$WORK/xdp/abi_history"
}
guard() { /usr/bin/python3 "$GUARD" "$WORK/xdp/abi.h" "$WORK/xdp/lib/maps.h" "$WORK/xdp/abi_history" >"$WORK/out" 2>&1; }
version() { sed -n 's/^#define FULCRUM_ABI_VERSION \([0-9]*\)$/\1/p' "$WORK/xdp/abi.h"; }

# expect_fail WHAT SED_EXPR FILE: the edit must change the file and make the guard fail with the
# advice to bump the version.
expect_fail() {
    fresh
    sed -i "$2" "$WORK/$3"
    if cmp -s "$SRC/$3" "$WORK/$3"; then bad "$1: the edit did not change $3 (test out of date)"; return; fi
    if guard; then bad "$1: the guard accepted it"; cat "$WORK/out"; return; fi
    if grep -q "Bump FULCRUM_ABI_VERSION to $(( $(version) + 1 ))" "$WORK/out"; then
        ok "$1: refused: $(head -c 150 "$WORK/out")..."
    else
        bad "$1: refused without the advice to bump: $(cat "$WORK/out")"
    fi
}

fresh
if guard; then ok "the tree as it is passes (version $(version))"; else bad "the tree fails: $(cat "$WORK/out")"; fi

fresh
sed -i 's|^/\* Default map sizes;|/* A new comment. */\n/* Default map sizes;|' "$WORK/xdp/abi.h"
sed -i 's/^\tFULCRUM_BACKEND_DRAINING = 2,/\tFULCRUM_BACKEND_DRAINING   =   2,/' "$WORK/xdp/abi.h"
if cmp -s "$SRC/xdp/abi.h" "$WORK/xdp/abi.h"; then bad "comment edit did not change abi.h"
elif guard; then ok "comments and whitespace only: accepted"; else bad "comment-only change refused: $(cat "$WORK/out")"; fi

expect_fail "a flag bit (FULCRUM_VIP_SERVING 1<<2 -> 1<<3)" 's/FULCRUM_VIP_SERVING (1u << 2)/FULCRUM_VIP_SERVING (1u << 3)/' xdp/abi.h
expect_fail "an enum value (DRAINING = 2 -> 4)" 's/FULCRUM_BACKEND_DRAINING = 2,/FULCRUM_BACKEND_DRAINING = 4,/' xdp/abi.h
expect_fail "the inner-map template (maglev_inner without BPF_F_INNER_MAP)" '/struct maglev_inner {/,/};/{/BPF_F_INNER_MAP/d}' xdp/lib/maps.h

step_bump() {
    fresh
    sed -i 's/FULCRUM_VIP_SERVING (1u << 2)/FULCRUM_VIP_SERVING (1u << 3)/' "$WORK/xdp/abi.h"
    guard
    advice=$(tail -n 1 "$WORK/out")
    old=$(version)
    sed -i "s/^#define FULCRUM_ABI_VERSION $old\$/#define FULCRUM_ABI_VERSION $((old + 1))/" "$WORK/xdp/abi.h"
}
step_bump
if guard; then bad "bumped without a history line: accepted"; else ok "bumped without a history line: refused ($(tail -n 1 "$WORK/out"))"; fi
echo "$advice" >>"$WORK/xdp/abi_history"
if guard; then ok "bumped to $(version) and appended '$advice': accepted"; else bad "bump + history line refused: $(cat "$WORK/out")"; fi

step_bump
sum=$(echo "$advice" | cut -d' ' -f2)
old_line=$(grep -v '^#' "$SRC/xdp/abi_history" | tail -n 1)
echo "$(version) $(echo "$old_line" | cut -d' ' -f2)" >>"$WORK/xdp/abi_history"
if guard; then bad "history reusing a checksum: accepted"; else ok "history reusing an old checksum: refused ($(head -n 1 "$WORK/out"))"; fi

fresh
echo "0 $(printf 'a%.0s' $(seq 64))" >>"$WORK/xdp/abi_history"
if guard; then bad "history with a lower version last: accepted"; else ok "history whose versions do not grow: refused ($(head -n 1 "$WORK/out"))"; fi

if [ "$failures" -eq 0 ]; then echo "PASS test_abi_guard"; exit 0; fi
echo "FAIL test_abi_guard: $failures failure(s)"
exit 1
