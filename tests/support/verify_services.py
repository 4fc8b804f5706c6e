"""Verify services and their verifications written as rows, the way ``/v2`` stores them.

A service is a ``verify_services`` row with its own ``accounts`` row (status
``service``, policy version 0, arm = its ``stats_key``); a verification is an ordinary
``verifications`` row under that account. The stats tests write these directly and let
``rebuild`` count them, so they need no ``/v2`` endpoint.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert

from verifyd import rebuild, rollup
from verifyd.db import Database
from verifyd.models import Account, Verification, table_of, utcnow
from verifyd.verify_models import SERVICE_ACCOUNT, STATS_VERSION, VerifyService


@dataclass(frozen=True)
class Seeded:
    """A service as the tests refer to it."""

    sid: str
    stats_key: str
    account_id: str


def add_service(
    conn: Connection, friendly_name: str, at: datetime, *, deleted_at: datetime | None = None
) -> Seeded:
    """A Verify service (``VA…``) and its account row."""
    sid = "VA" + secrets.token_hex(16)
    service = Seeded(sid, sid[:16], "acc_svc_" + secrets.token_hex(8))
    conn.execute(
        insert(table_of(Account)).values(
            id=service.account_id,
            status=SERVICE_ACCOUNT,
            needs="",
            needs_all=False,
            policy_version=STATS_VERSION,
            arm=service.stats_key,
            created_at=at,
        )
    )
    conn.execute(
        insert(table_of(VerifyService)).values(
            sid=sid,
            account_sid="AC" + secrets.token_hex(16),
            account_id=service.account_id,
            stats_key=service.stats_key,
            friendly_name=friendly_name,
            code_length=6,
            options={},
            created_at=at,
            updated_at=deleted_at or at,
            deleted_at=deleted_at,
        )
    )
    return service


def add_verification(
    conn: Connection,
    service: Seeded,
    channel: str,
    to: str,
    at: datetime,
    *,
    status: str = "pending",
    attempts: int = 0,
    resends: int = 0,
) -> str:
    """A sandbox verification of ``service`` (verifyd's channel name: ``sms``, ``email_code``)."""
    sid = "VE" + secrets.token_hex(16)
    conn.execute(
        insert(table_of(Verification)).values(
            id=sid,
            account_id=service.account_id,
            channel=channel,
            identity="phone" if channel == "sms" else "email",
            destination=to,
            sandbox=True,
            status=status,
            secret_hash=secrets.token_hex(32),
            attempts=attempts,
            max_checks=5,
            code_length=6,
            resends=resends,
            expires_at=at + timedelta(minutes=10),
            resend_available_at=at,
            created_at=at,
            approved_at=at + timedelta(seconds=20) if status == "approved" else None,
            policy_version=STATS_VERSION,
            arm=service.stats_key,
        )
    )
    return sid


def seed_services(db: Database) -> tuple[Seeded, Seeded]:
    """Acme: 4 SMS and 3 email verifications; Beta (deleted): one SMS, expired.

    The whole rollup is rebuilt from the rows (so write counters of your own after), then
    given what the ``/v2`` flows count beyond the rows.
    """
    now = utcnow()
    with db.write() as conn:
        acme = add_service(conn, "Acme", now)
        beta = add_service(conn, "Beta", now - timedelta(days=1), deleted_at=now)
        sms = [
            ("approved", 2, 1),  # one wrong code first, one code sent again
            ("approved", 1, 0),
            ("locked", 5, 0),  # every check used
            ("pending", 0, 0),
        ]
        for n, (status, attempts, resends) in enumerate(sms):
            add_verification(
                conn,
                acme,
                "sms",
                f"+1202555{200 + n:04d}",
                now,
                status=status,
                attempts=attempts,
                resends=resends,
            )
        for n, (status, attempts) in enumerate((("approved", 1), ("canceled", 0), ("expired", 1))):
            to = f"user{n}@example.test"
            add_verification(conn, acme, "email_code", to, now, status=status, attempts=attempts)
        add_verification(conn, beta, "sms", "+12025550300", now, status="expired")
        rebuild.rebuild(conn)
        # What the /v2 flows count beyond the rows (the rebuild counts the three approvals
        # 20 s after their start, bucket 3: 15-20 s): receipts, and two sends the
        # SMS-pumping breaker refused.
        key = acme.stats_key
        rollup.add(conn, STATS_VERSION, key, "delivered.sms", now, 3)
        rollup.add(conn, STATS_VERSION, key, "failed.sms", now, 1)
        rollup.add(conn, STATS_VERSION, key, "delivered.email", now, 2)
        rollup.add(conn, STATS_VERSION, key, "blocked.sms_budget_prefix", now, 2)
    return acme, beta
