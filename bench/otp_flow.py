"""Benchmark the OTP flow (signup -> check) over HTTP with wrk; prints what it measured.

Run by hand (not in CI):  .venv/bin/python bench/otp_flow.py [--duration 10] [--connections 2]
Needs Debian's wrk (apt-get install wrk). The server is a real `verifyd serve` on a fresh
SQLite file (or --database-url), sandbox on, fixed sandbox code, limits as configured by
default (sandbox destinations use their own, looser bucket).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not become ready")


def run_wrk(url: str, mode: str, duration: int, connections: int, offset: int) -> dict[str, str]:
    cmd = [
        "wrk",
        f"-t{connections}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(HERE / "otp_flow.lua"),
        url,
        "--",
        mode,
        "1234",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = dict(re.findall(r"(\w+)=([\d.]+)", out.split("RESULT", 1)[1]))
    result["requests_per_s"] = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)  # type: ignore[union-attr]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2, help="at most 8")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="verifyd-bench-")
    port = free_port()
    env = {
        **os.environ,
        "VERIFYD_DATABASE_URL": args.database_url or f"sqlite:///{workdir}/bench.db",
        "VERIFYD_SANDBOX": "1",
        "VERIFYD_SANDBOX_FIXED_CODE": "1234",
        "VERIFYD_SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
        "VERIFYD_PORT": str(port),
    }
    log = open(Path(workdir) / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "verifyd.cli", "serve"],
        env=env,
        stdout=log,
        stderr=log,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; database: {env['VERIFYD_DATABASE_URL'].split(':')[0]}"
        )
        print(f"wrk: {args.connections} connections, {args.duration} s per run, one uvicorn worker")
        for run, mode in enumerate(("signup", "flow")):
            # Each run signs up numbers of its own (the flow activates them).
            r = run_wrk(url, mode, args.duration, args.connections, offset=run * 40_000)
            flows = float(r["check_ok"]) / args.duration
            print(
                f"{mode:>6}: {float(r['requests_per_s']):8.0f} req/s  "
                f"p50 {float(r['p50_ms']):6.2f} ms  p90 {float(r['p90_ms']):6.2f} ms  "
                f"p99 {float(r['p99_ms']):6.2f} ms  signups {r['signup_ok']}  "
                f"approved {r['check_ok']} ({flows:.0f} flows/s)  other {r['other']}"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
