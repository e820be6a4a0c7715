#!/bin/bash
# The Debian package, end to end on this machine:
#   1. `./run package` builds build-deb/fulcrum_VERSION_ARCH.deb with dpkg-buildpackage (debian/)
#      (under `./run test` it is built before the tests start, and named in FULCRUM_DEB);
#   2. lintian reports no error and no warning beyond LINTIAN_KEPT (each kept one says why);
#   3. `dpkg -i` installs it: the programs every unit's Exec*= names exist, the example is the
#      conffile /etc/fulcrum/fulcrum.yaml and `fulcrumd --check` accepts it, the man pages are
#      where man finds them, the `fulcrum` system user exists (exec checks run as it),
#      fulcrum.service is installed but not enabled (an appliance starts when its operator says
#      so), and `systemd-analyze verify` accepts the installed units;
#   4. `dpkg --purge` removes it and leaves none of its files or directories behind.
# Whatever happens, the package is purged at exit.
set -u
cd "$(dirname "$0")/../.."

# Lintian tags kept, and why:
#   initial-upload-closes-no-bugs: a project's own package closes no Debian bug.
#   no-nmu-in-changelog / source-nmu-has-incorrect-version-number: a native package from its
#     upstream, not a Debian upload (lintian guesses an NMU from the maintainer address).
LINTIAN_KEPT="initial-upload-closes-no-bugs no-nmu-in-changelog source-nmu-has-incorrect-version-number"

failures=0
step() { echo "--- $*"; }
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*"; exit 1; }

if dpkg-query -W -f='${Status}' fulcrum 2>/dev/null | grep -q installed; then
    die "a fulcrum package is already installed on this machine; this test installs and purges its own"
fi
# The package keeps its system user on purge (Debian policy); the test removes it again if it
# made it, so the tests after this one see the machine as it was (exec checks default to the
# `fulcrum` user when it exists, `nobody` otherwise).
user_before=$(getent passwd fulcrum || true)
cleanup() {
    local rc=$?
    if dpkg-query -W -f='${Status}' fulcrum 2>/dev/null | grep -q "installed\|config-files"; then
        dpkg --purge fulcrum >/dev/null 2>&1
    fi
    if [ -z "$user_before" ] && getent passwd fulcrum >/dev/null; then
        userdel fulcrum 2>/dev/null
        getent group fulcrum >/dev/null && groupdel fulcrum 2>/dev/null
    fi
    exit "$rc"
}
trap cleanup EXIT

if [ -n "${FULCRUM_DEB_ERROR:-}" ]; then
    tail -40 "$FULCRUM_DEB_ERROR"
    die "./run test could not build the package (the whole log: $FULCRUM_DEB_ERROR)"
elif [ -n "${FULCRUM_DEB:-}" ]; then
    # ./run test builds the package before the tests (outside their time limit) and names it here.
    step "the package ./run test built: $FULCRUM_DEB"
    deb=$FULCRUM_DEB
else
    step "./run package"
    out=$(./run package 2>&1) || { echo "$out" | tail -40; die "./run package failed"; }
    deb=$(echo "$out" | tail -1)
fi
[ -f "$deb" ] || die "./run package did not print a .deb (last line: $deb)"
version=$(dpkg-deb -f "$deb" Version)
ok "$deb ($(du -k "$deb" | cut -f1) KiB), version $version"

step "lintian"
lint=$(lintian --tag-display-limit 0 "$deb" 2>&1)
echo "$lint" | sed 's/^/    /'
while read -r level _ tag _; do
    case "$level" in
    E:|W:)
        if [[ " $LINTIAN_KEPT " == *" $tag "* ]]; then
            ok "lintian $level $tag (kept: see LINTIAN_KEPT)"
        else
            bad "lintian $level $tag"
        fi
        ;;
    esac
done <<<"$lint"

step "dpkg -i"
dpkg -i "$deb" > /tmp/fulcrum-dpkg-i.$$ 2>&1 || { cat /tmp/fulcrum-dpkg-i.$$; rm -f /tmp/fulcrum-dpkg-i.$$; die "dpkg -i failed"; }
rm -f /tmp/fulcrum-dpkg-i.$$
mapfile -t files < <(dpkg -L fulcrum)
ok "installed: ${#files[@]} paths"

units=$(dpkg -L fulcrum | grep -E '/systemd/system/[^/]+\.service$')
[ "$(echo "$units" | wc -l)" -eq 3 ] || bad "expected 3 units, got: $units"
for unit in $units; do
    for program in $(grep -E '^Exec[A-Za-z]*=' "$unit" | sed -E 's/^[^=]*=[-+!@:]*//' | awk '{print $1}' | sort -u); do
        if [ -x "$program" ]; then ok "$(basename "$unit"): $program is installed"; else bad "$(basename "$unit") runs $program, which is not installed"; fi
    done
done

conffiles=$(dpkg-query -W -f='${Conffiles}' fulcrum)
if grep -q "^ /etc/fulcrum/fulcrum.yaml " <<<"$conffiles"; then ok "/etc/fulcrum/fulcrum.yaml is a conffile"; else bad "/etc/fulcrum/fulcrum.yaml is not a conffile: $conffiles"; fi
if check=$(/usr/sbin/fulcrumd --check -c /etc/fulcrum/fulcrum.yaml 2>&1); then
    ok "fulcrumd --check -c /etc/fulcrum/fulcrum.yaml: $(echo "$check" | head -1)"
else
    bad "fulcrumd --check rejects the installed config: $check"
fi
for page in fulcrumd fulcrumctl fulcrum-decap fulcrum.yaml; do
    path=$(man -w "$page" 2>/dev/null)
    if [[ "$path" == /usr/share/man/* ]]; then ok "man $page: $path"; else bad "man -w $page found '$path'"; fi
done
if getent passwd fulcrum >/dev/null; then ok "system user fulcrum: $(getent passwd fulcrum)"; else bad "no fulcrum user"; fi
state=$(systemctl is-enabled fulcrum.service 2>/dev/null)
if [ "$state" = "disabled" ]; then ok "fulcrum.service is installed and $state"; else bad "fulcrum.service is '$state', expected disabled"; fi
verify=$(systemd-analyze verify fulcrum.service fulcrum-withdraw.service fulcrum-decap@eth0.service 2>&1)
if [ -z "$verify" ]; then ok "systemd-analyze verify: the installed units, no warning"; else bad "systemd-analyze verify: $verify"; fi

step "dpkg --purge"
dpkg --purge fulcrum >/dev/null 2>&1 || bad "dpkg --purge failed"
left=()
for path in "${files[@]}"; do
    # Directories the package shares with the system (/usr/sbin, /usr/share/man/man8, ...) stay.
    [ -d "$path" ] && [ "$path" != /etc/fulcrum ] && [[ "$path" != */fulcrum ]] && continue
    [ -e "$path" ] && left+=("$path")
done
if [ ${#left[@]} -eq 0 ]; then ok "purged: none of its ${#files[@]} paths left"; else bad "left after purge: ${left[*]}"; fi
if getent passwd fulcrum >/dev/null; then ok "the fulcrum user stays (Debian keeps system users; this test removes it at exit if it made it)"; else bad "the purge removed the fulcrum user"; fi
dpkg-query -W fulcrum >/dev/null 2>&1 && bad "dpkg still knows the package"

[ "$failures" -eq 0 ] || { echo "$failures failed"; exit 1; }
echo "package built, checked, installed, verified and purged"
