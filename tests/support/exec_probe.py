# What an exec check's shell was given, seen by a child started before the shell opened anything:
# the shell's descriptors are this process's (inherited; probed before opening a file), its ids,
# its /proc status and initial environment (read through the parent's /proc entry), its cwd.
# Written to the file named by argv[1] (atomically: .tmp, then renamed), one fact per line.
# Used by tests/health/test_checks.cpp and tests/system/test_privileges.py, which copy it where
# the check's user can read it and run it as `/usr/bin/python3 exec_probe.py REPORT`.
import os
import sys

fds = []
for fd in range(4096):
    try:
        os.fstat(fd)
        fds.append(fd)
    except OSError:
        pass
shell = os.getppid()
lines = [f"uid {os.getuid()} gid {os.getgid()} groups {' '.join(str(g) for g in os.getgroups())}"]
with open(f"/proc/{shell}/status") as f:
    lines += [line.rstrip("\n") for line in f if line.startswith(("Cap", "NoNewPrivs"))]
with open(f"/proc/{shell}/environ", "rb") as f:
    lines += ["env " + e.decode() for e in f.read().split(b"\0") if e]
lines += [f"fd {fd}" for fd in fds]
lines.append("cwd " + os.readlink(f"/proc/{shell}/cwd"))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
