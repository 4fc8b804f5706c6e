"""What the shipped channels share to word a message: the templates, the host, the values."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from verifyd.channels.base import VerificationRef
from verifyd.providers.base import OutgoingMessage
from verifyd.settings import Settings
from verifyd.texts import Rendered, Texts


class Renderer:
    """One configuration's templates, and the values every message of a channel receives.

    Built once per channel: in sandbox mode a render runs inside every signup's
    transaction, so nothing here reads a file or parses a URL per message.

    Args:
        settings: The running settings (template folder, public base URL, app name).
    """

    def __init__(self, settings: Settings) -> None:
        self.texts = Texts(settings.template_dir)
        #: The host of the public base URL (the SMS's origin-bound line, the templates).
        self.domain = urlsplit(settings.public_base_url).hostname or "localhost"
        self.app_name = settings.app_name

    def values(self, ref: VerificationRef, created_at: datetime, **more: Any) -> dict[str, Any]:
        """What every template of a message gets, beside ``more`` (``code``, ``link``).

        ``minutes`` and ``hours`` until the secret expires (rounded, at least 1),
        ``expires_at``, ``domain``, and ``app_name``: the verification's own (a Verify
        service's name) or ``VERIFYD_APP_NAME``.
        """
        seconds = (ref.expires_at - created_at).total_seconds()
        return {
            "minutes": max(1, round(seconds / 60)),
            "hours": max(1, round(seconds / 3600)),
            "expires_at": ref.expires_at,
            "domain": self.domain,
            "app_name": ref.app_name or self.app_name,
            **more,
        }

    def text(self, ref: VerificationRef, name: str, values: dict[str, Any]) -> Rendered:
        """One template (``sms/code.txt``) in the verification's locale."""
        return self.texts.render(ref.locale, name, **values)

    def email(
        self,
        channel: str,
        ref: VerificationRef,
        message_id: str,
        created_at: datetime,
        purpose: Literal["code", "link"],
        secret: str,
    ) -> OutgoingMessage:
        """The email that carries a code or a link, from the locale's ``email/<purpose>.*``.

        ``email/<purpose>.subject.txt``, ``.txt`` and ``.html`` get the secret as the
        variable named after the purpose (``code`` or ``link``); the HTML part also gets
        ``subject``, as rendered.

        Args:
            channel: The sending channel's name.
            ref: The verification.
            message_id: The message's id.
            created_at: When the message is rendered (its expiry is counted from it).
            purpose: What the email carries: ``code`` or ``link``.
            secret: The code, or the link with its token.
        """
        stem = f"email/{purpose}"
        values = self.values(ref, created_at, **{purpose: secret})
        body = self.text(ref, f"{stem}.txt", values)
        # One line whatever the template holds: a header cannot take a line break.
        subject = " ".join(self.text(ref, f"{stem}.subject.txt", values).text.split())
        html = self.text(ref, f"{stem}.html", {**values, "subject": subject})
        return OutgoingMessage(
            id=message_id,
            kind="email",
            to=ref.destination,
            subject=subject,
            body=body.text.strip() + "\n",
            channel=channel,
            purpose=purpose,
            created_at=created_at,
            html=html.text,
            code=secret if purpose == "code" else None,
            link=secret if purpose == "link" else None,
            locale=body.locale,
        )
