"""Message texts as templates: three shipped languages, overrides, the locale of a signup."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import runtime, sandbox_messages, set_policy, signup
from support.texts import Tags, assert_language, write_templates
from verifyd.channels.base import VerificationRef
from verifyd.channels.email import EmailChannel
from verifyd.channels.sms import SmsChannel
from verifyd.codes import Secrets
from verifyd.models import Account, Verification, table_of, utcnow
from verifyd.providers.base import OutgoingMessage
from verifyd.settings import ConfigurationError, Settings
from verifyd.texts import SHIPPED, VARIABLES, Texts

BASE = "https://verify.example.com"
SECRET = "templates-test-secret-0123456789-0123456789"
PHONE = "+1 202 555 0142"
LOCALES = ("en", "ur", "ar")


def _settings(**values: Any) -> Settings:
    """Settings for rendering alone (no database is opened)."""
    return Settings(
        database_url="sqlite:///:memory:", secret_key=SECRET, public_base_url=BASE, **values
    )


def _message(
    channel: SmsChannel | EmailChannel,
    locale: str | None,
    destination: str = "+923001234567",
    ttl: int = 600,
) -> OutgoingMessage:
    """What a channel renders for a verification of this locale and life."""
    now = utcnow()
    ref = VerificationRef(
        id="ver_0123456789abcdef01234567",
        destination=destination,
        generation=0,
        sandbox=False,
        expires_at=now + timedelta(seconds=ttl),
        code_length=4,
        locale=locale,
    )
    return channel.render(ref, "msg_1", now)


@pytest.fixture
def channels() -> tuple[SmsChannel, EmailChannel]:
    """The two channels, for the app "Example" at https://verify.example.com."""
    settings = _settings(app_name="Example")
    secrets = Secrets(settings.resolve_secret())
    return SmsChannel(settings, secrets), EmailChannel(settings, secrets)


# ---------------------------------------------------------------- shipped files


def test_every_shipped_locale_has_every_file_and_each_renders_strictly(tmp_path: Path) -> None:
    for locale in LOCALES:
        for name in VARIABLES:
            assert (SHIPPED / locale / name).is_file(), f"{locale}/{name}"
    # An (empty) override folder turns on the start-up check, which renders every file
    # with its documented variables and refuses any other.
    assert Texts(tmp_path).locales == set(LOCALES)


# ---------------------------------------------------------------- the SMS


@pytest.mark.parametrize(
    ("tag", "locale"),
    [(None, "en"), ("en-GB", "en"), ("ur-PK", "ur"), ("ur", "ur"), ("ar-EG", "ar"), ("fr", "en")],
)
def test_the_sms_is_in_the_signups_language_and_ends_with_the_origin_bound_line(
    channels: tuple[SmsChannel, EmailChannel], tag: str | None, locale: str
) -> None:
    sms, _ = channels
    message = _message(sms, tag)
    code = message.code
    assert code is not None and re.fullmatch(r"\d{4}", code)
    assert message.locale == locale
    *text, blank, last = message.body.split("\n")
    assert last == f"@verify.example.com #{code}"  # WebOTP / SMS Retriever
    assert blank == ""
    assert re.search(rf"(?<!\d){code}(?!\d)", "\n".join(text)), message.body
    assert re.findall(r"\b\d{4}\b", message.body)[0] == code  # how the outbox tests find it
    assert "Example" in message.body
    assert_language("\n".join(text), locale)
    assert message.body == message.body.strip()


def test_the_english_sms_keeps_its_opening(channels: tuple[SmsChannel, EmailChannel]) -> None:
    sms, _ = channels
    message = _message(sms, None)
    assert message.body.startswith(f"Your verification code is {message.code}. ")
    assert "expires in 10 min" in message.body


def test_the_domain_is_the_public_base_urls_host() -> None:
    settings = Settings(
        database_url="sqlite:///:memory:",
        secret_key=SECRET,
        public_base_url="https://Accounts.Example.org:8443/base",
    )
    sms = SmsChannel(settings, Secrets(settings.resolve_secret()))
    message = _message(sms, "ar")
    assert message.body.endswith(f"\n@accounts.example.org #{message.code}")


