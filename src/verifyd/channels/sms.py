"""The ``sms`` channel: a numeric code (4 digits by default) sent by SMS."""

from __future__ import annotations

from datetime import datetime

from verifyd.channels.base import VerificationRef
from verifyd.channels.code import CodeChannel
from verifyd.channels.rendering import Renderer
from verifyd.codes import Secrets
from verifyd.providers.base import OutgoingMessage
from verifyd.settings import Settings

#: The template of a code's SMS, under each locale's folder.
TEMPLATE = "sms/code.txt"


class SmsChannel(CodeChannel):
    """Sends an HOTP-derived code; the database keeps only its HMAC.

    The text comes from ``<locale>/sms/code.txt`` and ends with the origin-bound line
    ``@<domain> #<code>`` (WebOTP, Android's SMS Retriever), ``<domain>`` being the host
    of the public base URL, so a browser or an app can fill the code in.
    """

    name = "sms"
    identity = "phone"
    message_kind = "sms"

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        super().__init__(settings, secrets)
        self.renderer = Renderer(settings)

    def render(
        self, ref: VerificationRef, message_id: str, created_at: datetime
    ) -> OutgoingMessage:
        code = self.secret(ref)
        text = self.renderer.text(ref, TEMPLATE, self.renderer.values(ref, created_at, code=code))
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
