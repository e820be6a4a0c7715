#!/usr/bin/env python3
"""abi_guard.py ABI_H MAPS_H HISTORY [STAMP]: fails the build when the ABI text changed without a
new FULCRUM_ABI_VERSION.

fulcrumd adopts pinned maps only when their pinned ABI version equals the built one (pinning.cpp),
so a change of a layout, an enum value, a flag bit or a map definition that keeps the version would
be adopted silently. This guard makes forgetting the bump impossible: the checksum of the ABI text
(abi.h and lib/maps.h without comments, whitespace and the version line, so only tokens count) must be the one the
HISTORY file records for the version abi.h declares, and HISTORY is append-only by convention: one
"VERSION CHECKSUM" line per version, versions increasing, each checksum once. A changed text thus
needs a new version line (editing an old line would be plain in review). Chosen over comparing BTF
of the pinned map types because BTF sees neither #define flag bits nor constants such as limits.
"""
import hashlib
import re
import sys


def tokens(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    # The version line itself is not part of the text it versions (bumping it must not move the sum).
    text = re.sub(r"^#define\s+FULCRUM_ABI_VERSION\s+\d+\s*$", " ", text, flags=re.M)
    return " ".join(text.split())


def checksum(abi_h, maps_h):
    h = hashlib.sha256()
    for path in (abi_h, maps_h):
        h.update(tokens(path).encode() + b"\n")
    return h.hexdigest()


def declared_version(abi_h):
    found = re.findall(r"^#define\s+FULCRUM_ABI_VERSION\s+(\d+)\s*$", open(abi_h).read(), flags=re.M)
    if len(found) != 1:
        raise SystemExit(f"abi_guard: {abi_h}: expected one '#define FULCRUM_ABI_VERSION N' line, found {len(found)}")
    return int(found[0])


def history(path):
    rows = []
    for number, line in enumerate(open(path), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or not re.fullmatch(r"[0-9a-f]{64}", parts[1]):
            raise SystemExit(f"abi_guard: {path}:{number}: expected 'VERSION SHA256', got {line!r}")
        rows.append((int(parts[0]), parts[1], number))
    for (v1, c1, _), (v2, c2, n2) in zip(rows, rows[1:]):
        if v2 <= v1:
            raise SystemExit(f"abi_guard: {path}:{n2}: version {v2} does not follow {v1} (versions only grow)")
    seen = {}
    for v, c, n in rows:
        if c in seen:
            raise SystemExit(f"abi_guard: {path}:{n}: checksum already recorded for version {seen[c]}: "
                             "a changed ABI text gets a new version")
        seen[c] = v
    return rows


def main(argv):
    if len(argv) not in (4, 5):
        raise SystemExit("usage: abi_guard.py ABI_H MAPS_H HISTORY [STAMP]")
    abi_h, maps_h, hist = argv[1:4]
    version, actual = declared_version(abi_h), checksum(abi_h, maps_h)
    rows = history(hist)
    last = rows[-1] if rows else None
    if last is None or last[0] != version or last[1] != actual:
        recorded = {c: v for v, c, _ in rows}
        if actual in recorded and recorded[actual] != version:
            why = (f"FULCRUM_ABI_VERSION is {version}, but this ABI text was recorded as version "
                   f"{recorded[actual]}")
        elif last is not None and last[0] == version:
            why = (f"the ABI text changed since version {version} was recorded (a layout, enum value, flag "
                   f"bit, limit or map definition): pinned maps of the old build would be adopted as if "
                   f"nothing changed. Bump FULCRUM_ABI_VERSION to {version + 1} in {abi_h}")
        else:
            why = f"version {version} is not the last one recorded in {hist}"
        raise SystemExit(f"abi_guard: {why}; then append this line to {hist}:\n"
                         f"{version if last is None or last[0] != version else version + 1} {actual}")
    if len(argv) == 5:
        with open(argv[4], "w") as f:
            f.write(f"{version} {actual}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
