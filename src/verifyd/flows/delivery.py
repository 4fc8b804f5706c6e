"""The hand-off from a flow to delivery: which provider, and queue or deliver at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from verifyd import pricing, rollup
from verifyd import statements as sql
from verifyd.channels.base import Channel, VerificationRef
from verifyd.codes import new_id
from verifyd.providers.base import Provider
from verifyd.settings import Settings

#: The provider every sandbox destination goes to, whatever the settings name.
SANDBOX_PROVIDER = "sandbox"


class Delivery:
    """Chooses providers and writes what the outbox (or a transactional provider) sends.

    Args:
        settings: The running settings (which provider carries each message kind).
        providers: Provider instances by name.
    """

    def __init__(self, settings: Settings, providers: dict[str, Provider]) -> None:
        self._settings = settings
        self._providers = providers

    def provider_for(self, channel: Channel, sandbox: bool) -> Provider:
        """The provider that carries this channel's messages to this kind of destination."""
        if sandbox:
            return self._providers[SANDBOX_PROVIDER]
        return self._providers[self.chain(channel.message_kind)[0]]

    def chain(self, kind: str) -> list[str]:
        """The providers, in order of preference, that carry this kind of message."""
        return self._settings.sms_provider if kind == "sms" else self._settings.email_provider

    def immediate(self, channel: Channel, sandbox: bool) -> bool:
        """Whether the message is delivered inside the flow's transaction."""
        return self.provider_for(channel, sandbox).transactional

    def hand_off(
        self,
        conn: Connection,
        channel: Channel,
        ref: VerificationRef,
        shadow: bool,
        now: datetime,
        cohort: tuple[int, str, datetime],
    ) -> str:
        """Queue (or, for a transactional provider, deliver) the verification's message.

        Args:
            cohort: The verification's policy version, arm and creation time, under
                which a message sent here is counted.

        Returns:
            The verification's ``delivery`` state after this transaction.
        """
        provider = self.provider_for(channel, ref.sandbox)
        if provider.transactional and not shadow:
            message = channel.render(ref, new_id("msg"), now)
            provider.send_in_transaction(conn, message)
            country, parts = pricing.basis(message.kind, message.to, message.body)
            version, arm, created = cohort
            rollup.add(conn, version, arm, f"sent.{message.kind}.{country}.{parts}", created)
            return "sent"
        # A shadow (an identity an active account owns) is queued like any message: the
        # dispatcher recognises it by its verification and moves it to ``sent`` on the
        # same schedule, without a provider (see ``outbox.py``). Only a shadow for a
        # transactional provider (the sandbox) is written ``suppressed`` here: its real
        # twin is delivered in this transaction and never queued.
        sql.INSERT_MESSAGE.execute(
            conn,
            dict(
                id=new_id("msg"),
                verification_id=ref.id,
                generation=ref.generation,
                kind=channel.message_kind,
                provider=provider.name,
                to=ref.destination,
                status="suppressed" if shadow and provider.transactional else "queued",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            ),
        )
        return "sent" if provider.transactional else "queued"
