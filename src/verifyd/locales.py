"""Which language a signup's messages are written in: BCP 47 tags, negotiation, direction."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

#: What every message falls back to; always shipped.
DEFAULT = "en"
#: The longest tag ``accounts.locale`` holds (RFC 5646 §4.4.1 asks for at least 35).
MAX_TAG_LENGTH = 35
#: An ``Accept-Language`` longer than any browser sends is read this far and no further.
MAX_HEADER_LENGTH = 512
MAX_RANGES = 16

# RFC 5646's shape, without the grandfathered and private-use forms no one sends: a
# language, then subtags of letters and digits. Matching the shape is enough here: the
# tag is only compared against the locales of the shipped and overriding templates.
_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
_Q = re.compile(r"q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")

#: Languages whose usual script runs right to left.
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ps", "sd", "syr", "ug", "ur", "yi"}
)
#: Scripts that run right to left; a script subtag decides over the language
#: (``pa-Arab`` is right to left, ``ks-Deva`` is not).
RTL_SCRIPTS = frozenset({"arab", "hebr", "thaa", "syrc", "nkoo", "adlm", "rohg", "mand"})


def canonical(raw: str | None) -> str | None:
    """The tag in its conventional case (``ur-PK``, ``zh-Hant-TW``), or ``None``.

    An underscore is read as a hyphen (``ur_PK``, as POSIX locales spell it). Anything
    that is not shaped like a language tag, or is longer than :data:`MAX_TAG_LENGTH`,
    gives ``None``: the caller falls back rather than refusing the signup.
    """
    if not raw:
        return None
    text = raw.strip().replace("_", "-")
    if len(text) > MAX_TAG_LENGTH or not text.isascii() or _TAG.fullmatch(text) is None:
        return None
    language, *rest = text.split("-")
    parts = [language.lower()]
    for i, sub in enumerate(rest):
        if len(sub) == 4 and sub.isalpha() and i == 0:
            parts.append(sub.title())  # script
        elif (len(sub) == 2 and sub.isalpha()) or (len(sub) == 3 and sub.isdigit()):
            parts.append(sub.upper())  # region
        else:
            parts.append(sub.lower())
    return "-".join(parts)


def accept_language(header: str | None) -> list[str]:
    """The tags of an ``Accept-Language`` header, most wanted first (RFC 9110 §12.5.4).

    Ranges with ``q=0`` and the ``*`` wildcard are dropped (English is the fallback
    anyway); equal weights keep the header's order. Malformed ranges are skipped.
    """
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header[:MAX_HEADER_LENGTH].split(",")[:MAX_RANGES]):
        tag, _, params = item.partition(";")
        q = 1.0
        if params:
            found = _Q.fullmatch(params.strip().replace(" ", ""))
            if found is None:
                continue
            q = float(found.group(1))
        name = canonical(tag)
        if name is not None and q > 0:
            weighted.append((-q, index, name))
    return [name for _, _, name in sorted(weighted)]


def match(tag: str, available: Collection[str]) -> str | None:
    """The available locale that serves a tag: the tag itself, else its language.

    ``available`` holds lower-case names (``en``, ``ur``, ``pt-br``); the answer is one
    of them. ``ur-PK`` is served by ``ur``; ``pt-BR`` by ``pt-br`` before ``pt``.
    """
    lowered = tag.lower()
    while True:
        if lowered in available:
            return lowered
        head, sep, _ = lowered.rpartition("-")
        if not sep:
            return None
        lowered = head


def negotiate(requested: str | None, header: str | None, available: Collection[str]) -> str:
    """The tag a signup's messages are written in.

    The signup body's ``locale`` first, then ``Accept-Language`` by weight; the first
    that an available locale serves wins, in its canonical case (``ur-PK``: the region
    is kept for the record, ``ur`` is what renders it). Nothing servable gives
    :data:`DEFAULT`. An absurd ``locale`` is ignored, never an error.

    Args:
        requested: The body's ``locale``, as sent.
        header: The ``Accept-Language`` header, as sent.
        available: Lower-case locale names the templates provide.
    """
    if requested is None and not header:
        return DEFAULT  # the common case, on the signup's hot path
    candidates: Iterable[str] = accept_language(header)
    first = canonical(requested)
    if first is not None:
        candidates = [first, *candidates]
    for tag in candidates:
        if match(tag, available) is not None:
            return tag
    return DEFAULT


def is_rtl(tag: str) -> bool:
    """Whether text in this locale runs right to left (``ur``, ``ar``, ``az-Arab``: yes)."""
    parts = tag.lower().split("-")
    script = parts[1] if len(parts) > 1 and len(parts[1]) == 4 and parts[1].isalpha() else None
    if script is not None:
        return script in RTL_SCRIPTS
    return parts[0] in RTL_LANGUAGES


def direction(tag: str) -> str:
    """``rtl`` or ``ltr``, for an HTML ``dir`` attribute."""
    return "rtl" if is_rtl(tag) else "ltr"
