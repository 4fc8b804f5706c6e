"""Alembic, driven from code: upgrade under a lock, and tell whether the schema is current."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from verifyd.db import Database

#: An arbitrary constant: the PostgreSQL advisory lock every ``verifyd migrate`` takes.
LOCK_ID = 7_301_244_117


def migrations_dir() -> Path:
    """The Alembic scripts: packaged in the wheel, or ``migrations/`` of a checkout."""
    packaged = Path(__file__).parent / "migrations"
    if (packaged / "env.py").exists():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` pointing at verifyd's migrations."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def head() -> str | None:
    """The newest revision of the migration scripts (read once per process)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision the database is at (``None`` when never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@cache
def known() -> frozenset[str]:
    """Every revision of this release's migration scripts (read once per process)."""
    return frozenset(
        s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    )


def is_current(engine: Engine) -> bool:
    """Whether this code can serve the database: at the newest revision, or past it.

    Past it means a revision these scripts do not know: the next release's
    ``verifyd migrate`` ran while this release's replicas still serve, as a rolling
    deploy does (migrate first, then roll). Migrations are expand-only within a
    release (new tables, nullable or defaulted columns, nothing dropped or renamed:
    ``tests/test_upgrades.py`` checks it), so this code keeps working on that schema,
    and its replicas stay ready and can restart until the roll replaces them.
    """
    revision = current(engine)
    return revision == head() or (revision is not None and revision not in known())


def upgrade(db: Database) -> None:
    """Apply every pending migration. Concurrent runs are safe.

    On PostgreSQL an advisory lock serialises runs; on SQLite the writer's
    ``BEGIN IMMEDIATE`` does. ``VERIFYD_DB_STATEMENT_TIMEOUT_MS`` bounds requests, not
    this: waiting for another replica's migration, or building an index on a large
    table, may take longer, so the transaction lifts it.
    """
    config = alembic_config(db.url.render_as_string(hide_password=False))
    with db.writer.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
