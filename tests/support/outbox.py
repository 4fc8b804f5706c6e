"""The outbox under test: a provider that fails on command, and waits on message rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from support.api import runtime
from verifyd.models import Message, table_of, utcnow
from verifyd.providers.base import DeliveryError, MessageKind, OutgoingMessage, Provider

_messages = table_of(Message)
REAL_PHONES = ["+1 415 555 2671", "+1 415 555 2672", "+1 415 555 2673"]


#: Starts an app (same database each call) whose messages go through ``flaky``.
Start = Callable[..., TestClient]


class Flaky(Provider):
    """A gateway that is down until told otherwise; ``fatal`` makes every send unrecoverable."""

    name = "flaky"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})
    down: ClassVar[bool] = True
    fatal: ClassVar[bool] = False
    sent: ClassVar[list[OutgoingMessage]]

    async def send(self, message: OutgoingMessage) -> None:
        if self.fatal:
            raise DeliveryError("21211 invalid 'To' number", retryable=False)
        if self.down:
            raise DeliveryError("503 gateway unavailable")
        type(self).sent.append(message)


def wait(what: str, probe: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def message_rows(client: TestClient, verification_id: str) -> list[Any]:
    with runtime(client).db.read() as conn:
        return list(
            conn.execute(
                select(_messages)
                .where(_messages.c.verification_id == verification_id)
                .order_by(_messages.c.generation)
            ).all()
        )


def message_row(client: TestClient, verification_id: str) -> Any:
    (row,) = message_rows(client, verification_id)
    return row


def wait_row(
    client: TestClient, verification_id: str, ready: Callable[[Any], bool], timeout: float = 10
) -> Any:
    """The verification's only message, once ``ready`` holds for it."""
    return wait(
        "the message",
        lambda: next(filter(ready, message_rows(client, verification_id)), None),
        timeout,
    )


def delivery(client: TestClient, verification_id: str) -> str:
    delivery: str = client.get(f"/v1/verifications/{verification_id}").json()["delivery"]
    return delivery


def make_due(client: TestClient) -> None:
    """Skip the backoff wait: every queued message becomes due now (time passing, faster)."""
    with runtime(client).db.write() as conn:
        conn.execute(
            update(_messages).where(_messages.c.status == "queued").values(next_attempt_at=utcnow())
        )


def seconds_until(moment: datetime) -> float:
    return (moment - utcnow()).total_seconds()


def check(client: TestClient, verification_id: str, code: str) -> dict[str, Any]:
    r = client.post(f"/v1/verifications/{verification_id}/check", json={"code": code})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "approved" and body["account"]["status"] == "active"
    return body
