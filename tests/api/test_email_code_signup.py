"""Signups whose email is proved by a code (``VERIFYD_EMAIL_CHANNEL=email_code``).

Through the sandbox, through a real SMTP server on loopback, and as the stats count it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import (
    assert_problem,
    runtime,
    sandbox_messages,
    set_policy,
    signup,
    stats,
    stats_arm,
    wrong,
)
from support.rollup import live_and_rebuilt
from support.smtpd import SmtpServer
from verifyd import rollup
from verifyd.db import metadata
from verifyd.settings import Settings

EMAIL = "ada@example.test"


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> TestClient:
    """The app with codes by email, under the ``email`` policy."""
    client = make_client(make_settings(email_channel="email_code"))
    set_policy(client, "email")
    return client


@pytest.fixture
def smtpd() -> Iterator[SmtpServer]:
    """A plain SMTP server on 127.0.0.1."""
    with SmtpServer("none") as server:
        yield server


def check(client: TestClient, verification_id: str, code: str) -> httpx.Response:
    return client.post(f"/v1/verifications/{verification_id}/check", json={"code": code})


def _sent_code(client: TestClient, to: str = EMAIL) -> dict[str, Any]:
    """The newest message the sandbox holds for an address, checked to be a code."""
    message = sandbox_messages(client, to)[0]
    assert (message["kind"], message["channel"]) == ("code", "email_code")
    assert "link" not in message and "http" not in message["body"]
    assert re.search(rf"(?<!\d){message['code']}(?!\d)", message["body"])
    return message


# ---------------------------------------------------------------- the sandbox


def test_a_signup_is_approved_by_the_code_its_email_carried(client: TestClient) -> None:
    created = signup(client, email=EMAIL)
    [ver] = created["verifications"]
    assert (ver["channel"], ver["status"], ver["delivery"]) == ("email_code", "pending", "sent")
    assert ver["attempts_left"] == 5  # the SMS code's max_checks, not the link's single use
    code = _sent_code(client)["code"]
    assert re.fullmatch(r"\d{4}", code)

    # A code is no link token, and the link's endpoint says so.
    link = client.post("/v1/email/verify", json={"token": code})
    assert_problem(link, 422, "token_invalid")

    miss = assert_problem(check(client, ver["id"], wrong(code)), 422, "code_incorrect")
    assert miss["attempts_left"] == 4

    r = check(client, ver["id"], code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "approved" and body["verification"]["channel"] == "email_code"
    assert body["account"]["status"] == "active"
    account = client.get(f"/v1/accounts/{created['account']['id']}").json()
    assert account["verified"] == {"phone": False, "email": True}
    again = assert_problem(check(client, ver["id"], code), 409, "verification_closed")
    assert again["verification_status"] == "approved"


def test_the_policys_code_length_and_a_resend_apply(client: TestClient) -> None:
    set_policy(client, "email", sms={"code_length": 6, "resend_cooldown_seconds": 0})
    [ver] = signup(client, email=EMAIL, locale="ur-PK")["verifications"]
    first = _sent_code(client)
    assert re.fullmatch(r"\d{6}", first["code"])
    assert first["body"].startswith("السلام علیکم")

    r = client.post(f"/v1/verifications/{ver['id']}/resend")
    assert r.status_code == 202, r.text
    second = _sent_code(client)
    assert second["code"] != first["code"] and second["body"].startswith("السلام علیکم")
    # The earlier code died with the resend, and its miss still counts.
    assert_problem(check(client, ver["id"], first["code"]), 422, "code_incorrect")
    assert check(client, ver["id"], second["code"]).json()["status"] == "approved"


def test_the_channel_may_be_named_by_either_spelling(client: TestClient) -> None:
    set_policy(client, "either")
    for i, spelling in enumerate(("email_code", "email")):
        body = {"phone": "+1 202 555 0142", "email": f"both{i}@example.test", "channel": spelling}
        [ver] = signup(client, **body)["verifications"]
        assert ver["channel"] == "email_code"
    r = client.post("/v1/accounts", json={"email": EMAIL, "channel": "email-code"})
    problem = assert_problem(r, 422, "invalid_request")
    assert "email_code" in problem["errors"][0]["message"]


# ---------------------------------------------------------------- the stats


def test_the_stats_count_the_channel_under_its_name(client: TestClient) -> None:
    version = set_policy(client, "email")["version"]
    [ver] = signup(client, email=EMAIL)["verifications"]
    code = _sent_code(client)["code"]
    assert check(client, ver["id"], wrong(code)).status_code == 422
    assert check(client, ver["id"], code).status_code == 200

    with runtime(client).db.read() as conn:
        counters = rollup.read(conn)[version, "email"]
        live, rebuilt = live_and_rebuilt(conn)
    expected = {
        "verifications.email_code": 1,
        "checks.email_code.incorrect": 1,
        "checks.email_code.approved": 1,
        "checks_to_approve.email_code": 2,
        "approved.email_code": 1,
    }
    assert {name: counters.get(name) for name in expected} == expected
    assert [n for name, n in counters.items() if name.startswith("sent.")] == [1]
    assert all(name.startswith("sent.email.") for name in counters if name.startswith("sent."))
    assert live == rebuilt  # the rebuild from the rows agrees, message kind included

    arm = stats_arm(stats(client), version, "email")
    assert arm["verifications"]["by_channel"] == {"email_code": 1}
    assert arm["verifications"]["approved"] == 1
    assert arm["checks"] == {"incorrect": 1, "approved": 1, "per_approval": 2.0}
    assert arm["messages"]["sent_by_kind"] == {"email": 1}


# ---------------------------------------------------------------- a real SMTP server


def _parts(message: EmailMessage) -> dict[str, str]:
    """The text and HTML parts by content type, decoded."""
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in message.walk()
        if not part.is_multipart()
    }


def _every_row(client: TestClient) -> dict[str, str]:
    """Every row of every table, as text, keyed by table name."""
    with runtime(client).db.read() as conn:
        return {
            table.name: "\n".join(repr(tuple(map(str, row))) for row in conn.execute(select(table)))
            for table in metadata.sorted_tables
        }


def test_the_code_arrives_by_smtp_and_is_never_stored_in_clear(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
    smtpd: SmtpServer,
) -> None:
    settings = make_settings(
        email_channel="email_code",
        email_provider=["smtp"],
        smtp_host="127.0.0.1",
        smtp_port=smtpd.port,
        smtp_tls="none",
        smtp_from="Verifyd Test <noreply@example.com>",
        app_name="Example",
    )
    client = make_client(settings)
    # 10 digits, so the code cannot turn up by chance inside a timestamp or a number.
    set_policy(client, "email", sms={"code_length": 10})
    created = signup(client, email="new.user@example.com", locale="ar")
    [ver] = created["verifications"]
    assert ver["channel"] == "email_code" and ver["delivery"] == "queued"  # through the outbox

    [got] = smtpd.wait_for(1)
    mail = got.message
    assert got.rcpt_tos == ["new.user@example.com"]
    assert mail["Subject"] == "رمز التحقق الخاص بك – Example"
    assert mail["Content-Language"] == "ar"
    parts = _parts(mail)
    assert set(parts) == {"text/plain", "text/html"}
    [code] = re.findall(r"(?<!\d)\d{10}(?!\d)", parts["text/plain"])
    assert re.findall(r"(?<!\d)\d{10}(?!\d)", parts["text/html"]) == [code]
    assert code not in mail["Subject"]
    assert "http" not in parts["text/plain"] and "<a " not in parts["text/html"]
    assert 'dir="rtl"' in parts["text/html"]

    tables = _every_row(client)
    assert ver["id"] in tables["messages"] and ver["id"] in tables["verifications"]
    for table, text in tables.items():
        assert code not in text, f"the code is stored in clear in {table}"

    assert_problem(check(client, ver["id"], wrong(code)), 422, "code_incorrect")
    r = check(client, ver["id"], code)
    assert r.status_code == 200, r.text
    assert r.json()["account"]["status"] == "active"
    assert len(smtpd.messages) == 1, "delivered once"
