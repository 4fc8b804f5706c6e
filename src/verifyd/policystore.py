"""The active policy: a versioned row every worker reads, cached for a second."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from verifyd import audit
from verifyd.db import Database
from verifyd.errors import InvalidRequest
from verifyd.models import PolicyVersion, table_of, utcnow
from verifyd.policy import EmailKnobs, Policy, SmsKnobs, next_version, validate_weights
from verifyd.settings import Settings

_versions = table_of(PolicyVersion)

#: The actor of the first version, made from the settings.
SYSTEM = "system:defaults"


def defaults(settings: Settings) -> Policy:
    """The policy the settings describe: the first version, and what a PUT's omitted knobs get."""
    return Policy(
        mode=settings.policy_mode,
        weights={"phone": 50, "email": 50} if settings.policy_mode == "split" else None,
        prefer=settings.policy_prefer,
        sms=SmsKnobs(
            code_length=settings.sms_code_length,
            ttl_seconds=settings.sms_ttl_seconds,
            max_checks=settings.sms_max_checks,
            resend_cooldown_seconds=settings.sms_resend_cooldown_seconds,
        ),
        email=EmailKnobs(ttl_seconds=settings.email_ttl_seconds),
    )


def _row_to_policy(row: Any) -> Policy:
    return Policy.from_stored(row.version, row.document, row.salt, row.changed_at, row.changed_by)


class PolicyStore:
    """Reads and changes the policy; every change is a new version and an audit event.

    Args:
        db: The database.
        settings: The running settings (defaults and cache lifetime).
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: Policy | None = None
        self._cached_at = 0.0

    def latest(self, conn: Connection) -> Policy | None:
        """The newest version, read through ``conn``."""
        row = conn.execute(select(_versions).order_by(_versions.c.version.desc()).limit(1)).first()
        return _row_to_policy(row) if row is not None else None

    def current(self) -> Policy:
        """The active policy, at most ``policy_cache_seconds`` old."""
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now - self._cached_at < self._settings.policy_cache_seconds:
            return cached
        with self._db.read() as conn:
            policy = self.latest(conn)
        if policy is None:
            policy = self.ensure()
        with self._lock:
            self._cached, self._cached_at = policy, now
        return policy

    def version(self, conn: Connection, number: int) -> Policy | None:
        """One version by number."""
        row = conn.execute(select(_versions).where(_versions.c.version == number)).first()
        return _row_to_policy(row) if row is not None else None

    def ensure(self) -> Policy:
        """Create version 1 from the settings when there is none yet."""
        policy, _ = self.change(defaults(self._settings), SYSTEM, only_if_empty=True)
        return policy

    def change(
        self, proposed: Policy, actor: str, *, only_if_empty: bool = False
    ) -> tuple[Policy, bool]:
        """Make ``proposed`` the active policy.

        Args:
            proposed: The new document (version and salt are assigned here).
            actor: Who changes it: ``key:<name>``, ``cli:<user>`` or ``system:…``.
            only_if_empty: Only create the first version (start-up).

        Returns:
            The active policy and whether a new version was created (an identical
            document creates none).
        """
        for _ in range(5):
            try:
                with self._db.write() as conn:
                    current = self.latest(conn)
                    if only_if_empty and current is not None:
                        return current, False
                    if current is None and not only_if_empty:
                        # The settings' defaults are always version 1, so the audit of
                        # the first change shows what it replaced.
                        current = self._record(conn, None, defaults(self._settings), SYSTEM)
                    new = next_version(current, proposed, salt_of=self._salts(conn))
                    if new is None:
                        assert current is not None
                        return current, False
                    new = self._record(conn, current, new, actor)
            except IntegrityError:
                continue  # another writer took this version number: read again
            with self._lock:
                self._cached, self._cached_at = new, time.monotonic()
            return new, True
        raise RuntimeError("could not record the policy change after 5 tries")

    @staticmethod
    def _salts(conn: Connection) -> dict[str, str]:
        experiment = _versions.c.document["experiment"].as_string().label("experiment")
        rows = conn.execute(select(experiment, _versions.c.salt).order_by(_versions.c.version))
        return {row.experiment: row.salt for row in rows if row.experiment}

    @staticmethod
    def _record(conn: Connection, current: Policy | None, new: Policy, actor: str) -> Policy:
        """Insert a version and its audit event; ``new`` without a version becomes the next."""
        if current is None and new.version == 0:
            new = next_version(None, new, salt_of={}) or new
        now = utcnow()
        new = replace(new, changed_at=now, changed_by=actor)
        conn.execute(
            insert(_versions).values(
                version=new.version,
                document=new.stored(),
                salt=new.salt,
                changed_at=now,
                changed_by=actor,
            )
        )
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="policy.change",
            target=f"policy:{new.version}",
            before=current.stored() if current else None,
            after=new.stored(),
        )
        return new

    def history(self, limit: int = 100) -> list[Policy]:
        """The newest versions first."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(_versions).order_by(_versions.c.version.desc()).limit(limit)
            ).all()
        return [_row_to_policy(row) for row in rows]


def from_request(settings: Settings, body: dict[str, Any]) -> Policy:
    """A proposed policy from a PUT body or CLI arguments; omitted knobs take the defaults.

    Raises:
        InvalidRequest: weights that are not a valid split.
    """
    base = defaults(settings)
    mode = body["mode"]
    weights = body.get("weights")
    if mode == "split":
        try:
            weights = validate_weights(
                weights if weights is not None else {"phone": 50, "email": 50}
            )
        except ValueError as exc:
            raise InvalidRequest.field("invalid_request", "weights", str(exc)) from exc
    sms = {k: v for k, v in (body.get("sms") or {}).items() if v is not None}
    email = {k: v for k, v in (body.get("email") or {}).items() if v is not None}
    return Policy(
        mode=mode,
        weights=weights if mode == "split" else None,
        prefer=body.get("prefer") or base.prefer,
        experiment=body.get("experiment"),
        sms=replace(base.sms, **sms),
        email=replace(base.email, **email),
    )
