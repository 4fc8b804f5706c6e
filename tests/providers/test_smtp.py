"""The ``smtp`` provider against a real SMTP server on loopback (aiosmtpd, trustme TLS)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import runtime, set_policy, signup
from support.net import free_port
from support.smtpd import Certificates, Received, SmtpServer, Stage
from verifyd.models import Message, table_of
from verifyd.providers.base import DeliveryError, OutgoingMessage
from verifyd.providers.smtp import SmtpProvider
from verifyd.runtime import check_configuration
from verifyd.settings import ConfigurationError, Settings

FROM = "Verifyd Test <noreply@example.com>"
USER, PASSWORD = "relay-user", "s3cret-relay-password"
LINK = "http://testserver/v1/email/verify?token=tok_abcdefghijklmnopqrstuvwxyz0123456789"
URDU_SUBJECT = "اپنا ای میل پتہ تصدیق کریں"
URDU_BODY = f"اپنا ای میل پتہ تصدیق کرنے کے لیے یہ لنک کھولیں:\n\n{LINK}\n\nمرحبا بكم"


def _settings(server: SmtpServer | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "email_provider": ["smtp"],
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port if server else free_port(),
        "smtp_tls": "none",
        "smtp_from": FROM,
        "smtp_timeout_seconds": 5,
        "public_base_url": "http://testserver",
    }
    values.update(overrides)
    return Settings(**values)


def _message(**fields: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "id": "msg_0193a1b2c3d4AbCdEf-_0123456789",
        "kind": "email",
        "to": "new.user@example.com",
        "subject": "Confirm your email address",
        "body": f"Confirm your email address by opening this link:\n\n{LINK}\n",
        "html": f'<!doctype html><p>Confirm: <a href="{LINK}">confirm my email</a></p>',
        "channel": "email",
        "purpose": "link",
        "created_at": datetime.now(UTC),
        "link": LINK,
        "locale": "en",
    }
    values.update(fields)
    return OutgoingMessage(**values)


def _send(settings: Settings, *messages: OutgoingMessage) -> list[str | None]:
    """Send through one provider (one event loop), closing it after, as the app does."""

    async def run() -> list[str | None]:
        provider = SmtpProvider(settings)
        try:
            return [await provider.send(m) for m in messages]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def _failure(settings: Settings, message: OutgoingMessage | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        _send(settings, message or _message())
    return caught.value


def _parts(message: EmailMessage) -> dict[str, str]:
    """The text and HTML parts by content type, decoded."""
    # Base64 text carries MIME's canonical CRLF line ends; a mail reader shows lines.
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in message.walk()
        if not part.is_multipart()
    }


class _Links(HTMLParser):
    """Every URL an HTML part points at or loads, by attribute, and its script tags."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.scripts = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        for name, value in attrs:
            if name in ("href", "src", "srcset", "background", "action") and value:
                self.urls.append((tag, name, value))


def _assert_self_contained(html: str) -> None:
    """No script and nothing loaded from elsewhere: only links (``a href``) leave."""
    parsed = _Links(html)
    assert parsed.scripts == 0 and "<script" not in html.lower()
    loads = [u for u in parsed.urls if (u[0], u[1]) != ("a", "href")]
    assert loads == [], loads


@pytest.fixture
def certs() -> Certificates:
    """A throwaway CA with a certificate for 127.0.0.1."""
    return Certificates()


@pytest.fixture
def ca_file(certs: Certificates, tmp_path: Path) -> Path:
    """The CA as a PEM file, for ``smtp_ca_file``."""
    return certs.write_ca(tmp_path / "ca.pem")


@pytest.fixture
def plain() -> Iterator[SmtpServer]:
    """A plain SMTP server without AUTH."""
    with SmtpServer("none") as server:
        yield server


@pytest.fixture
def submission(certs: Certificates) -> Iterator[SmtpServer]:
    """A submission server: STARTTLS required, then AUTH with ``USER``/``PASSWORD``."""
    with SmtpServer("starttls", certificates=certs, credentials=(USER, PASSWORD)) as server:
        yield server


# ---------------------------------------------------------------- what arrives


