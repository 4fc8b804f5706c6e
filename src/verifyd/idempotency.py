"""``Idempotency-Key`` for ``POST /v1/accounts``: claim, replay, or refuse.

A key belongs to the client that sent it: what is stored is a SHA-256 of the client's
scope and the key (:func:`scoped_key`), never the key alone. Global keys let anyone who
learnt or guessed another client's key (and body) replay that client's answer, its
account and verification ids included; scoped, the same key from another client is
simply another key. The scope of a public signup is the client address as the per-IP
limits see it (``X-Forwarded-For`` only from ``VERIFYD_TRUSTED_PROXIES``); a request
made with a credential would be scoped by the credential instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from verifyd.db import Database
from verifyd.errors import Conflict, InvalidRequest
from verifyd.models import IdempotencyKey, table_of, utcnow

_table = table_of(IdempotencyKey)

KEEP = timedelta(hours=24)
#: A claim older than this belongs to a request that died; another may take it over.
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Replay:
    """A stored answer to send again."""

    status: int
    body: str
    location: str | None


def scoped_key(scope: str, key: str) -> str:
    """The stored form of ``key`` sent by the client ``scope`` (e.g. ``ip:203.0.113.9``).

    Raises:
        InvalidRequest: ``invalid_request`` for an empty key, one over 255 characters,
            or one with a NUL.
    """
    if not key or len(key) > 255 or "\x00" in key:
        raise InvalidRequest.field(
            "invalid_request", "Idempotency-Key", "Idempotency-Key must be 1-255 characters"
        )
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()


def request_hash(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    """Keys and answers, shared by every worker through the database.

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, key: str, digest: str) -> Replay | None:
        """Claim a key for a new request, or find its earlier answer.

        Args:
            key: The stored form of the key (:func:`scoped_key`).
            digest: The request body's :func:`request_hash`.

        Returns:
            ``None`` when the caller now owns the key; a ``Replay`` of the first answer.

        Raises:
            InvalidRequest: ``idempotency_key_reused`` (same key, other body).
            Conflict: ``idempotency_in_progress`` (the first request is still running).
        """
        now = utcnow()
        c = _table.c
        with self._db.write() as conn:
            conn.execute(delete(_table).where(c.key == key, c.expires_at <= now))
            dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
            inserted = conn.execute(
                dialect.insert(_table)
                .values(
                    key=key,
                    request_hash=digest,
                    state="in_progress",
                    created_at=now,
                    expires_at=now + KEEP,
                )
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(c.key)
            ).first()
            if inserted is not None:
                return None
            row = conn.execute(select(_table).where(c.key == key)).one()
            if row.request_hash != digest:
                raise InvalidRequest.field(
                    "idempotency_key_reused",
                    "Idempotency-Key",
                    "this Idempotency-Key was used with another request body",
                )
            if row.state == "done":
                return Replay(row.response_status, row.response_body, row.location)
            if row.created_at > now - LEASE:
                raise Conflict(
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being processed",
                )
            conn.execute(update(_table).where(c.key == key).values(created_at=now))
            return None

    def complete(self, key: str, status: int, body: str, location: str | None) -> None:
        """Store the answer to replay."""
        with self._db.write() as conn:
            conn.execute(
                update(_table)
                .where(_table.c.key == key)
                .values(state="done", response_status=status, response_body=body, location=location)
            )

    def release(self, key: str) -> None:
        """Forget a claim whose request failed (error answers are not stored)."""
        with self._db.write() as conn:
            conn.execute(delete(_table).where(_table.c.key == key, _table.c.state == "in_progress"))
