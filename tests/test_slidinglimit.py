"""The sliding-log limiter: its bound holds in every window, is reached, and waits are exact."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifyd import slidinglimit
from verifyd.db import Database
from verifyd.errors import RateLimited
from verifyd.settings import Settings
from verifyd.slidinglimit import Backoff, Bounds

START = datetime(2030, 1, 1, 23, 0, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def most_in_any_window(times: list[datetime], window: int) -> int:
    """The most of ``times`` any half-open interval ``[a, a + window)`` holds.

    The busiest interval can always be slid right until it starts at one of the times,
    so checking those starts checks every interval, not only calendar days.
    """
    span = timedelta(seconds=window)
    return max((sum(1 for t in times if a <= t < a + span) for a in times), default=0)


def allowed(db: Database, limit: Backoff, key: str, at: datetime) -> int | None:
    """Try one event; ``None`` if it was logged, else the ``Retry-After`` it got."""
    try:
        with db.write() as conn:
            slidinglimit.hit(conn, limit, key, at)
    except RateLimited as exc:
        assert exc.retry_after is not None
        return exc.retry_after
    return None


def would_allow(db: Database, limit: Backoff, key: str, at: datetime) -> bool:
    """Whether an event at ``at`` would be allowed; logs nothing (a rolled-back try)."""

    class Probe(Exception):
        pass

    try:
        with db.write() as conn:
            slidinglimit.hit(conn, limit, key, at)
            raise Probe
    except Probe:
        return True
    except RateLimited:
        return False


def test_the_defaults_state_their_bounds() -> None:
    bounds = Bounds.of(Settings())
    guesses, sends = bounds.guesses, bounds.sends
    # 10 free, then 300 600 1200 2400 4800 9600 14400 14400 14400 14400 s:
    # 76,500 s < 86,400 s, and one more 14,400 s wait would pass a day.
    assert [guesses.delay(k) for k in range(1, 12)] == [
        *(300, 600, 1200, 2400, 4800, 9600),
        *[14400] * 5,
    ]
    assert (guesses.free, guesses.extra, guesses.bound, guesses.longest_wait) == (10, 10, 20, 14400)
    # 5 free, then 60 120 240 480 900 900 s (2,700 s < 3,600 s): 11 in any hour.
    assert (sends.free, sends.extra, sends.bound, sends.longest_wait) == (5, 6, 11, 900)


@pytest.mark.parametrize(
    ("free", "window", "base", "cap"),
    [
        (10, 86400, 300, 14400),
        (5, 3600, 60, 900),
        (1, 86400, 1, 1),
        (3, 1000, 2000, 5000),
        (2, 86400, 7, 86400),
        (1, 3600, 3600, 3600),
    ],
)
def test_extra_is_the_most_waits_that_fit_in_a_window(
    free: int, window: int, base: int, cap: int
) -> None:
    b = Backoff("x", free, window, base, cap)
    assert sum(b.delay(k) for k in range(1, b.extra + 1)) < window
    assert sum(b.delay(k) for k in range(1, b.extra + 2)) >= window
    assert b.longest_wait <= cap


def test_a_greedy_attacker_reaches_the_bound_and_never_passes_it(db: Database) -> None:
    """Whoever spends every slot as it opens, for three days, gets N + K in some day."""
    limit = Bounds.of(Settings()).guesses
    now, times, waits = START, [], []
    while now < START + timedelta(days=3):
        retry = allowed(db, limit, "+447911123456", now)
        if retry is None:
            times.append(now)
        else:
            waits.append(retry)
            now += timedelta(seconds=retry)
    assert most_in_any_window(times, 86400) == limit.bound == 20
    assert max(waits) == limit.longest_wait == 4 * 3600


def test_the_23_59_and_00_00_bursts_no_longer_double_the_budget(db: Database) -> None:
    limit = Bounds.of(Settings()).guesses
    before_midnight = datetime(2030, 1, 1, 23, 59, 30, tzinfo=UTC)
    after_midnight = before_midnight + timedelta(seconds=45)
    results = [allowed(db, limit, "victim", before_midnight) for _ in range(10)]
    results += [allowed(db, limit, "victim", after_midnight) for _ in range(10)]
    assert results[:10] == [None] * 10
    # 45 s after the tenth guess: the eleventh waits the rest of the first 300 s backoff
    assert results[10:] == [255] * 10
    assert allowed(db, limit, "victim", after_midnight + timedelta(seconds=254)) == 1
    assert allowed(db, limit, "victim", after_midnight + timedelta(seconds=255)) is None


def test_refusals_are_not_logged_and_keys_are_separate(db: Database) -> None:
    limit = Backoff("t", 2, 3600, 60, 900)
    for _ in range(2):
        assert allowed(db, limit, "a", START) is None
    for second in range(0, 60, 5):  # hammering during the wait does not extend it
        assert allowed(db, limit, "a", START + timedelta(seconds=second)) == 60 - second
    assert allowed(db, limit, "a", START + timedelta(seconds=60)) is None
    assert allowed(db, limit, "b", START) is None


def test_a_clock_that_steps_back_cannot_slip_an_event_in(db: Database) -> None:
    limit = Backoff("t", 1, 3600, 60, 900)
    assert allowed(db, limit, "a", START) is None
    retry = allowed(db, limit, "a", START - timedelta(seconds=30))
    assert retry == 60  # counted from the newest event, never more than the cap


def test_purge_drops_logs_older_than_two_days(db: Database) -> None:
    limit = Backoff("t", 1, 3600, 60, 900)
    allowed(db, limit, "old", START)
    allowed(db, limit, "new", START + timedelta(days=2))
    with db.write() as conn:
        assert slidinglimit.purge(conn, START + timedelta(days=2, seconds=1)) == 1


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    free=st.integers(1, 6),
    window=st.integers(60, 7200),
    base=st.integers(1, 900),
    cap=st.integers(1, 3600),
    gaps=st.lists(st.integers(0, 900_000), min_size=20, max_size=120),  # milliseconds
)
def test_any_attempt_sequence_keeps_the_bound_and_exact_waits(
    db: Database, free: int, window: int, base: int, cap: int, gaps: list[int]
) -> None:
    limit = Backoff("prop", free, window, base, cap)
    key = uuid.uuid4().hex
    now, times = START, []
    for gap in gaps:
        now += timedelta(milliseconds=gap)
        retry = allowed(db, limit, key, now)
        if retry is None:
            times.append(now)
            continue
        assert 1 <= retry <= limit.longest_wait <= cap
        # exact: still refused a second before the stated time, allowed at it
        assert not would_allow(db, limit, key, now + timedelta(seconds=retry - 1))
        assert would_allow(db, limit, key, now + timedelta(seconds=retry))
    assert most_in_any_window(times, window) <= limit.bound
