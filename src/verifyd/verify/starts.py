"""``POST /v2/Services/{VA…}/Verifications``: start a verification, or send its code again.

A start goes through verifyd's own channel, provider chain, limits, sandbox and outbox,
outside the signup policy. Starting again for the same ``To`` and channel while its
code is alive re-sends the same code on the same verification, as Twilio does, up to
:data:`~verifyd.verify.sends.MAX_SENDS` sends (then 60203). The code's lifetime and
check cap are the active policy's SMS terms; its length is the service's ``CodeLength``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from verifyd import locales
from verifyd.channels.base import Channel
from verifyd.db import Database
from verifyd.destinations import Destination, Destinations
from verifyd.errors import InvalidRequest, RateLimited
from verifyd.flows.delivery import Delivery
from verifyd.flows.limits import Limits
from verifyd.flows.pumping import Held, Pumping
from verifyd.models import Verification, table_of, utcnow
from verifyd.policystore import PolicyStore
from verifyd.verify import views
from verifyd.verify.errors import (
    TwilioError,
    channel_disabled,
    concurrent,
    invalid,
    max_sends,
    translate,
)
from verifyd.verify.lookup import carrier
from verifyd.verify.params import Form
from verifyd.verify.sends import BUILT_IN, First, Sends
from verifyd.verify.services import Services
from verifyd.verify_models import STATS_VERSION, VerifyVerification

_v = table_of(Verification).c
_vv_t = table_of(VerifyVerification)
_vv = _vv_t.c

#: Twilio's channels; ``sms`` and ``email`` are served by verifyd's ``sms`` and
#: ``email_code`` channels, the others only by a plugin channel of the same name.
TWILIO_CHANNELS = ("sms", "email", "call", "whatsapp", "sna", "auto")
#: The parameters a start reads.
PARAMS = ("To", "Channel", "Locale", "CustomFriendlyName", "DeviceIp", "RiskCheck", "Tags")
#: Documented parameters verifyd refuses rather than ignore, and why.
UNSUPPORTED = {
    "CustomCode": "verifyd always generates the code",
    "CustomMessage": "deprecated by Twilio; the message comes from verifyd's templates",
    "SendDigits": "no voice channel",
    "Amount": "PSD2 transaction details are not supported",
    "Payee": "PSD2 transaction details are not supported",
    "RateLimits": "verifyd's own limits apply; Service Rate Limits are not supported",
    "ChannelConfiguration": "the email comes from verifyd's templates and settings",
    "AppHash": "the SMS ends with its own origin-bound line (@host #code)",
    "TemplateSid": "messages come from verifyd's templates",
    "TemplateCustomSubstitutions": "messages come from verifyd's templates",
    "EnableSnaClientToken": "no SNA channel",
}


class Starts:
    """Starts and restarts ``/v2`` verifications.

    Args:
        settings_locales: The locales the templates provide (read when needed).
        destinations: Parses ``To`` under the sandbox, country and number-type rules.
        db: The database.
        services: The services (each start reads its own).
        channels: verifyd's channels by name.
        policies: The policy store (the code's lifetime and check cap).
        limits: The rate limits.
        delivery: The hand-off to providers and the outbox.
        pumping: The SMS send budgets and breakers.
        urls: Where resources live.
        wake: Called after a commit that queued messages.
    """

    def __init__(
        self,
        settings_locales: Callable[[], Collection[str]],
        destinations: Destinations,
        db: Database,
        services: Services,
        channels: dict[str, Channel],
        policies: PolicyStore,
        limits: Limits,
        delivery: Delivery,
        pumping: Pumping,
        urls: views.Urls,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._locales = settings_locales
        self._destinations = destinations
        self._db = db
        self._services = services
        self._channels = channels
        self._policies = policies
        self._limits = limits
        self._sends = Sends(delivery)
        self._delivery = delivery
        self._pumping = pumping
        self._urls = urls
        self._wake = wake
        #: Destinations with a start in flight in this process (60212 for a second one).
        self._inflight: set[tuple[str, str]] = set()

    def channel(self, name: str) -> Channel:
        """The verifyd channel serving Twilio's channel ``name``.

        Raises:
            TwilioError: 60223, no channel here delivers codes that way.
        """
        channel = self._channels.get(BUILT_IN.get(name, name))
        if channel is None or channel.confirm_by != "code":
            raise channel_disabled(name)
        return channel

    def destination(self, raw: str, identity: str) -> Destination:
        """``To`` parsed for a channel's identity (``phone`` or ``email``).

        Raises:
            TwilioError: 60200 (not a number or address, a blocked type), 60605 (country).
        """
        try:
            if identity == "phone":
                return self._destinations.phone(raw)
            return self._destinations.email(raw)
        except InvalidRequest as exc:
            raise translate(exc, field="To") from None

    async def start(self, account_sid: str, service_sid: str, form: Form) -> dict[str, Any]:
        """Start a verification, or re-send the pending one to the same ``To`` (201).

        Raises:
            TwilioError: 20404 (service), 60200, 60203, 60205, 60212, 60223, 60410,
                60605, 20429.
        """
        raw_to = form.text("To", required=True)
        name = form.choice("Channel", TWILIO_CHANNELS, required=True)
        assert raw_to is not None and name is not None
        channel = self.channel(name)
        requested = form.text("Locale", max_length=35)
        locale = locales.negotiate(requested, None, self._locales()) if requested else None
        custom = form.text("CustomFriendlyName", max_length=64)
        device_ip = form.address("DeviceIp")
        if form.choice("RiskCheck", ("enable", "disable")) == "disable":
            raise invalid(
                "RiskCheck", "verifyd's pumping defences cannot be turned off per request"
            )
        form.tags("Tags")
        dest = self.destination(raw_to, channel.identity)
        key = (service_sid, dest.value)
        if key in self._inflight:
            raise concurrent()
        self._inflight.add(key)
        try:
            return await self._start(account_sid, service_sid, channel, name, dest, locale,
                                     custom, device_ip)  # fmt: skip
        finally:
            self._inflight.discard(key)

    async def _start(
        self,
        account_sid: str,
        service_sid: str,
        channel: Channel,
        name: str,
        dest: Destination,
        locale: str | None,
        custom: str | None,
        device_ip: str | None,
    ) -> dict[str, Any]:
        now = utcnow()
        terms = channel.terms(self._policies.current())
        if device_ip is not None:

            def count_device(conn: Connection) -> bool:
                self._limits.hit(conn, "signup_ip", device_ip, dest.sandbox, now)
                return True

            try:
                counted = await self._limits.apart(self._db, count_device)
            except RateLimited as exc:
                raise translate(exc) from None
        else:
            counted = True
        cohort: list[tuple[int, str]] = []

        def work(conn: Connection) -> tuple[Any, str]:
            service = self._services.find(conn, account_sid, service_sid)
            cohort.append((STATS_VERSION, service.stats_key))
            options = service.options or {}
            if options.get("skip_sms_to_landlines") and "non_mobile" in dest.flags:
                raise TwilioError(60205, 400, "SMS is not supported by landline phone number")
            if not counted:
                self._limits.hit(conn, "signup_ip", device_ip or "", dest.sandbox, now)
            try:
                self._limits.hit(conn, "send_destination", dest.value, dest.sandbox, now)
            except RateLimited as exc:
                raise max_sends(exc.retry_after) from None
            pending = self._pending(conn, service.sid, dest.value, channel.name, now)
            if pending is not None:
                row, delivery = self._sends.again(conn, channel, name, pending, now)
            else:
                lookup = carrier(dest) if options.get("lookup_enabled") else {}
                first = First(name, service, dest, locale, custom, lookup, terms)
                row, delivery = self._sends.first(conn, channel, first, now)
            # Last: the budgets' hot rows (country, global) stay locked only until the commit.
            kind = channel.message_kind
            self._pumping.admit(conn, kind, dest.value, dest.sandbox, now, cohort[0])
            return row, delivery

        try:
            row, delivery = await self._db.transact(work)
        except Held as exc:
            held = exc
            await self._db.transact(lambda conn: self._pumping.refused(conn, held, now))
            raise translate(held.error) from None
        if delivery == "queued":
            self._wake()
        return views.verification(row, account_sid, "pending", self._urls)

    @staticmethod
    def _pending(
        conn: Connection, service_sid: str, to: str, channel: str, now: datetime
    ) -> Any | None:
        """The live verification of this service, destination and channel, locked.

        Two starts to one destination cannot both find none and both open one, on any
        number of replicas: each has just counted the destination's send limit, whose
        row stays locked until its commit, so the second reads after the first commits
        (``tests/api/test_twilio_abuse.py`` fires them at two replicas at once).
        """
        stmt = (
            select(
                _vv.sid, _vv.service_sid, _vv.to, _vv.channel, _vv.locale, _vv.friendly_name,
                _vv.send_attempts, _vv.lookup, _vv.created_at, _v.generation, _v.sandbox,
                _v.code_length, _v.expires_at, _v.arm, _v.destination,
            )
            .join_from(_vv_t, table_of(Verification), _v.id == _vv.sid)
            .where(
                _vv.service_sid == service_sid,
                _vv.to == to,
                _v.channel == channel,
                _v.status == "pending",
                _v.expires_at > now,
                _v.attempts < _v.max_checks,
            )
            .order_by(_vv.created_at.desc())
            .limit(1)
            .with_for_update(of=table_of(Verification))
        )  # fmt: skip
        return conn.execute(stmt).first()
