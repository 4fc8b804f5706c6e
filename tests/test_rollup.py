"""The stats' rollup: counts commit and roll back with the work they count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, func, select

from verifyd import rollup
from verifyd.db import Database
from verifyd.models import StatCount, table_of

AT = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def counts(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return {name: n for (_, _), c in rollup.read(conn).items() for name, n in c.items()}


def counting(name: str, *, then: Callable[[], None] = lambda: None) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        rollup.add(conn, 1, "phone", name, AT)
        rollup.add(conn, 1, "phone", "total", AT)
        then()
        return name

    return work


def fail() -> None:
    raise ValueError("this transaction fails")


async def behind_a_slow_one(db: Database, works: list[Callable[[Connection], str]]) -> list:
    slow = asyncio.ensure_future(db.transact(counting("slow", then=lambda: time.sleep(0.2))))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(db.transact(w)) for w in works]
    return await asyncio.gather(slow, *rest, return_exceptions=True)


def test_a_batch_writes_its_counts_once_and_drops_a_failed_mates(db: Database) -> None:
    works = [counting("a"), counting("b", then=fail), counting("a"), counting("c")]
    results = asyncio.run(behind_a_slow_one(db, works))
    assert isinstance(results[2], ValueError)
    assert counts(db) == {"slow": 1, "a": 2, "c": 1, "total": 4}
    with db.read() as conn:
        rows = conn.execute(select(func.count()).select_from(table_of(StatCount))).scalar()
    # one row per counter on SQLite; PostgreSQL may spread a counter over shards
    assert rows is not None and rows >= 4


def test_a_lone_failing_transaction_counts_nothing(db: Database) -> None:
    with pytest.raises(ValueError):
        asyncio.run(db.transact(counting("x", then=fail)))
    with pytest.raises(ValueError), db.write() as conn:
        counting("y", then=fail)(conn)
    assert counts(db) == {}


def test_counts_outside_a_gathering_transaction_are_written_at_once(db: Database) -> None:
    with db.writer.begin() as conn:  # a bare transaction, not Database.write()
        rollup.add(conn, 2, "email", "signups", AT, 3)
        rollup.add(conn, 2, "email", "signups", rollup.hour_of(AT), -1)
    assert counts(db) == {"signups": 2}


def test_reads_select_hours_and_versions(db: Database) -> None:
    with db.write() as conn:
        rollup.add(conn, 1, "phone", "signups", 100)
        rollup.add(conn, 1, "phone", "signups", 101, 2)
        rollup.add(conn, 2, "email", "signups", 101, 5)
    with db.read() as conn:
        assert rollup.read(conn, since=101) == {
            (1, "phone"): {"signups": 2},
            (2, "email"): {"signups": 5},
        }
        assert rollup.read(conn, until=101) == {(1, "phone"): {"signups": 1}}
        assert rollup.read(conn, versions=[2]) == {(2, "email"): {"signups": 5}}


@pytest.mark.parametrize(
    ("seconds", "bucket"), [(0, 0), (5, 0), (5.01, 1), (60, 6), (604800, 20), (10**7, 21)]
)
def test_time_to_verify_buckets(seconds: float, bucket: int) -> None:
    assert rollup.ttv_bucket(seconds) == bucket
    assert len(rollup.TTV_EDGES) == 21
