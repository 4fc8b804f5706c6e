"""The ``email_code`` channel on its own: a code by email, its texts, its terms, its registry."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from support.texts import Tags, assert_language, write_templates
from verifyd.channels.base import VerificationRef
from verifyd.channels.email_code import EmailCodeChannel
from verifyd.channels.sms import SmsChannel
from verifyd.codes import Secrets
from verifyd.models import utcnow
from verifyd.policy import Policy, SmsKnobs
from verifyd.providers.base import OutgoingMessage
from verifyd.providers.webhook import payload
from verifyd.registry import Registry
from verifyd.settings import ConfigurationError, Settings

BASE = "https://verify.example.com"
SECRET = "email-code-test-secret-0123456789-0123456789"
#: Per locale: the expiry of a 10-minute code in words, and "never share it".
WORDING = {
    "en": ("expires in 10 minutes", "Never share it"),
    "ur": ("10 منٹ بعد ختم", "کسی کو نہ بتائیں"),
    "ar": ("خلال 10 دقائق", "لا تشاركه مع أحد"),
}


def _settings(**values: Any) -> Settings:
    """Settings for rendering alone (no database is opened)."""
    return Settings(
        database_url="sqlite:///:memory:", secret_key=SECRET, public_base_url=BASE, **values
    )


def _channel(**values: Any) -> EmailCodeChannel:
    settings = _settings(**{"app_name": "Example", **values})
    return EmailCodeChannel(settings, Secrets(settings.resolve_secret()))


def _ref(
    locale: str | None = None, code_length: int | None = 4, ttl: int = 600, **more: Any
) -> VerificationRef:
    values: dict[str, Any] = {
        "id": "ver_0123456789abcdef01234567",
        "destination": "someone@example.com",
        "generation": 0,
        "sandbox": False,
        "expires_at": utcnow() + timedelta(seconds=ttl),
        "code_length": code_length,
        "locale": locale,
        **more,
    }
    return VerificationRef(**values)


def _render(channel: EmailCodeChannel, ref: VerificationRef) -> OutgoingMessage:
    return channel.render(ref, "msg_1", ref.expires_at - timedelta(seconds=600))


# ---------------------------------------------------------------- the message


@pytest.mark.parametrize(
    ("tag", "locale"), [(None, "en"), ("en-GB", "en"), ("ur-PK", "ur"), ("ar-EG", "ar")]
)
def test_the_email_carries_the_code_in_both_parts_and_no_link(tag: str | None, locale: str) -> None:
    message = _render(_channel(), _ref(tag))
    code = message.code
    assert code is not None and re.fullmatch(r"\d{4}", code)
    assert (message.kind, message.purpose, message.channel) == ("email", "code", "email_code")
    assert message.link is None and message.locale == locale
    assert message.to == "someone@example.com"

    subject = message.subject
    assert subject and "\n" not in subject and subject == subject.strip()
    assert "Example" in subject
    assert code not in subject  # relays log subjects; the code stays in the body

    html = message.html
    assert html is not None
    expiry, never_share = WORDING[locale]
    for part in (message.body, html):
        assert re.search(rf"(?<!\d){code}(?!\d)", part), part
        assert expiry in part and never_share in part and "Example" in part
        assert "http" not in part and "/v1/" not in part and "token" not in part
        if locale != "en":
            assert_language(part.replace("Example", ""), locale)
    # The plain part: its language's letter first (mail apps pick the direction from
    # it), the code alone on a line, one newline at the end.
    assert f"\n\n{code}\n\n" in message.body and message.body.endswith("Example\n")
    assert message.body[0].isascii() == (locale == "en")

    page = Tags(html)
    direction = "ltr" if locale == "en" else "rtl"
    assert page.first("html") == {"lang": locale, "dir": direction}
    wrapper = page.first("div")
    assert (wrapper["lang"], wrapper["dir"]) == (locale, direction)
    assert {t for t, _ in page.tags} <= {"html", "head", "meta", "title", "body", "div", "h1", "p"}
    assert not any(k in ("href", "src") or k.startswith("on") for _, a in page.tags for k in a)
    assert "url(" not in html and "<style" not in html and "<a" not in html
    # The code stands alone in a left-to-right paragraph of its own, large.
    [shown] = [a for t, a in page.tags if t == "p" and a.get("dir") == "ltr"]
    assert "font-size:32px" in str(shown["style"])
    assert f'dir="ltr" style="{shown["style"]}">{code}</p>' in html
    assert f"<title>{subject}</title>" in html


@pytest.mark.parametrize(
    ("locale", "minute", "hours"),
    [
        ("en", "expires in 1 minute.", "expires in 3 hours."),
        ("ur", "1 منٹ بعد", "3 گھنٹے بعد"),
        ("ar", "خلال دقيقة واحدة", "خلال 3 ساعات"),
    ],
)
def test_the_expiry_reads_in_minutes_then_hours(locale: str, minute: str, hours: str) -> None:
    channel = _channel()
    for ttl, expected in ((60, minute), (3 * 3600, hours)):
        ref = _ref(locale, ttl=ttl)
        message = channel.render(ref, "m", ref.expires_at - timedelta(seconds=ttl))
        assert message.html is not None
        assert expected in message.body and expected.rstrip(".") in message.html


def test_the_html_part_escapes_the_app_name_the_text_part_keeps() -> None:
    message = _render(_channel(app_name='Acme <b>"Shop"</b> & Co'), _ref("ar"))
    assert 'Acme <b>"Shop"</b> & Co' in message.body
    assert message.html is not None and "<b>" not in message.html
    assert "Acme &lt;b&gt;&#34;Shop&#34;&lt;/b&gt; &amp; Co" in message.html


def test_a_verify_services_name_replaces_the_app_name() -> None:
    message = _render(_channel(), _ref(app_name="Acme Login"))
    assert message.subject == "Your verification code for Acme Login"
    assert "Acme Login" in message.body and "Example" not in message.body


def test_the_webhook_payload_of_a_code_email_says_so() -> None:
    message = _render(_channel(), _ref())
    assert message.code is not None
    sent = payload(message)
    assert '"type":"message.email"' in sent and '"purpose":"code"' in sent
    assert message.code in sent and '"link"' not in sent


# ---------------------------------------------------------------- the code and its terms


def test_the_code_is_the_verifications_length_and_checks_like_an_sms_code() -> None:
    channel = _channel()
    six, ten = _ref(code_length=6), _ref(code_length=10)
    assert re.fullmatch(r"\d{6}", channel.secret(six))
    assert re.fullmatch(r"\d{10}", channel.secret(ten))
    assert channel.secret(_ref(code_length=None)).isdigit()  # a row without a length: 4
    assert len(channel.secret(_ref(code_length=None))) == 4

    stored = channel.issue(six)
    code = channel.secret(six)
    assert stored != code and code not in stored
    assert channel.check(six.id, code, stored)
    assert not channel.check(six.id, str((int(code) + 1) % 10**6).zfill(6), stored)
    assert channel.parse_candidate(code) == code
    # A new generation (a resend) is a new code; the old one no longer matches.
    again = _ref(code_length=6, generation=1)
    assert channel.secret(again) != code
    assert not channel.check(six.id, code, channel.issue(again))


def test_the_same_verification_gets_the_same_code_by_sms_and_by_email() -> None:
    """One derivation serves both: the code depends on the key, the id and the generation."""
    settings = _settings()
    secrets = Secrets(settings.resolve_secret())
    ref = _ref(code_length=6)
    assert EmailCodeChannel(settings, secrets).secret(ref) == SmsChannel(settings, secrets).secret(
        ref
    )


def test_the_sandbox_fixed_code_applies_to_sandbox_addresses_only() -> None:
    channel = _channel(sandbox=True, sandbox_fixed_code="1234")
    assert channel.secret(_ref(sandbox=True)) == "1234"
    assert _render(channel, _ref(sandbox=True)).code == "1234"
    real = _ref()  # not a sandbox address: the derived code, whatever it is
    assert channel.secret(real) == channel.secrets.code(real.id, 0, 4)
    # a verification of another length keeps its derived code
    assert len(channel.secret(_ref(sandbox=True, code_length=6))) == 6


def test_its_terms_are_the_sms_codes() -> None:
    channel = _channel()
    policy = Policy(
        mode="email",
        sms=SmsKnobs(code_length=7, ttl_seconds=900, max_checks=3, resend_cooldown_seconds=45),
    )
    terms = channel.terms(policy)
    assert (terms.ttl_seconds, terms.max_checks) == (900, 3)
    assert (terms.resend_cooldown_seconds, terms.code_length) == (45, 7)
    assert channel.terms(policy) == SmsChannel(channel.settings, channel.secrets).terms(policy)


def test_it_is_an_email_channel_confirmed_by_a_code() -> None:
    assert (EmailCodeChannel.name, EmailCodeChannel.identity) == ("email_code", "email")
    assert (EmailCodeChannel.message_kind, EmailCodeChannel.confirm_by) == ("email", "code")
    assert Registry.from_entry_points().channel("email_code") is EmailCodeChannel


# ---------------------------------------------------------------- overrides


def test_an_override_replaces_the_code_emails_files_one_by_one(tmp_path: Path) -> None:
    folder = write_templates(
        tmp_path,
        {
            "en/email/code.subject.txt": "{{ code }} is your {{ app_name }} code\n",
            "fr/email/code.txt": "Bonjour,\n\nVotre code {{ app_name }} : {{ code }}\n",
        },
    )
    channel = _channel(template_dir=folder)
    en = _render(channel, _ref())
    assert en.subject == f"{en.code} is your Example code"
    assert en.body.startswith("Hello,")  # the shipped plain part
    fr = _render(channel, _ref("fr-CA"))
    assert fr.locale == "fr" and fr.body == f"Bonjour,\n\nVotre code Example : {fr.code}\n"
    # French has no subject or HTML of its own: the English ones, file by file.
    assert fr.subject == f"{fr.code} is your Example code"
    assert fr.html is not None and 'lang="en"' in fr.html


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"en/email/code.txt": "{{ link }}"}, "'link' is undefined"),
        ({"ar/email/code.html": '{% extends "_layout/email.html" %}'}, "'link' is undefined"),
        ({"_layout/email_code.html": "{{ token }}"}, "'token' is undefined"),
    ],
    ids=["plain-part-wants-a-link", "html-on-the-link-layout", "broken-code-layout"],
)
def test_an_override_of_the_code_email_is_checked_at_start_up(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        _channel(template_dir=write_templates(tmp_path, files))