def test_plain_smtp_delivers_text_and_html_with_every_header(plain: SmtpServer) -> None:
    message = _message()
    before = datetime.now(UTC).replace(microsecond=0)
    [queue_id] = _send(_settings(plain), message)

    [got] = plain.wait_for(1)
    assert queue_id == got.queue_id, "the relay's queue id is the provider's message id"
    assert (got.mail_from, got.rcpt_tos) == ("noreply@example.com", ["new.user@example.com"])
    assert not got.tls and got.login is None
    assert got.helo == "testserver", "EHLO names the public host, not a DNS lookup"

    email = got.message
    assert parseaddr(email["From"]) == ("Verifyd Test", "noreply@example.com")
    assert email["To"] == "new.user@example.com"
    assert email["Subject"] == "Confirm your email address"
    assert email["Message-ID"] == f"<{message.id}@example.com>"
    assert email["Content-Language"] == "en"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["MIME-Version"] == "1.0"
    assert before <= parsedate_to_datetime(email["Date"]) <= datetime.now(UTC)
    assert email.get_content_type() == "multipart/alternative"
    parts = _parts(email)
    assert list(parts) == ["text/plain", "text/html"], "plain first: the richest part is last"
    assert LINK in parts["text/plain"]
    assert ("a", "href", LINK) in _Links(parts["text/html"]).urls
    _assert_self_contained(parts["text/html"])
    assert all(len(line) <= 78 for line in got.raw.split(b"\r\n")), "lines fit RFC 5322"


def test_without_html_the_email_is_text_only(plain: SmtpServer) -> None:
    _send(_settings(plain), _message(html=None))
    email = plain.wait_for(1)[0].message
    assert email.get_content_type() == "text/plain"
    assert email.get_content_charset() == "utf-8"
    assert LINK in email.get_content()


def test_urdu_and_arabic_subject_and_body_survive_the_encoding(plain: SmtpServer) -> None:
    html = f'<html lang=ur dir=rtl><body><p>{URDU_BODY}</p><a href="{LINK}">تصدیق</a></body></html>'
    settings = _settings(plain, smtp_from="تصدیق ایپ <noreply@example.com>")
    _send(settings, _message(subject=URDU_SUBJECT, body=URDU_BODY, html=html, locale="ur"))
    got = plain.wait_for(1)[0]
    # Headers travel 7-bit (RFC 2047 encoded words): the relay needs no SMTPUTF8.
    assert got.raw.split(b"\r\n\r\n", 1)[0].isascii()
    assert "SMTPUTF8" not in got.mail_options
    email = got.message
    assert parseaddr(str(email["From"])) == ("تصدیق ایپ", "noreply@example.com")
    assert email["Subject"] == URDU_SUBJECT
    assert email["Content-Language"] == "ur"
    parts = _parts(email)
    assert parts["text/plain"].rstrip("\n") == URDU_BODY
    assert parts["text/html"].rstrip("\n") == html


def test_a_non_ascii_local_part_is_sent_with_smtputf8(plain: SmtpServer) -> None:
    _send(_settings(plain), _message(to="ناصر@example.com"))
    got = plain.wait_for(1)[0]
    assert got.rcpt_tos == ["ناصر@example.com"]
    assert "SMTPUTF8" in got.mail_options
    assert got.message["To"] == "ناصر@example.com"


def test_a_relay_without_smtputf8_refuses_such_an_address_permanently() -> None:
    with SmtpServer("none", smtputf8=False) as server:
        error = _failure(_settings(server), _message(to="ناصر@example.com"))
        assert not error.retryable and "SMTPUTF8" in str(error)
        assert server.messages == []


def test_a_redelivery_carries_the_same_message_id(plain: SmtpServer) -> None:
    """SMTP takes no idempotency key: the Message-ID, derived from the outbox id, is it."""
    message = _message()
    _send(_settings(plain), message)
    _send(_settings(plain), message)  # a new process after a crash
    first, second = plain.wait_for(2)
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert second.message["Message-ID"] == f"<{message.id}@example.com>"


def test_one_session_carries_a_burst_of_messages(plain: SmtpServer) -> None:
    ids = [f"msg_burst{i}" for i in range(3)]
    _send(_settings(plain), *(_message(id=i) for i in ids))
    got = plain.wait_for(3)
    assert [g.message["Message-ID"] for g in got] == [f"<{i}@example.com>" for i in ids]
    assert plain.sessions == 1, "the connection is reused, not reopened per message"


def test_a_connection_the_relay_closed_is_reopened(plain: SmtpServer) -> None:
    async def run() -> None:
        provider = SmtpProvider(_settings(plain))
        try:
            await provider.send(_message(id="msg_first"))
            plain.drop_connections()  # idle sessions are closed by relays
            await provider.send(_message(id="msg_second"))
        finally:
            await provider.aclose()

    asyncio.run(run())
    assert [g.message["Message-ID"] for g in plain.wait_for(2)] == [
        "<msg_first@example.com>",
        "<msg_second@example.com>",
    ]
    assert plain.sessions == 2


# ---------------------------------------------------------------- TLS and AUTH


def test_starttls_with_auth_and_the_ca_file(submission: SmtpServer, ca_file: Path) -> None:
    settings = _settings(
        submission,
        smtp_tls="starttls",
        smtp_ca_file=ca_file,
        smtp_username=USER,
        smtp_password=PASSWORD,
    )
    _send(settings, _message())
    [got] = submission.wait_for(1)
    assert got.tls, "the message travelled inside TLS"
    assert got.login == USER and submission.logins == [(USER, True)]
    assert LINK in _parts(got.message)["text/plain"]


