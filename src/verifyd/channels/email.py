"""The ``email`` channel: a single-use link carrying a 256-bit token."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.channels.rendering import Renderer
from verifyd.codes import Secrets, hash_token
from verifyd.errors import InvalidRequest
from verifyd.policy import Policy
from verifyd.providers.base import OutgoingMessage
from verifyd.settings import Settings


class EmailChannel(Channel):
    """Sends a link to ``{public_base_url}/v1/email/verify?token=…`` (never built from Host).

    The message has a subject, a plain part and an HTML part, from the locale's
    ``email/link.subject.txt``, ``email/link.txt`` and ``email/link.html``.
    """

    name = "email"
    identity = "email"
    message_kind = "email"
    confirm_by = "link"

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        super().__init__(settings, secrets)
        self.renderer = Renderer(settings)

    def terms(self, policy: Policy) -> Terms:
        return Terms(policy.email.ttl_seconds, 1, policy.sms.resend_cooldown_seconds, None)

    def secret(self, ref: VerificationRef) -> str:
        return self.secrets.token(ref.id, ref.generation)

    def hash(self, verification_id: str, secret: str) -> str:
        return hash_token(secret)

    def link(self, token: str) -> str:
        """The confirmation link for a token."""
        return f"{self.settings.public_base_url}/v1/email/verify?token={quote(token)}"

    def render(
        self, ref: VerificationRef, message_id: str, created_at: datetime
    ) -> OutgoingMessage:
        link = self.link(self.secret(ref))
        return self.renderer.email(self.name, ref, message_id, created_at, "link", link)

    def parse_candidate(self, raw: object) -> str:
        raise InvalidRequest.field(
            "invalid_request", "code", "an email verification is confirmed through its link"
        )
