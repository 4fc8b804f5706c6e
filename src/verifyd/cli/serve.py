"""``verifyd serve`` and ``verifyd migrate``: run the HTTP API, bring the schema up to date."""

from __future__ import annotations

import argparse
import errno
import math
import signal
import socket
import sys
from types import FrameType
from typing import Any

from verifyd import floors, logs, migrate
from verifyd.db import Database
from verifyd.settings import Settings


def _bind_problem(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on ``host:port``, or ``None`` when it can.

    A pre-check only: the socket is closed again before uvicorn binds its own, so
    another process could still take the port in between; uvicorn then fails as it
    always did. What it catches is the common case, a port already in use or an
    address of no interface here, before the banner claims a server is running.
    Like uvicorn: IPv6 when the host has a colon, and ``SO_REUSEADDR`` so a port
    left in TIME_WAIT by the previous run is not refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "the address is already in use (another server? pick --port)"
        return exc.strerror or str(exc)
    except OverflowError as exc:  # a port outside 0-65535
        return str(exc)
    return None


def _migrations_problem(db: Database) -> str | None:
    """Why production cannot serve this database yet (behind, or unreadable), or ``None``."""
    from sqlalchemy.exc import OperationalError

    try:
        if migrate.is_current(db.writer):
            return None
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return f"cannot read the database {db.describe()}: {reason}"
    return "the database is behind its migrations; run `verifyd migrate` first"


def _problems(settings: Settings, db: Database, host: str, port: int, address: str) -> list[str]:
    """Everything that would stop the server, found without changing anything.

    All of them, so one attempt shows every fix to make: the settings and plugins
    (``runtime.check_configuration``), the address, and in production the migrations.
    """
    from verifyd.registry import RegistryError
    from verifyd.runtime import check_configuration
    from verifyd.settings import ConfigurationError

    problems = []
    try:
        check_configuration(settings)
    except (ConfigurationError, RegistryError) as exc:
        problems.append(str(exc))
    unbindable = _bind_problem(host, port)
    if unbindable is not None:
        problems.append(f"cannot listen on {address}: {unbindable}")
    if settings.production:
        behind = _migrations_problem(db)
        if behind is not None:
            problems.append(behind)
    return problems


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the HTTP API under uvicorn, once everything it needs has been checked.

    Settings, plugins, the address and (in production) the migrations are checked
    first, and every problem found is reported; only then does development apply
    its migrations, the start-up line get printed and uvicorn start.

    On SIGTERM uvicorn stops listening, closes idle connections, lets the requests
    in flight finish (for at most ``VERIFYD_SHUTDOWN_GRACE_SECONDS``, then cancels
    them), then stops the in-process dispatcher (see ``app.create_app``).

    Returns:
        The exit status: 2 when anything would stop the server, 0 after a SIGTERM.
    """
    import uvicorn

    from verifyd import headertimeout

    host = args.host or settings.host
    port = args.port or settings.port
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets
    db = Database.from_settings(settings)
    try:
        problems = _problems(settings, db, host, port, address)
        for problem in problems:
            print(f"verifyd: {problem}", file=sys.stderr)
        if problems:
            return 2
        if not settings.production:
            migrate.upgrade(db)
    finally:
        db.dispose()
    # Applied here for the banner, then by uvicorn in each of its processes.
    log_config = logs.configure(settings, server=True)
    logs.announce(
        settings,
        f"verifyd {settings.env} on http://{address} "
        f"(sandbox {'on' if settings.sandbox_on else 'off'}, database {db.describe()})",
    )
    floors.announce(settings)  # once here, not once per uvicorn worker
    # uvicorn re-raises the signal that stopped it once it has shut down; a SIGTERM
    # then ends the process with status 0, since a graceful stop is no failure.
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        "verifyd.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        access_log=False,  # verifyd.access logs without query strings
        proxy_headers=False,
        # Slow clients: idle connections, and request heads uvicorn would wait for forever.
        timeout_keep_alive=settings.keep_alive_seconds,
        http=headertimeout.protocol(settings.header_timeout_seconds),
        # SIGTERM: stop listening, close idle connections, let requests in flight finish.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        log_level="info",
        log_config=log_config,
    )
    return 0


def migrate_database(settings: Settings, _: argparse.Namespace) -> int:
    """Apply every pending migration and name the revision reached."""
    db = Database.from_settings(settings)
    try:
        migrate.upgrade(db)
        print(f"verifyd: database at revision {migrate.current(db.writer)}", file=sys.stderr)
    finally:
        db.dispose()
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``serve`` and ``migrate`` to the top-level subcommands."""
    p = sub.add_parser(
        "serve",
        help="run the HTTP API (development: migrates first)",
        description=(
            "Run the HTTP API with uvicorn. In development it first applies any pending "
            "database migrations; in production it refuses to start while the database is "
            "behind, so run verifyd migrate once before. Settings, plugins and the address "
            "are checked first; only a server that really starts prints its start-up line "
            "on stderr (mode, address, sandbox, database)."
        ),
    )
    p.add_argument("--host", help="address to listen on (default VERIFYD_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default VERIFYD_PORT, 8000)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    p.set_defaults(func=serve)

    mig = sub.add_parser(
        "migrate",
        help="apply database migrations (safe to run concurrently)",
        description=(
            "Apply every pending migration to the database of VERIFYD_DATABASE_URL and "
            "print the revision it reached. Concurrent runs are safe (they take a database "
            "lock), so production can run it as an init job before verifyd serve."
        ),
    )
    mig.set_defaults(func=migrate_database)
