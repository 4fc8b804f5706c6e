"""A new verification inside a signup's transaction: its row, its secret, its message.

A *shadow* (the identity belongs to an active account) is issued with the same
statements as a real one: it stores the hash of a secret nobody knows, and its message
goes through the outbox like any other, without ever reaching a provider.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from verifyd import rollup, views
from verifyd import statements as sql
from verifyd.channels.base import Channel, VerificationRef
from verifyd.codes import new_id
from verifyd.destinations import Destination
from verifyd.flows.delivery import Delivery
from verifyd.policy import Policy


@dataclass(frozen=True)
class Issue:
    """What a signup knows about the verification it asks for."""

    policy: Policy
    arm: str
    identity: str  # phone | email
    account_id: str
    shadow: bool
    locale: str | None


def issue(
    conn: Connection,
    channel: Channel,
    delivery: Delivery,
    what: Issue,
    dest: Destination,
    now: datetime,
) -> dict[str, Any]:
    """Write a pending verification and hand its message to delivery.

    Returns:
        The verification as rendered for the API.
    """
    policy, arm = what.policy, what.arm
    terms = channel.terms(policy)
    ref = VerificationRef(
        id=new_id("ver"),
        destination=dest.value,
        generation=0,
        sandbox=dest.sandbox,
        expires_at=now + timedelta(seconds=terms.ttl_seconds),
        code_length=terms.code_length,
        locale=what.locale,
    )
    # A shadow verification stores the hash of a secret nobody knows.
    secret_hash = channel.hash(ref.id, secrets.token_hex(32)) if what.shadow else channel.issue(ref)
    # A shadow verification moves through ``delivery`` as a real one does: queued
    # until the dispatcher handles its message (without sending it).
    immediate = delivery.immediate(channel, dest.sandbox)
    values = {
        "id": ref.id,
        "account_id": what.account_id,
        "channel": channel.name,
        "identity": what.identity,
        "destination": dest.value,
        "sandbox": dest.sandbox,
        "shadow": what.shadow,
        "status": "pending",
        "secret_hash": secret_hash,
        "generation": 0,
        "attempts": 0,
        "max_checks": terms.max_checks,
        "code_length": terms.code_length,
        "resends": 0,
        "delivery": "sent" if immediate else "queued",
        "policy_version": policy.version,
        "arm": arm,
        "expires_at": ref.expires_at,
        "resend_available_at": now + timedelta(seconds=terms.resend_cooldown_seconds),
        "created_at": now,
    }
    sql.INSERT_VERIFICATION.execute(conn, values)
    rollup.add(conn, policy.version, arm, f"verifications.{channel.name}", now)
    values["delivery"] = delivery.hand_off(
        conn, channel, ref, what.shadow, now, (policy.version, arm, now)
    )
    return views.verification(views.Values(values), now)
