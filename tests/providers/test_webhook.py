"""The ``webhook`` provider against a real receiver on loopback that verifies every signature."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from support.api import runtime, set_policy, signup
from support.gateway import Answer, Gateway, Request
from support.net import free_port
from verifyd.models import Message, table_of
from verifyd.providers.base import DeliveryError, OutgoingMessage
from verifyd.providers.webhook import WebhookProvider, payload
from verifyd.runtime import check_configuration
from verifyd.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"verifyd-test-webhook-key-32-byte").decode()
CODE = "4821"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


class Receiver:
    """An operator's gateway: verifies each request, then answers what the test scripted.

    Args:
        script: Answers for the verified requests in turn; afterwards ``200 {"id": "gw_N"}``.
        secret: The secret it verifies with (another one plays a misconfigured gateway).
    """

    def __init__(self, *script: Answer, secret: str = SECRET) -> None:
        self.webhook = Webhook(secret)
        self.script = list(script)
        self.payloads: list[dict[str, Any]] = []
        self._verified = threading.Condition()
        self.gateway = Gateway(self._answer)

    def _answer(self, request: Request) -> Answer:
        try:
            payload = self.webhook.verify(request.body, request.headers)
        except WebhookVerificationError:
            return Answer(401, b'{"error": "signature"}')
        with self._verified:
            self.payloads.append(payload)
            self._verified.notify_all()
            answer = self.script.pop(0) if self.script else None
        return answer or Answer(200, json.dumps({"id": f"gw_{len(self.payloads)}"}).encode())

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The verified payloads, once ``count`` of them arrived (the requests come first)."""
        with self._verified:
            arrived = self._verified.wait_for(lambda: len(self.payloads) >= count, timeout)
            assert arrived, f"{len(self.payloads)} of {count} verified requests in {timeout} s"
            return list(self.payloads)

    @property
    def url(self) -> str:
        return f"{self.gateway.url}/hooks/verifyd"


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Start receivers for a test; all stopped at teardown."""
    started: list[Receiver] = []

    def start(*script: Answer, secret: str = SECRET) -> Receiver:
        r = Receiver(*script, secret=secret)
        r.gateway.start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.gateway.stop()


def sms(**overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "id": "msg_0190abcdef12a1b2c3d4e5f6a7b8c9d0",
        "kind": "sms",
        "to": "+447911123456",
        "body": f"Your code is {CODE}. It expires in 10 min.\n\n@app.example.com #{CODE}",
        "channel": "sms",
        "purpose": "code",
        "created_at": datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "code": CODE,
    }
    return OutgoingMessage(**{**values, **overrides})


def outcomes(settings: Settings, *messages: OutgoingMessage) -> list[str | None | DeliveryError]:
    """Send each message in turn through one provider; what each send returned or raised."""

    async def main() -> list[str | None | DeliveryError]:
        provider = WebhookProvider(settings)
        results: list[str | None | DeliveryError] = []
        try:
            for message in messages:
                try:
                    results.append(await provider.send(message))
                except DeliveryError as exc:
                    results.append(exc)
        finally:
            await provider.aclose()
        return results

    return asyncio.run(main())


def failure(settings: Settings, message: OutgoingMessage | None = None) -> DeliveryError:
    (result,) = outcomes(settings, message or sms())
    assert isinstance(result, DeliveryError), f"sent: {result!r}"
    assert CODE not in str(result) and SECRET not in str(result), "an error leaks a secret"
    return result


def provider_settings(url: str, **overrides: Any) -> Settings:
    return Settings(webhook_url=url, webhook_secret=SECRET, **overrides)


# --------------------------------------------------------------------------- the request


def test_the_request_is_signed_standard_webhooks_and_carries_the_documented_payload(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver()
    assert outcomes(provider_settings(r.url + "?tenant=7"), sms()) == ["gw_1"]
    (request,) = r.gateway.requests
    assert (request.method, request.path) == ("POST", "/hooks/verifyd?tenant=7")
    assert request.header("webhook-id") == "msg_0190abcdef12a1b2c3d4e5f6a7b8c9d0"
    assert abs(int(request.header("webhook-timestamp") or 0) - time.time()) < 10
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", request.header("webhook-signature") or "")
    assert request.header("content-type") == "application/json"
    assert "verifyd" in (request.header("user-agent") or "")
    assert Webhook(SECRET).verify(request.body, request.headers) == {
        "type": "message.sms",
        "version": 1,
        "id": "msg_0190abcdef12a1b2c3d4e5f6a7b8c9d0",
        "kind": "sms",
        "to": "+447911123456",
        "locale": "en",
        "purpose": "code",
        "body": sms().body,
        "created_at": "2025-01-02T03:04:05.678Z",
    }
    assert request.body.count(CODE.encode()) == 2, "the code travels in the text only"


def test_an_email_carries_subject_and_html_and_non_ascii_text_is_signed_as_sent(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver()
    body = "اپنا ای میل پتہ تصدیق کریں: http://app.example.com/v1/email/verify?token=t0k"
    email = sms(
        kind="email",
        to="new.user@example.com",
        channel="email",
        purpose="link",
        locale="ur",
        subject="تصدیق",
        body=body,
        html=f'<html dir="rtl"><p>{body}</p></html>',
    )
    outcomes(provider_settings(r.url), email)
    (payload,) = r.payloads
    assert payload["type"] == "message.email" and payload["kind"] == "email"
    assert (payload["locale"], payload["purpose"]) == ("ur", "link")
    assert (payload["subject"], payload["body"], payload["html"]) == (
        "تصدیق",
        body,
        email.html,
    )
    assert "تصدیق".encode() in r.gateway.requests[0].body, "UTF-8, not \\u escapes"


def test_a_tampered_copy_fails_verification_and_the_receiver_rejects_it(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver()
    outcomes(provider_settings(r.url), sms())
    (real,) = r.gateway.requests
    assert Webhook(SECRET).verify(real.body, real.headers)["body"] == sms().body
    tampered = real.body.replace(b"+447911123456", b"+447911123457")
    assert tampered != real.body
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, real.headers)
    answer = httpx.post(r.url, content=tampered, headers=real.headers)
    assert answer.status_code == 401 and len(r.payloads) == 1


def test_the_docs_receiver_snippets_accept_the_real_request_and_refuse_a_tampered_one(
    receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    r = receiver()
    outcomes(provider_settings(r.url), sms())
    (real,) = r.gateway.requests
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(block, namespace)  # the documented code, run as a reader would paste it
    tampered = real.body.replace(CODE.encode(), b"0000")
    assert namespace["verified"](real.body, real.headers)["id"] == real.header("webhook-id")
    assert namespace["verified"](tampered, real.headers) is None
    assert namespace["verified_plain"](real.body, real.headers) is True
    assert namespace["verified_plain"](tampered, real.headers) is False


def test_the_docs_example_request_is_what_the_provider_sends_and_its_signature_holds() -> None:
    (example,) = re.findall(r"```http\n(.*?)\n```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    head, body = example.split("\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
    document = json.loads(body)
    message = sms(
        id=document["id"],
        body=document["body"],
        created_at=datetime.fromisoformat(document["created_at"]),
    )
    assert payload(message) == body, "the example is byte for byte what the provider sends"
    timestamp = int(headers["webhook-timestamp"])
    signed = Webhook("whsec_ZXhhbXBsZS1vbmx5LW5ldmVyLXVzZS10aGlzLWtleSE=").sign(
        headers["webhook-id"], datetime.fromtimestamp(timestamp, UTC), body
    )
    assert headers["webhook-signature"] == signed
    assert headers["User-Agent"].startswith("verifyd/")


def test_a_receiver_with_another_secret_answers_401_which_is_permanent(
    receiver: Callable[..., Receiver],
) -> None:
    other = "whsec_" + base64.b64encode(b"another-key-another-key-32-bytes").decode()
    r = receiver(secret=other)
    exc = failure(provider_settings(r.url))
    assert (exc.retryable, exc.code) == (False, "http_401")


# --------------------------------------------------------------------------- answers


def test_a_retry_carries_the_same_webhook_id_with_a_fresh_signature(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver(Answer(503))
    first, second = outcomes(provider_settings(r.url), sms(), sms())
    assert isinstance(first, DeliveryError) and (first.retryable, first.code) == (True, "http_503")
    assert second == "gw_2"
    ids = {q.header("webhook-id") for q in r.gateway.requests}
    assert ids == {sms().id} and len(r.payloads) == 2, "both verified, one idempotency key"


def _http_date(seconds_ahead: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after_header", "retryable", "retry_after"),
    [
        (500, None, True, None),
        (503, "in 120 s", True, 120),
        (429, "7", True, 7),
        (408, None, True, None),
        (400, None, False, None),
        (404, None, False, None),
        (422, "7", False, None),
        (301, None, False, None),
    ],
)
def test_each_status_is_classified(
    receiver: Callable[..., Receiver],
    status: int,
    retry_after_header: str | None,
    retryable: bool,
    retry_after: int | None,
) -> None:
    headers = {"Location": "/elsewhere"} if status == 301 else {}
    if retry_after_header == "in 120 s":
        headers["Retry-After"] = _http_date(120)  # an HTTP-date, built when the test runs
    elif retry_after_header is not None:
        headers["Retry-After"] = retry_after_header
    # The answer echoes the code, as a careless gateway might: the error must not.
    r = receiver(Answer(status, body=f'{{"echo": "code {CODE}"}}'.encode(), headers=headers))
    exc = failure(provider_settings(r.url))
    assert (exc.retryable, exc.code) == (retryable, f"http_{status}")
    if retry_after is None:
        assert exc.retry_after is None
    else:
        assert exc.retry_after == pytest.approx(retry_after, abs=3)
    assert len(r.gateway.requests) == 1, "no redirect followed, no retry inside the provider"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(204), None),
        (Answer(202, body=b'{"id": "gw-abc", "queued": true}'), "gw-abc"),
        (Answer(200, body=b"OK", headers={"Content-Type": "text/plain"}), None),
        (Answer(200, body=b'{"id": 5}'), None),
        (Answer(200, body=json.dumps({"id": "x" * 65}).encode()), None),
        (Answer(200, body=b'["gw-abc"]'), None),
        (Answer(200, body=json.dumps({"id": "gw-big", "pad": "x" * 20000}).encode()), None),
    ],
)
def test_any_2xx_is_sent_and_only_a_usable_id_is_kept(
    receiver: Callable[..., Receiver], answer: Answer, expected: str | None
) -> None:
    r = receiver(answer)
    assert outcomes(provider_settings(r.url), sms()) == [expected]


def test_a_gateway_that_hangs_past_the_timeout_is_retryable(
    receiver: Callable[..., Receiver],
) -> None:
    release = threading.Event()
    r = receiver()
    r.gateway.handler = lambda _: (release.wait(10), Answer())[1]
    started = time.monotonic()
    try:
        exc = failure(provider_settings(r.url, webhook_timeout_seconds=0.5))
    finally:
        release.set()
    assert (exc.retryable, exc.code) == (True, "timeout")
    assert time.monotonic() - started < 3


def test_a_refused_connection_is_retryable() -> None:
    exc = failure(provider_settings(f"http://127.0.0.1:{free_port()}/hooks"))
    assert (exc.retryable, exc.code) == (True, "connect_error")


def test_a_connection_dropped_before_the_answer_is_retryable(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver(Answer(drop=True))
    exc = failure(provider_settings(r.url))
    assert (exc.retryable, exc.code) == (True, "connection_lost")
    assert len(r.payloads) == 1


def test_a_send_without_its_settings_fails_permanently_and_quietly() -> None:
    exc = failure(Settings(webhook_secret="whsec_" + "not base64!"))
    assert (exc.retryable, exc.code) == (False, "misconfigured")
    assert "VERIFYD_WEBHOOK_URL" in str(exc) and "not base64" not in str(exc)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("overrides", "problems"),
    [
        ({}, ["VERIFYD_WEBHOOK_URL is not set", "VERIFYD_WEBHOOK_SECRET is not set"]),
        (
            {"webhook_url": "ftp://user:hunter2@gw.example.com/", "webhook_secret": "abc"},
            ["http:// or https://", "whsec_ followed by non-empty standard base64"],
        ),
        ({"webhook_url": "http://", "webhook_secret": "whsec_"}, ["no host", "whsec_"]),
        (
            {"webhook_url": "http://gw.example.com:99999/", "webhook_secret": "whsec_!!!!"},
            ["not a valid URL", "standard base64"],
        ),
        (
            {"webhook_secret": "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 12).decode()},
            ["VERIFYD_WEBHOOK_URL is not set", "standard base64"],
        ),
        (
            {"webhook_timeout_seconds": 60, "webhook_url": "https://gw.example.com/"},
            ["VERIFYD_WEBHOOK_SECRET is not set", "shorter than VERIFYD_DELIVERY_LEASE_SECONDS"],
        ),
    ],
)
def test_check_settings_reports_every_problem_at_once_without_quoting_secrets(
    overrides: dict[str, Any], problems: list[str]
) -> None:
    found = WebhookProvider.check_settings(Settings(**overrides))
    assert len(found) == len(problems) and all(p in f for p, f in zip(problems, found, strict=True))
    assert not any("hunter2" in f or "!!!!" in f for f in found)


@pytest.mark.parametrize(
    "secret", [SECRET, SECRET.rstrip("="), " " + SECRET + "\n", "whsec_" + "A" * 43]
)
def test_well_formed_secrets_pass(secret: str) -> None:
    settings = Settings(webhook_url="https://gw.example.com/h", webhook_secret=secret)
    assert WebhookProvider.check_settings(settings) == []


PRODUCTION = {
    "env": "production",
    "sandbox": False,
    "secret_key": "production-secret-key-that-is-long-enough-0123",
    "public_base_url": "https://verify.example",
    "sms_provider": ["webhook"],
    "email_provider": ["webhook"],
    "webhook_secret": SECRET,
}


@pytest.mark.parametrize(
    "url",
    ["https://gw.example.com/h", "http://127.0.0.1:9000/h", "http://localhost/h", "http://[::1]/h"],
)
def test_production_starts_with_https_or_a_loopback_gateway(url: str) -> None:
    plugins = check_configuration(Settings(**PRODUCTION, webhook_url=url))
    assert isinstance(plugins.providers["webhook"], WebhookProvider)


def test_production_allows_plain_http_to_an_internal_relay() -> None:
    """An internal relay on http:// starts (floors.py warns about it, tested there)."""
    plugins = check_configuration(Settings(**PRODUCTION, webhook_url="http://gw.internal/h"))
    assert isinstance(plugins.providers["webhook"], WebhookProvider)


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def start_app(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> Callable[[Receiver], TestClient]:
    def start(r: Receiver) -> TestClient:
        settings = make_settings(
            sms_provider=["webhook"],
            email_provider=["webhook"],
            webhook_url=r.url,
            webhook_secret=SECRET,
            delivery_backoff_base_seconds=0.2,
        )
        return make_client(settings)

    return start


def _message_ids(client: TestClient, verification_id: str) -> list[str]:
    messages = table_of(Message)
    with runtime(client).db.read() as conn:
        query = select(messages.c.id).where(messages.c.verification_id == verification_id)
        return list(conn.execute(query).scalars())


def _code(client: TestClient, text: str) -> str:
    """The code in an SMS text (the last number of the policy's code length)."""
    length = runtime(client).policies.current().sms.code_length
    codes: list[str] = re.findall(rf"\b\d{{{length}}}\b", text)
    assert codes, text
    return codes[-1]


def test_an_sms_code_reaches_the_gateway_signed_and_checks(
    receiver: Callable[..., Receiver], start_app: Callable[[Receiver], TestClient]
) -> None:
    r = receiver()
    client = start_app(r)
    created = signup(client, phone="+44 7911 123456")
    (ver,) = created["verifications"]
    (payload,) = r.wait_for(1)
    (request,) = r.gateway.requests
    assert (payload["type"], payload["to"], payload["purpose"]) == (
        "message.sms",
        "+447911123456",
        "code",
    )
    assert [request.header("webhook-id")] == [payload["id"]] == _message_ids(client, ver["id"])
    code = _code(client, payload["body"])
    answer = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": code})
    assert answer.status_code == 200, answer.text
    assert answer.json()["account"]["status"] == "active"


def test_an_email_link_reaches_the_gateway_signed_and_confirms(
    receiver: Callable[..., Receiver], start_app: Callable[[Receiver], TestClient]
) -> None:
    r = receiver()
    client = start_app(r)
    set_policy(client, "email")
    created = signup(client, email="new.user@example.com")
    (payload,) = r.wait_for(1)
    assert (payload["type"], payload["to"], payload["purpose"]) == (
        "message.email",
        "new.user@example.com",
        "link",
    )
    assert payload["subject"]
    token = re.findall(r"http://testserver/v1/email/verify\?token=([\w-]+)", payload["body"])[0]
    answer = client.post("/v1/email/verify", json={"token": token})
    assert answer.status_code == 200, answer.text
    account = client.get(f"/v1/accounts/{created['account']['id']}").json()
    assert account["status"] == "active"


def test_a_gateway_error_is_retried_by_the_outbox_under_the_same_webhook_id(
    receiver: Callable[..., Receiver], start_app: Callable[[Receiver], TestClient]
) -> None:
    r = receiver(Answer(503))
    client = start_app(r)
    (ver,) = signup(client, phone="+44 7911 123457")["verifications"]
    before, after = r.wait_for(2, timeout=30)
    first, second = r.gateway.requests
    assert first.header("webhook-id") == second.header("webhook-id") == before["id"]
    assert before == after, "the same message, each request verified on its own"
    code = _code(client, after["body"])
    answer = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": code})
    assert answer.status_code == 200, answer.text
