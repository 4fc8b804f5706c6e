"""``verifyd dev reset``: commands for a development machine, refused in production."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from verifyd.cli.common import open_database
from verifyd.db import Database, metadata
from verifyd.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from sqlalchemy import Table

#: What ``dev reset`` asks to be typed before it deletes anything.
CONFIRMATION = "reset"

#: Each table ``dev reset`` empties, as its help names it (a test keeps both in step).
WHAT_GOES = {
    "accounts": "accounts",
    "verifications": "verifications",
    "identities": "verified identities",
    "messages": "outbox messages",
    "sandbox_messages": "sandbox messages",
    "policy_versions": "policy versions",
    "admin_keys": "admin keys",
    "admin_sessions": "dashboard sessions",
    "audit_events": "audit events",
    "rate_counters": "rate limit windows",
    "sliding_limits": "guess and send logs",
    "sms_breakers": "SMS breakers",
    "idempotency_keys": "idempotency keys",
    "exposures": "exposures",
    "signup_blocks": "refused signups",
    "account_labels": "labels",
    "stat_counts": "the stats' counters",
    "verify_services": "Verify services (/v2)",
    "verify_verifications": "their verifications",
}


def data_tables() -> list[Table]:
    """Every table of verifyd's schema, parents before children (Alembic's own excluded)."""
    import verifyd.models  # noqa: F401  (declares the tables on ``metadata``)

    return [t for t in metadata.sorted_tables if t.name != "alembic_version"]


def _counts(db: Database, tables: list[Table]) -> dict[str, int]:
    from sqlalchemy import func, select

    with db.read() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables
        }


def _print_counts(counts: dict[str, int]) -> None:
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"  {name:<{width}}  {count}", file=sys.stderr)


def _confirmed() -> bool:
    """Whether the user typed the confirmation on stdin; at end of input, no."""
    print(f"Type {CONFIRMATION} to delete them: ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline() if sys.stdin is not None else ""
    except KeyboardInterrupt:
        answer = ""
    if not answer or not sys.stdin.isatty():
        print(file=sys.stderr)  # end the prompt's line: a piped answer is not echoed
    if not answer:
        print(
            f"verifyd: no answer on stdin; nothing was deleted (type {CONFIRMATION}, "
            "or pass --yes)",
            file=sys.stderr,
        )
        return False
    if answer.strip() != CONFIRMATION:
        print(
            f"verifyd: {answer.strip()!r} is not {CONFIRMATION}; nothing was deleted",
            file=sys.stderr,
        )
        return False
    return True


def reset(settings: Settings, args: argparse.Namespace) -> int:
    """Delete every row of the database, in one transaction; the schema stays.

    The database is migrated first when it is behind, as for every development
    command. A running server keeps working: it finds no policy on its next read
    and creates version 1 from its settings again.

    Returns:
        The exit status: 1 when the reset was not confirmed (nothing changes).

    Raises:
        ConfigurationError: in production, before the database is opened.
    """
    if settings.production:
        raise ConfigurationError(
            "dev reset is for development only and VERIFYD_ENV is production; nothing was changed"
        )
    from sqlalchemy import delete

    db = open_database(settings)
    try:
        tables = data_tables()
        print(f"verifyd: dev reset deletes every row of {db.describe()}:", file=sys.stderr)
        _print_counts(_counts(db, tables))
        secret = settings.secret_file() if settings.secret_key is None else None
        kept = "the schema stays"
        if secret is not None and secret.exists():
            kept = f"the schema and the secret file {secret} stay"
        print(
            f"verifyd: {kept}; a running server starts again from policy version 1",
            file=sys.stderr,
        )
        if not args.yes and not _confirmed():
            return 1
        with db.write() as conn:  # children first, so no foreign key is ever dangling
            deleted = {t.name: conn.execute(delete(t)).rowcount for t in reversed(tables)}
    finally:
        db.dispose()
    print("verifyd: database reset; rows deleted:", file=sys.stderr)
    _print_counts({t.name: deleted[t.name] for t in tables})
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``dev reset`` to the top-level subcommands."""
    dev = sub.add_parser(
        "dev",
        help="development only: start again from an empty database",
        description=(
            "Commands for a development machine. Each refuses to run, and touches "
            "nothing, when VERIFYD_ENV is production."
        ),
    )
    # The command refuses production itself, with a message that says so.
    dev.set_defaults(development_only=True)
    dsub = dev.add_subparsers(
        title="commands", dest="dev_command", required=True, metavar="COMMAND"
    )
    dreset = dsub.add_parser(
        "reset",
        help="delete every row of the database (development only)",
        description=(
            "Delete all data from the database of VERIFYD_DATABASE_URL so you can start "
            f"again: {', '.join(WHAT_GOES.values())}. The schema and the development "
            "secret file stay, and a running verifyd serve carries on, back at policy "
            f"version 1. It names the database and asks you to type {CONFIRMATION} "
            "first; without an answer on stdin it refuses. Refused in production."
        ),
    )
    dreset.add_argument(
        "--yes", action="store_true", help=f"delete without asking to type {CONFIRMATION}"
    )
    dreset.set_defaults(func=reset)
