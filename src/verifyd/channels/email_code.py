"""The ``email_code`` channel: a numeric code sent by email, checked like an SMS code."""

from __future__ import annotations

from datetime import datetime

from verifyd.channels.base import VerificationRef
from verifyd.channels.code import CodeChannel
from verifyd.channels.rendering import Renderer
from verifyd.codes import Secrets
from verifyd.providers.base import OutgoingMessage
from verifyd.settings import Settings


class EmailCodeChannel(CodeChannel):
    """Proves an email address with a code the user types, not a link to open.

    A code survives the mail scanners that open every link of a message (and would
    burn a single-use link), and is what Twilio Verify's email channel sends. It is
    confirmed by ``POST /v1/verifications/{id}/check``, with the SMS code's terms
    (:class:`~verifyd.channels.code.CodeChannel`). The message has a subject, a plain
    part and an HTML part without any link, from the locale's ``email/code.*``.
    """

    name = "email_code"
    identity = "email"
    message_kind = "email"

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        super().__init__(settings, secrets)
        self.renderer = Renderer(settings)

    def render(
        self, ref: VerificationRef, message_id: str, created_at: datetime
    ) -> OutgoingMessage:
        return self.renderer.email(self.name, ref, message_id, created_at, "code", self.secret(ref))
