"""Twilio end to end: the SMS reaches a loopback Twilio, the code checks, and signed status
callbacks move the verification's ``delivery`` (``POST /v1/providers/twilio/status``)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from support.api import runtime, signup
from support.twilio_gateway import ACCOUNT_SID, AUTH_TOKEN, FROM, Sent, TwilioGateway, valid_sid
from verifyd.models import Message, table_of
from verifyd.settings import Settings

PHONE = "+44 7911 123456"  # a real UK mobile range: goes to the provider, not the sandbox
E164 = "+447911123456"
PATH = "/v1/providers/twilio/status"
PROBLEM = "application/problem+json"

_messages = table_of(Message)

Start = Callable[..., TestClient]


@pytest.fixture(scope="module")
def server() -> Iterator[TwilioGateway]:
    """One loopback Twilio for the module (stopping a server costs half a second)."""
    with TwilioGateway() as gw:
        yield gw


@pytest.fixture
def twilio(server: TwilioGateway) -> Iterator[TwilioGateway]:
    server.reset()
    yield server
    server.release()
    assert server.refusals == [], "verifyd sent Twilio a request it would refuse"


@pytest.fixture
def start(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
    twilio: TwilioGateway,
) -> Start:
    """Start the app with SMS through the loopback Twilio."""

    def start_app(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "sms_provider": ["twilio"],
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from": FROM,
            "twilio_base_url": twilio.url,
            "twilio_timeout_seconds": 5.0,
        }
        values.update(overrides)
        return make_client(make_settings(**values))

    return start_app


def wait(what: str, probe: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def code_in(body: str) -> str:
    """The code an SMS carries (the origin-bound ``#code`` line when there is one)."""
    found = re.search(r"#(\d{4,10})\b", body) or re.search(r"(?<!\d)(\d{4,10})(?!\d)", body)
    assert found, f"no code in {body!r}"
    return found.group(1)


def rows(client: TestClient, verification_id: str) -> list[Any]:
    with runtime(client).db.read() as conn:
        return list(
            conn.execute(
                select(_messages)
                .where(_messages.c.verification_id == verification_id)
                .order_by(_messages.c.generation)
            ).all()
        )


def sent_message(
    client: TestClient, twilio: TwilioGateway, verification_id: str, n: int = 1
) -> Sent:
    """The ``n``-th SMS Twilio accepted, once the outbox recorded its SID."""
    wait(f"{n} message(s) at Twilio", lambda: len(twilio.sent) >= n)
    message = twilio.sent[n - 1]
    wait(
        "the outbox to record the SID",
        lambda: any(r.provider_message_id == message.sid for r in rows(client, verification_id)),
    )
    return message


def row_of(client: TestClient, verification_id: str, sid: str) -> Any:
    (row,) = [r for r in rows(client, verification_id) if r.provider_message_id == sid]
    return row


def post_callback(
    client: TestClient,
    twilio: TwilioGateway,
    message: Sent,
    status: str,
    *,
    error_code: str | None = None,
) -> httpx.Response:
    """Post the status callback Twilio would, to the path of the URL verifyd gave it."""
    url, params, headers = twilio.callback(message, status, error_code=error_code)
    return client.post(httpx.URL(url).path, data=params, headers=headers)


def delivery(client: TestClient, verification_id: str) -> str:
    r = client.get(f"/v1/verifications/{verification_id}")
    assert r.status_code == 200, r.text
    value: str = r.json()["delivery"]
    return value


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code


def begin(start: Start, twilio: TwilioGateway, **overrides: Any) -> tuple[TestClient, str, Sent]:
    """Sign up a phone; returns the client, the verification id and the SMS Twilio took."""
    client = start(**overrides)
    (verification,) = signup(client, phone=PHONE)["verifications"]
    message = sent_message(client, twilio, verification["id"])
    return client, verification["id"], message


# ------------------------------------------------------------------------- end to end


def test_the_code_reaches_twilio_checks_and_a_signed_receipt_marks_it_delivered(
    start: Start, twilio: TwilioGateway
) -> None:
    client, vid, message = begin(start, twilio)
    assert message.to == E164
    assert valid_sid(message.sid, "SM")
    assert message.status_callback == f"http://testserver{PATH}"
    (row,) = rows(client, vid)
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "twilio", message.sid)
    assert delivery(client, vid) == "sent"

    r = client.post(f"/v1/verifications/{vid}/check", json={"code": code_in(message.body)})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"

    r = post_callback(client, twilio, message, "delivered")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert delivery(client, vid) == "delivered"
    row = row_of(client, vid, message.sid)
    assert row.status == "delivered" and row.delivered_at is not None
    assert row.error_code is None


