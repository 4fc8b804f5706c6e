"""The outbox as operators see it: list messages (dead letters first of all) and redrive them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from verifyd import audit
from verifyd.db import Database
from verifyd.destinations import mask
from verifyd.errors import InvalidRequest
from verifyd.models import Message, Verification, table_of, utcnow

_messages = table_of(Message)
_verifications = table_of(Verification)
_m, _v = _messages.c, _verifications.c

#: Every state a message can be in (``models.Message``).
STATUSES = ("queued", "sent", "delivered", "undelivered", "dead", "canceled", "suppressed")
MAX_PAGE = 200


@dataclass(frozen=True)
class Redriven:
    """What a redrive did: the messages queued again, and the ones it left, with why."""

    redriven: list[str]
    skipped: list[dict[str, str]]


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "verification_id": row.verification_id,
        "kind": row.kind,
        "provider": row.provider,
        "to": mask("phone" if row.kind == "sms" else "email", row.to),
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "error_code": row.error_code,
        "provider_message_id": row.provider_message_id,
        "created_at": row.created_at,
        "next_attempt_at": row.next_attempt_at,
        "sent_at": row.sent_at,
        "delivered_at": row.delivered_at,
    }


class Messages:
    """Lists and redrives outbox messages.

    Args:
        db: The database.
        chains: Per message kind, the provider names in order of preference: a redriven
            message starts again at the first.
        wake: Called after a redrive queued messages (wakes an in-process dispatcher).
    """

    def __init__(
        self,
        db: Database,
        chains: dict[str, list[str]],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._chains = chains
        self._wake = wake

    def page(
        self, status: str | None = "dead", *, limit: int = 50, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Messages newest first, with masked destinations.

        Args:
            status: Only messages in this state; ``None`` for all.
            limit: At most this many (1–200).
            before: The cursor of the previous page (the last id it showed).

        Returns:
            The page and the cursor of the next one (``None`` on the last page).

        Raises:
            InvalidRequest: an unknown status or a limit out of range.
        """
        if status is not None and status not in STATUSES:
            raise InvalidRequest.field(
                "invalid_request", "status", f"status must be one of {', '.join(STATUSES)}"
            )
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest.field(
                "invalid_request", "limit", f"limit must be between 1 and {MAX_PAGE}"
            )
        query = select(_messages).order_by(_m.id.desc()).limit(limit + 1)
        if status is not None:
            query = query.where(_m.status == status)
        if before is not None:
            query = query.where(_m.id < before)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        page = [_view(r) for r in rows[:limit]]
        return page, (page[-1]["id"] if len(rows) > limit else None)

    def redrive(self, ids: list[str] | None, actor: str) -> Redriven:
        """Queue dead messages again, on the first provider of their chain, from attempt 0.

        A message whose code can no longer be used (expired, approved, locked, canceled,
        or superseded by a resend) is not sent: re-issuing a code is the user's resend,
        not an operator's. It stays dead and the answer says why.

        Args:
            ids: The messages to redrive; ``None`` for every dead message.
            actor: Who asks (``key:<name>`` or ``cli:<user>``), for the audit.
        """
        now = utcnow()
        with self._db.write() as conn:
            query = (
                select(
                    _m.id,
                    _m.kind,
                    _m.status,
                    _m.generation,
                    _m.verification_id,
                    _v.status.label("vstatus"),
                    _v.generation.label("vgen"),
                    _v.expires_at,
                )
                .join_from(_messages, _verifications, _v.id == _m.verification_id)
                .order_by(_m.id)
            )
            query = query.where(_m.status == "dead") if ids is None else query.where(_m.id.in_(ids))
            rows = {r.id: r for r in conn.execute(query)}
            redriven: list[str] = []
            skipped: list[dict[str, str]] = []
            for message_id in ids if ids is not None else list(rows):
                row = rows.get(message_id)
                reason = _why_not(row, now)
                if reason is not None:
                    skipped.append({"id": message_id, "reason": reason})
                    continue
                assert row is not None
                _requeue(conn, row, self._chains[row.kind][0], now)
                redriven.append(message_id)
            if redriven or skipped:
                audit.record(
                    conn,
                    at=now,
                    actor=actor,
                    action="messages.redrive",
                    target="messages",
                    after={"redriven": redriven, "skipped": skipped},
                )
            result = Redriven(redriven, skipped)
        if result.redriven:
            self._wake()
        return result


def _why_not(row: Any, now: datetime) -> str | None:
    """Why a message cannot be redriven, or ``None`` when it can."""
    if row is None:
        return "not_found"
    if row.status != "dead":
        return "not_dead"
    if row.vgen != row.generation:
        return "superseded"
    if row.vstatus != "pending":
        return f"verification_{row.vstatus}"
    if row.expires_at <= now:
        return "verification_expired"
    return None


def _requeue(conn: Connection, row: Any, provider: str, now: datetime) -> None:
    conn.execute(
        update(_messages)
        .where(_m.id == row.id, _m.status == "dead")
        .values(status="queued", provider=provider, attempts=0, next_attempt_at=now, lease=None)
    )
    conn.execute(
        update(_verifications)
        .where(_v.id == row.verification_id, _v.generation == row.generation)
        .values(delivery="queued")
    )
