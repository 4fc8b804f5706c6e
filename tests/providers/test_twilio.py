"""The ``twilio`` provider against a loopback Messages API that checks requests as Twilio does."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from support.gateway import Answer, Gateway
from support.net import free_port
from support.twilio_gateway import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    DROP,
    FROM,
    HANG,
    SERVICE_SID,
    TwilioGateway,
    error,
    rate_limited,
    valid_sid,
)
from verifyd.models import utcnow
from verifyd.providers.base import DeliveryError, OutgoingMessage
from verifyd.providers.twilio import (
    TwilioProvider,
    retry_after,
    signature,
    signature_valid,
    status_callback_url,
)
from verifyd.runtime import check_configuration
from verifyd.settings import ConfigurationError, Settings

CODE = "4821"
TO = "+447911123456"
BODY = f"Your verification code is {CODE}. It expires in 10 min.\n\n@verify.example.com #{CODE}"
URDU = f"آپ کا تصدیقی کوڈ {CODE} ہے۔ یہ 10 منٹ میں ختم ہو جائے گا۔"
ARABIC = f"رمز التحقق الخاص بك هو {CODE}. تنتهي صلاحيته خلال 10 دقائق."
CALLBACK = "https://verify.example.com/v1/providers/twilio/status"


def settings(base_url: str, **overrides: Any) -> Settings:
    """A configured account on ``base_url``, sending from a number by default."""
    values: dict[str, Any] = {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from": FROM,
        "twilio_base_url": base_url,
        "twilio_timeout_seconds": 2.0,
        "public_base_url": "https://verify.example.com",
    }
    values.update(overrides)
    return Settings(**values)


def message(body: str = BODY, to: str = TO, message_id: str = "msg_0001") -> OutgoingMessage:
    return OutgoingMessage(
        id=message_id,
        kind="sms",
        to=to,
        body=body,
        channel="sms",
        purpose="code",
        created_at=utcnow(),
        code=CODE,
    )


def send(provider: TwilioProvider, *messages: OutgoingMessage) -> list[str | None | DeliveryError]:
    """Send each message in one event loop (as the dispatcher does); close the client."""

    async def run() -> list[str | None | DeliveryError]:
        outcomes: list[str | None | DeliveryError] = []
        try:
            for m in messages:
                try:
                    outcomes.append(await provider.send(m))
                except DeliveryError as exc:
                    outcomes.append(exc)
        finally:
            await provider.aclose()
        return outcomes

    return asyncio.run(run())


def failure(provider: TwilioProvider, m: OutgoingMessage | None = None) -> DeliveryError:
    (outcome,) = send(provider, m or message())
    assert isinstance(outcome, DeliveryError), f"expected a failure, got {outcome!r}"
    return outcome


@pytest.fixture(scope="module")
def server() -> Iterator[TwilioGateway]:
    """One loopback Twilio for the module (stopping a server costs half a second)."""
    with TwilioGateway() as gw:
        yield gw


@pytest.fixture
def gateway(server: TwilioGateway) -> Iterator[TwilioGateway]:
    """The module's Twilio, with nothing received and nothing scripted."""
    server.reset()
    yield server
    server.release()  # a request a test left hanging


# ------------------------------------------------------------------------- the request


def test_a_message_is_created_the_way_twilio_takes_it(gateway: TwilioGateway) -> None:
    (sid,) = send(TwilioProvider(settings(gateway.url)), message())
    assert gateway.refusals == []
    assert valid_sid(sid, "SM")
    (sent,) = gateway.sent
    assert sid == sent.sid
    (request,) = gateway.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    pair = base64.b64decode(request.header("authorization").removeprefix("Basic ")).decode()
    assert pair == f"{ACCOUNT_SID}:{AUTH_TOKEN}"
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.body.decode("ascii"))) == {
        "To": TO,
        "From": FROM,
        "Body": BODY,
        "StatusCallback": CALLBACK,
    }
    # Twilio takes no idempotency key; the message id still goes out for compatible
    # gateways that deduplicate on it.
    assert sent.idempotency_key == "msg_0001"


def test_a_messaging_service_alone_lets_twilio_pick_the_sender(gateway: TwilioGateway) -> None:
    provider = TwilioProvider(
        settings(gateway.url, twilio_from=None, twilio_messaging_service_sid=SERVICE_SID)
    )
    (sid,) = send(provider, message())
    assert gateway.refusals == []
    (sent,) = gateway.sent
    assert (sent.sid, sent.from_, sent.messaging_service_sid) == (sid, None, SERVICE_SID)


