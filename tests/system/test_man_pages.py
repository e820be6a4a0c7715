#!/usr/bin/python3
"""The man pages (man/*.scd, built by meson with scdoc into BUILD/man/):

- each renders with `man --warnings -l` without a warning, and has NAME, SYNOPSIS and DESCRIPTION;
- fulcrum.yaml(5) names, as a bold term, every key that the config parser accepts: the key lists
  of every `Mapping ...(errors, ..., {...})` in src/config/*.cpp, where unknown keys are refused;
- fulcrumctl(8) names every command and option of `fulcrumctl --help`, fulcrumd(8) every option
  of `fulcrumd --help`, fulcrum-decap(8) every command and option of `fulcrum-decap --help`.
So a key or command added without its man page fails here.
"""
import glob
import os
import re
import subprocess
import sys

SOURCE_DIR = os.environ.get("FULCRUM_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BUILD_DIR = os.environ.get("FULCRUM_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
PAGES = ["fulcrumd.8", "fulcrumctl.8", "fulcrum-decap.8", "fulcrum.yaml.5"]

failures = []


def fail(message):
    print("FAIL: " + message)
    failures.append(message)


def roff(page):
    with open(os.path.join(BUILD_DIR, "man", page)) as f:
        return f.read()


def bold_terms(page):
    """The bold spans of the lines that start with one: the terms of the pages' lists, e.g.
    `*-c*, *--config* _FILE_` (scdoc writes *x* as \\fBx\\fR); a bold word inside a sentence
    does not count."""
    terms = []
    for line in roff(page).splitlines():
        if line.startswith("\\fB"):
            terms += [t.replace("\\&", "").replace("\\-", "-") for t in re.findall(r"\\fB(.*?)\\f[RP]", line)]
    return terms


def names_term(terms, word):
    """Is `word` a bold term, alone or as a part of a dotted or listed path
    (`services[].backends[].weight` names services, backends and weight), or the start of one
    (`drain SERVICE`)?"""
    pattern = re.compile(r"(^|[.\]\s])" + re.escape(word) + r"($|[\s.\[])")
    return any(pattern.search(t) for t in terms)


def config_keys():
    keys = set()
    for path in glob.glob(os.path.join(SOURCE_DIR, "src", "config", "*.cpp")):
        text = open(path).read()
        for m in re.finditer(r"Mapping\s+\w+\(\s*errors\s*,[^{;]*?\{([^}]*)\}\s*\)", text, re.S):
            keys.update(re.findall(r'"([a-z0-9_]+)"', m.group(1)))
    return keys


def help_text(program, *args):
    p = subprocess.run([os.path.join(BUILD_DIR, "src", "cmd", program), *args], capture_output=True, text=True)
    return p.stdout + p.stderr


def check_commands_and_options(program, command_pattern, least):
    """Every command (found by command_pattern) and option of `program --help` is named in
    program(8); fewer than `least` commands means the pattern no longer matches the help."""
    text = help_text(program, "--help")
    commands = sorted(set(re.findall(command_pattern, text)))
    options = sorted(set(re.findall(r"^\s+(-\w|--[\w-]+)", text, re.M)))
    if len(commands) < least:
        fail(f"{program} --help lists only {commands}")
    terms = bold_terms(f"{program}.8")
    for word in commands + options:
        if not names_term(terms, word):
            fail(f"{program}(8) does not name {word!r}")
    print(f"ok: {program}(8) checked for {len(commands)} commands and {len(options)} options")


def main():
    for page in PAGES:
        path = os.path.join(BUILD_DIR, "man", page)
        if not os.path.exists(path):
            fail(f"{path} was not built")
            continue
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", path], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="", LC_ALL="C.UTF-8"))
        if r.returncode != 0 or r.stderr.strip():
            fail(f"man -l {page}: exit {r.returncode}, warnings: {r.stderr.strip()[:500]}")
        for heading in ("NAME", "SYNOPSIS", "DESCRIPTION"):
            if not re.search(rf"^{heading}$", r.stdout, re.M):
                fail(f"{page} has no {heading} section")
        print(f"ok: {page} renders ({len(r.stdout.splitlines())} lines) without warnings")
    if failures:
        return

    keys = config_keys()
    # The parser's lists, as a floor: a change in how they are written must not make this test
    # check nothing.
    for known in ("interfaces", "source_v4", "pin_path", "hash_seed", "new_per_second", "min_healthy",
                  "query_type", "require_reply", "user", "need"):
        if known not in keys:
            fail(f"the key list scan of src/config/*.cpp missed {known!r}: fix config_keys() here")
    terms = bold_terms("fulcrum.yaml.5")
    missing = sorted(k for k in keys if not names_term(terms, k))
    if missing:
        fail("fulcrum.yaml(5) does not name these config keys: " + ", ".join(missing))
    else:
        print(f"ok: fulcrum.yaml(5) names all {len(keys)} config keys the parser accepts")

    check_commands_and_options("fulcrumctl", r"fulcrumctl \[-s SOCKET\] (\w+)", least=7)

    text = help_text("fulcrumd", "--help")
    options = sorted(set(re.findall(r"(--[\w-]+)", text)))
    if "--withdraw-routes" not in options:
        fail(f"fulcrumd --help lists only {options}")
    terms = bold_terms("fulcrumd.8")
    for word in options:
        if not names_term(terms, word):
            fail(f"fulcrumd(8) does not name {word!r}")
    print(f"ok: fulcrumd(8) checked for {len(options)} options")

    check_commands_and_options("fulcrum-decap", r"fulcrum-decap (\w+)", least=4)


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
