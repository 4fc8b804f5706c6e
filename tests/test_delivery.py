"""Delivery policy: failover along the chain, Retry-After, stale codes never sent, no send
inside a request."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from support.api import runtime, signup
from support.outbox import (
    REAL_PHONES,
    Flaky,
    Start,
    check,
    delivery,
    make_due,
    message_row,
    seconds_until,
    wait,
    wait_row,
)
from verifyd.app import create_app
from verifyd.models import Verification, table_of, utcnow
from verifyd.providers.base import DeliveryError, MessageKind, OutgoingMessage, Provider
from verifyd.registry import Registry
from verifyd.retry import Backoff
from verifyd.settings import Settings

_verifications = table_of(Verification)


def test_a_permanent_failure_fails_over_to_the_next_provider(
    start: Start, flaky: type[Flaky], backup: type[Flaky], caplog: pytest.LogCaptureFixture
) -> None:
    flaky.fatal = True
    client = start(sms_provider="flaky,backup")
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    with caplog.at_level(logging.INFO, logger="verifyd.outbox"):
        wait("delivery", lambda: delivery(client, ver["id"]) == "sent")
    done = message_row(client, ver["id"])
    assert (done.status, done.provider, done.attempts) == ("sent", "backup", 0)
    assert "21211" in done.last_error, "the first provider's refusal is kept"
    assert flaky.sent == [] and len(backup.sent) == 1
    check(client, ver["id"], backup.sent[0].code or "")
    logged = caplog.text
    assert "failing over to backup" in logged and f"{done.id} sent via backup" in logged


def test_retries_spent_on_one_provider_fail_over_to_the_next(
    start: Start, flaky: type[Flaky], backup: type[Flaky]
) -> None:
    client = start(sms_provider="flaky,backup", delivery_max_attempts=2)
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    wait_row(client, ver["id"], lambda row: row.attempts == 1)
    make_due(client)
    wait("delivery", lambda: delivery(client, ver["id"]) == "sent")
    assert message_row(client, ver["id"]).provider == "backup"
    assert len(backup.sent) == 1 and flaky.sent == []


def test_dead_only_when_every_provider_of_the_chain_failed(
    start: Start, flaky: type[Flaky], backup: type[Flaky]
) -> None:
    flaky.fatal = backup.fatal = True
    client = start(sms_provider="flaky,backup")
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    wait("a verdict", lambda: delivery(client, ver["id"]) == "failed")
    row = message_row(client, ver["id"])
    assert (row.status, row.provider) == ("dead", "backup")


class Throttled(Provider):
    """Answers like a gateway's 429: try again in ``retry_after`` seconds."""

    name = "throttled"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})
    retry_after: ClassVar[float] = 30.0

    async def send(self, message: OutgoingMessage) -> str | None:
        raise DeliveryError("429 too many requests", code="429", retry_after=self.retry_after)


def _app(make_settings: Any, provider: type[Provider], **overrides: Any) -> TestClient:
    installed = Registry.from_entry_points()
    registry = Registry(
        channels=installed.channels, providers={**installed.providers, provider.name: provider}
    )
    settings: Settings = make_settings(sms_provider=provider.name, **overrides)
    return TestClient(create_app(settings, registry=registry), raise_server_exceptions=False)


def test_retry_after_is_honoured_even_past_the_backoff_window(make_settings: Any) -> None:
    # A 0.1 s backoff window: without Retry-After the retry would come at once.
    with _app(make_settings, Throttled, delivery_backoff_base_seconds=0.1) as client:
        (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
        row = wait_row(client, ver["id"], lambda row: row.attempts == 1)
        assert row.status == "queued" and row.error_code == "429"
        assert 29 <= seconds_until(row.next_attempt_at) <= 30.5
        time.sleep(0.3)
        assert message_row(client, ver["id"]).attempts == 1, "not retried before Retry-After"


def test_a_code_that_expired_before_sending_is_never_sent(start: Start, flaky: type[Flaky]) -> None:
    client = start(delivery_backoff_base_seconds=60)
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    wait_row(client, ver["id"], lambda row: row.attempts == 1)
    with runtime(client).db.write() as conn:
        conn.execute(
            update(_verifications)
            .where(_verifications.c.id == ver["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    flaky.down = False
    make_due(client)
    wait_row(client, ver["id"], lambda row: row.status == "canceled")
    assert flaky.sent == []


def test_an_approved_code_is_never_sent_again(start: Start, flaky: type[Flaky]) -> None:
    client = start(delivery_backoff_base_seconds=60)
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    wait_row(client, ver["id"], lambda row: row.attempts == 1)
    with runtime(client).db.write() as conn:
        conn.execute(
            update(_verifications).where(_verifications.c.id == ver["id"]).values(status="approved")
        )
    flaky.down = False
    make_due(client)
    wait_row(client, ver["id"], lambda row: row.status == "canceled")
    assert flaky.sent == []


class Held(Provider):
    """Blocks in ``send`` until the test releases it, and notes the order of events."""

    name = "held"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})
    events: ClassVar[list[str]]
    released: ClassVar[threading.Event]

    async def send(self, message: OutgoingMessage) -> str | None:
        self.events.append("send called")
        if not await asyncio.to_thread(self.released.wait, 10):
            raise DeliveryError("never released")
        self.events.append("sent")
        return None


def test_no_provider_is_called_inside_the_request(make_settings: Any) -> None:
    held = type("Held", (Held,), {"events": [], "released": threading.Event()})
    with _app(make_settings, held) as client:
        started = time.monotonic()
        (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
        held.events.append("response read")
        assert time.monotonic() - started < 5, "the answer did not wait for the provider"
        assert ver["delivery"] == "queued"
        held.released.set()
        wait("delivery", lambda: delivery(client, ver["id"]) == "sent")
    assert held.events[-1] == "sent"
    assert held.events.index("response read") < held.events.index("sent")


def test_full_jitter_spreads_each_retry_over_a_doubling_capped_window() -> None:
    import random

    backoff = Backoff(base=2, cap=60, max_attempts=6, rng=random.Random(7))
    assert [backoff.window(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    for attempt in range(1, 8):
        delays = [backoff.delay(attempt) for _ in range(2000)]
        window = backoff.window(attempt)
        assert all(0 <= d <= window for d in delays)
        # Uniform over the window: the mean sits near its middle, both halves are used.
        assert abs(sum(delays) / len(delays) - window / 2) < window * 0.05
        assert min(delays) < window * 0.1 and max(delays) > window * 0.9
    assert backoff.delay(1, retry_after=90) == 90, "Retry-After is a floor, past the cap"
