"""The machine bench/run.py runs on: the tools it needs (wrk, taskset) and its description."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.servers import ROOT

TOOLS = {"wrk": "wrk", "taskset": "util-linux"}  # command -> Debian package


def ensure_tools() -> int | None:
    """None when wrk and taskset are there (installed now if root can), else exit 2."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not missing:
        return None
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"]
    cmd += sorted({TOOLS[t] for t in missing})
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"bench: installing {', '.join(missing)}: {' '.join(cmd)}", file=sys.stderr)
        if subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update"], stdin=subprocess.DEVNULL)
            subprocess.run(cmd, stdin=subprocess.DEVNULL)
        if all(shutil.which(tool) for tool in TOOLS):
            return None
    print(f"bench: {', '.join(missing)} not found; run as root: {' '.join(cmd)}", file=sys.stderr)
    return 2


def machine() -> str:
    """Cores, CPU model, versions, commit and database, on a few lines."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        "?",
    )
    versions = ", ".join(f"{d} {metadata.version(d)}" for d in ("uvicorn", "uvloop", "httptools"))
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True
    )
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0]
    return (
        f"machine: {os.cpu_count()} cores, {model}, {platform.machine()}; Python "
        f"{platform.python_version()}; {versions}; {wrk.strip()}\n"
        f"commit: {commit.stdout.strip() or '?'}"
        f"{' + uncommitted changes in src/' if dirty.stdout.strip() else ''}"
    )
