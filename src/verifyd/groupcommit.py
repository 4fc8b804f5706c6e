"""Group commit: one writer thread commits the transactions that queue up meanwhile together.

SQLite has one writer, and a durable commit costs an fsync. When every request runs
its own transaction, requests queue for the write lock and each pays its own fsync.
Here the requests hand their transaction (a function of a connection) to a single
writer thread. While a commit is in flight, new transactions queue; the thread then
runs them all in one transaction, each under a savepoint of its own, and commits
once. A request is answered only after the ``COMMIT`` that holds its work returned,
so every answer is as durable as a commit of its own; and a transaction that raises
is rolled back to its savepoint alone, never taking its batch mates with it.

Python's ``sqlite3`` releases the GIL while SQLite works and while it waits on the
disk, so the event loop keeps parsing requests during the fsync.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from verifyd import rollup

T = TypeVar("T")
log = logging.getLogger("verifyd.db")

#: At most this many transactions share one commit (bounds a batch's latency).
MAX_BATCH = 128


@dataclass
class _Job:
    work: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    ok: bool = False
    result: Any = field(default=None)


class GroupCommit:
    """The writer thread of one engine.

    Args:
        engine: The engine whose (single) connection the thread writes through; its
            ``begin`` event opens the transaction (``BEGIN IMMEDIATE`` on SQLite).
        max_batch: The most transactions committed together.
    """

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Transactions committed, and commits; their ratio is the mean batch size.
        self.transactions = 0
        self.commits = 0

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a transaction; return once it is committed.

        Raises:
            Exception: whatever ``work`` raised (its statements rolled back), or the
                commit's own error (the whole batch rolled back).
        """
        self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(work, loop, future))
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
            if self.commits:
                log.info(
                    "group commit: %d transactions in %d commits (%.1f per commit)",
                    self.transactions,
                    self.commits,
                    self.transactions / self.commits,
                )

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="verifyd-writer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with self._engine.connect() as conn, conn.begin():
                # The stats counters of the whole batch, written once before COMMIT.
                counts: rollup.Counts = {}
                if len(batch) == 1:
                    self._run_alone(conn, batch[0], counts)
                else:
                    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                    try:
                        for job in batch:
                            self._run_savepoint(conn, cursor, job, counts)
                    finally:
                        cursor.close()
                rollup.write(conn, counts)
        except _RolledBack:
            pass
        except Exception as exc:  # BEGIN or COMMIT failed: nobody's work stands
            log.error("a commit of %d transactions failed: %r", len(batch), exc)
            for job in batch:
                job.ok, job.result = False, exc
        self.transactions += len(batch)
        self.commits += 1
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, jobs)
            except RuntimeError:  # that loop is closed: nobody waits for the answer
                pass

    @staticmethod
    def _run_alone(conn: Connection, job: _Job, counts: rollup.Counts) -> None:
        # Alone in its batch, a failing transaction rolls back whole: no savepoint.
        rollup.begin(conn)
        try:
            job.result = job.work(conn)
        except Exception as exc:
            job.result = exc
            raise _RolledBack from exc
        finally:
            mine = rollup.take(conn)
        rollup.merge(counts, mine)
        job.ok = True

    @staticmethod
    def _run_savepoint(conn: Connection, cursor: Any, job: _Job, counts: rollup.Counts) -> None:
        # Plain driver statements: a savepoint through SQLAlchemy costs more CPU
        # than the work it protects.
        cursor.execute("SAVEPOINT verifyd_job")
        rollup.begin(conn)
        try:
            job.result = job.work(conn)
        except Exception as exc:
            rollup.take(conn)  # its counters go with its statements
            cursor.execute("ROLLBACK TO SAVEPOINT verifyd_job")
            cursor.execute("RELEASE SAVEPOINT verifyd_job")
            job.result = exc
            return
        cursor.execute("RELEASE SAVEPOINT verifyd_job")
        rollup.merge(counts, rollup.take(conn))
        job.ok = True


class _RolledBack(Exception):
    """A lone transaction raised: leave the ``with`` so its transaction rolls back."""


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():  # the request was cancelled while it waited
            continue
        if job.ok:
            job.future.set_result(job.result)
        else:
            job.future.set_exception(job.result)
