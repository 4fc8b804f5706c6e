"""The bench's phone numbers, and a database pre-seeded with active accounts.

Every number the bench uses is ``+999`` and 12 digits, one sandbox pattern
(:data:`SANDBOX_PATTERN`, given to the server as ``VERIFYD_SANDBOX_PATTERNS``); +999 is
no country's code, so no real phone can ever be reached. The first digit after
``+999`` tells the two ranges apart, so they can never collide:

- ``0`` + 11 digits: seeded account ``i`` (:func:`seeded_phone`).
- ``1`` + run (2 digits) + wrk thread (3) + flow (6): the flows; ``flow.lua`` appends
  the thread and flow digits to :func:`flow_prefix`, so each wrk run (warm-up and
  measured runs alike) signs up numbers no other run ever used.

A seeded account is what a finished flow leaves: an active account whose phone is
verified, its approved verification and its ``identities`` row, in the schema
migrated by verifyd's own Alembic upgrade. SQLite is filled with the plain ``sqlite3``
module (``executemany`` in one transaction, journal and ``synchronous`` off while
seeding only; the file is left in WAL mode as the server leaves it); PostgreSQL with
psycopg's ``COPY``, then ``ANALYZE`` (as autovacuum would have by then).
"""

from __future__ import annotations

import base64
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

#: The one sandbox pattern covering every bench number (seeded and flows).
SANDBOX_PATTERN = r"^\+999\d{12}$"
#: Flows one wrk thread may sign up in one run (6 digits).
FLOWS_PER_THREAD = 1_000_000
#: wrk threads per run (3 digits), and runs per bench (2 digits).
MAX_THREADS = 1000
MAX_RUNS = 100
#: Accounts the seeded range holds (11 digits).
MAX_SEEDED = 10**11

ROWS_PER_BATCH = 20_000

ACCOUNT_COLUMNS = (
    "id",
    "status",
    "phone",
    "email",
    "phone_verified_at",
    "email_verified_at",
    "needs",
    "needs_all",
    "policy_version",
    "arm",
    "subject_hash",
    "locale",
    "redirect_url",
    "flags",
    "shadow",
    "ip",
    "created_at",
    "activated_at",
)
VERIFICATION_COLUMNS = (
    "id",
    "account_id",
    "channel",
    "identity",
    "destination",
    "sandbox",
    "shadow",
    "status",
    "secret_hash",
    "generation",
    "attempts",
    "max_checks",
    "code_length",
    "resends",
    "delivery",
    "expires_at",
    "resend_available_at",
    "created_at",
    "approved_at",
)
IDENTITY_COLUMNS = ("kind", "value", "account_id", "created_at")


def seeded_phone(i: int) -> str:
    """The phone of seeded account ``i`` (0-based)."""
    if not 0 <= i < MAX_SEEDED:
        raise ValueError(f"seeded account index out of range: {i}")
    return f"+9990{i:011d}"


def flow_prefix(run: int) -> str:
    """What every phone of wrk run ``run`` starts with (flow.lua adds thread and flow)."""
    if not 0 <= run < MAX_RUNS:
        raise ValueError(f"run index out of range: {run}")
    return f"+9991{run:02d}"


def flow_phone(run: int, thread: int, n: int) -> str:
    """The phone flow ``n`` of wrk thread ``thread`` (1-based, as wrk numbers them) signs up."""
    if not (0 <= thread < MAX_THREADS and 0 <= n < FLOWS_PER_THREAD):
        raise ValueError(f"flow out of range: thread {thread}, flow {n}")
    return f"{flow_prefix(run)}{thread:03d}{n:06d}"


def _ids(rng: random.Random, prefix: str) -> str:
    # The shape of verifyd's own ids (128 random bits, URL-safe): random keys, as in use.
    return prefix + base64.urlsafe_b64encode(rng.randbytes(16)).rstrip(b"=").decode()


def rows(
    count: int, start: int = 0, *, when: datetime | None = None
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Batches of (accounts, verifications, identities) rows for seeded accounts.

    Datetimes are naive UTC, as verifyd stores them; the caller renders them for its
    driver. Account ``start + k`` gets :func:`seeded_phone` of that index.
    """
    rng = random.Random(start)
    at = (when or datetime.now(UTC) - timedelta(days=1)).astimezone(UTC).replace(tzinfo=None)
    expires, resend = at + timedelta(minutes=10), at + timedelta(seconds=30)
    for first in range(start, start + count, ROWS_PER_BATCH):
        accounts, verifications, identities = [], [], []
        for i in range(first, min(first + ROWS_PER_BATCH, start + count)):
            phone = seeded_phone(i)
            aid, vid = _ids(rng, "acc_"), _ids(rng, "ver_")
            accounts.append(
                (aid, "active", phone, None, at, None, "phone", True, 1, "phone")
                + (None, None, None, "[]", False, "127.0.0.1", at, at)
            )
            verifications.append(
                (vid, aid, "sms", "phone", phone, True, False, "approved", rng.randbytes(32).hex())
                + (0, 1, 5, 4, 0, "sent", expires, resend, at, at)
            )
            identities.append(("phone", phone, aid, at))
        yield accounts, verifications, identities


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLAlchemy's SQLite DATETIME format
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, bool):
        return int(value)
    return value


def _insert(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


def seed_sqlite(path: str, count: int, start: int = 0) -> None:
    """Add ``count`` seeded accounts to the migrated SQLite file at ``path``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")  # 1 GB of page cache: random keys
        conn.execute("BEGIN")
        for accounts, verifications, identities in rows(count, start):
            for table, columns, batch in (
                ("accounts", ACCOUNT_COLUMNS, accounts),
                ("verifications", VERIFICATION_COLUMNS, verifications),
                ("identities", IDENTITY_COLUMNS, identities),
            ):
                conn.executemany(
                    _insert(table, columns), [tuple(map(_sqlite_value, r)) for r in batch]
                )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")  # as verifyd's own connections leave it
    finally:
        conn.close()


def seed_postgresql(dsn: str, count: int, start: int = 0) -> None:
    """Add ``count`` seeded accounts to the migrated PostgreSQL database ``dsn`` (libpq URL)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            for batches in rows(count, start):
                for table, columns, batch in zip(
                    ("accounts", "verifications", "identities"),
                    (ACCOUNT_COLUMNS, VERIFICATION_COLUMNS, IDENTITY_COLUMNS),
                    batches,
                    strict=True,
                ):
                    names = ", ".join(f'"{c}"' for c in columns)
                    with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                        for row in batch:
                            copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


def seed(url: str, count: int, start: int = 0) -> None:
    """Seed the migrated database of a SQLAlchemy URL (``sqlite:///…`` or PostgreSQL)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        seed_sqlite(parsed.database or "", count, start)
    else:
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        seed_postgresql(dsn, count, start)


def migrate(url: str) -> None:
    """Create verifyd's schema: the same Alembic upgrade ``verifyd serve`` runs."""
    from verifyd import migrate as verifyd_migrate
    from verifyd.db import Database

    db = Database(url)
    try:
        verifyd_migrate.upgrade(db)
    finally:
        db.dispose()
