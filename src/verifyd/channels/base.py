"""The channel contract: issue a secret for a verification, check a candidate against it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from verifyd.codes import Secrets, same
from verifyd.errors import InvalidRequest
from verifyd.policy import Identity, Policy
from verifyd.providers.base import MessageKind, OutgoingMessage
from verifyd.settings import Settings


@dataclass(frozen=True)
class VerificationRef:
    """What a channel needs to know of a verification to derive and render its secret."""

    id: str
    destination: str
    generation: int
    sandbox: bool
    expires_at: datetime
    code_length: int | None = None
    #: The signup's locale (its ``locale``, else its ``Accept-Language``); ``None`` = English.
    locale: str | None = None
    #: The name its message carries instead of ``VERIFYD_APP_NAME`` (a Verify service's).
    app_name: str | None = None


@dataclass(frozen=True)
class Terms:
    """How long a verification lives and how many checks it allows."""

    ttl_seconds: int
    max_checks: int
    resend_cooldown_seconds: int
    code_length: int | None


class Channel(ABC):
    """Proves control of one identity (``phone`` or ``email``).

    A ``code`` channel is confirmed by ``POST /v1/verifications/{id}/check``; a
    ``link`` channel by the token in the link it sends. Secrets are derived from the
    server key, the verification id and its generation (see ``verifyd.codes``).

    Args:
        settings: The running settings.
        secrets: The keyed derivation and hashing of secrets.
    """

    name: ClassVar[str]
    identity: ClassVar[Identity]
    message_kind: ClassVar[MessageKind]
    confirm_by: ClassVar[Literal["code", "link"]]

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        self.settings = settings
        self.secrets = secrets

    @abstractmethod
    def terms(self, policy: Policy) -> Terms:
        """The policy's terms for this channel."""

    @abstractmethod
    def secret(self, ref: VerificationRef) -> str:
        """The code or token of the verification's current generation."""

    @abstractmethod
    def hash(self, verification_id: str, secret: str) -> str:
        """The keyed hash stored for a secret."""

    @abstractmethod
    def render(
        self, ref: VerificationRef, message_id: str, created_at: datetime
    ) -> OutgoingMessage:
        """The message that carries the secret to the destination."""

    def issue(self, ref: VerificationRef) -> str:
        """The hash to store for the verification's current generation."""
        return self.hash(ref.id, self.secret(ref))

    def check(self, verification_id: str, candidate: str, stored_hash: str) -> bool:
        """Whether a candidate matches the stored hash (constant time)."""
        return same(self.hash(verification_id, candidate), stored_hash)

    def parse_candidate(self, raw: object) -> str:
        """Validate a submitted code's form before it costs an attempt.

        Raises:
            InvalidRequest: ``invalid_request`` on the field ``code``.
        """
        if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 10:
            raise InvalidRequest.field(
                "invalid_request", "code", 'code must be a string of digits, e.g. "0123"'
            )
        return raw
