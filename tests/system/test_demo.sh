#!/usr/bin/env bash
# The demo (./run demo) runs start to finish on this machine: every step it claims holds
# (demo.py exits non-zero if connections fail, a backend gets nothing, or replies cross the
# balancer), and it leaves no namespace behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(/usr/bin/python3 tests/system/demo.py 2>&1) || { echo "$out"; echo "demo failed"; exit 1; }
echo "$out" | tail -20
grep -q "demo complete" <<<"$out"
if ip netns list | grep -q '^fdemo-'; then
    echo "demo left namespaces behind"; exit 1
fi
echo "demo ran and cleaned up"