def test_with_a_number_and_a_service_both_go_as_twilio_documents(gateway: TwilioGateway) -> None:
    provider = TwilioProvider(settings(gateway.url, twilio_messaging_service_sid=SERVICE_SID))
    send(provider, message())
    assert gateway.refusals == []
    (sent,) = gateway.sent
    assert (sent.from_, sent.messaging_service_sid) == (FROM, SERVICE_SID)


@pytest.mark.parametrize("body", [URDU, ARABIC], ids=["urdu", "arabic"])
def test_an_rtl_body_travels_as_utf8_form_encoding_and_round_trips(
    gateway: TwilioGateway, body: str
) -> None:
    send(TwilioProvider(settings(gateway.url)), message(body))
    assert gateway.refusals == []
    (sent,) = gateway.sent
    assert sent.body == body
    (request,) = gateway.requests
    assert request.body.isascii()
    assert "%D8" in request.body.decode("ascii")  # Arabic script, percent-encoded UTF-8


def test_the_base_url_may_carry_a_path_and_a_trailing_slash() -> None:
    seen: list[str] = []

    def answer(request: Any) -> Answer:
        seen.append(request.path)
        return Answer(201, b'{"sid": "SM' + b"0" * 32 + b'"}')

    with Gateway(answer) as gw:
        (sid,) = send(TwilioProvider(settings(f"{gw.url}/twilio/")), message())
    assert sid == "SM" + "0" * 32
    assert seen == [f"/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"]


def test_building_a_provider_opens_nothing_and_a_closed_one_reopens(
    gateway: TwilioGateway,
) -> None:
    provider = TwilioProvider(settings(gateway.url))
    asyncio.run(provider.aclose())  # never sent: nothing to close, nothing raised
    assert gateway.requests == []
    first = send(provider, message(message_id="msg_a"))
    second = send(provider, message(message_id="msg_b"))  # another loop, a fresh client
    assert [s.sid for s in gateway.sent] == [*first, *second]


# ------------------------------------------------------------------------- the answers


def test_a_refused_number_is_permanent_with_twilios_code_and_no_secrets(
    gateway: TwilioGateway,
) -> None:
    gateway.script(error(400, 21211, f"The 'To' number {TO} is not a valid phone number."))
    exc = failure(TwilioProvider(settings(gateway.url)))
    assert (exc.retryable, exc.code) == (False, "21211")
    text = str(exc)
    assert "400" in text and "21211" in text and "not a valid phone number" in text
    assert TO not in text and "+44 7911 12••56" in text
    assert AUTH_TOKEN not in text and BODY not in text


def test_an_answer_echoing_the_body_or_the_code_is_scrubbed(gateway: TwilioGateway) -> None:
    gateway.script(error(400, 30007, f"Filtered: '{BODY}' (code {CODE}, token {AUTH_TOKEN})"))
    exc = failure(TwilioProvider(settings(gateway.url)))
    assert (exc.retryable, exc.code) == (False, "30007")
    assert BODY not in str(exc) and CODE not in str(exc) and AUTH_TOKEN not in str(exc)


def test_a_number_twilio_itself_refuses_is_permanent(gateway: TwilioGateway) -> None:
    exc = failure(TwilioProvider(settings(gateway.url)), message(to="+44 7911"))
    assert (exc.retryable, exc.code) == (False, "21211")
    assert gateway.sent == []


def test_bad_credentials_are_twilios_20003_and_permanent(gateway: TwilioGateway) -> None:
    exc = failure(TwilioProvider(settings(gateway.url, twilio_auth_token="wrong-token")))
    assert (exc.retryable, exc.code) == (False, "20003")
    assert gateway.refusals == ["auth"]
    assert "wrong-token" not in str(exc)


def test_another_accounts_sid_is_not_found_and_permanent(gateway: TwilioGateway) -> None:
    other = "AC" + "f" * 32
    exc = failure(TwilioProvider(settings(gateway.url, twilio_account_sid=other)))
    assert (exc.retryable, exc.code) == (False, "20404")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), ("not a date", None)],
)
def test_429_is_retryable_and_carries_retry_after_in_seconds(
    gateway: TwilioGateway, header: str, seconds: float | None
) -> None:
    gateway.script(rate_limited(header))
    exc = failure(TwilioProvider(settings(gateway.url)))
    assert (exc.retryable, exc.code, exc.retry_after) == (True, "20429", seconds)


