"""Readiness: what must hold before a replica takes traffic (``GET /readyz``)."""

from __future__ import annotations

from sqlalchemy import text

from verifyd import migrate
from verifyd.db import Database


def readiness(db: Database) -> dict[str, str]:
    """Each check's state: ``ok``, ``behind`` or ``error: <kind>``.

    Ready means every check is ``ok``: the database answers and its migrations are
    current. A failure is named by its exception type only (no connection strings).
    """
    checks = {}
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if migrate.is_current(db.reader) else "behind"
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    return checks
