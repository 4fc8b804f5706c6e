"""The audit trail: who changed what, when, old -> new."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from verifyd.models import AuditEvent, table_of

_INSERT = insert(table_of(AuditEvent))


def record(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Write one audit event in the caller's transaction (so it commits with the change).

    Args:
        conn: The transaction making the change.
        at: When.
        actor: ``key:<name>``, ``cli:<os user>`` or ``system:…``.
        action: What, e.g. ``policy.change``.
        target: Which object, e.g. ``policy:7``.
        before: Its state before (``None`` when created).
        after: Its state after (``None`` when removed).
    """
    conn.execute(
        _INSERT,
        {
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "before": before,
            "after": after,
        },
    )