def test_implicit_tls(certs: Certificates, ca_file: Path) -> None:
    with SmtpServer("tls", certificates=certs, credentials=(USER, PASSWORD)) as server:
        settings = _settings(
            server,
            smtp_tls="tls",
            smtp_ca_file=ca_file,
            smtp_username=USER,
            smtp_password=PASSWORD,
        )
        _send(settings, _message())
        [got] = server.wait_for(1)
    assert got.tls and got.login == USER


def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(submission: SmtpServer) -> None:
    settings = _settings(
        submission, smtp_tls="starttls", smtp_username=USER, smtp_password=PASSWORD
    )
    error = _failure(settings)  # no CA file: the throwaway CA is not in the system's store
    assert error.retryable and "certificate" in str(error)
    assert submission.logins == [], "the password never left before the certificate passed"
    assert submission.messages == []


def test_a_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    other = Certificates("mail.example.net")
    with SmtpServer("tls", certificates=other) as server:
        settings = _settings(server, smtp_tls="tls", smtp_ca_file=other.write_ca(tmp_path / "c"))
        error = _failure(settings)
        assert error.retryable and "certificate" in str(error)
        assert server.messages == []


def test_a_wrong_password_is_permanent_with_code_535(submission: SmtpServer, ca_file: Path) -> None:
    settings = _settings(
        submission,
        smtp_tls="starttls",
        smtp_ca_file=ca_file,
        smtp_username=USER,
        smtp_password="not-the-password",
    )
    error = _failure(settings)
    assert (error.retryable, error.code) == (False, "535")
    assert submission.logins and all(login == (USER, False) for login in submission.logins)
    assert "not-the-password" not in str(error) and submission.messages == []


# ---------------------------------------------------------------- failures


def test_nothing_listening_is_retryable() -> None:
    error = _failure(_settings(smtp_port=free_port()))
    assert error.retryable and error.code is None
    assert "127.0.0.1" in str(error)


def test_a_server_that_never_answers_times_out_retryably() -> None:
    with socket.socket() as silent:  # accepts (the kernel's backlog) and never says 220
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        error = _failure(_settings(smtp_port=silent.getsockname()[1], smtp_timeout_seconds=0.5))
    assert error.retryable and "0.5 s" in str(error)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_a_4xx_reply_is_retryable_with_its_code(plain: SmtpServer, stage: Stage) -> None:
    plain.answer(stage, "451 4.3.0 Try again later")
    error = _failure(_settings(plain))
    assert (error.retryable, error.code) == (True, "451")
    assert plain.messages == []
    _send(_settings(plain), _message())  # the next try goes through
    assert len(plain.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("stage", "reply", "what"),
    [
        ("rcpt", "550 5.1.1 <new.user@example.com>: Recipient address rejected", "recipient"),
        ("mail", "553 5.7.1 Sender address rejected: not owned by user", "sender"),
        ("data", "554 5.7.1 Message rejected as spam", "message"),
    ],
)
def test_a_5xx_reply_is_permanent_with_its_code(
    plain: SmtpServer, stage: Stage, reply: str, what: str
) -> None:
    plain.answer(stage, reply)
    error = _failure(_settings(plain))
    assert (error.retryable, error.code) == (False, reply[:3])
    assert what in str(error)
    assert "new.user@example.com" not in str(error), "the recipient is not quoted back"
    assert plain.messages == []


def test_the_error_text_never_carries_the_link_token_or_password(
    submission: SmtpServer, ca_file: Path
) -> None:
    token = parse_qs(urlsplit(LINK).query)["token"][0]
    submission.answer("data", f"554 5.7.1 blocked URL {LINK} ({token}) {PASSWORD}")
    settings = _settings(
        submission,
        smtp_tls="starttls",
        smtp_ca_file=ca_file,
        smtp_username=USER,
        smtp_password=PASSWORD,
    )
    error = _failure(settings)
    assert error.code == "554"
    for secret in (LINK, token, PASSWORD, "Confirm your email"):
        assert secret not in str(error)


# ---------------------------------------------------------------- settings


def test_check_settings_reports_every_problem_at_once() -> None:
    problems = SmtpProvider.check_settings(
        Settings(smtp_username="someone", smtp_ca_file=Path("/nonexistent/ca.pem"))
    )
    text = "\n".join(problems)
    assert "VERIFYD_SMTP_HOST is required" in text
    assert "VERIFYD_SMTP_FROM is required" in text
    assert "without VERIFYD_SMTP_PASSWORD" in text
    assert "VERIFYD_SMTP_CA_FILE" in text
    assert len(problems) == 4


