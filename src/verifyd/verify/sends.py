"""A ``/v2`` verification's sends: its first message, and the same code sent again.

Both run inside the start's transaction (:mod:`verifyd.verify.starts`), before the
pumping budgets are charged. A send again keeps the code and its expiry, as Twilio
does: only a new ``send_code_attempts`` entry and ``resends`` tell it apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, update

from verifyd import rollup
from verifyd import statements as sql
from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.destinations import Destination
from verifyd.flows.delivery import Delivery
from verifyd.models import Verification, table_of
from verifyd.verify import views
from verifyd.verify.errors import max_sends
from verifyd.verify.sids import new_sid
from verifyd.verify_models import STATS_VERSION, VerifyVerification

_v = table_of(Verification).c
_vv_t = table_of(VerifyVerification)
_vv = _vv_t.c

#: Sends one verification may have (Twilio: the sixth start within its life gets 60203).
MAX_SENDS = 5
#: Twilio's channels verifyd serves with its own (others need a plugin of the same name).
BUILT_IN = {"sms": "sms", "email": "email_code"}


@dataclass(frozen=True)
class First:
    """What a new verification is opened with."""

    name: str  # Twilio's channel name
    service: Any  # the ``verify_services`` row
    dest: Destination
    locale: str | None
    custom: str | None  # ``CustomFriendlyName``
    lookup: dict[str, Any]
    terms: Terms


class Sends:
    """Writes a verification's sends and hands them to delivery.

    Args:
        delivery: The hand-off to providers and the outbox.
    """

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def again(
        self, conn: Connection, channel: Channel, name: str, row: Any, now: datetime
    ) -> tuple[Any, str]:
        """Send the pending verification's code again (same code, same expiry)."""
        attempts = list(row.send_attempts or [])
        if len(attempts) >= MAX_SENDS:
            raise max_sends()
        ref = VerificationRef(
            id=row.sid,
            destination=row.destination,
            generation=row.generation,
            sandbox=row.sandbox,
            expires_at=row.expires_at,
            code_length=row.code_length,
            locale=row.locale,
            app_name=row.friendly_name,
        )
        cohort = (STATS_VERSION, row.arm, row.created_at)
        delivery = self._delivery.hand_off(conn, channel, ref, False, now, cohort)
        conn.execute(
            update(table_of(Verification))
            .where(_v.id == row.sid)
            .values(resends=_v.resends + 1, delivery=delivery)
        )
        attempts.append(attempt(name, now))
        conn.execute(
            update(_vv_t).where(_vv.sid == row.sid).values(send_attempts=attempts, updated_at=now)
        )
        rollup.add(conn, STATS_VERSION, row.arm, f"resends.{channel.name}", row.created_at)
        return views.Row({**row._asdict(), "send_attempts": attempts, "updated_at": now}), delivery

    def first(
        self, conn: Connection, channel: Channel, what: First, now: datetime
    ) -> tuple[Any, str]:
        """Write a new verification and hand its first message to delivery."""
        service, dest, name, terms = what.service, what.dest, what.name, what.terms
        friendly = what.custom or service.friendly_name
        ref = VerificationRef(
            id=new_sid("VE"),
            destination=dest.value,
            generation=0,
            sandbox=dest.sandbox,
            expires_at=now + timedelta(seconds=terms.ttl_seconds),
            code_length=service.code_length,
            locale=what.locale,
            app_name=friendly,
        )
        immediate = self._delivery.immediate(channel, dest.sandbox)
        sql.INSERT_VERIFICATION.execute(
            conn,
            {
                "id": ref.id,
                "account_id": service.account_id,
                "channel": channel.name,
                "identity": channel.identity,
                "destination": dest.value,
                "sandbox": dest.sandbox,
                "shadow": False,
                "status": "pending",
                "secret_hash": channel.issue(ref),
                "generation": 0,
                "attempts": 0,
                "max_checks": terms.max_checks,
                "code_length": service.code_length,
                "resends": 0,
                "delivery": "sent" if immediate else "queued",
                "policy_version": STATS_VERSION,
                "arm": service.stats_key,
                "expires_at": ref.expires_at,
                "resend_available_at": now,
                "created_at": now,
            },
        )
        values = {
            "sid": ref.id,
            "service_sid": service.sid,
            "to": dest.value,
            "channel": name,
            "locale": what.locale,
            "friendly_name": friendly,
            "send_attempts": [attempt(name, now)],
            "lookup": what.lookup,
            "approved_by_api": False,
            "created_at": now,
            "updated_at": now,
        }
        conn.execute(_vv_t.insert().values(**values))
        rollup.add(conn, STATS_VERSION, service.stats_key, f"verifications.{channel.name}", now)
        cohort = (STATS_VERSION, service.stats_key, now)
        delivery = self._delivery.hand_off(conn, channel, ref, False, now, cohort)
        return views.Row(values), delivery


def attempt(channel: str, now: datetime) -> dict[str, Any]:
    """One entry of ``send_code_attempts`` (Twilio writes ``SMS`` and ``EMAIL`` upper-case)."""
    shown = channel.upper() if channel in BUILT_IN else channel
    return {"time": views.date(now), "channel": shown, "attempt_sid": new_sid("VL")}