def test_a_tampered_or_missing_signature_is_refused_and_changes_nothing(
    start: Start, twilio: TwilioGateway
) -> None:
    client, vid, message = begin(start, twilio)
    url, params, headers = twilio.callback(message, "undelivered", error_code="30003")

    forged = {**params, "MessageStatus": "delivered", "SmsStatus": "delivered"}
    for body, sent_headers in (
        (forged, headers),  # the parameters changed after signing
        (params, {}),  # no signature at all
        (params, {"X-Twilio-Signature": headers["X-Twilio-Signature"][:-4] + "AAA="}),
        (params, {"X-Twilio-Signature": RequestValidator("guess").compute_signature(url, params)}),
    ):
        assert_problem(client.post(PATH, data=body, headers=sent_headers), 403, "forbidden")

    assert delivery(client, vid) == "sent"
    assert row_of(client, vid, message.sid).status == "sent"


def test_the_signed_url_is_the_public_base_url_never_the_host_header(
    start: Start, twilio: TwilioGateway
) -> None:
    """Behind a proxy the request arrives under another host; Twilio signed the public URL."""
    public = "https://verify.example.com"
    client, vid, message = begin(start, twilio, public_base_url=public)
    assert message.status_callback == f"{public}{PATH}"
    _, params, headers = twilio.callback(message, "delivered")

    # Signed over the URL a Host-built check would compute: refused.
    as_host = RequestValidator(AUTH_TOKEN).compute_signature(f"http://evil.example{PATH}", params)
    r = client.post(
        PATH, data=params, headers={"X-Twilio-Signature": as_host, "Host": "evil.example"}
    )
    assert_problem(r, 403, "forbidden")
    assert delivery(client, vid) == "sent"

    # Signed over the public URL, wherever the request came in: accepted.
    r = client.post(PATH, data=params, headers={**headers, "Host": "internal:8000"})
    assert r.status_code == 204, r.text
    assert delivery(client, vid) == "delivered"


@pytest.mark.parametrize("status", ["undelivered", "failed"])
def test_an_undelivered_or_failed_receipt_fails_the_delivery_with_twilios_code(
    start: Start, twilio: TwilioGateway, status: str
) -> None:
    client, vid, message = begin(start, twilio)
    r = post_callback(client, twilio, message, status, error_code="30003")
    assert r.status_code == 204, r.text
    assert delivery(client, vid) == "failed"
    row = row_of(client, vid, message.sid)
    assert (row.status, row.error_code, row.delivered_at) == ("undelivered", "30003", None)
    assert "30003" in row.last_error and E164 not in row.last_error


@pytest.mark.parametrize(
    ("first", "late", "state", "shown"),
    [
        ("delivered", "sent", "delivered", "delivered"),
        ("delivered", "undelivered", "delivered", "delivered"),
        ("undelivered", "delivered", "undelivered", "failed"),
        ("failed", "delivered", "undelivered", "failed"),
    ],
)
def test_a_late_out_of_order_callback_never_overwrites_a_final_state(
    start: Start, twilio: TwilioGateway, first: str, late: str, state: str, shown: str
) -> None:
    client, vid, message = begin(start, twilio)
    assert post_callback(client, twilio, message, first, error_code="30005").status_code == 204
    before = row_of(client, vid, message.sid)
    r = post_callback(client, twilio, message, late, error_code="30008")
    assert r.status_code == 204, r.text
    after = row_of(client, vid, message.sid)
    assert (after.status, after.error_code, after.delivered_at) == (
        state,
        before.error_code,
        before.delivered_at,
    )
    assert delivery(client, vid) == shown


@pytest.mark.parametrize(
    "status", ["accepted", "queued", "sending", "sent", "scheduled", "read", "SomethingNew"]
)
def test_a_status_on_the_way_changes_nothing(
    start: Start, twilio: TwilioGateway, status: str
) -> None:
    client, vid, message = begin(start, twilio)
    assert post_callback(client, twilio, message, status).status_code == 204
    assert row_of(client, vid, message.sid).status == "sent"
    assert delivery(client, vid) == "sent"
    # ... and the final word still lands afterwards.
    assert post_callback(client, twilio, message, "delivered").status_code == 204
    assert delivery(client, vid) == "delivered"


def test_a_receipt_for_a_superseded_code_says_nothing_about_the_new_one(
    start: Start, twilio: TwilioGateway
) -> None:
    client, vid, first = begin(start, twilio, sms_resend_cooldown_seconds=0)
    assert client.post(f"/v1/verifications/{vid}/resend").status_code == 202
    second = sent_message(client, twilio, vid, n=2)
    assert delivery(client, vid) == "sent"

    assert (
        post_callback(client, twilio, first, "undelivered", error_code="30003").status_code == 204
    )
    assert row_of(client, vid, first.sid).status == "undelivered"
    assert delivery(client, vid) == "sent"  # the live code's message is still on its way

    assert post_callback(client, twilio, second, "delivered").status_code == 204
    assert delivery(client, vid) == "delivered"
    r = client.post(f"/v1/verifications/{vid}/check", json={"code": code_in(second.body)})
    assert r.status_code == 200, r.text


