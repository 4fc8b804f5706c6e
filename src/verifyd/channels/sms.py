"""The ``sms`` channel: a numeric code (4 digits by default) sent by SMS."""

from __future__ import annotations

from datetime import datetime

from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.policy import Policy
from verifyd.providers.base import OutgoingMessage


class SmsChannel(Channel):
    """Sends an HOTP-derived code; the database keeps only its HMAC."""

    name = "sms"
    identity = "phone"
    message_kind = "sms"
    confirm_by = "code"

    def terms(self, policy: Policy) -> Terms:
        knobs = policy.sms
        return Terms(
            knobs.ttl_seconds, knobs.max_checks, knobs.resend_cooldown_seconds, knobs.code_length
        )

    def secret(self, ref: VerificationRef) -> str:
        length = ref.code_length or 4
        fixed = self.settings.sandbox_fixed_code
        if ref.sandbox and fixed and self.settings.sandbox_on and len(fixed) == length:
            return fixed
        return self.secrets.code(ref.id, ref.generation, length)

    def hash(self, verification_id: str, secret: str) -> str:
        return self.secrets.hash_code(verification_id, secret)

    def render(
        self, ref: VerificationRef, message_id: str, created_at: datetime
    ) -> OutgoingMessage:
        code = self.secret(ref)
        minutes = max(1, round((ref.expires_at - created_at).total_seconds() / 60))
        return OutgoingMessage(
            id=message_id,
            kind="sms",
            to=ref.destination,
            body=f"Your verification code is {code}. It expires in {minutes} min. Never share it.",
            channel=self.name,
            purpose="code",
            created_at=created_at,
            code=code,
        )
