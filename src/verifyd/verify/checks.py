"""``/VerificationCheck`` and the verification resource: check a code, read, cancel, approve.

A check is verifyd's: one atomic attempt (the conditional ``UPDATE`` of
``statements.ATTEMPT``, so parallel guesses never pass the cap), the destination's
daily guess budget, and the code's expiry. A wrong code is a ``200`` with ``status:
pending, valid: false``; once every attempt is spent the next check gets 60202. A
verification that is no longer pending (approved, canceled, expired) answers 20404, as
Twilio's soft-deleted ones do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from verifyd import rollup
from verifyd import statements as sql
from verifyd.channels.base import Channel
from verifyd.db import Database
from verifyd.errors import RateLimited
from verifyd.flows.approval import closed_reason
from verifyd.flows.limits import Limits
from verifyd.flows.pumping import Pumping
from verifyd.models import Verification, table_of, utcnow
from verifyd.verify import views
from verifyd.verify.errors import TwilioError, invalid, max_checks, not_found
from verifyd.verify.params import Form
from verifyd.verify.services import Services
from verifyd.verify.sids import is_sid
from verifyd.verify.starts import Starts
from verifyd.verify_models import STATS_VERSION, VerifyVerification

_v_t = table_of(Verification)
_vv_t = table_of(VerifyVerification)
_v, _vv = _v_t.c, _vv_t.c

PARAMS = ("Code", "To", "VerificationSid")
UNSUPPORTED = {
    "Amount": "PSD2 transaction details are not supported",
    "Payee": "PSD2 transaction details are not supported",
    "SnaClientToken": "no SNA channel",
}
#: What a ``/v2`` verification is read with: Twilio's record and verifyd's state.
_SHOWN = (
    _vv.sid, _vv.service_sid, _vv.to, _vv.channel, _vv.send_attempts, _vv.lookup,
    _vv.created_at, _vv.updated_at, _v.status, _v.expires_at, _v.attempts, _v.max_checks,
    _v.channel.label("vchannel"), _v.arm,
)  # fmt: skip


def _status(row: Any, now: datetime) -> str:
    """A verification's status in Twilio's words, as of ``now``."""
    if row.status == "pending":
        if row.expires_at <= now:
            return "expired"
        if row.attempts >= row.max_checks:
            return "max_attempts_reached"
    return str(views.STATUS.get(row.status, row.status))


class Checks:
    """Checks codes, and reads, cancels and approves ``/v2`` verifications.

    Args:
        db: The database.
        services: The services.
        starts: The starts (how ``To`` is parsed for a channel).
        channels: verifyd's channels by name.
        limits: The rate limits (the destination's guess budget).
        pumping: The SMS breakers (an approval counts as verified for its prefix).
        urls: Where resources live.
    """

    def __init__(
        self,
        db: Database,
        services: Services,
        starts: Starts,
        channels: dict[str, Channel],
        limits: Limits,
        pumping: Pumping,
        urls: views.Urls,
    ) -> None:
        self._db = db
        self._services = services
        self._starts = starts
        self._channels = channels
        self._limits = limits
        self._pumping = pumping
        self._urls = urls

    def _find(self, conn: Connection, service_sid: str, sid: str) -> Any:
        row = None
        if is_sid(sid, "VE"):
            row = conn.execute(
                select(*_SHOWN)
                .join_from(_vv_t, _v_t, _v.id == _vv.sid)
                .where(_vv.sid == sid, _vv.service_sid == service_sid)
            ).first()
        if row is None:
            raise not_found(
                f"The requested resource /Services/{service_sid}/Verifications/{sid[:40]}"
            )
        return row

    def fetch(self, account_sid: str, service_sid: str, sid: str) -> dict[str, Any]:
        """A pending verification (one no longer pending answers 20404).

        Raises:
            TwilioError: 20404.
        """
        now = utcnow()
        with self._db.read() as conn:
            service = self._services.find(conn, account_sid, service_sid)
            row = self._find(conn, service.sid, sid)
        status = _status(row, now)
        if status != "pending":  # approved, canceled, expired, every check spent
            raise not_found(f"The requested resource /Services/{service_sid}/Verifications/{sid}")
        return views.verification(row, account_sid, status, self._urls)

    async def update(
        self, account_sid: str, service_sid: str, sid: str, form: Form
    ) -> dict[str, Any]:
        """``Status=canceled`` or ``Status=approved`` on a pending verification.

        Raises:
            TwilioError: 20404 (not pending), 60200 (``Status``).
        """
        status = form.choice("Status", ("canceled", "approved"), required=True)
        now = utcnow()

        def work(conn: Connection) -> Any:
            service = self._services.find(conn, account_sid, service_sid)
            row = self._find(conn, service.sid, sid)
            if _status(row, now) != "pending":
                raise not_found(
                    f"The requested resource /Services/{service_sid}/Verifications/{sid}"
                )
            ch = row.vchannel
            if status == "approved":
                sql.APPROVE.execute(conn, {"vid": row.sid, "now": now})
                self._approved(conn, row.arm, ch, row.created_at, now)
                conn.execute(update(_vv_t).where(_vv.sid == row.sid).values(approved_by_api=True))
            else:
                sql.SET_STATUS.execute(conn, {"vid": row.sid, "status": "canceled"})
                rollup.add(conn, STATS_VERSION, row.arm, f"canceled.{ch}", row.created_at)
            conn.execute(update(_vv_t).where(_vv.sid == row.sid).values(updated_at=now))
            return views.Row({**row._asdict(), "updated_at": now})

        row = await self._db.transact(work)
        return views.verification(row, account_sid, status or "", self._urls)

    async def check(self, account_sid: str, service_sid: str, form: Form) -> dict[str, Any]:
        """Check a code against the verification named by ``VerificationSid`` or ``To``.

        Raises:
            TwilioError: 20404, 60200, 60202, 60221.
        """
        code = form.text("Code", required=True, max_length=10)
        assert code is not None
        if len(code) < 4:
            raise invalid("Code", "4 to 10 characters")
        by_sid = form.text("VerificationSid", max_length=64)
        raw_to = form.text("To")
        if by_sid is None and raw_to is None:
            raise TwilioError(60221, 400, "Either a 'To' or a 'VerificationSid' must be specified")
        now = utcnow()

        def work(conn: Connection) -> tuple[Any, str]:
            service = self._services.find(conn, account_sid, service_sid)
            if by_sid is not None:
                sid = by_sid
            else:
                assert raw_to is not None
                sid = self._by_to(conn, service.sid, raw_to)
            shown = self._find(conn, service.sid, sid)
            row = sql.ATTEMPT.first(conn, {"vid": shown.sid, "now": now})
            if row is None:
                reason = closed_reason(conn, shown.sid, now)
                if reason.code == "verification_closed" and (
                    reason.extra.get("verification_status") == "locked"
                ):
                    raise max_checks()
                # Expired (now marked so), approved or canceled: gone, as on Twilio.
                return views.Row({**shown._asdict()}), "gone"
            channel = self._channels[row.channel]
            try:
                self._limits.hit(
                    conn, "guess_destination", row.destination, row.sandbox, now,
                    code="too_many_attempts",
                )  # fmt: skip
            except RateLimited:  # the destination's guess budget: Twilio's 60202
                raise max_checks() from None
            values = {**shown._asdict(), "updated_at": now}
            if code.isascii() and code.isdigit() and channel.check(row.id, code, row.secret_hash):
                sql.APPROVE.execute(conn, {"vid": row.id, "now": now})
                rollup.add(conn, STATS_VERSION, row.arm, f"checks.{row.channel}.approved",
                           row.created_at)  # fmt: skip
                rollup.add(conn, STATS_VERSION, row.arm, f"checks_to_approve.{row.channel}",
                           row.created_at, row.attempts)  # fmt: skip
                self._approved(conn, row.arm, row.channel, row.created_at, now)
                self._pumping.verified(conn, channel.message_kind, row.destination,
                                       row.sandbox, now)  # fmt: skip
                result = "approved"
            else:
                rollup.add(conn, STATS_VERSION, row.arm, f"checks.{row.channel}.incorrect",
                           row.created_at)  # fmt: skip
                if row.attempts >= row.max_checks:
                    sql.SET_STATUS.execute(conn, {"vid": row.id, "status": "locked"})
                    rollup.add(conn, STATS_VERSION, row.arm, f"locked.{row.channel}",
                               row.created_at)  # fmt: skip
                result = "pending"
            conn.execute(update(_vv_t).where(_vv.sid == row.id).values(updated_at=now))
            return views.Row(values), result

        row, result = await self._db.transact(work)
        if result == "gone":
            raise not_found(f"The requested resource /Services/{service_sid}/VerificationCheck")
        return views.check(row, account_sid, result)

    def _by_to(self, conn: Connection, service_sid: str, raw_to: str) -> str:
        """The newest verification of the service to ``To`` (normalised as a start does)."""
        identity = "email" if "@" in raw_to else "phone"
        to = self._starts.destination(raw_to, identity).value
        sid = conn.execute(
            select(_vv.sid)
            .where(_vv.service_sid == service_sid, _vv.to == to)
            .order_by(_vv.created_at.desc())
            .limit(1)
        ).scalar()
        if sid is None:
            raise not_found(f"The requested resource /Services/{service_sid}/VerificationCheck")
        return str(sid)

    @staticmethod
    def _approved(
        conn: Connection, arm: str, channel: str, created: datetime, now: datetime
    ) -> None:
        """Count an approval: the verification's, and its time from start to approval."""
        rollup.add(conn, STATS_VERSION, arm, f"approved.{channel}", created)
        bucket = rollup.ttv_bucket((now - created).total_seconds())
        rollup.add(conn, STATS_VERSION, arm, f"ttv.{bucket}", created)
