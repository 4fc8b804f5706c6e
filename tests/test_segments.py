"""SMS segment counting (GSM-7 and UCS-2), and what each shipped locale's SMS costs."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from verifyd import segments
from verifyd.channels.base import VerificationRef
from verifyd.channels.sms import SmsChannel
from verifyd.codes import Secrets
from verifyd.models import utcnow
from verifyd.settings import Settings
from verifyd.texts import Texts

DOCS = Path(__file__).resolve().parents[1] / "docs" / "templates.md"


@pytest.mark.parametrize(
    ("text", "encoding", "units", "count"),
    [
        ("", "gsm7", 0, 1),
        ("a" * 160, "gsm7", 160, 1),
        ("a" * 161, "gsm7", 161, 2),
        ("a" * 306, "gsm7", 306, 2),
        ("a" * 307, "gsm7", 307, 3),
        # An extension character takes two septets...
        ("€", "gsm7", 2, 1),
        ("a" * 158 + "€", "gsm7", 160, 1),
        ("a" * 159 + "[", "gsm7", 161, 2),
        ("{}[]~^|\\€", "gsm7", 18, 1),
        # ...and never splits across parts: the pair moves whole to the next one.
        ("a" * 152 + "€" + "a" * 153, "gsm7", 307, 3),
        ("a" * 151 + "€" + "a" * 153, "gsm7", 306, 2),
        # Characters of the basic GSM table count one septet, accented ones included.
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./", "gsm7", 44, 1),
        ("é" * 160, "gsm7", 160, 1),
        # One character outside GSM-7 turns the whole text into UCS-2.
        ("a" * 69 + "ç", "ucs2", 70, 1),
        ("a" * 70 + "ç", "ucs2", 71, 2),
        ("ع" * 70, "ucs2", 70, 1),
        ("ع" * 71, "ucs2", 71, 2),
        ("ع" * 134, "ucs2", 134, 2),
        ("ع" * 135, "ucs2", 135, 3),
        # An emoji is two UTF-16 code units, and a surrogate pair is never split.
        ("😀", "ucs2", 2, 1),
        ("a" * 68 + "😀", "ucs2", 70, 1),
        ("a" * 69 + "😀", "ucs2", 71, 2),
        ("ع" * 66 + "😀" + "ع" * 66, "ucs2", 134, 3),
        ("ع" * 65 + "😀" + "ع" * 67, "ucs2", 134, 2),
        # A raw escape is no character of the alphabet.
        ("a\x1b", "ucs2", 2, 1),
    ],
)
def test_vectors(text: str, encoding: str, units: int, count: int) -> None:
    assert segments.count(text) == segments.Segments(encoding, units, count)  # type: ignore[arg-type]


#: What each shipped locale's SMS costs (codes of 4 and 10 digits, the app name
#: "Example" at https://verify.example.com): docs/templates.md says the same.
EXPECTED = {"en": (1, 1), "ur": (2, 2), "ar": (2, 2)}


def _sms(settings: Settings, locale: str, code_length: int, ttl: int = 600) -> str:
    channel = SmsChannel(settings, Secrets(settings.resolve_secret()))
    now = utcnow()
    ref = VerificationRef(
        id="ver_0123456789abcdef01234567",
        destination="+923001234567",
        generation=0,
        sandbox=False,
        expires_at=now + timedelta(seconds=ttl),
        code_length=code_length,
        locale=locale,
    )
    message = channel.render(ref, "msg_1", now)
    assert message.locale == locale
    return message.body


def _settings(public_base_url: str, app_name: str) -> Settings:
    return Settings(
        database_url="sqlite:///:memory:",
        secret_key="segments-test-secret-0123456789-0123456789",
        public_base_url=public_base_url,
        app_name=app_name,
    )


def test_every_shipped_locale_has_its_segment_count() -> None:
    settings = _settings("https://verify.example.com", "Example")
    assert Texts().locales == set(EXPECTED)
    for locale, expected in EXPECTED.items():
        for code_length, count in zip((4, 10), expected, strict=True):
            for ttl in (60, 120, 600, 7200, 86400):
                body = _sms(settings, locale, code_length, ttl)
                got = segments.count(body)
                assert got.count == count, (locale, code_length, ttl, got, body)
                assert got.encoding == ("gsm7" if locale == "en" else "ucs2")


def test_the_docs_give_each_locales_segment_count() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for locale, (four, ten) in EXPECTED.items():
        row = re.search(rf"^\|\s*`{locale}`\s*\|.*$", text, re.MULTILINE)
        assert row is not None, f"docs/templates.md has no row for {locale}"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        assert str(four) in cells and str(ten) in cells, (locale, cells)


#: The expiries the settings allow, each spelt its own way ("1 min", "119 min", "24 h";
#: Arabic's "دقيقة واحدة", "دقيقتين", "10 دقائق" …).
TTLS = (30, 60, 90, 120, 600, 660, 7140, 7200, 36000, 86400)


@pytest.mark.parametrize(
    ("locale", "code_length", "room", "count"),
    [
        ("en", 4, 57, 1),
        ("en", 10, 45, 1),
        ("ur", 4, 48, 2),
        ("ur", 10, 36, 2),
        ("ar", 4, 52, 2),
        ("ar", 10, 40, 2),
    ],
)
def test_the_room_the_docs_give_the_app_name_and_host(
    locale: str, code_length: int, room: int, count: int
) -> None:
    # docs/templates.md: app name and host may take `room` characters together.
    host = "verification.example-shop.com"

    def worst(extra: int) -> int:
        settings = _settings(f"https://{host}", "A" * (room + extra - len(host)))
        return max(segments.count(_sms(settings, locale, code_length, t)).count for t in TTLS)

    assert worst(0) == count
    assert worst(1) == count + 1
