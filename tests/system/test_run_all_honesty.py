#!/usr/bin/python3
"""tests/run_all cannot overstate: it is run on a scratch build directory whose only Catch2
binary is build/tests/fake_catch2 (a real Catch2 binary with test cases first, second, third;
FAKE_CATCH2_MODE makes `second` misbehave) and on scratch system tests, and its last line must be
exactly the honest count:

  pass      3 passed, 0 failed   (control)
  fail      2 passed, 1 failed   (second fails a CHECK)
  crash     1 passed, 2 failed   (second dies of SIGSEGV: second failed, third "not run")
  hang      1 passed, 2 failed   (second never returns; FULCRUM_TEST_TIMEOUT=4 stops it)
  kill      0-1 passed, rest failed, 3 in all (second SIGKILLs itself: no report handler runs,
            the report is cut short; nothing it lacks may count as passed)
  noassert  2 passed, 1 failed   (second has no assertion: -w NoAssertions)
  skip      a system test that exits 0 but prints "skip: ..." fails; one that prints nothing
            like it passes: 1 passed, 1 failed; a skip listed in SKIP_ALLOWED passes and is
            printed with its reason; the allow-list is printed in the last lines.

The sanitized runs (asan/NAME), with build/tests/fake_catch2_asan (the same fake, built with
ASan+UBSan) as a scratch sanitized build's test_unit and "fulcrumd":
  pass      asan/test_unit: 3 passed, 0 failed (control)
  leak      asan/test_unit: every case passes but LeakSanitizer reports at exit: 3 passed, 1 failed
  overflow  asan/test_unit: heap-buffer-overflow in second: 1 passed, 2 failed (third not run)
  ub        asan/test_unit: signed overflow in second: 1 passed, 2 failed
  daemon    asan/test_metrics.py, a scratch test that runs the fake in leak mode in the background
            and exits 0 without reading its status: 0 passed, 1 failed (the report fails it)
"""
import importlib.machinery
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import contextlib

