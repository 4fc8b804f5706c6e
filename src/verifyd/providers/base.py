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
    #: The locale the text was rendered in (``en``, ``ur``, ``ar``, …).
    locale: str = "en"


class DeliveryError(Exception):
    """A delivery failed.

    Args:
        message: What went wrong, for the outbox's ``last_error`` (never a code or token).
        retryable: Whether the same provider may succeed later (a 5xx, a timeout); a
            permanent failure (a refused number) moves the message to the next provider.
        code: The provider's own error code (Twilio's ``21211``, an SMTP reply code).
        retry_after: Seconds the provider asked to wait (``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.retry_after = retry_after


class Provider(ABC):
    """Delivers messages. Subclasses declare the kinds they carry in ``kinds``.

    A provider whose ``transactional`` is true records its delivery inside the
    transaction that created the message (``send_in_transaction``), so the message
    exists the moment the API answers; the others are driven by the outbox.

    Providers are built at start-up, also by checks that never send: open network
    clients lazily, on the first ``send``, and close them in ``aclose``.

    Args:
        settings: The running settings.
    """

    name: ClassVar[str]
    kinds: ClassVar[frozenset[MessageKind]]
    transactional: ClassVar[bool] = False
    development_only: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def check_settings(cls, settings: Settings) -> list[str]:
        """What the settings lack for this provider (one line per problem; empty = fine).

        Called at start-up for every provider a chain names, so a missing setting fails
        ``verifyd serve`` before it listens rather than the first delivery.
        """
        return []

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> str | None:
        """Deliver one message; the message's ``id`` is its idempotency key.

        Returns:
            The provider's own id for the message (e.g. Twilio's ``SM…`` SID), which its
            delivery receipts refer to; ``None`` when it has none.

        Raises:
            DeliveryError: the message was not delivered.
        """

    def send_in_transaction(self, conn: Connection, message: OutgoingMessage) -> None:
        """Deliver within the caller's transaction (transactional providers only)."""
        raise NotImplementedError(f"{self.name} is not transactional")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or clients."""
