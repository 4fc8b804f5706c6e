"""What the command families share: who is acting, and opening the database."""

from __future__ import annotations

import getpass

from verifyd import migrate
from verifyd.db import Database
from verifyd.settings import Settings


def actor() -> str:
    """The audit actor of a CLI change: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def open_database(settings: Settings) -> Database:
    """The settings' database, migrated first in development (production never migrates here).

    Args:
        settings: The settings naming the database.

    Returns:
        The open database; the caller disposes of it.
    """
    db = Database.from_settings(settings, statement_timeout=False)
    if not settings.production:
        migrate.upgrade(db)
    return db
