"""Twilio's resource identifiers: a two-letter prefix and 32 hex digits."""

from __future__ import annotations

import re
import secrets
import time

_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def new_sid(prefix: str) -> str:
    """A new SID: ``prefix`` then 32 lower-case hex digits.

    The first 12 digits are the creation time in milliseconds (rows land beside the last
    ones in their indexes, as ``codes.new_id`` explains); the other 20 are random (80 bits,
    unguessable).
    """
    return f"{prefix}{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def random_sid(prefix: str) -> str:
    """A SID of 128 random bits (for what is named once and kept: accounts, services)."""
    return prefix + secrets.token_hex(16)


def is_sid(value: str, prefix: str) -> bool:
    """Whether ``value`` is a well-formed SID of this kind (``VE…``)."""
    return value.startswith(prefix) and bool(_SID.match(value))