# ---------------------------------------------------------------- the email


@pytest.mark.parametrize(
    ("tag", "locale", "expiry"),
    [(None, "en", "24 hours"), ("ur-PK", "ur", "24 گھنٹے"), ("ar-SA", "ar", "24 ساعة")],
)
def test_the_email_has_a_subject_both_parts_the_link_and_its_expiry(
    channels: tuple[SmsChannel, EmailChannel], tag: str | None, locale: str, expiry: str
) -> None:
    _, email = channels
    message = _message(email, tag, "someone@example.com", ttl=86400)
    assert message.locale == locale
    assert message.link is not None and message.link.startswith(f"{BASE}/v1/email/verify?token=")
    assert message.subject and "\n" not in message.subject and "Example" in message.subject
    for part in (message.body, message.html):
        assert part is not None
        assert message.link in part and expiry in part and "Example" in part
        assert_language(part.replace(message.link, ""), locale)

    html = message.html
    assert html is not None
    page = Tags(html)
    rtl = locale != "en"
    assert page.first("html") == {"lang": locale, "dir": "rtl" if rtl else "ltr"}
    wrapper = page.first("div")  # webmail drops <html>'s attributes: the wrapper repeats them
    assert (wrapper["lang"], wrapper["dir"]) == (locale, "rtl" if rtl else "ltr")
    assert [a["href"] for t, a in page.tags if t == "a"] == [message.link, message.link]
    # Nothing remote and nothing that runs: inline styles only.
    assert {t for t, _ in page.tags} <= {
        "html",
        "head",
        "meta",
        "title",
        "body",
        "div",
        "h1",
        "p",
        "a",
    }
    assert not any("src" in a or any(k.startswith("on") for k in a) for _, a in page.tags)
    assert "url(" not in html and "@import" not in html and "<style" not in html
    assert html.lower().startswith("<!doctype html>")


def test_the_html_email_escapes_what_the_text_part_keeps() -> None:
    settings = _settings(app_name='Acme <b>"Shop"</b> & Co')
    email = EmailChannel(settings, Secrets(settings.resolve_secret()))
    message = _message(email, "ur", "someone@example.com")
    assert 'Acme <b>"Shop"</b> & Co' in message.body
    assert message.html is not None and "<b>" not in message.html
    assert "Acme &lt;b&gt;&#34;Shop&#34;&lt;/b&gt; &amp; Co" in message.html


def test_a_short_link_life_is_given_in_minutes(channels: tuple[SmsChannel, EmailChannel]) -> None:
    _, email = channels
    assert "expires in 1 minute." in _message(email, None, "a@example.com", ttl=60).body
    assert "90 minutes" in _message(email, None, "a@example.com", ttl=5400).body
    assert "خلال دقيقتين" in _message(email, "ar", "a@example.com", ttl=120).body
    assert "خلال 3 ساعات" in _message(email, "ar", "a@example.com", ttl=10800).body
    assert "15 منٹ بعد" in _message(email, "ur", "a@example.com", ttl=900).body


# ---------------------------------------------------------------- overrides


ORIGIN_LINE = "\n\n@{{ domain }} #{{ code }}\n"


