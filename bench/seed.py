"""The bench's phone numbers, and a database pre-seeded with 30 days of signups.

Every number the bench uses is ``+999`` and 12 digits, one sandbox pattern
(:data:`SANDBOX_PATTERN`, given to the server as ``VERIFYD_SANDBOX_PATTERNS``); +999 is
no country's code, so no real phone can ever be reached. The first digit after
``+999`` tells the two ranges apart, so they can never collide:

- ``0`` + 11 digits: seeded account ``i`` (:func:`seeded_phone`), when it signed up
  on the phone arm (the email arm's get :func:`bench.population.seeded_email`).
- ``1`` + run (2 digits) + wrk thread (3) + flow (6): the flows; ``flow.lua`` appends
  the thread and flow digits to :func:`flow_prefix`, so each wrk run (warm-up and
  measured runs alike) signs up numbers no other run ever used.

The seeded rows are bench/population.py's (its docstring says what they hold): what
30 days of signups under three policy versions leave, in the schema migrated by
verifyd's own Alembic upgrade. SQLite is filled with the plain ``sqlite3`` module
(``executemany`` in one transaction, journal and ``synchronous`` off while seeding
only; the file is left in WAL mode as the server leaves it); PostgreSQL with psycopg's
``COPY``, then ``ANALYZE`` (as autovacuum would have by then). :func:`rollup` then
fills ``stat_counts`` with :func:`verifyd.rebuild.rebuild`: the counters the flows
would have written for those rows, exactly.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import population
from bench.population import Row

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


@dataclass(frozen=True)
class Seeded:
    """What :func:`seed` wrote, and how long each part took."""

    rows: dict[str, int]  # table -> rows written
    rows_s: float
    counters: int  # stat_counts rows
    rollup_s: float


def _renderer(table: str, columns: tuple[str, ...], sqlite: bool) -> Callable[[Row], Row]:
    """What turns a row into the driver's values: JSON as text, on SQLite datetimes too.

    The columns' types come from verifyd's own models; only those columns are touched.
    """
    from sqlalchemy import JSON, DateTime

    from verifyd.models import Base

    types = [Base.metadata.tables[table].c[c].type for c in columns]
    as_json = [i for i, t in enumerate(types) if isinstance(t, JSON)]
    # SQLAlchemy's SQLite DATETIME format; PostgreSQL's driver takes datetimes as they are.
    dates = [i for i, t in enumerate(types) if t._type_affinity is DateTime] if sqlite else []

    def render(row: Row) -> Row:
        values = list(row)
        for i in as_json:
            values[i] = json.dumps(values[i])
        for i in dates:
            if values[i] is not None:
                values[i] = values[i].isoformat(" ", "microseconds")
        return tuple(values)

    return render


def _tables(
    count: int, start: int, end: datetime
) -> Iterator[tuple[str, tuple[str, ...], list[Row]]]:
    """(table, columns, rows), in an order the foreign keys accept."""
    if start == 0:
        yield "policy_versions", population.POLICY_COLUMNS, population.policy_rows(end)
    for batch in population.batches(count, start, end, seeded_phone, ROWS_PER_BATCH):
        for table, rows in batch.items():
            if rows:
                yield table, population.COLUMNS[table], rows


def _insert(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


def seed_sqlite(path: str, count: int, start: int, end: datetime) -> dict[str, int]:
    """Add ``count`` seeded accounts to the migrated SQLite file at ``path``."""
    written: dict[str, int] = {}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")  # 1 GB of page cache: random keys
        conn.execute("BEGIN")
        for table, columns, rows in _tables(count, start, end):
            render = _renderer(table, columns, True)
            conn.executemany(_insert(table, columns), map(render, rows))
            written[table] = written.get(table, 0) + len(rows)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")  # as verifyd's own connections leave it
    finally:
        conn.close()
    return written


def seed_postgresql(dsn: str, count: int, start: int, end: datetime) -> dict[str, int]:
    """Add ``count`` seeded accounts to the migrated PostgreSQL database ``dsn`` (libpq URL)."""
    import psycopg

    written: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            for table, columns, rows in _tables(count, start, end):
                names = ", ".join(f'"{c}"' for c in columns)
                render = _renderer(table, columns, False)
                with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(render(row))
                written[table] = written.get(table, 0) + len(rows)
        conn.commit()
    return written


def rollup(url: str) -> int:
    """Fill ``stat_counts`` from the rows (:func:`verifyd.rebuild.rebuild`); its row count."""
    from verifyd.db import Database
    from verifyd.rebuild import rebuild

    db = Database(url)
    try:
        with db.write() as conn:
            return rebuild(conn)
    finally:
        db.dispose()


def seed(url: str, count: int, start: int = 0, *, end: datetime | None = None) -> Seeded:
    """Seed the migrated database of a SQLAlchemy URL (``sqlite:///…`` or PostgreSQL).

    Args:
        url: The database.
        count: Accounts to add.
        start: The first one's index (only the first batch, at 0, writes the policy versions).
        end: When the seeded history ends (naive or aware UTC); now by default.
    """
    from sqlalchemy.engine import make_url

    at = end or datetime.now(UTC)
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.monotonic()
    if sqlite:
        written = seed_sqlite(parsed.database or "", count, start, at)
    else:
        written = seed_postgresql(dsn, count, start, at)
    rows_s = time.monotonic() - started
    counters = rollup(url)
    rollup_s = time.monotonic() - started - rows_s
    if not sqlite:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
    return Seeded(written, rows_s, counters, rollup_s)


def migrate(url: str) -> None:
    """Create verifyd's schema: the same Alembic upgrade ``verifyd serve`` runs."""
    from verifyd import migrate as verifyd_migrate
    from verifyd.db import Database

    db = Database(url)
    try:
        verifyd_migrate.upgrade(db)
    finally:
        db.dispose()
