"""API keys: only a hash of each secret is stored.

Two scopes. An ``admin`` key (``vdk_<id>_<secret>``, a bearer token) opens ``/v1/admin``
and the dashboard. A ``verify`` key is an account SID (``AC…``) and an auth token used
as HTTP Basic credentials on the Twilio-compatible ``/v2`` surface, and nowhere else:
shown to ``/v1/admin`` or the dashboard it gets 403 ``forbidden``. Its token is hashed
with a ``verify`` prefix, so a token can never pass as an admin key's secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from verifyd import audit
from verifyd.codes import same
from verifyd.db import Database
from verifyd.errors import Conflict, Forbidden, NotFound, Unauthorized
from verifyd.models import AdminKey, table_of, utcnow
from verifyd.verify.errors import authenticate
from verifyd.verify.sids import is_sid, random_sid

#: The scopes a key can have.
SCOPES = ("admin", "verify")

_keys = table_of(AdminKey)


@dataclass(frozen=True)
class KeyInfo:
    """An admin key's metadata (never its secret)."""

    id: str
    name: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    scope: str = "admin"
    #: A verify key's account SID.
    account_sid: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _verify_digest(token: str) -> str:
    return hashlib.sha256(b"verify\x00" + token.encode()).hexdigest()


def basic(authorization: str | None) -> tuple[str, str] | None:
    """The user and password of an ``Authorization: Basic`` header, if it is one."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class AdminKeys:
    """Create, list, revoke and authenticate admin keys.

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str, actor: str, scope: str = "admin") -> tuple[str, KeyInfo]:
        """Create a key; its secret is returned once and never stored.

        Returns:
            ``vdk_<id>_<secret>`` for an admin key; ``<AC…>:<token>`` for a verify key.

        Raises:
            Conflict: a key with this name exists.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        key_id = secrets.token_hex(6)
        if scope == "verify":
            account_sid: str | None = random_sid("AC")
            secret = secrets.token_hex(16)  # Twilio's auth tokens are 32 hex digits
            digest, shown = _verify_digest(secret), f"{account_sid}:{secret}"
        else:
            account_sid, secret = None, secrets.token_urlsafe(32)
            digest, shown = _digest(secret), f"vdk_{key_id}_{secret}"
        now = utcnow()
        with self._db.write() as conn:
            if conn.execute(select(_keys.c.id).where(_keys.c.name == name)).first():
                raise Conflict("key_exists", f"an admin key named {name!r} exists")
            conn.execute(
                insert(_keys).values(
                    id=key_id,
                    name=name,
                    secret_hash=digest,
                    created_at=now,
                    created_by=actor,
                    scope=scope,
                    account_sid=account_sid,
                )
            )
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="admin_key.create",
                target=f"key:{name}",
                before=None,
                after={"id": key_id, "name": name, "scope": scope, "account_sid": account_sid},
            )
        return shown, KeyInfo(key_id, name, now, actor, None, scope, account_sid)

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(select(_keys).order_by(_keys.c.created_at)).all()
        return [
            KeyInfo(r.id, r.name, r.created_at, r.created_by, r.revoked_at, r.scope, r.account_sid)
            for r in rows
        ]

    def revoke(self, name_or_id: str, actor: str) -> KeyInfo:
        """Revoke a key by name or id.

        Raises:
            NotFound: no such active key.
        """
        now = utcnow()
        c = _keys.c
        with self._db.write() as conn:
            row = conn.execute(
                update(_keys)
                .where((c.name == name_or_id) | (c.id == name_or_id), c.revoked_at.is_(None))
                .values(revoked_at=now)
                .returning(c.id, c.name, c.created_at, c.created_by, c.scope, c.account_sid)
            ).first()
            if row is None:
                raise NotFound("not_found", f"no active admin key {name_or_id!r}")
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="admin_key.revoke",
                target=f"key:{row.name}",
                before={"id": row.id},
                after=None,
            )
        return KeyInfo(
            row.id, row.name, row.created_at, row.created_by, now, row.scope, row.account_sid
        )

    def authenticate(self, authorization: str | None) -> str:
        """The actor (``key:<name>``) for an ``Authorization: Bearer vdk_…`` header.

        Raises:
            Unauthorized: missing, malformed, unknown or revoked key.
        """
        return self.identify(authorization)[1]

    def identify(self, authorization: str | None) -> tuple[str, str]:
        """The key's id and actor (``key:<name>``) for an ``Authorization`` header.

        Raises:
            Unauthorized: missing, malformed, unknown or revoked key.
            Forbidden: ``forbidden``, a valid verify-scoped credential (``/v2`` only).
        """
        scheme, _, token = (authorization or "").partition(" ")
        parts = token.strip().split("_", 2)
        if (
            scheme.lower() != "bearer"
            or len(parts) != 3
            or parts[0] != "vdk"
            or not parts[1].isalnum()
            or not parts[1].isascii()
        ):
            if self._verify_key(authorization) is not None:
                raise Forbidden(
                    "forbidden",
                    "this credential is scoped to verify: it starts and checks verifications "
                    "on /v2 and nothing else",
                )
            raise Unauthorized("unauthorized", "an admin API key is required (Bearer vdk_…)")
        _, key_id, secret = parts
        with self._db.read() as conn:
            row = conn.execute(
                select(_keys.c.name, _keys.c.secret_hash, _keys.c.revoked_at, _keys.c.scope).where(
                    _keys.c.id == key_id
                )
            ).first()
        expected = row.secret_hash if row is not None else _digest("no such key")
        # Hash and compare whether or not the id exists: the same work either way.
        matches = same(_digest(secret), expected)
        if row is None or row.revoked_at is not None or not matches or row.scope != "admin":
            raise Unauthorized("unauthorized", "the admin API key is not valid")
        return key_id, f"key:{row.name}"

    def verify_account(self, authorization: str | None) -> str:
        """The account SID of the verify-scoped credential in an ``Authorization`` header.

        Accepts HTTP Basic ``<AC…>:<token>`` (what the ``twilio`` SDK sends).

        Raises:
            TwilioError: 20003, 401 for missing or invalid credentials, 403 for a valid
                admin key, as a Bearer token or in either Basic field (``/v2`` takes
                verify-scoped credentials only).
        """
        account_sid = self._verify_key(authorization)
        if account_sid is not None:
            return account_sid
        # An admin key is told why, whether it comes as a Bearer token or as either half
        # of the Basic credentials the SDK sends (``Client(sid, token)`` sends nothing else).
        halves = [p for p in basic(authorization) or () if p.startswith("vdk_")]
        for candidate in [authorization, *(f"Bearer {p}" for p in halves)]:
            try:
                self.identify(candidate)
            except (Unauthorized, Forbidden):
                continue
            raise authenticate(403, "Authenticate: an admin key cannot use /v2; create a key "
                                    "with --scope verify")  # fmt: skip
        raise authenticate()

    def _verify_key(self, authorization: str | None) -> str | None:
        """The account SID, when the header holds a live verify key's Basic credentials."""
        pair = basic(authorization)
        if pair is None:
            scheme, _, token = (authorization or "").partition(" ")
            user, colon, password = token.strip().partition(":")
            if scheme.lower() != "bearer" or not colon:
                return None
            pair = (user, password)
        user, password = pair
        if not is_sid(user, "AC") or len(password) > 256:
            return None
        with self._db.read() as conn:
            row = conn.execute(
                select(_keys.c.secret_hash, _keys.c.revoked_at, _keys.c.scope).where(
                    _keys.c.account_sid == user
                )
            ).first()
        expected = row.secret_hash if row is not None else _verify_digest("no such key")
        matches = same(_verify_digest(password), expected)
        if row is None or row.revoked_at is not None or not matches or row.scope != "verify":
            return None
        return user
