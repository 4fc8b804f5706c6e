"""``verifyd serve`` and ``verifyd migrate``: run the HTTP API, bring the schema up to date."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from verifyd import migrate
from verifyd.db import Database
from verifyd.settings import Settings


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the HTTP API under uvicorn; in development, migrate first.

    Returns:
        The exit status: 2 when production finds the database behind its migrations.
    """
    import uvicorn

    db = Database(settings.database_url)
    try:
        if settings.production:
            if not migrate.is_current(db.writer):
                print(
                    "verifyd: the database is behind its migrations; run `verifyd migrate` first",
                    file=sys.stderr,
                )
                return 2
        else:
            migrate.upgrade(db)
    finally:
        db.dispose()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz asks it on every probe
    host = args.host or settings.host
    port = args.port or settings.port
    print(
        f"verifyd {settings.env} on http://{host}:{port} "
        f"(sandbox {'on' if settings.sandbox_on else 'off'}, database {db.describe()})",
        file=sys.stderr,
    )
    uvicorn.run(
        "verifyd.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        access_log=False,  # verifyd.access logs without query strings
        proxy_headers=False,
        log_level="info",
    )
    return 0


def migrate_database(settings: Settings, _: argparse.Namespace) -> int:
    """Apply every pending migration and name the revision reached."""
    db = Database(settings.database_url)
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
            "behind, so run verifyd migrate once before. A start-up line on stderr names "
            "the mode, the address, the sandbox state and the database."
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
