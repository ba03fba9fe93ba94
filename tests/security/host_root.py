"""The host-root probe that every kind of sandbox runs in tests/security/test_host_root.py (and
the Claude Code session in tests/agents/test_claude_code.py): who it is on the host, whether the
kernel's knobs take a write (each one's current value written back, so that nothing changes
even where the wall would fail), and whether a root-only file is readable.

PROBE is Python source; run it with `python -c`. It prints one line, `HOST-ROOT-PROBE {json}`."""

from __future__ import annotations

import json
import os
from pathlib import Path

PROBE = r"""
import errno, glob, json, os

def outside(kind, inside):
    # The host id behind an id seen inside, from this process's user namespace map.
    for line in open("/proc/self/%s_map" % kind):
        first, host, count = map(int, line.split())
        if first <= inside < first + count:
            return host + inside - first
    return None

def write_back(path):
    try:
        with open(path) as f:
            value = f.read()
        with open(path, "w") as f:
            f.write(value)
        return "WRITTEN"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def read(path):
    try:
        with open(path) as f:
            return "READ:" + f.read()[:40]
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

hosts = set()
for status in glob.glob("/proc/[0-9]*/status"):
    try:
        text = open(status).read()
    except OSError:
        continue
    for line in text.splitlines():
        if line.startswith(("Uid:", "Gid:")):
            kind = "uid" if line.startswith("Uid:") else "gid"
            hosts.update(outside(kind, int(v)) for v in line.split()[1:])
cpu_knobs = sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/online"))
print("HOST-ROOT-PROBE " + json.dumps({
    "uid": outside("uid", os.getuid()),
    "euid": outside("uid", os.geteuid()),
    "gid": outside("gid", os.getgid()),
    "host_ids": sorted(h for h in hosts if h is not None),
    "processes": len(glob.glob("/proc/[0-9]*")),
    "core_pattern": write_back("/proc/sys/kernel/core_pattern"),
    "sysfs": write_back(cpu_knobs[0]) if cpu_knobs else "absent",
    "root_only": {p: read(p) for p in os.environ.get("ROOT_ONLY", "").split(":") if p},
}))
"""


def root_only_files(folder: Path) -> list[Path]:
    """Two root-only (0600) files for the probe to try: one in `folder` (which the test binds
    into the sandbox) and one outside every bind (a sibling of `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for path in (folder / "root-only.txt", folder.parent / f"{folder.name}-unbound-root-only.txt"):
        path.write_text("ROOT-ONLY-SECRET\n")
        path.chmod(0o600)
        made.append(path)
    return made


def verdict(output: str) -> dict:
    """The probe's report, out of whatever else the sandbox printed."""
    line = next(line for line in output.splitlines() if line.startswith("HOST-ROOT-PROBE "))
    return json.loads(line.split(" ", 1)[1])


def check(report: dict, readable_root_only: list[str] = ()) -> None:
    """No process of the sandbox is host root (every id it sees maps to a nonzero host id),
    no kernel knob took the write, and no root-only file was read."""
    assert report["uid"] not in (0, None) and report["euid"] not in (0, None), report
    assert report["gid"] not in (0, None), report
    assert 0 not in report["host_ids"] and report["processes"] >= 1, report
    assert report["core_pattern"] in ("EROFS", "EACCES", "EPERM"), report
    assert report["sysfs"] in ("EROFS", "EACCES", "EPERM", "absent"), report
    for path, outcome in report["root_only"].items():
        assert not outcome.startswith("READ:"), (path, outcome)
        assert outcome in ("EACCES", "ENOENT"), (path, outcome)
    if os.geteuid() == 0:  # under a root autosae the sandbox is the dedicated sandbox user
        from autosae.sandbox import sandbox_identity

        assert report["uid"] == sandbox_identity().uid
