"""The ``email`` channel: a single-use link carrying a 256-bit token."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlsplit

from verifyd.channels.base import Channel, Terms, VerificationRef
from verifyd.codes import Secrets, hash_token
from verifyd.errors import InvalidRequest
from verifyd.policy import Policy
from verifyd.providers.base import OutgoingMessage
from verifyd.settings import Settings
from verifyd.texts import Texts


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
        self.texts = Texts(settings.template_dir)
        self.domain = urlsplit(settings.public_base_url).hostname or "localhost"

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
        seconds = (ref.expires_at - created_at).total_seconds()
        values = {
            "link": link,
            "minutes": max(1, round(seconds / 60)),
            "hours": max(1, round(seconds / 3600)),
            "expires_at": ref.expires_at,
            "domain": self.domain,
            "app_name": ref.app_name or self.settings.app_name,
        }
        body = self.texts.render(ref.locale, "email/link.txt", **values)
        # One line whatever the template holds: a header cannot take a line break.
        subject = " ".join(
            self.texts.render(ref.locale, "email/link.subject.txt", **values).text.split()
        )
        html = self.texts.render(ref.locale, "email/link.html", subject=subject, **values)
        return OutgoingMessage(
            id=message_id,
            kind="email",
            to=ref.destination,
            subject=subject,
            body=body.text.strip() + "\n",
            channel=self.name,
            purpose="link",
            created_at=created_at,
            html=html.text,
            link=link,
            locale=body.locale,
        )

    def parse_candidate(self, raw: object) -> str:
        raise InvalidRequest.field(
            "invalid_request", "code", "an email verification is confirmed through its link"
        )
