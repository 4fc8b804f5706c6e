"""Approving a verification, activating its account once the policy is met, and why a
verification that cannot be approved is closed. Shared by code checks and email links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row

from verifyd import rollup, views
from verifyd import statements as sql
from verifyd.errors import Conflict, Gone, NotFound, VerifydError


@dataclass(frozen=True)
class Approved:
    """An approved verification and its account, as rendered."""

    verification: dict[str, Any]
    account: dict[str, Any]
    #: The signup's ``redirect_url`` (where a confirmed email link goes next).
    redirect_url: str | None = None


def approve(conn: Connection, row: Row[Any], now: datetime) -> Approved | VerifydError:
    """Approve a verification and activate its account once the policy is met.

    The account claims each verified identity in ``identities`` (unique per kind and
    value); when another account claimed one first, this verification is canceled and
    the account never activates.

    Returns:
        The approved verification and its account, or an error for the caller to
        raise after the transaction commits.
    """
    approved = sql.APPROVE.first(conn, {"vid": row.id, "now": now})
    if approved is None:
        return Conflict(
            "verification_closed",
            "this verification is already closed",
            extra={"verification_status": "approved"},
        )
    version, arm, cohort, ch = row.policy_version, row.arm, row.created_at, row.channel
    account = sql.VERIFIED_AT[row.identity].one(conn, {"aid": row.account_id, "now": now})
    verified = {
        "phone": account.phone_verified_at is not None,
        "email": account.email_verified_at is not None,
    }
    needs = account.needs.split(",")
    done = all(verified[n] for n in needs) if account.needs_all else any(verified[n] for n in needs)
    view = views.account(account)
    if done and account.status == "pending":
        claim = sql.CLAIM_IDENTITY[conn.dialect.name]
        for kind in ("phone", "email"):
            if not verified[kind]:
                continue
            params = {
                "kind": kind,
                "value": getattr(account, kind),
                "account_id": account.id,
                "created_at": now,
            }
            if claim.first(conn, params) is None:
                # Another account activated with this identity first: this one never
                # will, and must not count the identity as verified either.
                sql.CANCEL.execute(conn, {"vid": row.id})
                sql.UNVERIFY[row.identity].execute(conn, {"aid": account.id})
                rollup.add(conn, version, arm, f"canceled.{ch}", cohort)
                return Conflict(
                    "verification_closed",
                    "this verification was canceled",
                    extra={"verification_status": "canceled"},
                )
        sql.ACTIVATE.execute(conn, {"aid": account.id, "now": now})
        view["status"] = "active"
        _count_activation(conn, account, now)
    rollup.add(conn, version, arm, f"approved.{ch}", cohort)
    rollup.add(conn, version, arm, f"checks.{ch}.approved", cohort)
    rollup.add(conn, version, arm, f"checks_to_approve.{ch}", cohort, row.attempts)
    if row.viewed_at is not None:
        rollup.add(conn, version, arm, "link_views.confirmed", cohort)
    return Approved(views.verification(approved, now), view, account.redirect_url)


def _count_activation(conn: Connection, account: Any, now: datetime) -> None:
    version, arm, cohort = account.policy_version, account.arm, account.created_at
    rollup.add(conn, version, arm, "activated", cohort)
    seconds = (now - cohort).total_seconds()
    rollup.add(conn, version, arm, f"ttv.{rollup.ttv_bucket(seconds)}", cohort)
    if account.label is not None:
        rollup.add(conn, version, arm, f"label.{account.label}.active", cohort)


def closed_reason(
    conn: Connection, verification_id: str, now: datetime, *, secret: str = "code"
) -> VerifydError:
    """Why a verification takes no more checks: not found, expired, or closed.

    A pending verification whose time ran out is marked ``expired`` here.

    Args:
        conn: The flow's transaction.
        verification_id: The verification.
        now: The flow's clock.
        secret: What the user holds, for the message: ``code`` or ``link``.
    """
    row = sql.STATUS_OF.first(conn, {"vid": verification_id})
    if row is None:
        return NotFound("verification_not_found", "no verification with this id")
    status = row.status
    if status == "pending" and row.expires_at <= now:
        sql.SET_STATUS.execute(conn, {"vid": verification_id, "status": "expired"})
        rollup.add(conn, row.policy_version, row.arm, f"expired.{row.channel}", row.created_at)
        status = "expired"
    if status == "expired":
        return Gone("code_expired", f"the {secret} has expired; ask for a new one")
    if status == "pending":  # every check used, the lock not yet written
        status = "locked"
    return Conflict(
        "verification_closed",
        f"this verification is {status}",
        extra={"verification_status": status},
    )
