"""The ``sandbox`` provider: keeps messages to sandbox destinations for the sandbox API."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from verifyd.models import SandboxMessage, table_of
from verifyd.prepared import Prepared
from verifyd.providers.base import MessageKind, OutgoingMessage, Provider

if TYPE_CHECKING:
    from sqlalchemy import Connection

_insert = Prepared(table_of(SandboxMessage).insert())


class SandboxProvider(Provider):
    """Records each message, code and link included, in ``sandbox_messages``.

    It is transactional: the message is readable from ``GET /v1/sandbox/messages``
    as soon as the signup or resend that sent it has answered.
    """

    name = "sandbox"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})
    transactional = True

    def send_in_transaction(self, conn: Connection, message: OutgoingMessage) -> None:
        purpose = message.purpose
        _insert.execute(
            conn,
            dict(
                id=message.id,
                to=message.to,
                channel=message.channel,
                kind=purpose,
                body=message.body,
                code=message.code,
                link=message.link,
                created_at=message.created_at,
            ),
        )

    async def send(self, message: OutgoingMessage) -> str | None:
        raise NotImplementedError("the sandbox provider delivers inside the transaction")
