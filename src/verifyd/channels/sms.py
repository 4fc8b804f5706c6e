"""The ``sms`` channel: a numeric code (4 digits by default) sent by SMS."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.codes import Secrets
from verifyd.policy import Policy
from verifyd.providers.base import OutgoingMessage
from verifyd.settings import Settings
from verifyd.texts import Texts

#: The template of a code's SMS, under each locale's folder.
TEMPLATE = "sms/code.txt"


class SmsChannel(Channel):
    """Sends an HOTP-derived code; the database keeps only its HMAC.

    The text comes from ``<locale>/sms/code.txt`` and ends with the origin-bound line
    ``@<domain> #<code>`` (WebOTP, Android's SMS Retriever), ``<domain>`` being the host
    of the public base URL, so a browser or an app can fill the code in.
    """

    name = "sms"
    identity = "phone"
    message_kind = "sms"
    confirm_by = "code"

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        super().__init__(settings, secrets)
        # Built once: in sandbox mode a render runs inside every signup's transaction.
        self.texts = Texts(settings.template_dir)
        self.domain = urlsplit(settings.public_base_url).hostname or "localhost"

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
        seconds = (ref.expires_at - created_at).total_seconds()
        text = self.texts.render(
            ref.locale,
            TEMPLATE,
            code=code,
            minutes=max(1, round(seconds / 60)),
            hours=max(1, round(seconds / 3600)),
            expires_at=ref.expires_at,
            domain=self.domain,
            app_name=ref.app_name or self.settings.app_name,
        )
        return OutgoingMessage(
            id=message_id,
            kind="sms",
            to=ref.destination,
            # Every character beyond the text is paid for: no stray newline at either end.
            body=text.text.strip(),
            channel=self.name,
            purpose="code",
            created_at=created_at,
            code=code,
            locale=text.locale,
        )
