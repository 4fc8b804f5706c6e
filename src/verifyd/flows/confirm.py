"""Email link confirmation: the token in a link approves its verification, once."""

from __future__ import annotations

from sqlalchemy import Connection

from verifyd import rollup
from verifyd import statements as sql
from verifyd.channels.base import Channel
from verifyd.codes import hash_token
from verifyd.db import Database
from verifyd.errors import InvalidRequest, VerifydError
from verifyd.flows.approval import Approved, approve, closed_reason
from verifyd.models import utcnow

#: Longer than any token verifyd issues (43 characters); refused before hashing.
MAX_TOKEN_LENGTH = 200


class Links:
    """Confirms email links.

    Args:
        db: The database.
        channels: Channel instances by name.
    """

    def __init__(self, db: Database, channels: dict[str, Channel]) -> None:
        self._db = db
        self._channels = channels

    async def viewed(self, token: str) -> None:
        """Note that a pending link's page was shown (its first showing is counted).

        A page shown and never followed by a confirm is what mail scanners and users
        who gave up leave behind: the stats count both.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return
        now = utcnow()
        digest = hash_token(token)

        def work(conn: Connection) -> None:
            row = sql.VIEWED.first(conn, {"digest": digest, "now": now})
            if row is not None:
                rollup.add(conn, row.policy_version, row.arm, "link_views", row.created_at)

        await self._db.transact(work)

    async def confirm(self, token: str) -> Approved:
        """Confirm an email link's token, once.

        The token's verification moves to ``approved`` in one conditional ``UPDATE``
        keyed on the token's hash, so two presses cannot both succeed.

        Raises:
            VerifydError: ``token_invalid``, ``code_expired`` or ``verification_closed``.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidRequest("token_invalid", "this link is not valid")
        now = utcnow()
        digest = hash_token(token)

        def work(conn: Connection) -> Approved | VerifydError:
            row = sql.CONFIRM.first(conn, {"digest": digest, "now": now})
            channel = self._channels.get(row.channel) if row is not None else None
            if row is None or channel is None or channel.confirm_by != "link":
                by_secret = sql.BY_SECRET.first(conn, {"digest": digest})
                found = by_secret.id if by_secret is not None else None
                return (
                    closed_reason(conn, found, now, secret="link")
                    if found is not None
                    else InvalidRequest("token_invalid", "this link is not valid")
                )
            return approve(conn, row, now)

        outcome = await self._db.transact(work)
        if isinstance(outcome, VerifydError):
            raise outcome
        return outcome