def test_an_unknown_message_sid_is_answered_204_and_logged_without_the_number(
    start: Start, twilio: TwilioGateway, caplog: pytest.LogCaptureFixture
) -> None:
    client, vid, message = begin(start, twilio)
    stranger = Sent("SM" + "e" * 32, E164, "x", FROM, None, message.status_callback, None)
    with caplog.at_level(logging.INFO, logger="verifyd.receipts"):
        r = post_callback(client, twilio, stranger, "delivered")
    assert r.status_code == 204, r.text
    (record,) = [r for r in caplog.records if r.name == "verifyd.receipts"]
    assert record.levelno == logging.INFO
    assert stranger.sid in record.getMessage()
    assert "7911" not in caplog.text
    assert delivery(client, vid) == "sent"
    assert row_of(client, vid, message.sid).status == "sent"


# ------------------------------------------------------------------------- refusals


def test_without_twilio_settings_the_endpoint_is_not_found(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings())
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    signed = RequestValidator(AUTH_TOKEN).compute_signature(f"http://testserver{PATH}", params)
    r = client.post(PATH, data=params, headers={"X-Twilio-Signature": signed})
    assert_problem(r, 404, "not_found")


def _signed(client: TestClient, params: dict[str, str]) -> dict[str, str]:
    url = f"{runtime(client).settings.public_base_url}{PATH}"
    return {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params)}


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"MessageSid=SM1&MessageStatus=%ff%fe", "application/x-www-form-urlencoded", 400),
        (b"\xffMessageSid=SM1", "application/x-www-form-urlencoded", 400),
        (b'{"MessageSid": "SM1", "MessageStatus": "delivered"}', "application/json", 415),
        (b"MessageSid=SM1&MessageStatus=delivered", "text/plain", 415),
        (b"MessageSid=SM1&MessageStatus=delivered", "", 415),
        (b"&".join([b"a=1"] * 200), "application/x-www-form-urlencoded", 400),
        (b"x=" + b"1" * 20_000, "application/x-www-form-urlencoded", 413),
    ],
    ids=["bad-utf8-escape", "raw-bytes", "json", "text", "no-type", "too-many-fields", "huge"],
)
def test_a_malformed_body_is_a_problem_never_a_500(
    start: Start, content: bytes, content_type: str, status: int
) -> None:
    client = start()
    headers = {"Content-Type": content_type, "X-Twilio-Signature": "irrelevant"}
    r = client.post(PATH, content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] in ("invalid_request", "payload_too_large")


@pytest.mark.parametrize(
    "params",
    [
        {"MessageSid": "SM" + "0" * 32},
        {"MessageStatus": "delivered"},
        {"MessageSid": "", "MessageStatus": "delivered"},
        {"MessageSid": "SM" + "0" * 100, "MessageStatus": "delivered"},
        {},
    ],
    ids=["no-status", "no-sid", "empty-sid", "long-sid", "empty"],
)
def test_a_signed_callback_missing_its_fields_is_422(start: Start, params: dict[str, str]) -> None:
    client = start()
    r = client.post(PATH, data=params, headers=_signed(client, params))
    assert_problem(r, 422, "invalid_request")


def test_a_legacy_sms_status_callback_is_understood(start: Start, twilio: TwilioGateway) -> None:
    """Older callbacks name the fields ``SmsSid``/``SmsStatus`` only."""
    client, vid, message = begin(start, twilio)
    params = {"SmsSid": message.sid, "SmsStatus": "delivered", "AccountSid": ACCOUNT_SID}
    r = client.post(PATH, data=params, headers=_signed(client, params))
    assert r.status_code == 204, r.text
    assert delivery(client, vid) == "delivered"


def test_a_shadow_reads_delivered_after_as_long_as_a_real_receipt_took(
    start: Start, twilio: TwilioGateway
) -> None:
    """With receipts, a real code moves on to ``delivered``: so does a shadow's, after a
    delay taken from the provider's real receipts, with nothing sent and nothing counted."""
    client, owner, message = begin(start, twilio)
    time.sleep(0.3)  # the receipt takes a while, as a carrier's does
    assert post_callback(client, twilio, message, "delivered").status_code == 204
    r = client.post(f"/v1/verifications/{owner}/check", json={"code": code_in(message.body)})
    assert r.status_code == 200 and r.json()["account"]["status"] == "active", r.text
    dispatcher = runtime(client).dispatcher
    dispatcher.shadows.refresh_receipts(["twilio"])  # what its sweep does once a minute
    real = dispatcher.shadows.receipt_after("twilio")
    assert real is not None and real >= 0.3

    (shadow,) = signup(client, phone=PHONE)["verifications"]
    assert shadow["delivery"] == "queued"
    wait("the shadow's send", lambda: delivery(client, shadow["id"]) != "queued")
    assert delivery(client, shadow["id"]) == "sent"
    sent_at = time.monotonic()
    wait("the shadow's receipt", lambda: delivery(client, shadow["id"]) == "delivered")
    assert time.monotonic() - sent_at >= 0.25
    (row,) = rows(client, shadow["id"])
    assert row.status == "suppressed" and row.delivered_at is not None
    assert len(twilio.sent) == 1, "nothing went to the owner's phone but their own code"
