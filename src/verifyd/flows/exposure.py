"""Exposures: a subject was shown the signup form under a policy version and arm.

The funnel of the stats starts here: users who saw the form and never submitted are
counted per arm. Each subject counts once per policy version (the table's key); a
process remembers the subjects it recorded lately, so a frontend that reads the
policy on every page load costs one write per subject, not one per read.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from verifyd import rollup
from verifyd.codes import Secrets
from verifyd.db import Database
from verifyd.models import Exposure, table_of, utcnow
from verifyd.prepared import Prepared

#: How many recent (version, subject) pairs a process remembers.
REMEMBERED = 100_000

_t = table_of(Exposure)
_INSERT = {
    name: Prepared(
        dialect.insert(_t)
        .on_conflict_do_nothing(index_elements=["policy_version", "subject_hash"])
        .returning(_t.c.arm),
        (_t.c.arm,),
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


class Exposures:
    """Records exposures, once per subject and policy version.

    Args:
        db: The database.
        secrets: Keyed hashing (subjects are kept as keyed hashes only).
    """

    def __init__(self, db: Database, secrets: Secrets) -> None:
        self._db = db
        self._secrets = secrets
        self._seen: OrderedDict[tuple[int, str], None] = OrderedDict()

    async def record(self, version: int, arm: str, subject: str) -> None:
        """Record that ``subject`` saw the form under ``version`` and ``arm``."""
        subject_hash = self._secrets.hash_subject(subject)
        if (version, subject_hash) in self._seen:
            return
        now = utcnow()
        await self._db.transact(lambda conn: self.write(conn, version, arm, subject_hash, now))
        self.remember(version, subject_hash)

    def write(
        self, conn: Connection, version: int, arm: str, subject_hash: str, now: datetime
    ) -> None:
        """Record an exposure in the caller's transaction (a signup carrying a subject).

        The caller calls :meth:`remember` once the transaction committed.
        """
        if (version, subject_hash) in self._seen:
            return
        params = {"policy_version": version, "subject_hash": subject_hash, "arm": arm, "at": now}
        if _INSERT[conn.dialect.name].first(conn, params) is not None:
            rollup.add(conn, version, arm, "exposures", now)

    def remember(self, version: int, subject_hash: str) -> None:
        """Skip this subject's next exposures in this process (it is recorded)."""
        self._seen[(version, subject_hash)] = None
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
