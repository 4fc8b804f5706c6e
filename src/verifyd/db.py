"""Engines and transactions: one writer connection on SQLite, a shared pool on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from verifyd import rollup
from verifyd.groupcommit import GroupCommit

T = TypeVar("T")

#: Constraint names are deterministic so migrations can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: in WAL mode every commit is fsynced, so an answer the client got survives
    # an OS crash or power loss, not only a killed process (NORMAL's guarantee).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Pages read through a shared memory map instead of a read() each: with a million
    # accounts the indexes no longer fit SQLite's default 2 MiB page cache.
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(conn: Connection) -> None:
    # Take SQLite's write lock at BEGIN: a deferred transaction that reads and then
    # writes fails at once (no busy wait) when another process wrote in between.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engines of one database URL.

    SQLite gets a single writer connection (concurrent writers through a pool collide
    on its write lock and sleep) and a small pool of readers (WAL lets them run beside
    the writer). PostgreSQL uses one pool for both.

    Args:
        url: A SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://…``).
        pool_size: Connections for PostgreSQL and for SQLite readers.
    """

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            memory = database in ("", ":memory:")
            # One connection: an in-memory database lives in its connection (StaticPool).
            pool_args: dict[str, Any] = (
                {"poolclass": StaticPool}
                if memory
                else {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
            )
            self.writer = create_engine(
                self.url,
                connect_args={"isolation_level": None, "check_same_thread": False},
                **pool_args,
            )
            event.listen(self.writer, "connect", _sqlite_pragmas)
            event.listen(self.writer, "begin", _begin_immediate)
            if memory:
                self.reader = self.writer  # one in-memory database per connection
            else:
                self.reader = create_engine(
                    self.url,
                    pool_size=pool_size,
                    max_overflow=0,
                    connect_args={"check_same_thread": False},
                )
                event.listen(self.reader, "connect", _sqlite_pragmas)
        else:
            self.writer = create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self.reader = self.writer
        #: SQLite's writes from the request path go through one writer thread.
        self.group_commit = GroupCommit(self.writer) if self.is_sqlite else None

    async def transact(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a read-write transaction; return once it is durable.

        The request path's writes. On SQLite the transaction is handed to the group
        commit's writer thread and shares its commit with whatever queued meanwhile;
        on PostgreSQL it runs on a pooled connection in a worker thread. Either way
        the result comes back only after its ``COMMIT`` returned, and an exception
        from ``work`` rolls back its statements alone.
        """
        if self.group_commit is not None:
            return await self.group_commit.run(work)
        return await anyio.to_thread.run_sync(self._transact_now, work)

    def _transact_now(self, work: Callable[[Connection], T]) -> T:
        with self.write() as conn:
            return work(conn)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One read-write transaction, committed on success, rolled back on error.

        The stats counters its flows add are written just before the commit.
        """
        with self.writer.begin() as conn:
            rollup.begin(conn)
            try:
                yield conn
                rollup.write(conn, rollup.take(conn))
            finally:
                rollup.take(conn)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads that need no write lock."""
        with self.reader.connect() as conn:
            yield conn

    def describe(self) -> str:
        """The URL with any password hidden."""
        return self.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Stop the writer thread and close every pooled connection."""
        if self.group_commit is not None:
            self.group_commit.close()
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()