def test_429_with_an_http_date_retry_after(gateway: TwilioGateway) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    gateway.script(rate_limited(format_datetime(when, usegmt=True)))
    exc = failure(TwilioProvider(settings(gateway.url)))
    assert exc.retryable and exc.retry_after is not None
    assert 80 <= exc.retry_after <= 90


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(gateway: TwilioGateway, status: int) -> None:
    gateway.script(error(status, 20500, "Internal Server Error", {"Retry-After": "3"}))
    exc = failure(TwilioProvider(settings(gateway.url)))
    assert (exc.retryable, exc.code, exc.retry_after) == (True, "20500", 3.0)


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Bad Gateway</body></html>", b"", b"[1, 2]", b'{"code": {"x": 1}}', b"\xff\xfe"],
    ids=["html", "empty", "array", "odd-code", "binary"],
)
def test_a_malformed_error_answer_does_not_crash_the_provider(
    gateway: TwilioGateway, body: bytes
) -> None:
    gateway.script(Answer(502, body, {"Content-Type": "text/html"}), Answer(400, body))
    provider = TwilioProvider(settings(gateway.url))
    first, second = send(provider, message(), message())
    assert isinstance(first, DeliveryError) and first.retryable and first.code is None
    assert isinstance(second, DeliveryError) and not second.retryable and second.code is None
    assert "502" in str(first) and "400" in str(second)


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"sid": 7}', b"[]"], ids=["text", "no-sid", "odd-sid", "array"]
)
def test_a_2xx_without_a_usable_sid_is_still_sent(gateway: TwilioGateway, body: bytes) -> None:
    """Twilio took it: raising would send the code a second time."""
    gateway.script(Answer(201, body))
    assert send(TwilioProvider(settings(gateway.url)), message()) == [None]


def test_a_hang_past_the_timeout_is_retryable(gateway: TwilioGateway) -> None:
    gateway.script(HANG)
    started = time.monotonic()
    exc = failure(TwilioProvider(settings(gateway.url, twilio_timeout_seconds=0.3)))
    assert time.monotonic() - started < 2
    assert exc.retryable and "0.3 s" in str(exc)


def test_a_dropped_connection_is_retryable(gateway: TwilioGateway) -> None:
    gateway.script(DROP)
    exc = failure(TwilioProvider(settings(gateway.url)))
    assert exc.retryable and "unreachable" in str(exc)


def test_a_refused_connection_is_retryable() -> None:
    exc = failure(TwilioProvider(settings(f"http://127.0.0.1:{free_port()}")))
    assert exc.retryable and "unreachable" in str(exc)


def test_a_redirect_is_not_followed_and_is_permanent() -> None:
    with TwilioGateway() as elsewhere:
        moved = Answer(307, b"", {"Location": f"{elsewhere.url}/2010-04-01/x"})
        with Gateway(lambda _: moved) as gw:
            exc = failure(TwilioProvider(settings(gw.url)))
        assert elsewhere.requests == []
    assert not exc.retryable and "VERIFYD_TWILIO_BASE_URL" in str(exc)


# ------------------------------------------------------------------------- settings


def test_check_settings_reports_every_problem_at_once() -> None:
    problems = TwilioProvider.check_settings(
        Settings(twilio_base_url="ftp://api.example.com", twilio_timeout_seconds=90)
    )
    assert problems == [
        "VERIFYD_TWILIO_ACCOUNT_SID is not set",
        "VERIFYD_TWILIO_AUTH_TOKEN is not set",
        "set VERIFYD_TWILIO_FROM or VERIFYD_TWILIO_MESSAGING_SERVICE_SID (the sender)",
        "VERIFYD_TWILIO_BASE_URL must be an http:// or https:// URL",
        "VERIFYD_TWILIO_TIMEOUT_SECONDS must be shorter than VERIFYD_DELIVERY_LEASE_SECONDS",
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"twilio_from": None, "twilio_messaging_service_sid": SERVICE_SID},
        {"twilio_base_url": "http://127.0.0.1:8089/"},
    ],
    ids=["number", "service", "loopback-http"],
)
def test_a_complete_configuration_passes(overrides: dict[str, Any]) -> None:
    assert TwilioProvider.check_settings(settings("https://api.twilio.com", **overrides)) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://user:pw@api.example.com", "API root alone"),
        ("https://api.example.com?x=1", "API root alone"),
        ("https://api.example.com:99999", "not a valid URL"),
        ("https:///2010-04-01", "has no host"),
        ("api.twilio.com", "http:// or https://"),
    ],
)
def test_a_base_url_that_is_not_an_api_root_is_refused_unquoted(url: str, problem: str) -> None:
    (found,) = TwilioProvider.check_settings(settings(url))
    assert problem in found and "pw" not in found


