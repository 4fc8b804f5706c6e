"""Group commit on SQLite: transactions that queue meanwhile share one commit, and each
answer stands or falls with its own work."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from verifyd.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/gc.db")
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))"
        )
    yield database
    database.dispose()


def insert(value: int, *, then: Callable[[], None] = lambda: None) -> Callable[[Connection], int]:
    def work(conn: Connection) -> int:
        conn.execute(text("INSERT INTO parent (id) VALUES (:v)"), {"v": value})
        then()
        return value

    return work


def stored(db: Database) -> set[int]:
    # A connection of its own, outside SQLAlchemy: what is really in the file.
    path = db.url.database
    assert path is not None
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM parent")}


def fail() -> None:
    raise ValueError("this transaction fails")


async def gather_behind_a_slow_one(db: Database, works: list[Callable[[Connection], int]]) -> list:
    """Run ``works`` while a first transaction holds the writer for 0.2 s, so they queue."""
    slow = asyncio.ensure_future(db.transact(insert(0, then=lambda: time.sleep(0.2))))
    await asyncio.sleep(0.05)  # the writer thread is now inside the slow transaction
    rest = [asyncio.ensure_future(db.transact(w)) for w in works]
    return await asyncio.gather(slow, *rest, return_exceptions=True)


def test_transactions_that_queue_meanwhile_share_one_commit(db: Database) -> None:
    gc = db.group_commit
    assert gc is not None
    results = asyncio.run(gather_behind_a_slow_one(db, [insert(i) for i in range(1, 51)]))
    assert results == list(range(51))
    assert stored(db) == set(range(51))
    # The slow one alone, then the 50 that queued behind it: two commits, not 51.
    assert (gc.transactions, gc.commits) == (51, 2)


def test_a_failing_transaction_rolls_back_alone(db: Database) -> None:
    works = [insert(1), insert(2, then=fail), insert(3)]
    results = asyncio.run(gather_behind_a_slow_one(db, works))
    assert results[0] == 0 and results[1] == 1 and results[3] == 3
    assert isinstance(results[2], ValueError)
    assert stored(db) == {0, 1, 3}  # 2 was inserted, then rolled back to its savepoint


def test_a_lone_failing_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(ValueError, match="this transaction fails"):
        asyncio.run(db.transact(insert(7, then=fail)))
    assert stored(db) == set()
    assert asyncio.run(db.transact(insert(8))) == 8  # and the writer goes on
    assert stored(db) == {8}


def test_a_commit_that_fails_fails_every_transaction_it_carried(db: Database) -> None:
    def orphan(conn: Connection) -> int:
        # Checked at COMMIT: the whole batch's commit fails, after every job ran.
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        conn.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (1, 999)")
        return -1

    results = asyncio.run(gather_behind_a_slow_one(db, [insert(1), orphan, insert(2)]))
    assert results[0] == 0
    assert all(isinstance(r, Exception) and "FOREIGN KEY" in str(r) for r in results[1:])
    assert stored(db) == {0}  # nobody was told "done" for work that did not stand


def test_a_cancelled_waiter_does_not_disturb_its_batch_mates(db: Database) -> None:
    async def scenario() -> tuple[list, bool]:
        slow = asyncio.ensure_future(db.transact(insert(0, then=lambda: time.sleep(0.2))))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(db.transact(insert(1)))
        kept = asyncio.ensure_future(db.transact(insert(2)))
        await asyncio.sleep(0)
        gone.cancel()
        results = await asyncio.gather(slow, kept)
        return results, gone.cancelled()

    results, cancelled = asyncio.run(scenario())
    assert results == [0, 2] and cancelled
    # The cancelled request's work had already been handed over: it still commits,
    # as a request whose client hangs up after sending does.
    assert stored(db) == {0, 1, 2}


def test_the_writer_commits_with_full_synchronous(db: Database) -> None:
    # FULL (2) fsyncs the WAL at every commit: NORMAL (1) survives a killed process
    # but can lose the last commits to an OS crash or power loss.
    with db.write() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_dispose_finishes_what_is_queued_and_stops_the_thread(db: Database) -> None:
    gc = db.group_commit
    assert gc is not None
    assert asyncio.run(db.transact(insert(1))) == 1
    thread = gc._thread
    assert thread is not None and thread.is_alive()
    db.dispose()
    assert not thread.is_alive()
    assert stored(db) == {1}
