"""A third-party verifyd plugin: a ``voice`` phone channel and a ``pigeon`` SMS provider.

The tests install this module the way a third party's wheel would: copied into a
directory on ``sys.path`` beside a ``*.dist-info`` that declares its entry points.
It imports only verifyd's public plugin contracts.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.policy import Policy
from verifyd.providers.base import MessageKind, OutgoingMessage, Provider

VOICE_CODE_LENGTH = 6
VOICE_GREETING = "Hello from Acme Voice. Your verification code is"


class VoiceChannel(Channel):
    """Reads a 6-digit code aloud in a phone call (rendered as spaced digits)."""

    name = "voice"
    identity = "phone"
    message_kind = "sms"  # phone messages go through the SMS provider slot
    confirm_by = "code"

    def terms(self, policy: Policy) -> Terms:
        knobs = policy.sms
        return Terms(
            knobs.ttl_seconds, knobs.max_checks, knobs.resend_cooldown_seconds, VOICE_CODE_LENGTH
        )

    def secret(self, ref: VerificationRef) -> str:
        return self.secrets.code(ref.id, ref.generation, VOICE_CODE_LENGTH)

    def hash(self, verification_id: str, secret: str) -> str:
        return self.secrets.hash_code(verification_id, secret)

    def render(
        self, ref: VerificationRef, message_id: str, created_at: datetime
    ) -> OutgoingMessage:
        code = self.secret(ref)
        return OutgoingMessage(
            id=message_id,
            kind="sms",
            to=ref.destination,
            body=f"{VOICE_GREETING} {' '.join(code)}. Again: {' '.join(code)}.",
            channel=self.name,
            purpose="code",
            created_at=created_at,
            code=code,
        )


class PigeonProvider(Provider):
    """Carries SMS only; keeps what it delivered in ``SENT`` for the tests to read."""

    name = "pigeon"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms"})
    SENT: ClassVar[list[OutgoingMessage]] = []

    async def send(self, message: OutgoingMessage) -> None:
        PigeonProvider.SENT.append(message)


class NotAChannel:
    """Declared as a channel by a careless distribution; it is no ``Channel``."""

    name = "broken"
