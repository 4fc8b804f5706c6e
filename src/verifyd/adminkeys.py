"""Admin API keys: ``vdk_<id>_<secret>``, only the secret's SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from verifyd import audit
from verifyd.codes import same
from verifyd.db import Database
from verifyd.errors import Conflict, NotFound, Unauthorized
from verifyd.models import AdminKey, table_of, utcnow

_keys = table_of(AdminKey)


@dataclass(frozen=True)
class KeyInfo:
    """An admin key's metadata (never its secret)."""

    id: str
    name: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AdminKeys:
    """Create, list, revoke and authenticate admin keys.

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str, actor: str) -> tuple[str, KeyInfo]:
        """Create a key; the full key is returned once and never stored.

        Raises:
            Conflict: a key with this name exists.
        """
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        with self._db.write() as conn:
            if conn.execute(select(_keys.c.id).where(_keys.c.name == name)).first():
                raise Conflict("key_exists", f"an admin key named {name!r} exists")
            conn.execute(
                insert(_keys).values(
                    id=key_id,
                    name=name,
                    secret_hash=_digest(secret),
                    created_at=now,
                    created_by=actor,
                )
            )
            audit.record(
                conn,
                at=now,
                actor=actor,
                action="admin_key.create",
                target=f"key:{name}",
                before=None,
                after={"id": key_id, "name": name},
            )
        return f"vdk_{key_id}_{secret}", KeyInfo(key_id, name, now, actor, None)

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(select(_keys).order_by(_keys.c.created_at)).all()
        return [KeyInfo(r.id, r.name, r.created_at, r.created_by, r.revoked_at) for r in rows]

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
                .returning(c.id, c.name, c.created_at, c.created_by)
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
        return KeyInfo(row.id, row.name, row.created_at, row.created_by, now)

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
            raise Unauthorized("unauthorized", "an admin API key is required (Bearer vdk_…)")
        _, key_id, secret = parts
        with self._db.read() as conn:
            row = conn.execute(
                select(_keys.c.name, _keys.c.secret_hash, _keys.c.revoked_at).where(
                    _keys.c.id == key_id
                )
            ).first()
        expected = row.secret_hash if row is not None else _digest("no such key")
        # Hash and compare whether or not the id exists: the same work either way.
        matches = same(_digest(secret), expected)
        if row is None or row.revoked_at is not None or not matches:
            raise Unauthorized("unauthorized", "the admin API key is not valid")
        return key_id, f"key:{row.name}"
