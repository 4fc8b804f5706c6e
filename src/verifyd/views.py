"""How accounts and verifications are shown: destinations masked, status as of now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from verifyd.destinations import mask
from verifyd.models import utcnow


def verification(row: Any, now: datetime | None = None) -> dict[str, Any]:
    """The public verification object (destination masked; a lapsed ``pending`` reads
    ``expired``)."""
    now = now or utcnow()
    status = row.status
    if status == "pending" and row.expires_at <= now:
        status = "expired"
    return {
        "id": row.id,
        "channel": row.channel,
        "status": status,
        "to": mask(row.identity, row.destination),
        "expires_at": row.expires_at,
        "attempts_left": max(0, row.max_checks - row.attempts),
        "resend_available_at": row.resend_available_at,
        "delivery": row.delivery,
    }


def account(row: Any) -> dict[str, Any]:
    """The public account object (destinations masked)."""
    return {
        "id": row.id,
        "status": row.status,
        "phone": mask("phone", row.phone) if row.phone else None,
        "email": mask("email", row.email) if row.email else None,
        "policy_version": row.policy_version,
        "arm": row.arm,
        "created_at": row.created_at,
    }


class Values:
    """Attribute access over a dict, so fresh inserts render like fetched rows."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
