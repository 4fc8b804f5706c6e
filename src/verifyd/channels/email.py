"""The ``email`` channel: a single-use link carrying a 256-bit token."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.codes import hash_token
from verifyd.errors import InvalidRequest
from verifyd.policy import Policy
from verifyd.providers.base import OutgoingMessage


class EmailChannel(Channel):
    """Sends a link to ``{public_base_url}/v1/email/verify?token=…`` (never built from Host)."""

    name = "email"
    identity = "email"
    message_kind = "email"
    confirm_by = "link"

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
        hours = max(1, round((ref.expires_at - created_at).total_seconds() / 3600))
        body = (
            "Confirm your email address by opening this link:\n\n"
            f"{link}\n\n"
            f"The link works once and expires in {hours} h. "
            "If you did not sign up, ignore this message."
        )
        return OutgoingMessage(
            id=message_id,
            kind="email",
            to=ref.destination,
            subject="Confirm your email address",
            body=body,
            channel=self.name,
            purpose="link",
            created_at=created_at,
            link=link,
        )

    def parse_candidate(self, raw: object) -> str:
        raise InvalidRequest.field(
            "invalid_request", "code", "an email verification is confirmed through its link"
        )
