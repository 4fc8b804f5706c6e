"""The ``console`` provider: prints each message to stdout as its delivery (development only)."""

from __future__ import annotations

import sys
from typing import ClassVar

from verifyd.providers.base import MessageKind, OutgoingMessage, Provider


class ConsoleProvider(Provider):
    """Writes messages to standard output; refused in production mode."""

    name = "console"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})
    development_only = True

    async def send(self, message: OutgoingMessage) -> str | None:
        subject = f" | {message.subject}" if message.subject else ""
        sys.stdout.write(
            f"[verifyd console {message.kind}] to {message.to}{subject}\n{message.body}\n\n"
        )
        sys.stdout.flush()
        return None