@pytest.mark.parametrize(
    "sender", ["not an address", "a@example.com, b@example.com", "x <a@@example.com>"]
)
def test_a_from_that_does_not_parse_is_a_problem(sender: str) -> None:
    problems = SmtpProvider.check_settings(Settings(smtp_host="relay", smtp_from=sender))
    assert len(problems) == 1 and problems[0].startswith("VERIFYD_SMTP_FROM")


@pytest.mark.parametrize("sender", ["noreply@example.com", "Example App <noreply@example.com>"])
def test_a_plain_or_named_from_is_fine(sender: str) -> None:
    assert SmtpProvider.check_settings(Settings(smtp_host="relay", smtp_from=sender)) == []


def test_a_password_over_plain_text_is_a_problem() -> None:
    settings = Settings(
        smtp_host="relay", smtp_from=FROM, smtp_tls="none", smtp_username=USER, smtp_password="x"
    )
    assert SmtpProvider.check_settings(settings) == [
        "VERIFYD_SMTP_TLS=none would send the password unencrypted"
    ]


@pytest.mark.parametrize(("tls", "port"), [("none", 25), ("starttls", 587), ("tls", 465)])
def test_the_port_follows_the_tls_mode(tls: str, port: int) -> None:
    provider = SmtpProvider(Settings(smtp_host="relay", smtp_from=FROM, smtp_tls=tls))
    assert provider.port == port


def test_start_up_refuses_the_settings_with_every_problem_named() -> None:
    settings = Settings(
        database_url="sqlite://",
        secret_key="k" * 40,
        email_provider=["smtp"],
        smtp_from="nobody",
        smtp_username=USER,
    )
    with pytest.raises(ConfigurationError) as caught:
        check_configuration(settings)
    for problem in ("VERIFYD_SMTP_HOST", "VERIFYD_SMTP_FROM", "VERIFYD_SMTP_PASSWORD"):
        assert problem in str(caught.value)


# ---------------------------------------------------------------- end to end


def _link(received: Received) -> str:
    parts = _parts(received.message)
    assert list(parts) == ["text/plain", "text/html"]
    [link] = re.findall(r"http://testserver/v1/email/verify\?token=[\w%-]+", parts["text/plain"])
    assert ("a", "href", link) in _Links(parts["text/html"]).urls
    _assert_self_contained(parts["text/html"])
    return link


class _Form(HTMLParser):
    """The confirm page's form: its action and inputs."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            assert (a.get("method") or "").lower() == "post"
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            self.inputs[str(a["name"])] = a.get("value") or ""


def test_a_signup_email_arrives_and_its_link_activates_the_account(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
    submission: SmtpServer,
    ca_file: Path,
) -> None:
    settings = make_settings(
        email_provider=["smtp"],
        smtp_host="127.0.0.1",
        smtp_port=submission.port,
        smtp_tls="starttls",
        smtp_ca_file=ca_file,
        smtp_username=USER,
        smtp_password=PASSWORD,
        smtp_from=FROM,
    )
    client = make_client(settings)
    set_policy(client, "email")
    created = signup(client, email="new.user@example.com")
    [verification] = created["verifications"]

    [got] = submission.wait_for(1)
    assert got.rcpt_tos == ["new.user@example.com"] and got.tls and got.login == USER
    assert got.message["Message-ID"].startswith("<msg_")
    assert got.message["Content-Language"] == "en"
    assert got.message["Auto-Submitted"] == "auto-generated"
    deadline = time.monotonic() + 10
    while client.get(f"/v1/verifications/{verification['id']}").json()["delivery"] != "sent":
        assert time.monotonic() < deadline, "delivery never became 'sent'"
        time.sleep(0.02)

    messages = table_of(Message)
    with runtime(client).db.read() as conn:
        [row] = conn.execute(
            select(messages).where(messages.c.verification_id == verification["id"])
        ).all()
    assert got.message["Message-ID"] == f"<{row.id}@example.com>", "derived from the outbox id"
    assert (row.provider, row.status, row.provider_message_id) == ("smtp", "sent", got.queue_id)

    link = urlsplit(_link(got))
    page = client.get(f"{link.path}?{link.query}")
    assert page.status_code == 200
    form = _Form(page.text)
    assert form.action == "http://testserver/v1/email/verify"
    assert form.inputs["token"] == parse_qs(link.query)["token"][0]
    confirmed = client.post(urlsplit(form.action).path, data=form.inputs)
    assert confirmed.status_code == 200, confirmed.text

    account = client.get(f"/v1/accounts/{created['account']['id']}").json()
    assert account["status"] == "active" and account["verified"]["email"] is True
    assert len(submission.messages) == 1, "delivered once"
