"""Dashboard sessions: an admin key traded for a cookie any replica can verify.

The cookie carries a random 256-bit token; the database keeps only its SHA-256, the
key it was opened with and when it ends. Every replica checks a session against the
same row, so logging out, or revoking the key, ends it everywhere at once. The form
token that guards each form (CSRF) is derived from the session token, so it needs no
storage and means nothing without the cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from verifyd import audit, ratelimit
from verifyd.adminkeys import AdminKeys
from verifyd.codes import same
from verifyd.db import Database
from verifyd.models import AdminKey, AdminSession, table_of, utcnow
from verifyd.settings import Settings

_sessions = table_of(AdminSession)
_keys = table_of(AdminKey)

#: The login limit's window: attempts per address are counted per quarter hour.
LOGIN_WINDOW_SECONDS = 900


@dataclass(frozen=True)
class Session:
    """A live dashboard session."""

    actor: str
    key_id: str
    csrf: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def form_token(token: str) -> str:
    """The CSRF token of the forms shown to the holder of ``token`` (a one-way derivation)."""
    return hashlib.sha256(b"verifyd-csrf\x00" + token.encode()).hexdigest()


def forms_match(expected: str, given: str | None) -> bool:
    """Whether a submitted form token is the expected one (constant time)."""
    return given is not None and same(expected, given)


class AdminSessions:
    """Open, verify and close dashboard sessions.

    Args:
        db: The database.
        keys: The admin keys a login is checked against.
        settings: Session lifetime and the login limit.
    """

    def __init__(self, db: Database, keys: AdminKeys, settings: Settings) -> None:
        self._db = db
        self._keys = keys
        self._lifetime = timedelta(seconds=settings.admin_session_seconds)
        self._limit = ratelimit.Limit(
            "admin_login_ip",
            settings.admin_login_attempts_per_ip,
            LOGIN_WINDOW_SECONDS,
            "login attempts from this address",
        )

    def login(self, key: str, ip: str) -> tuple[str, Session]:
        """Trade an admin key for a session; every attempt counts against the address.

        Args:
            key: The admin key as typed (``vdk_…``).
            ip: The caller's address.

        Returns:
            The cookie's token (shown once, never stored) and the session.

        Raises:
            RateLimited: too many attempts from this address in the window; the
                key is not even looked at.
            Unauthorized: the key is not a valid admin key.
            Forbidden: the key is a verify-scoped credential (``AC…:token``).
        """
        now = utcnow()
        # Counted in a transaction of its own, committed before the key is checked:
        # a failed attempt must stay counted.
        with self._db.write() as conn:
            ratelimit.hit(conn, self._limit, ip, now, code="login_rate_limited")
        key_id, actor = self._keys.identify(f"Bearer {key.strip()}")
        token = secrets.token_urlsafe(32)
        expires = now + self._lifetime
        with self._db.write() as conn:
            conn.execute(delete(_sessions).where(_sessions.c.expires_at <= now))
            conn.execute(
                insert(_sessions).values(
                    token_hash=_digest(token), key_id=key_id, created_at=now, expires_at=expires
                )
            )
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="dashboard.login",
                target=f"key:{actor.removeprefix('key:')}",
                before=None,
                after={"ip": ip, "expires_at": expires.isoformat()},
            )
        return token, Session(actor, key_id, form_token(token), expires)

    def verify(self, token: str | None) -> Session | None:
        """The live session of a cookie's token: unexpired, its key not revoked."""
        if not token or len(token) > 128:
            return None
        s, k = _sessions.c, _keys.c
        with self._db.read() as conn:
            row = conn.execute(
                select(s.key_id, s.expires_at, k.name)
                .join(_keys, k.id == s.key_id)
                .where(s.token_hash == _digest(token), k.revoked_at.is_(None))
            ).first()
        if row is None or row.expires_at <= utcnow():
            return None
        return Session(f"key:{row.name}", row.key_id, form_token(token), row.expires_at)

    def logout(self, token: str) -> None:
        """End the session of ``token`` on every replica."""
        with self._db.write() as conn:
            conn.execute(delete(_sessions).where(_sessions.c.token_hash == _digest(token)))