PRODUCTION = {
    "env": "production",
    "sandbox": False,
    "secret_key": "production-secret-key-that-is-long-enough-0123",
    "public_base_url": "https://verify.example",
    "sms_provider": ["twilio"],
    "email_provider": ["webhook"],
    "webhook_url": "https://gw.example.com/h",
    "webhook_secret": "whsec_" + base64.b64encode(b"verifyd-test-webhook-key-32-byte").decode(),
}


def test_start_up_names_the_missing_twilio_settings() -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_configuration(Settings(**PRODUCTION))
    message_ = str(caught.value)
    assert "provider 'twilio': VERIFYD_TWILIO_ACCOUNT_SID is not set" in message_
    assert "VERIFYD_TWILIO_AUTH_TOKEN is not set" in message_


@pytest.mark.parametrize("url", ["https://api.twilio.com", "http://127.0.0.1:9000", "http://[::1]"])
def test_production_starts_with_https_or_a_loopback_gateway(url: str) -> None:
    plugins = check_configuration(Settings(**PRODUCTION, **_account(url)))
    assert isinstance(plugins.providers["twilio"], TwilioProvider)


def test_production_allows_plain_http_to_an_internal_relay() -> None:
    """An internal relay on http:// starts (floors.py warns about it, tested there)."""
    plugins = check_configuration(Settings(**PRODUCTION, **_account("http://sms.internal")))
    assert isinstance(plugins.providers["twilio"], TwilioProvider)


def _account(url: str) -> dict[str, Any]:
    return {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from": FROM,
        "twilio_base_url": url,
    }


# ------------------------------------------------------------------------- signatures

PARAMS = {
    "AccountSid": ACCOUNT_SID,
    "MessageSid": "SM" + "1" * 32,
    "MessageStatus": "delivered",
    "To": TO,
    "From": FROM,
    "ApiVersion": "2010-04-01",
    "Body": URDU,
}


def test_the_signature_is_the_official_sdks() -> None:
    expected = RequestValidator(AUTH_TOKEN).compute_signature(CALLBACK, PARAMS)
    assert signature(AUTH_TOKEN, CALLBACK, PARAMS.items()) == expected
    assert signature_valid(AUTH_TOKEN, CALLBACK, PARAMS.items(), expected)


def test_repeated_parameters_sign_like_the_sdk() -> None:
    class Multi(dict[str, list[str]]):
        def getall(self, name: str) -> list[str]:
            return self[name]

    pairs = [("b", "2"), ("a", "z"), ("b", "1"), ("a", "z")]
    multi = Multi({"a": ["z", "z"], "b": ["2", "1"]})
    assert signature(AUTH_TOKEN, CALLBACK, pairs) == RequestValidator(AUTH_TOKEN).compute_signature(
        CALLBACK, multi
    )


@pytest.mark.parametrize(
    "signed_url",
    [CALLBACK, "https://verify.example.com:443/v1/providers/twilio/status"],
    ids=["without-port", "with-default-port"],
)
def test_either_spelling_of_the_default_port_validates(signed_url: str) -> None:
    given = RequestValidator(AUTH_TOKEN).compute_signature(signed_url, PARAMS)
    assert signature_valid(AUTH_TOKEN, CALLBACK, PARAMS.items(), given)


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        "bm90IGEgc2lnbmF0dXJl",
        RequestValidator("another-token").compute_signature(CALLBACK, PARAMS),
        RequestValidator(AUTH_TOKEN).compute_signature(CALLBACK + "?x=1", PARAMS),
        RequestValidator(AUTH_TOKEN).compute_signature(
            CALLBACK, {**PARAMS, "MessageStatus": "undelivered"}
        ),
        "ü-not-ascii",
    ],
    ids=["missing", "empty", "garbage", "other-token", "other-url", "other-params", "non-ascii"],
)
def test_a_wrong_signature_is_refused(given: str | None) -> None:
    assert not signature_valid(AUTH_TOKEN, CALLBACK, PARAMS.items(), given)


def test_the_callback_url_comes_from_the_public_base_url() -> None:
    assert status_callback_url(settings("https://api.twilio.com")) == CALLBACK
    trailing = settings("https://api.twilio.com", public_base_url="https://v.example.com/")
    assert status_callback_url(trailing) == "https://v.example.com/v1/providers/twilio/status"


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert retry_after("120", now) == 120.0
    assert retry_after(" 5 ", now) == 5.0
    assert retry_after("-3", now) == 0.0
    assert retry_after("Wed, 02 Dec 2026 12:01:30 GMT", now) == 90.0
    assert retry_after("Wed, 02 Dec 2026 11:00:00 GMT", now) == 0.0
    assert retry_after(None, now) is None
    assert retry_after("soon", now) is None
    assert retry_after("1.5", now) == 1.5
