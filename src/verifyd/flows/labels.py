"""Labels: the operator's ground truth about accounts (``fake`` or ``genuine``), later.

The operator's product learns which accounts were fake (banned for spam, ban evasion)
long after signup; a label records it with who said so and when, and moves the
account's counters in the stats' rollup, so the comparison shows confirmed-fake rates
per arm beside the early estimate of the suspect signals. Labelling again replaces
the label (the history keeps every one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update

from verifyd import rollup
from verifyd.db import Database
from verifyd.errors import NotFound
from verifyd.models import Account, AccountLabel, table_of, utcnow
from verifyd.verify_models import SERVICE_ACCOUNT

Label = Literal["fake", "genuine"]
LABELS: tuple[Label, ...] = ("fake", "genuine")
#: The most labels one bulk request or file carries per transaction.
BATCH = 1000

_a = table_of(Account)
_l = table_of(AccountLabel)


@dataclass(frozen=True)
class LabelRequest:
    """One account to label."""

    account_id: str
    label: Label
    reason: str | None = None


class Labels:
    """Records labels.

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def label(self, request: LabelRequest, actor: str) -> dict[str, Any]:
        """Label one account.

        Returns:
            The label as recorded, with the account's previous label.

        Raises:
            NotFound: ``account_not_found``.
        """
        with self._db.write() as conn:
            recorded = self._apply(conn, request, actor, utcnow())
        if recorded is None:
            raise NotFound("account_not_found", "no account with this id")
        return recorded

    def label_many(self, requests: Iterable[LabelRequest], actor: str) -> dict[str, Any]:
        """Label many accounts; unknown ids are reported, the rest labelled.

        Returns:
            ``{"labelled": n, "by_label": {...}, "not_found": [ids]}``.
        """
        labelled = 0
        by_label = dict.fromkeys(LABELS, 0)
        not_found: list[str] = []
        batch: list[LabelRequest] = []

        def flush() -> None:
            nonlocal labelled
            now = utcnow()
            with self._db.write() as conn:
                for req in batch:
                    if self._apply(conn, req, actor, now) is None:
                        not_found.append(req.account_id)
                    else:
                        labelled += 1
                        by_label[req.label] += 1
            batch.clear()

        for request in requests:
            batch.append(request)
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
        return {"labelled": labelled, "by_label": by_label, "not_found": not_found}

    @staticmethod
    def _apply(
        conn: Connection, req: LabelRequest, actor: str, now: datetime
    ) -> dict[str, Any] | None:
        account = conn.execute(
            select(_a.c.label, _a.c.status, _a.c.policy_version, _a.c.arm, _a.c.created_at)
            .where(_a.c.id == req.account_id)
            .with_for_update()
        ).first()
        if account is None or account.status == SERVICE_ACCOUNT:  # a Verify service's own row
            return None
        conn.execute(
            insert(_l).values(
                account_id=req.account_id, label=req.label, reason=req.reason, actor=actor, at=now
            )
        )
        previous = account.label
        if previous != req.label:
            conn.execute(update(_a).where(_a.c.id == req.account_id).values(label=req.label))
            version, arm, cohort = account.policy_version, account.arm, account.created_at
            active = account.status == "active"
            for label, step in ((previous, -1), (req.label, 1)):
                if label is None:
                    continue
                rollup.add(conn, version, arm, f"label.{label}", cohort, step)
                if active:
                    rollup.add(conn, version, arm, f"label.{label}.active", cohort, step)
        return {
            "account_id": req.account_id,
            "label": req.label,
            "reason": req.reason,
            "previous": previous,
            "labelled_by": actor,
            "labelled_at": now,
        }
