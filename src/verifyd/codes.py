"""Ids, codes and link tokens: generation, keyed hashing and constant-time comparison.

A verification's secrets are derived, not stored: the per-verification seed is
``HMAC(server_key, verification_id)``, an SMS code is ``HOTP(seed, generation)`` and
a link token is ``HMAC(seed, "link" ‖ generation)`` (256 bits). The database keeps only
``HMAC(server_key, code)`` or ``SHA-256(token)``; the outbox re-derives the secret at
delivery time, so no code or token is ever at rest in clear. A resend bumps the
generation: the new secret replaces the hash and the old one dies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

import pyotp


def new_id(prefix: str) -> str:
    """An opaque, unguessable id, e.g. ``acc_…``: a time prefix, then 96 random bits.

    The prefix is the creation time in milliseconds as 12 hex digits, so ids sort by
    creation (hex keeps its order in bytes): a new row lands beside the last ones in
    each primary-key and foreign-key index instead of on a random page of a large
    table. With a million accounts that kept a signup's commit to a few dirty pages.
    The 96 random bits are what makes an id unguessable.
    """
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_urlsafe(12)}"


_ID = re.compile(r"^[a-z]{3}_[A-Za-z0-9_-]{1,64}$")


def well_formed(identifier: str) -> bool:
    """Whether an id could exist (so no NUL or megabyte ever reaches the database)."""
    return bool(_ID.match(identifier))


class Secrets:
    """Derives and hashes codes and tokens with the server key.

    Args:
        key: The server secret (``VERIFYD_SECRET_KEY`` or the development key file).
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _seed(self, verification_id: str) -> bytes:
        return hmac.new(self._key, b"seed\x00" + verification_id.encode(), hashlib.sha256).digest()

    def code(self, verification_id: str, generation: int, length: int) -> str:
        """The numeric code of a verification's generation (HOTP, RFC 4226)."""
        secret = base64.b32encode(self._seed(verification_id)).decode()
        # pyotp allows 6-10 digits; shorter codes are the last digits of a 6-digit
        # HOTP (its 31-bit value mod 10**6, then mod 10**length: bias below 1e-5).
        code = pyotp.HOTP(secret, digits=max(6, length)).at(generation)
        return str(code)[-length:]

    def token(self, verification_id: str, generation: int) -> str:
        """The 256-bit link token of a verification's generation, URL-safe."""
        mac = hmac.new(
            self._seed(verification_id), b"link\x00%d" % generation, hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def hash_code(self, verification_id: str, code: str) -> str:
        """HMAC-SHA256 of a code, bound to its verification so hashes are not reusable."""
        msg = b"code\x00" + verification_id.encode() + b"\x00" + code.encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def hash_subject(self, subject: str) -> str:
        """Keyed hash of a frontend subject id, kept instead of the id itself."""
        return hmac.new(self._key, b"subject\x00" + subject.encode(), hashlib.sha256).hexdigest()


def hash_token(token: str) -> str:
    """SHA-256 of a link token (256 random bits need no key)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
