"""How many SMS segments a text takes: GSM-7 when every character has a septet, else UCS-2.

Carriers bill per segment. A single SMS carries 140 octets: 160 GSM-7 septets or 70
UCS-2 code units. A longer text is split into parts that each lose 6 octets to the
concatenation header (UDH): 153 septets or 67 code units per part. A part never ends
inside a character: an extension character of GSM-7 (``€``, ``[``, ``{`` …: an escape
septet plus one) and a UTF-16 surrogate pair (an emoji) each move whole to the next part.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import gsm0338  # type: ignore[import-untyped]  # noqa: F401 - registers the "gsm03.38" codec

GSM_SINGLE = 160
GSM_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67
_ESCAPE = "\x1b"

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class Segments:
    """How a text travels as SMS.

    Attributes:
        encoding: ``gsm7`` or ``ucs2``.
        units: Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes.
        count: Segments billed: 1 up to the single-SMS limit, else the parts needed.
    """

    encoding: Encoding
    units: int
    count: int


@functools.lru_cache(maxsize=4096)
def _septets_of(ch: str) -> int:
    """Septets of one character (0: none; GSM-7 cannot carry it). Cached: the codec is slow."""
    try:
        return len(ch.encode("gsm03.38"))
    except UnicodeEncodeError:
        return 0


def _gsm_septets(text: str) -> list[int] | None:
    """Septets per character (1, or 2 for an extension character); ``None``: not GSM-7."""
    if _ESCAPE in text:  # a raw escape would swallow the next character
        return None
    sizes = [_septets_of(ch) for ch in text]
    return None if 0 in sizes else sizes


def _ucs2_units(text: str) -> list[int]:
    """UTF-16 code units per character: 2 for one outside the BMP (most emoji), else 1."""
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _parts(sizes: list[int], per_part: int) -> int:
    """Parts needed when characters are packed whole, in order, ``per_part`` units each."""
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts


def count(text: str) -> Segments:
    """The encoding, size and segment count of an SMS body.

    Args:
        text: The body as sent (an empty body still costs one segment).
    """
    septets = _gsm_septets(text)
    if septets is not None:
        total = sum(septets)
        n = 1 if total <= GSM_SINGLE else _parts(septets, GSM_PART)
        return Segments("gsm7", total, n)
    units = _ucs2_units(text)
    total = sum(units)
    n = 1 if total <= UCS2_SINGLE else _parts(units, UCS2_PART)
    return Segments("ucs2", total, n)
