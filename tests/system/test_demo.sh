#!/usr/bin/env bash
# The demo (./run demo) runs start to finish on this machine: every step it claims holds
# (demo.py exits non-zero if a connection or exchange fails, a backend's share is outside
# n*p +- 4.5 sigma of its weight, or a reply from a VIP reaches the balancer's eth0 / the balancer
# receives more than the client sent plus half the replies), and it leaves no namespace behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(/usr/bin/python3 tests/system/demo.py 2>&1) || { echo "$out"; echo "demo failed"; exit 1; }
echo "$out" | tail -34
grep -q "demo complete" <<<"$out"
if ip netns list | grep -q '^fdemo-'; then
    echo "demo left namespaces behind"; exit 1
fi
echo "demo ran and cleaned up"
