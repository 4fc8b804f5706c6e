"""What the channels that send a numeric code share: their terms, the code, its hash."""

from __future__ import annotations

from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.policy import Policy

#: The length of a code whose verification has none recorded.
DEFAULT_LENGTH = 4


class CodeChannel(Channel):
    """A channel confirmed by ``POST /v1/verifications/{id}/check`` with an HOTP code.

    A code lives by the policy's ``sms`` knobs whatever carries it: by email as by SMS
    it expires after ``ttl_seconds``, allows ``max_checks`` checks, and waits
    ``resend_cooldown_seconds`` between sends. Its length is the verification's
    ``code_length``: the policy's ``sms.code_length`` when it was issued, or what the
    issuer set instead (a Verify service's ``CodeLength``). The database keeps only the
    code's HMAC.
    """

    confirm_by = "code"

    def terms(self, policy: Policy) -> Terms:
        knobs = policy.sms
        return Terms(
            knobs.ttl_seconds, knobs.max_checks, knobs.resend_cooldown_seconds, knobs.code_length
        )

    def secret(self, ref: VerificationRef) -> str:
        length = ref.code_length or DEFAULT_LENGTH
        fixed = self.settings.sandbox_fixed_code
        if ref.sandbox and fixed and self.settings.sandbox_on and len(fixed) == length:
            return fixed
        return self.secrets.code(ref.id, ref.generation, length)

    def hash(self, verification_id: str, secret: str) -> str:
        return self.secrets.hash_code(verification_id, secret)