def test_an_override_replaces_one_file_and_a_new_folder_adds_a_locale(tmp_path: Path) -> None:
    folder = write_templates(
        tmp_path / "templates",
        {
            "en/sms/code.txt": "{{ app_name }} code: {{ code }}" + ORIGIN_LINE,
            "fr/sms/code.txt": "Votre code {{ app_name }} : {{ code }}" + ORIGIN_LINE,
        },
    )
    settings = _settings(template_dir=folder, app_name="Example")
    secrets = Secrets(settings.resolve_secret())
    sms, email = SmsChannel(settings, secrets), EmailChannel(settings, secrets)
    assert sms.renderer.texts.locales == {"en", "ur", "ar", "fr"}

    en = _message(sms, None)
    assert en.body == f"Example code: {en.code}\n\n@verify.example.com #{en.code}"
    fr = _message(sms, "fr-CA")
    assert (fr.locale, fr.body.split("\n")[0]) == ("fr", f"Votre code Example : {fr.code}")
    assert _message(sms, "ur").locale == "ur"  # untouched: the shipped file
    # French has no email: the English one, for that file alone.
    mail = _message(email, "fr", "a@example.com")
    assert mail.locale == "en" and mail.body.startswith("Hello,")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"en/sms/code.txt": "{{ code "}, "en/sms/code.txt"),
        ({"ur/email/link.txt": "{{ token }}"}, "'token' is undefined"),
        ({"_layout/page.html": "{{ nonsense.x }}{% block body %}{% endblock %}"}, "nonsense"),
    ],
    ids=["syntax", "unknown-variable", "broken-layout"],
)
def test_a_broken_override_stops_the_start(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    settings = _settings(template_dir=write_templates(tmp_path / "t", files))
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        SmsChannel(settings, Secrets(settings.resolve_secret()))


def test_a_missing_template_dir_stops_the_start() -> None:
    settings = _settings(template_dir=Path("/nonexistent/verifyd-templates"))
    with pytest.raises(ConfigurationError, match="VERIFYD_TEMPLATE_DIR"):
        EmailChannel(settings, Secrets(settings.resolve_secret()))


# ---------------------------------------------------------------- through the API


def _stored_locale(client: TestClient, account_id: str) -> str | None:
    accounts = table_of(Account)
    with runtime(client).db.read() as conn:
        locale: str | None = conn.execute(
            select(accounts.c.locale).where(accounts.c.id == account_id)
        ).scalar_one()
    return locale


@pytest.mark.parametrize(
    ("body", "headers", "stored", "language"),
    [
        ({"locale": "ur-PK"}, {}, "ur-PK", "ur"),
        ({"locale": "ur_pk"}, {}, "ur-PK", "ur"),
        ({}, {"Accept-Language": "ar-EG,ar;q=0.9,en;q=0.8"}, "ar-EG", "ar"),
        ({}, {"Accept-Language": "fr-FR, ur;q=0.8, en;q=0.5"}, "ur", "ur"),
        ({"locale": "ar"}, {"Accept-Language": "ur-PK"}, "ar", "ar"),
        ({"locale": "fr"}, {"Accept-Language": "ur-PK"}, "ur-PK", "ur"),
        ({"locale": "fr"}, {}, "en", "en"),
        ({}, {}, "en", "en"),
        ({"locale": "not a tag!"}, {"Accept-Language": "ar"}, "ar", "ar"),
        ({"locale": "zh-汉字"}, {}, "en", "en"),
        ({}, {"Accept-Language": "x" * 4000 + ";q=nonsense"}, "en", "en"),
    ],
)
def test_the_signup_locale_is_negotiated_stored_and_used(
    client: TestClient,
    body: dict[str, Any],
    headers: dict[str, str],
    stored: str,
    language: str,
) -> None:
    r = client.post("/v1/accounts", json={"phone": PHONE, **body}, headers=headers)
    assert r.status_code == 201, r.text
    assert _stored_locale(client, r.json()["account"]["id"]) == stored
    [message] = sandbox_messages(client, PHONE)
    assert_language(message["body"].split("\n")[0], language)
    assert message["body"].endswith(f"\n@testserver #{message['code']}")


def test_a_locale_too_long_for_its_column_is_a_clear_422(client: TestClient) -> None:
    r = client.post("/v1/accounts", json={"phone": PHONE, "locale": "ur-" + "a" * 33})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "invalid_request"
    assert [e["field"] for e in problem["errors"]] == ["locale"]
    assert sandbox_messages(client, PHONE) == []


def test_a_resend_speaks_the_signups_language(client: TestClient) -> None:
    set_policy(client, "phone", sms={"resend_cooldown_seconds": 0})
    created = signup(client, phone=PHONE, locale="ar-EG")
    vid = created["verifications"][0]["id"]
    r = client.post(f"/v1/verifications/{vid}/resend")
    assert r.status_code == 202, r.text
    newest, first = sandbox_messages(client, PHONE)
    assert newest["code"] != first["code"]
    for message in (newest, first):
        assert_language(message["body"].split("\n")[0], "ar")


def test_an_email_signup_gets_its_link_in_its_language(client: TestClient) -> None:
    set_policy(client, "email")
    signup(client, email="urdu@example.test", locale="ur-PK")
    [message] = sandbox_messages(client, "urdu@example.test")
    assert message["body"].startswith("السلام علیکم")
    assert message["link"] in message["body"]


# ---------------------------------------------------------------- the link's pages


def _link(client: TestClient, email: str, **body: Any) -> str:
    signup(client, email=email, **body)
    link: str = sandbox_messages(client, email)[0]["link"]
    return link.removeprefix("http://testserver")


def _token(path: str) -> str:
    return path.split("token=", 1)[1]


@pytest.mark.parametrize(
    ("locale", "heading", "button"),
    [
        ("ur-PK", "اپنے ای میل ایڈریس کی تصدیق کریں", "میرے ای میل کی تصدیق کریں"),
        ("ar-EG", "تأكيد عنوان بريدك الإلكتروني", "تأكيد بريدي الإلكتروني"),
        (None, "Confirm your email address", "Confirm my email"),
    ],
)
def test_the_pages_speak_the_signups_language(
    client: TestClient, locale: str | None, heading: str, button: str
) -> None:
    set_policy(client, "email")
    body = {"locale": locale} if locale else {}
    path = _link(client, "pages@example.test", **body)
    lang = (locale or "en").split("-")[0]
    direction = "ltr" if lang == "en" else "rtl"
    # The reader's browser asks for another language: the signup's still wins.
    page = client.get(path, headers={"Accept-Language": "fr, en;q=0.1"})
    assert page.status_code == 200
    assert page.headers["content-language"] == lang
    assert page.headers["cache-control"] == "no-store"
    parsed = Tags(page.text)
    assert parsed.first("html") == {"lang": lang, "dir": direction}
    assert parsed.first("button") == {"type": "submit", "id": "confirm"}
    assert f"<h1>{heading}</h1>" in page.text and button in page.text
    assert "<script" not in page.text

    done = client.post("/v1/email/verify", data={"token": _token(path)})
    assert done.status_code == 200
    assert Tags(done.text).first("html") == {"lang": lang, "dir": direction}
    assert Tags(done.text).first("h1")["data-status"] == "verified"

    again = client.post("/v1/email/verify", data={"token": _token(path)})
    assert again.status_code == 409
    assert Tags(again.text).first("html")["lang"] == lang
    assert Tags(again.text).first("h1") == {
        "id": "result",
        "data-code": "verification_closed",
        "data-status": "verified",
    }


def test_a_page_for_an_unknown_token_follows_the_readers_language(client: TestClient) -> None:
    page = client.get("/v1/email/verify?token=nope", headers={"Accept-Language": "ar"})
    assert (page.status_code, page.headers["content-language"]) == (200, "ar")
    r = client.post(
        "/v1/email/verify", data={"token": "nope"}, headers={"Accept-Language": "ur-PK"}
    )
    assert r.headers["content-language"] == "ur"
    assert Tags(r.text).first("h1")["data-code"] == "token_invalid"
    assert "یہ لنک درست نہیں ہے" in r.text
    plain = client.post("/v1/email/verify", data={"token": "nope"})
    assert plain.headers["content-language"] == "en"


def test_an_expired_link_says_so_in_urdu(client: TestClient) -> None:
    set_policy(client, "email", email={"ttl_seconds": 60})
    path = _link(client, "late@example.test", locale="ur")
    verifications = table_of(Verification)
    with runtime(client).db.write() as conn:
        conn.execute(verifications.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    r = client.post("/v1/email/verify", data={"token": _token(path)})
    assert r.status_code == 410
    assert Tags(r.text).first("h1")["data-code"] == "code_expired"
    assert "اس لنک کی میعاد ختم ہو چکی ہے" in r.text
