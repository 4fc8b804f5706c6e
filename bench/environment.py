"""The environments bench/run.py starts its servers in, and what the flows send.

Each server gets this process's environment less any ``VERIFYD_*`` of the shell (a
developer's settings must not leak into a measurement), plus its own:

- the reference app (bench/reference.py): its SQLite file and port;
- ``verifyd serve``: its database, sandbox on with a fixed code (:data:`CODE`) for
  the bench's numbers, its secret, host and port, and two departures from the
  shipped defaults. ``VERIFYD_ACCESS_LOG=false``: the references run with no access
  log (uvicorn's ``access_log=False``), so verifyd runs without its own too; the log
  costs a few percent of a core, which would otherwise be counted against verifyd
  alone. ``VERIFYD_SANDBOX_LIMIT_MULTIPLIER=1000000``: its sandbox limits are a
  million times looser than the real ones; every signup and check still counts
  against them (the same writes), but a fast server is not throttled.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import seed

#: The code every check sends: verifyd runs with VERIFYD_SANDBOX_FIXED_CODE.
CODE = "1234"
SECRET = "bench-secret-key-0123456789abcdef0123456789"


def clean(**extra: str) -> dict[str, str]:
    """This process's environment less any VERIFYD_* of the shell, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    return {**base, **extra}


def reference(database: Path, port: int) -> dict[str, str]:
    """bench/reference.py's: its SQLite file and its port."""
    return clean(BENCH_REFERENCE_DB=str(database), BENCH_REFERENCE_PORT=str(port))


def verifyd(database_url: str, port: int) -> dict[str, str]:
    """``verifyd serve``'s: as shipped but for the access log and the sandbox limits."""
    return clean(
        VERIFYD_DATABASE_URL=database_url,
        VERIFYD_SANDBOX="1",
        VERIFYD_SANDBOX_FIXED_CODE=CODE,
        VERIFYD_SANDBOX_PATTERNS=seed.SANDBOX_PATTERN,
        VERIFYD_SANDBOX_LIMIT_MULTIPLIER="1000000",
        VERIFYD_ACCESS_LOG="false",
        VERIFYD_SECRET_KEY=SECRET,
        VERIFYD_HOST="127.0.0.1",
        VERIFYD_PORT=str(port),
    )
