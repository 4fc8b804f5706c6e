"""The outbox: real destinations are queued, delivered, retried with backoff, never lost."""

from __future__ import annotations

import json
import re
import time

import pytest
from fastapi.testclient import TestClient

from support.api import runtime, set_policy, signup, stats, stats_arm
from support.outbox import (
    REAL_PHONES,
    Flaky,
    Start,
    check,
    delivery,
    make_due,
    message_row,
    message_rows,
    seconds_until,
    wait,
    wait_row,
)
from support.rollup import live_and_rebuilt


def test_a_real_phone_is_queued_then_printed_by_the_console_provider(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    created = signup(client, phone="+1 415 555 2671")
    (ver,) = created["verifications"]
    assert ver["delivery"] == "queued"

    wait("delivery", lambda: delivery(client, ver["id"]) != "queued")
    assert delivery(client, ver["id"]) == "sent"
    row = message_row(client, ver["id"])
    assert (row.status, row.provider, row.kind, row.attempts) == ("sent", "console", "sms", 0)
    assert row.sent_at is not None and row.last_error is None

    out = capfd.readouterr().out
    printed = out.split("+14155552671", 1)[1]
    code_length = runtime(client).policies.current().sms.code_length
    code = re.findall(rf"\b\d{{{code_length}}}\b", printed)[0]
    check(client, ver["id"], code)


def test_a_real_email_is_queued_then_printed_by_the_console_provider(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    set_policy(client, "email")
    created = signup(client, email="someone@gmail.com")
    (ver,) = created["verifications"]
    assert (ver["channel"], ver["delivery"]) == ("email", "queued")

    wait("delivery", lambda: delivery(client, ver["id"]) == "sent")
    assert message_row(client, ver["id"]).status == "sent"
    out = capfd.readouterr().out
    assert "someone@gmail.com" in out
    token = re.findall(r"http://testserver/v1/email/verify\?token=([\w-]+)", out)[0]
    r = client.post("/v1/email/verify", json={"token": token})
    assert r.status_code == 200, r.text
    account = client.get(f"/v1/accounts/{created['account']['id']}").json()
    assert account["status"] == "active"


def test_a_failing_provider_is_retried_within_its_jittered_backoff_window(
    start: Start, flaky: type[Flaky]
) -> None:
    # A 20 s first window: the retry is scheduled, not due while the test looks.
    client = start(delivery_backoff_base_seconds=20)
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    assert ver["delivery"] == "queued"

    first = wait_row(client, ver["id"], lambda row: row.attempts == 1)
    assert first.status == "queued" and "503" in first.last_error
    assert 0 <= seconds_until(first.next_attempt_at) <= 20, "full jitter within the window"
    assert delivery(client, ver["id"]) == "queued"
    # The dispatcher polls every 50 ms; for 0.3 s, no retry may come before it is due.
    # (Full jitter can draw one due at once: seen in CI, 0.2 s of a 20 s window.)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        if message_row(client, ver["id"]).attempts > 1:
            assert seconds_until(first.next_attempt_at) <= 0, "retried before it was due"
            break
        time.sleep(0.05)

    if message_row(client, ver["id"]).attempts == 1:
        make_due(client)
    second = wait_row(client, ver["id"], lambda row: row.attempts == 2)
    assert second.status == "queued" and second.last_error
    assert 0 <= seconds_until(second.next_attempt_at) <= 40, "the window doubles"

    flaky.down = False
    make_due(client)
    wait("delivery", lambda: delivery(client, ver["id"]) == "sent")
    done = message_row(client, ver["id"])
    assert (done.status, done.attempts) == ("sent", 2) and done.sent_at is not None
    (message,) = flaky.sent
    assert message.to == "+14155552671" and message.code
    check(client, ver["id"], message.code)


def test_the_first_retry_comes_by_itself_within_a_few_seconds(
    start: Start, flaky: type[Flaky]
) -> None:
    client = start()  # the default backoff: the first retry within 2 s
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    wait_row(client, ver["id"], lambda row: row.attempts == 1)
    flaky.down = False
    wait("the retry", lambda: delivery(client, ver["id"]) == "sent", timeout=5)
    assert message_row(client, ver["id"]).attempts == 1


def test_a_non_retryable_failure_is_dead_and_the_delivery_failed(
    start: Start, flaky: type[Flaky]
) -> None:
    flaky.fatal = True
    client = start()
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    wait("a verdict", lambda: delivery(client, ver["id"]) != "queued")
    assert delivery(client, ver["id"]) == "failed"
    row = message_row(client, ver["id"])
    assert (row.status, row.attempts) == ("dead", 1) and "21211" in row.last_error
    time.sleep(0.2)
    assert message_row(client, ver["id"]).attempts == 1, "a dead message is not retried"


def test_retryable_failures_end_dead_after_the_last_attempt(
    start: Start, flaky: type[Flaky]
) -> None:
    client = start(delivery_max_attempts=4)
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    for attempt in range(1, 4):
        wait(f"attempt {attempt}", lambda n=attempt: message_row(client, ver["id"]).attempts == n)
        assert message_row(client, ver["id"]).status == "queued"
        make_due(client)
    wait("the last attempt", lambda: message_row(client, ver["id"]).status == "dead")
    assert message_row(client, ver["id"]).attempts == 4
    assert delivery(client, ver["id"]) == "failed"


def test_a_resend_before_delivery_cancels_the_superseded_message(
    start: Start, flaky: type[Flaky]
) -> None:
    client = start()
    set_policy(client, "phone", sms={"resend_cooldown_seconds": 0})
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    wait("a failed attempt", lambda: message_row(client, ver["id"]).attempts == 1)

    r = client.post(f"/v1/verifications/{ver['id']}/resend")
    assert r.status_code == 202, r.text
    assert r.json()["delivery"] == "queued"
    assert [m.generation for m in message_rows(client, ver["id"])] == [0, 1]

    flaky.down = False
    make_due(client)
    wait("delivery", lambda: delivery(client, ver["id"]) == "sent")
    wait("the old message settled", lambda: message_rows(client, ver["id"])[0].status != "queued")
    old, new = message_rows(client, ver["id"])
    assert (old.status, old.sent_at) == ("canceled", None)
    assert new.status == "sent"
    (message,) = flaky.sent  # only the new code went out
    check(client, ver["id"], message.code or "")


def test_nothing_is_lost_while_the_provider_is_down_even_across_a_restart(
    start: Start, flaky: type[Flaky]
) -> None:
    client = start()
    ids = [signup(client, phone=p)["verifications"][0]["id"] for p in REAL_PHONES]
    for vid in ids:
        wait("a failed attempt", lambda v=vid: message_row(client, v).attempts >= 1)
    client.__exit__(None, None, None)  # the worker stops while the flaky is still down

    flaky.down = False
    # Look before anything delivers: a full-jitter retry may be due at once (0.0 s), and a
    # dispatching app would race the look.
    looking = start(dispatcher="off")
    for vid in ids:
        row = message_row(looking, vid)
        assert row.status == "queued" and row.sent_at is None
        assert delivery(looking, vid) == "queued"
    looking.__exit__(None, None, None)
    client = start()
    make_due(client)
    for vid in ids:
        wait("delivery", lambda v=vid: delivery(client, v) == "sent")
    assert sorted(m.to for m in flaky.sent) == sorted(p.replace(" ", "") for p in REAL_PHONES)
    codes = {m.to: m.code for m in flaky.sent}
    for vid, phone in zip(ids, REAL_PHONES, strict=True):
        assert message_row(client, vid).status == "sent"
        check(client, vid, codes[phone.replace(" ", "")] or "")


def test_a_shadow_is_dispatched_like_any_message_but_never_sent_or_counted_as_sent(
    start: Start, flaky: type[Flaky]
) -> None:
    """The shadow of an active owner's number: queued, then ``sent`` by the dispatcher,
    with no provider call, no ``sent`` message in the stats and no cost."""
    flaky.down = False
    prices = json.dumps({"currency": "USD", "email": 0.001, "sms": {"default": 0.05}})
    client = start(prices=prices, sms_resend_cooldown_seconds=0)
    phone = "+44 7911 123456"
    owner = signup(client, phone=phone)["verifications"][0]["id"]
    wait("the owner's code", lambda: flaky.sent)
    check(client, owner, re.findall(r"\b\d{4}\b", flaky.sent[0].body)[0])

    shadow = signup(client, phone=phone)["verifications"][0]
    assert shadow["delivery"] == "queued"
    wait("the shadow's delivery", lambda: delivery(client, shadow["id"]) == "sent")
    r = client.post(f"/v1/verifications/{shadow['id']}/resend")
    assert r.status_code == 202 and r.json()["delivery"] == "queued", r.text
    wait("the resend's delivery", lambda: delivery(client, shadow["id"]) == "sent")

    assert len(flaky.sent) == 1, "only the owner's code went out"
    rows = message_rows(client, shadow["id"])
    assert [(m.status, m.provider, m.attempts) for m in rows] == [("suppressed", "flaky", 0)] * 2
    assert all(m.sent_at is not None and m.provider_message_id is None for m in rows)
    version = runtime(client).policies.current().version
    phone_arm = stats_arm(stats(client), version, "phone")
    assert phone_arm["messages"]["sent"] == 1
    assert phone_arm["cost"]["total"] == pytest.approx(0.05)
    with runtime(client).db.read() as conn:
        live, rebuilt = live_and_rebuilt(conn)
    assert live == rebuilt
    assert live[version, "phone", "suppressed.sms"] == 2
    assert live[version, "phone", "signups.shadow"] == 1


def test_while_the_provider_fails_a_shadow_fails_and_is_retried_like_a_real_message(
    start: Start, flaky: type[Flaky]
) -> None:
    """A provider outage keeps real codes ``queued``: a shadow that went ``sent`` meanwhile
    would tell. It fails as the provider's last real try did, and recovers with it."""
    flaky.down = False
    client = start(delivery_backoff_base_seconds=20)
    owned = "+44 7911 123456"
    owner = signup(client, phone=owned)["verifications"][0]["id"]
    wait("the owner's code", lambda: flaky.sent)
    check(client, owner, re.findall(r"\b\d{4}\b", flaky.sent[0].body)[0])

    flaky.down = True
    (real,) = signup(client, phone="+44 7911 123457")["verifications"]
    first = wait_row(client, real["id"], lambda row: row.attempts == 1)
    (shadow,) = signup(client, phone=owned)["verifications"]
    failed = wait_row(client, shadow["id"], lambda row: row.attempts == 1)
    assert (failed.status, failed.last_error) == ("queued", first.last_error)
    assert 0 <= seconds_until(failed.next_attempt_at) <= 20, "the same backoff"
    assert delivery(client, shadow["id"]) == delivery(client, real["id"]) == "queued"

    flaky.down = False
    make_due(client)
    wait("the real code", lambda: delivery(client, real["id"]) == "sent")
    make_due(client)  # a shadow tried before the real one's success fails once more
    wait("the shadow", lambda: delivery(client, shadow["id"]) == "sent")
    assert message_rows(client, shadow["id"])[0].status == "suppressed"
    assert [m.to for m in flaky.sent] == ["+447911123456", "+447911123457"]
