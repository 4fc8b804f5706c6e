"""The sandbox inbox: what the sandbox provider recorded for one destination."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from verifyd.db import Database
from verifyd.destinations import Destinations
from verifyd.errors import InvalidRequest
from verifyd.models import SandboxMessage, table_of

_sandbox = table_of(SandboxMessage)

#: How many messages one read returns, newest first.
PAGE = 50


class SandboxInbox:
    """Reads sandbox messages (sandbox mode only; the router is not mounted otherwise).

    Args:
        db: The database.
        destinations: Normalises the ``to`` asked for as a signup would.
    """

    def __init__(self, db: Database, destinations: Destinations) -> None:
        self._db = db
        self._destinations = destinations

    def messages(self, to: str) -> list[dict[str, Any]]:
        """Messages recorded for a destination, newest first (at most 50).

        ``to`` is normalised as a signup's would be; a ``+`` that arrived as a space
        (an unencoded query string) is tolerated.
        """
        to = to.strip()
        if "\x00" in to:
            return []
        if to and to[0].isdigit() and "@" not in to:
            to = "+" + to  # a '+' that arrived as a space
        try:
            dest = self._destinations.email(to) if "@" in to else self._destinations.phone(to)
            value = dest.value
        except InvalidRequest:
            value = to
        with self._db.read() as conn:
            rows = conn.execute(
                select(_sandbox)
                .where(_sandbox.c.to == value)
                .order_by(_sandbox.c.created_at.desc(), _sandbox.c.id)
                .limit(PAGE)
            ).all()
        messages = []
        for r in rows:
            item: dict[str, Any] = {
                "id": r.id,
                "to": r.to,
                "channel": r.channel,
                "kind": r.kind,
                "body": r.body,
                "created_at": r.created_at,
            }
            if r.code is not None:
                item["code"] = r.code
            if r.link is not None:
                item["link"] = r.link
            messages.append(item)
        return messages
