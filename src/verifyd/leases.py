"""The outbox's leases: which messages are due, claiming a batch, handing one back.

A claim writes a random lease token and moves ``next_attempt_at`` to the lease's end,
so no other dispatcher sees the message as due until the lease lapses; on PostgreSQL
it also skips rows another dispatcher has locked (``FOR UPDATE SKIP LOCKED``).
:mod:`verifyd.outbox` drives the deliveries; this module holds only its statements.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from verifyd.db import Database
from verifyd.models import Account, Message, Verification, VerifyVerification, table_of

_messages = table_of(Message)
_verifications = table_of(Verification)
_accounts = table_of(Account)
_vv = table_of(VerifyVerification).c
_m, _v = _messages.c, _verifications.c

#: Messages one claim takes at most.
BATCH = 20

#: What rendering and sending one message needs: the message, its verification, the
#: locale, and a ``/v2`` verification's name for the message (``verify_models``).
_LOAD = (
    select(
        _m.id,
        _m.generation,
        _m.kind,
        _m.provider,
        _m.attempts,
        _m.created_at,
        _v.id.label("vid"),
        _v.channel,
        _v.destination,
        _v.generation.label("vgen"),
        _v.sandbox,
        _v.shadow,
        _v.expires_at,
        _v.code_length,
        _v.status.label("vstatus"),
        _v.policy_version,
        _v.arm,
        _v.created_at.label("vcreated"),
        func.coalesce(_vv.locale, _accounts.c.locale).label("locale"),
        _vv.friendly_name.label("app_name"),
    )
    .join_from(_messages, _verifications, _v.id == _m.verification_id)
    .outerjoin(_accounts, _accounts.c.id == _v.account_id)
    .outerjoin(table_of(VerifyVerification), _vv.sid == _v.id)
)


def due(now: datetime) -> Any:
    """The ids of queued messages due at ``now``, the longest waiting first."""
    return (
        select(_m.id)
        .where(_m.status == "queued", _m.next_attempt_at <= now)
        .order_by(_m.next_attempt_at)
    )


def claim(db: Database, now: datetime, lease: str, *, until: datetime) -> list[str]:
    """Lease up to :data:`BATCH` due messages to ``lease`` until ``until``; their ids."""
    # Look on a reader first: most polls find nothing, and on SQLite a write
    # transaction would queue behind (and hold up) the API's one writer.
    with db.read() as conn:
        if conn.execute(due(now).limit(1)).first() is None:
            return []
    locked = due(now).limit(BATCH).with_for_update(skip_locked=True)
    with db.write() as conn:
        # Two statements: as ``UPDATE … WHERE id IN (SELECT … LIMIT)`` PostgreSQL
        # may run the subquery again while it updates, each run finding rows the
        # last one had just leased away, and one claim took every due message.
        ids = list(conn.execute(locked).scalars())
        if not ids:
            return []
        claimed = conn.execute(
            update(_messages)
            .where(_m.id.in_(ids), _m.status == "queued", _m.next_attempt_at <= now)
            .values(lease=lease, next_attempt_at=until)
            .returning(_m.id)
        )
        return list(claimed.scalars())


def hand_back(db: Database, message_id: str, lease: str, now: datetime) -> int:
    """Clear a still-queued message's lease and make it due ``now``; 1 if it was ours."""
    with db.write() as conn:
        given: int = conn.execute(
            update(_messages)
            .where(_m.id == message_id, _m.lease == lease, _m.status == "queued")
            .values(lease=None, next_attempt_at=now)
        ).rowcount
    return given


def load(db: Database, message_id: str) -> Any:
    """What rendering and sending the message needs (:data:`_LOAD`'s row)."""
    with db.read() as conn:
        return conn.execute(_LOAD.where(_m.id == message_id)).one()
