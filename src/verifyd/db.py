"""Engines and transactions: one writer connection on SQLite, a shared pool on PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from verifyd import rollup
from verifyd.groupcommit import GroupCommit

if TYPE_CHECKING:
    from verifyd.settings import Settings

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


def _postgres_connect_args(
    options: str | tuple[str, ...] | None, connect_timeout: float | None, statement_timeout_ms: int
) -> dict[str, Any]:
    """psycopg's connection arguments for the timeouts (the URL's own ``options`` kept)."""
    args: dict[str, Any] = {}
    if connect_timeout is not None:
        # libpq takes whole seconds (and treats 1 as 2); round up, never to 0 (= forever).
        args["connect_timeout"] = max(1, math.ceil(connect_timeout))
    if statement_timeout_ms > 0:
        given = [options] if isinstance(options, str) else list(options or ())
        args["options"] = " ".join([*given, f"-c statement_timeout={statement_timeout_ms}"])
    return args


class Database:
    """The engines of one database URL.

    SQLite gets a single writer connection (concurrent writers through a pool collide
    on its write lock and sleep) and a small pool of readers (WAL lets them run beside
    the writer). PostgreSQL uses one pool for both, pinged before each checkout so a
    server that restarted costs one reconnect, not one failed request per dead
    connection.

    Every limit has a default, so ``Database(url)`` works as it is; the processes
    build theirs with :meth:`from_settings`.

    Args:
        url: A SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://…``).
        pool_size: Connections for PostgreSQL and for SQLite readers.
        pool_overflow: Connections PostgreSQL's pool may open past ``pool_size``
            (by default as many again).
        pool_timeout: Seconds a caller waits for a pooled connection before
            ``sqlalchemy.exc.TimeoutError`` (answered 503, see ``verifyd.outages``).
        connect_timeout: Seconds opening a PostgreSQL connection may take (libpq's
            ``connect_timeout``, whole seconds); None waits as long as the OS does.
        statement_timeout_ms: PostgreSQL's ``statement_timeout`` for every session of
            the pool; 0 leaves the server's own (usually off).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_overflow: int | None = None,
        pool_timeout: float = 30.0,
        connect_timeout: float | None = None,
        statement_timeout_ms: int = 0,
    ) -> None:
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
                    pool_timeout=pool_timeout,
                    connect_args={"check_same_thread": False},
                )
                event.listen(self.reader, "connect", _sqlite_pragmas)
        else:
            self.writer = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size if pool_overflow is None else pool_overflow,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
                connect_args=_postgres_connect_args(
                    self.url.query.get("options"), connect_timeout, statement_timeout_ms
                ),
            )
            self.reader = self.writer
        #: SQLite's writes from the request path go through one writer thread.
        self.group_commit = GroupCommit(self.writer) if self.is_sqlite else None

    @classmethod
    def from_settings(cls, settings: Settings, *, statement_timeout: bool = True) -> Database:
        """The database of these settings, with their pool and timeouts.

        Args:
            settings: ``VERIFYD_DATABASE_URL`` and the ``VERIFYD_DB_*`` limits.
            statement_timeout: False for operators' one-off commands (reports over a
                large database may rightly run longer than a request may).
        """
        return cls(
            settings.database_url,
            pool_size=settings.db_pool_size,
            pool_overflow=settings.db_pool_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms if statement_timeout else 0,
        )

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
