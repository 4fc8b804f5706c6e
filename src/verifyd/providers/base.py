"""The provider contract: deliver one rendered message of a kind it carries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from verifyd.settings import Settings

MessageKind = Literal["sms", "email"]


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to deliver. ``code``/``link`` are set for the sandbox to record."""

    id: str
    kind: MessageKind
    to: str
    body: str
    channel: str
    purpose: Literal["code", "link", "notice"]
    created_at: datetime
    subject: str | None = None
    html: str | None = None
    code: str | None = None
    link: str | None = None


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether the outbox should try again."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Provider(ABC):
    """Delivers messages. Subclasses declare the kinds they carry in ``kinds``.

    A provider whose ``transactional`` is true records its delivery inside the
    transaction that created the message (``send_in_transaction``), so the message
    exists the moment the API answers; the others are driven by the outbox.

    Args:
        settings: The running settings.
    """

    name: ClassVar[str]
    kinds: ClassVar[frozenset[MessageKind]]
    transactional: ClassVar[bool] = False
    development_only: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> None:
        """Deliver one message.

        Raises:
            DeliveryError: the message was not delivered.
        """

    def send_in_transaction(self, conn: Connection, message: OutgoingMessage) -> None:
        """Deliver within the caller's transaction (transactional providers only)."""
        raise NotImplementedError(f"{self.name} is not transactional")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or clients."""