SOURCE = os.environ.get("FULCRUM_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("FULCRUM_BUILD_DIR") or os.path.join(SOURCE, "build")
RUN_ALL = os.path.join(SOURCE, "tests", "run_all")
FAKE = os.path.join(BUILD, "tests", "fake_catch2")
FAKE_ASAN = os.path.join(BUILD, "tests", "fake_catch2_asan")
LAST = re.compile(r"^(\d+) passed, (\d+) failed$")

failures = 0


def check(cond, msg, output=""):
    global failures
    if cond:
        print(f"ok: {msg}", flush=True)
        return
    failures += 1
    print(f"FAIL: {msg}", flush=True)
    # Nested output is prefixed so that its lines (e.g. "skip: ...") are not this test's own.
    for line in output.rstrip("\n").splitlines()[-30:]:
        print(f"  nested run_all| {line}", flush=True)


def run_all(build_dir, system_dir, timeout=60, pattern=None, **env):
    e = dict(os.environ, FULCRUM_SYSTEM_TESTS_DIR=system_dir, FULCRUM_TEST_TIMEOUT=str(timeout), **env)
    r = subprocess.run([RUN_ALL, build_dir] + ([pattern] if pattern else []), env=e, capture_output=True,
                       text=True, timeout=120)
    out = r.stdout + r.stderr
    lines = r.stdout.rstrip("\n").splitlines()
    m = LAST.match(lines[-1]) if lines else None
    counts = (int(m.group(1)), int(m.group(2))) if m else None
    return r.returncode, counts, out


def main():
    for fake in (FAKE, FAKE_ASAN):
        if not os.access(fake, os.X_OK):
            print(f"FAIL test_run_all_honesty: {fake} is not built")
            return 1
    work = tempfile.mkdtemp(prefix="runall-honesty-")
    try:
        build = os.path.join(work, "build")
        os.makedirs(os.path.join(build, "tests"))
        os.symlink(FAKE, os.path.join(build, "tests", "test_fake"))
        empty = os.path.join(work, "no-system-tests")
        os.makedirs(empty)

        print("--- Catch2 binaries (fake_catch2 as test_fake)", flush=True)
        for mode, timeout, want, why in (
                ("pass", 60, (3, 0), "control: three passing cases"),
                ("fail", 60, (2, 1), "a failed CHECK fails its case"),
                ("crash", 60, (1, 2), "crash in case 2 of 3: case 2 failed, case 3 not run"),
                ("hang", 4, (1, 2), "hang in case 2 of 3, stopped at the time limit: case 2 failed, case 3 not run"),
                ("noassert", 60, (2, 1), "a case without assertions fails (-w NoAssertions)")):
            rc, counts, out = run_all(build, empty, timeout, FAKE_CATCH2_MODE=mode)
            check(counts == want and (rc == 0) == (want[1] == 0),
                  f"{mode}: last line {counts and '%d passed, %d failed' % counts} (want "
                  f"'{want[0]} passed, {want[1]} failed'), exit {rc}: {why}", out)
            if mode in ("crash", "hang"):
                check("not run: third" in out, f"{mode}: the report names the case not run (third)", out)
            if mode == "noassert":
                check("no assertions" in out, "noassert: says the case has no assertions", out)

        rc, counts, out = run_all(build, empty, 60, FAKE_CATCH2_MODE="kill")
        check(counts is not None and sum(counts) == 3 and counts[0] <= 1 and rc != 0 and "not run: third" in out,
              f"kill: SIGKILL in case 2, report cut short: {counts} -- every case counted, at most "
              f"the first passed, third not run", out)

        print("--- system tests that skip", flush=True)
        system = os.path.join(work, "system")
        os.makedirs(system)
        for name, body in (("test_quiet.sh", "echo 'checked everything'\n"),
                           ("test_skips.sh", "echo 'checked most'\necho 'skip: the hard part (no setpriv)'\n")):
            path = os.path.join(system, name)
            with open(path, "w") as f:
                f.write(body + "exit 0\n")
            os.chmod(path, 0o755)
        no_binaries = os.path.join(work, "build-empty")
        os.makedirs(no_binaries)
        rc, counts, out = run_all(no_binaries, system)
        check(counts == (1, 1) and rc == 1, f"a test that exits 0 but prints a skip fails: {counts} (want (1, 1))", out)
        check("FAIL test_skips.sh" in out and "PASS test_quiet.sh" in out, "the skipping test is the one failed", out)
        tail = out.rstrip("\n").splitlines()[-3:]
        check(any("SKIP_ALLOWED" in line for line in tail[:-1]),
              "the allow-list of skips is printed in the last lines", out)

        # The allow-list itself: load run_all as a module and run the skipping test with it listed.
        loader = importlib.machinery.SourceFileLoader("run_all", RUN_ALL)
        spec = importlib.util.spec_from_loader("run_all", loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            module.run_system_test(os.path.join(system, "test_skips.sh"), 60, dict(os.environ),
                                   {"test_skips.sh": "a reason"})
        check(module.passed == 1 and module.failed == 0 and "allowed skip" in buf.getvalue(),
              "a skip listed in SKIP_ALLOWED passes and is shown", buf.getvalue())
        check(isinstance(module.SKIP_ALLOWED, dict) and all(
            isinstance(v, str) and v.strip() for v in module.SKIP_ALLOWED.values()),
            f"every entry of the real SKIP_ALLOWED has a reason ({len(module.SKIP_ALLOWED)} entries)")

        sanitized_runs(work, empty)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if failures:
        print(f"FAIL test_run_all_honesty: {failures} check(s) failed")
        return 1
    print("PASS test_run_all_honesty")
    return 0


def sanitized_runs(work, empty):
    """asan/NAME: a sanitizer report fails the run even when every case passed or the process's
    exit status was never read."""
    print("--- sanitized runs (fake_catch2_asan as asan/test_unit and as the daemon)", flush=True)
    asan = os.path.join(work, "build-asan")
    for sub in ("tests", os.path.join("src", "cmd")):
        os.makedirs(os.path.join(asan, sub))
    os.symlink(FAKE_ASAN, os.path.join(asan, "tests", "test_unit"))
    os.symlink(FAKE_ASAN, os.path.join(asan, "src", "cmd", "fulcrumd"))
    no_binaries = os.path.join(work, "build-none")
    os.makedirs(no_binaries)
    for mode, want, report, why in (
            ("pass", (3, 0), None, "control: three passing cases, no report"),
            ("leak", (3, 1), "LeakSanitizer", "every case passed, the leak reported at exit fails the run"),
            ("overflow", (1, 2), "heap-buffer-overflow", "ASan stops case 2 of 3: case 2 failed, case 3 not run"),
            ("ub", (1, 2), "signed integer overflow", "UBSan stops case 2 of 3: case 2 failed, case 3 not run")):
        rc, counts, out = run_all(no_binaries, empty, 60, "asan/test_unit", FAKE_CATCH2_MODE=mode,
                                  FULCRUM_ASAN_BUILD_DIR=asan)
        check(counts == want and (rc == 0) == (want[1] == 0),
              f"asan {mode}: last line {counts and '%d passed, %d failed' % counts} (want "
              f"'{want[0]} passed, {want[1]} failed'), exit {rc}: {why}", out)
        if report:
            check(report in out, f"asan {mode}: the output shows the report ({report})", out)

    # A system test that starts the sanitized daemon, never reads its status, and exits 0.
    system = os.path.join(work, "system-asan")
    os.makedirs(system)
    path = os.path.join(system, "test_metrics.py")
    with open(path, "w") as f:
        f.write("import os, subprocess\n"
                "subprocess.Popen([os.environ['FULCRUM_FULCRUMD']], env=dict(os.environ, FAKE_CATCH2_MODE='leak'),\n"
                "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait()\n"
                "print('all good')\n")
    os.chmod(path, 0o755)
    rc, counts, out = run_all(no_binaries, system, 60, "asan/test_metrics.py", FULCRUM_ASAN_BUILD_DIR=asan)
    check(counts == (0, 1) and rc == 1 and "LeakSanitizer" in out,
          f"asan daemon: a leak reported by a process whose status the test ignored fails it: {counts} "
          f"(want (0, 1))", out)


if __name__ == "__main__":
    sys.exit(main())
