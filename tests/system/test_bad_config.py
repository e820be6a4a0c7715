#!/usr/bin/python3
"""Broken configuration files are refused by the programs, with exact file:line:column messages,
and refusing touches nothing in the kernel.

For each broken file (YAML syntax error, unknown key with a suggestion, bad address, non-prime
table_size, IPv6 VIP with an IPv4 backend, missing tunnel.source_v4 for IPv4 backends, duplicate
service, bad duration, a ',' where a YAML document starts, a file over 8 MiB, missing file):
- `fulcrumd --check -c FILE` exits 1 and prints exactly the expected error lines and the count;
- plain `fulcrumd -c FILE` in the balancer namespace exits non-zero with the same lines on stderr,
  and nothing is attached: no XDP on the balancer's eth0, no pin directory, no lock file.
A valid file passes --check (exit 0, "OK"), and as a positive control of the "nothing attached"
checks, fulcrumd started with it does attach and pin, and removes both on SIGTERM (on_exit: detach).
--version prints "fulcrumd X.Y.Z" and exits 0."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulcrum_lab as fl  # noqa: E402
from st_helpers import lab_up, check, main, service_yaml, step  # noqa: E402

VIP = "198.18.100.10"


def cases(lab):
    """(kind, file text, expected error lines with FILE standing for the path)."""
    good_svc = service_yaml("web", VIP, 80, "tcp", [(fl.backend_v4(1), 100), (fl.backend_v4(2), None)])
    base = lab.config_text(good_svc)
    # base, numbered: 14 services: / 15 - name: web / 16 vip / 17 port / 18 protocol: tcp / 19 backends:
    # 20 - address: 198.18.0.11 / 21 weight: 100 / 22 - address: 198.18.0.12
    lines = base.splitlines()
    assert lines[17] == "    protocol: tcp" and lines[21] == "      - address: 198.18.0.12", lines
    return base, [
        ("YAML syntax error", base.replace("    protocol: tcp\n", "    protocol: [tcp\n"),
         ["FILE:19:13: invalid YAML: end of sequence flow not found"]),
        ("unknown key, with a suggestion", base.replace("    protocol: tcp\n", "    protocl: tcp\n"),
         ['FILE:15:5: services[0].protocol: missing required key "protocol"',
          'FILE:18:5: services[0].protocl: unknown key "protocl"; did you mean "protocol"?']),
        ("bad address", base.replace("198.18.0.12", "198.18.0.300"),
         ['FILE:22:18: services[0].backends[1].address: expected an IPv4 or IPv6 address, got "198.18.0.300"']),
        ("non-prime table_size",
         lab.config_text(service_yaml("web", VIP, 80, "tcp", [(fl.backend_v4(1), 100)], table_size=65536)),
         ['FILE:19:17: services[0].table_size: expected a prime number 3..1048573 (e.g. 65537), got "65536"']),
        ("IPv6 VIP with an IPv4 backend",
         lab.config_text(service_yaml("web6", "2001:db8:100::10", 80, "tcp", [(fl.backend_v4(1), 100)])),
         ['FILE:20:18: services[0].backends[0].address: expected an IPv6 backend for the IPv6 vip '
          '2001:db8:100::10 (IPv6 in IPv4 is not supported), got "198.18.0.11"']),
        ("missing tunnel.source_v4 with IPv4 backends", base.replace(f"  source_v4: {fl.BALANCER_V4}\n", ""),
         ["FILE:19:18: services[0].backends[0].address: an IPv4 backend needs tunnel.source_v4 "
          "(the outer source address), which is not set"]),
        ("duplicate service",
         lab.config_text(good_svc + service_yaml("web", "198.18.100.11", 80, "tcp", [(fl.backend_v4(1), 100)])),
         ['FILE:23:11: services[1].name: duplicate service name "web" (first at line 15)']),
        ("bad duration", lab.config_text(good_svc, extra="flows:\n  udp_idle_timeout: 30x\n"),
         ['FILE:15:21: flows.udp_idle_timeout: expected a duration like 500ms, 2s, 1m or 1h, got "30x"']),
        # yaml-cpp 0.7 reported an empty document at the ',' without consuming it, for ever: --check
        # used gigabytes until killed (the config fuzzer's out-of-memory, issue 13).
        ("a ',' where a YAML document starts", base + "---\n,\n",
         [f"FILE:{len(lines) + 2}:1: invalid YAML: expected a value or the end of the file here "
          "(is a ',' outside [ ] or { }?)"]),
        ("a file over 8 MiB", base + "#" + "x" * (8 * 1024 * 1024) + "\n",
         [f"FILE:1:1: expected a file of at most 8 MiB (8388608 bytes), got {len(base) + 8 * 1024 * 1024 + 2} bytes"]),
        ("missing file", None, ["FILE: cannot read the file: No such file or directory"]),
    ]


def error_lines(stderr):
    """The config error lines and the 'N error(s)' count line, in order."""
    return [line for line in stderr.splitlines() if re.match(r"^/.*:\d+:\d+: |^/\S+: cannot read|^\d+ errors?$", line)]


def nothing_attached(lab, what):
    # (The lock is the pin directory's own: no pin directory, no lock.)
    xdp, pins = lab.xdp_attached(lab.balancer, "eth0"), os.path.exists(lab.pin_path)
    check(not (xdp or pins), f"{what}: nothing attached (no XDP on eth0, no {lab.pin_path})",
          f"XDP attached: {xdp}, pin path exists: {pins}")


def test():
    lab = fl.Lab(backends=2, prefix=f"bad{os.getpid() % 100000}")
    try:
        step("--version")
        r = subprocess.run([fl.FULCRUMD, "--version"], capture_output=True, text=True, timeout=10)
        check(r.returncode == 0 and re.fullmatch(r"fulcrumd \d+\.\d+\.\d+\S*\n", r.stdout),
              f"--version exits 0 and prints {r.stdout.strip()!r}", repr(r.stdout + r.stderr))

        step("lab up (balancer namespace with eth0, 2 backends)")
        lab_up(lab)
        base, broken = cases(lab)
        nothing_attached(lab, "before any start")

        good = lab.write_config(base, "good.yaml")
        r = subprocess.run([fl.FULCRUMD, "--check", "-c", good], capture_output=True, text=True, timeout=20)
        lines = r.stdout.strip().splitlines()
        # The lab's file sets no bpf.hash_seed: --check adds a note about it (not an error).
        check(r.returncode == 0 and lines[:1] == [f"{good}: OK (1 services)"] and len(lines) == 2 and
              lines[1].startswith(f"{good}: note: bpf.hash_seed is not set") and not r.stderr,
              f"valid file: --check exits 0 and prints {lines[0]!r} and the hash-seed note", r.stdout + r.stderr)

        for i, (kind, text, expected) in enumerate(broken):
            path = lab.write_config(text, f"bad{i}.yaml") if text is not None else f"{lab.workdir}/absent.yaml"
            want = [e.replace("FILE", path, 1) for e in expected]
            want.append(f"{len(expected)} error" + ("s" if len(expected) > 1 else ""))
            step(f"{kind}: {os.path.basename(path)}")

            r = subprocess.run([fl.FULCRUMD, "--check", "-c", path], capture_output=True, text=True, timeout=20)
            got = error_lines(r.stderr)
            check(r.returncode == 1, f"--check exits 1 (got {r.returncode})", r.stdout + r.stderr)
            check(got == want and not r.stdout, "--check prints exactly:\n      " + "\n      ".join(want),
                  "got stdout:\n" + r.stdout + "stderr:\n" + r.stderr)
            nothing_attached(lab, "--check")

            try:
                r = subprocess.run(lab.ns(lab.balancer, f"{fl.FULCRUMD} -c {path}"), shell=True,
                                   capture_output=True, text=True, timeout=30)
            except subprocess.TimeoutExpired as e:
                check(False, "fulcrumd -c with a broken file exits", f"still running after 30 s: {e.stderr}")
            got = error_lines(r.stderr)
            check(r.returncode != 0, f"fulcrumd -c exits non-zero (got {r.returncode})")
            check(got == want, "fulcrumd -c prints the same error lines on stderr",
                  "stderr:\n" + r.stderr)
            check(f"{path} is not valid; nothing was attached" in r.stderr,
                  "and says the file is not valid and nothing was attached", r.stderr)
            nothing_attached(lab, "fulcrumd -c")

        step("positive control: fulcrumd -c with the valid file attaches and pins, and detaches on SIGTERM")
        lab.start_fulcrumd(good)
        check(lab.xdp_attached(lab.balancer, "eth0"), "XDP attached on the balancer's eth0")
        check(os.path.isdir(lab.pin_path) and os.listdir(lab.pin_path), f"pins under {lab.pin_path}: "
              f"{sorted(os.listdir(lab.pin_path)) if os.path.isdir(lab.pin_path) else None}")
        code = lab.stop_fulcrumd()
        check(code == 0, f"fulcrumd exits 0 on SIGTERM (got {code})")
        check(not lab.xdp_attached(lab.balancer, "eth0"), "on_exit: detach removed the XDP program")
        check(not os.path.exists(lab.pin_path) or not os.listdir(lab.pin_path), "and the pins",
              str(os.listdir(lab.pin_path)) if os.path.exists(lab.pin_path) else "")
    finally:
        lab.down()


if __name__ == "__main__":
    main("test_bad_config", test)
