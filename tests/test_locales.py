"""Locale negotiation: BCP 47 tags, Accept-Language weights, fallback, text direction."""

from __future__ import annotations

import pytest

from verifyd import locales

SHIPPED = frozenset({"en", "ur", "ar"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ur-PK", "ur-PK"),
        ("UR-pk", "ur-PK"),
        ("ur_PK", "ur-PK"),
        (" ar-EG ", "ar-EG"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("de-CH-1996", "de-CH-1996"),
        ("en", "en"),
        ("", None),
        (None, None),
        ("e", None),
        ("english", None),
        ("en--US", None),
        ("en-", None),
        ("*", None),
        ("zh-汉字", None),
        ("en\x00", None),
        ("ur-PK; DROP TABLE accounts", None),
        ("a" * 3 + "-abcdefgh" * 4, None),  # 39 characters: past the column's 35
    ],
)
def test_canonical_accepts_tags_and_nothing_else(raw: str | None, expected: str | None) -> None:
    assert locales.canonical(raw) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ur-PK,ur;q=0.9,en;q=0.8", ["ur-PK", "ur", "en"]),
        ("en;q=0.2, ar-EG;q=0.9, ur", ["ur", "ar-EG", "en"]),
        ("fr, de;q=1.0, ar", ["fr", "de", "ar"]),  # equal weights keep the header's order
        ("ar;q=0, en", ["en"]),  # q=0 means "not this one"
        ("*;q=0.5, ur;q=0.4", ["ur"]),
        ("ur;q=2, ar;q=abc, en;q=0.5", ["en"]),  # malformed weights: skipped
        ("ur ; q=0.7 , ar", ["ar", "ur"]),
        ("", []),
        (None, []),
        (",,,;;;", []),
    ],
)
def test_accept_language_orders_by_weight(header: str | None, expected: list[str]) -> None:
    assert locales.accept_language(header) == expected


def test_an_absurd_accept_language_is_read_only_so_far() -> None:
    header = "zz-ZZ;q=0.9, " * 5_000 + "ur"
    assert locales.accept_language(header) == ["zz-ZZ"] * locales.MAX_RANGES
    assert locales.negotiate(None, header, SHIPPED) == "en"  # "ur" lies past the limit
    assert locales.negotiate(None, "\x00" * 10_000, SHIPPED) == "en"
    many = ",".join(["fr"] * (locales.MAX_RANGES - 1) + ["ur"])
    assert locales.accept_language(many)[-1] == "ur"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("ur-PK", "ur"),
        ("ar-EG", "ar"),
        ("AR", "ar"),
        ("en-GB", "en"),
        ("fr-FR", None),
        ("pt-BR", "pt-br"),
        ("pt-PT", "pt"),
        ("ur-Arab-PK", "ur"),
    ],
)
def test_match_tries_the_tag_then_its_language(tag: str, expected: str | None) -> None:
    assert locales.match(tag, SHIPPED | {"pt", "pt-br"}) == expected


@pytest.mark.parametrize(
    ("requested", "header", "expected"),
    [
        ("ur-PK", None, "ur-PK"),
        ("ur-PK", "ar-EG,ar;q=0.9", "ur-PK"),  # the body wins over the header
        (None, "ar-EG,ar;q=0.9,en;q=0.8", "ar-EG"),
        ("fr-CA", "ur-PK,fr;q=0.9", "ur-PK"),  # the body's is not servable: the header's is
        ("fr-CA", "de, it;q=0.5", "en"),
        (None, None, "en"),
        (None, "", "en"),
        ("not a tag!", "ar", "ar"),  # an absurd locale is ignored, never an error
        ("x" * 200, None, "en"),
        ("en-US", "ur", "en-US"),
    ],
)
def test_negotiate(requested: str | None, header: str | None, expected: str) -> None:
    assert locales.negotiate(requested, header, SHIPPED) == expected


@pytest.mark.parametrize(
    ("tag", "rtl"),
    [
        ("ur", True),
        ("ur-PK", True),
        ("ar-EG", True),
        ("fa", True),
        ("he-IL", True),
        ("en", False),
        ("fr-CA", False),
        ("pa", False),
        ("pa-Arab", True),  # Shahmukhi Punjabi, as written in Pakistan
        ("ks-Deva", False),  # a script subtag decides over the language
        ("az-Arab-IR", True),
        ("de-1996", False),  # a variant, not a script
    ],
)
def test_direction(tag: str, rtl: bool) -> None:
    assert locales.is_rtl(tag) is rtl
    assert locales.direction(tag) == ("rtl" if rtl else "ltr")
