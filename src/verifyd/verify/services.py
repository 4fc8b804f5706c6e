"""``/v2/Services``: create, read, list, update and delete Verify services.

A service belongs to the verify-scoped credential (its ``AC…``) that created it; any
other credential gets 20404 for it. Each service owns an internal ``accounts`` row
(status ``service``) its verifications hang from. ``DELETE`` marks it deleted: it
answers 404 from then on, and its figures stay in the stats.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from verifyd.codes import new_id
from verifyd.db import Database
from verifyd.models import Account, table_of, utcnow
from verifyd.verify import views
from verifyd.verify.errors import invalid, not_found
from verifyd.verify.params import Form
from verifyd.verify.sids import is_sid, new_sid
from verifyd.verify_models import SERVICE_ACCOUNT, STATS_VERSION, VerifyService

_s = table_of(VerifyService)
_accounts = table_of(Account)

#: Twilio's default code length.
DEFAULT_CODE_LENGTH = 6
#: Longest ``FriendlyName`` (Twilio documents 32 characters).
MAX_NAME = 32
#: Service booleans answered back as given (``views.ECHOED``), by parameter.
_FLAGS = {
    "LookupEnabled": "lookup_enabled",
    "SkipSmsToLandlines": "skip_sms_to_landlines",
    "DtmfInputRequired": "dtmf_input_required",
    "Psd2Enabled": "psd2_enabled",
    "DoNotShareWarningEnabled": "do_not_share_warning_enabled",
    "CustomCodeEnabled": "custom_code_enabled",
    "VerifyEventSubscriptionEnabled": "verify_event_subscription_enabled",
}
_TEXTS = {"TtsName": "tts_name", "DefaultTemplateSid": "default_template_sid"}
#: Nested objects: parameter -> (object, field, kind, (low, high) for integers).
_NESTED: dict[str, tuple[str, str, str, tuple[int, int] | None]] = {
    "Push.IncludeDate": ("push", "include_date", "bool", None),
    "Push.ApnCredentialSid": ("push", "apn_credential_sid", "text", None),
    "Push.FcmCredentialSid": ("push", "fcm_credential_sid", "text", None),
    "Totp.Issuer": ("totp", "issuer", "text", None),
    "Totp.TimeStep": ("totp", "time_step", "int", (20, 60)),
    "Totp.CodeLength": ("totp", "code_length", "int", (3, 8)),
    "Totp.Skew": ("totp", "skew", "int", (0, 2)),
    "Whatsapp.MsgServiceSid": ("whatsapp", "msg_service_sid", "text", None),
    "Whatsapp.From": ("whatsapp", "from", "text", None),
    "Passkeys.RelyingParty.Id": ("passkeys", "relying_party_id", "text", None),
    "Passkeys.RelyingParty.Name": ("passkeys", "relying_party_name", "text", None),
    "Passkeys.RelyingParty.Origins": ("passkeys", "relying_party_origins", "text", None),
    "Passkeys.AuthenticatorAttachment": ("passkeys", "authenticator_attachment", "text", None),
    "Passkeys.DiscoverableCredentials": ("passkeys", "discoverable_credentials", "text", None),
    "Passkeys.UserVerification": ("passkeys", "user_verification", "text", None),
}
#: Every parameter ``POST /v2/Services[/{sid}]`` reads.
PARAMS = ("FriendlyName", "CodeLength", *_FLAGS, *_TEXTS, *_NESTED)
#: The largest page ``GET /v2/Services`` serves, and its default (Twilio's).
MAX_PAGE, DEFAULT_PAGE = 1000, 50


def _options(form: Form, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with what the form sets (a copy; nested objects merged field by field)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in options.items()}
    for param, name in _FLAGS.items():
        flag = form.boolean(param)
        if flag is not None:
            out[name] = flag
    for param, name in _TEXTS.items():
        text = form.text(param, max_length=64)
        if text is not None:
            out[name] = text
    for param, (obj, field, kind, bounds) in _NESTED.items():
        if param not in form:
            continue
        value: Any
        if kind == "bool":
            value = form.boolean(param)
        elif kind == "int":
            assert bounds is not None
            value = form.integer(param, *bounds)
        else:
            value = form.text(param, max_length=200)
        base = views.service_defaults()[obj]
        out[obj] = {**base, **out.get(obj, {}), field: value}
    return out


class Services:
    """The Verify services of each verify-scoped credential.

    Args:
        db: The database.
        urls: Where the resources live (absolute, from the public base URL).
    """

    def __init__(self, db: Database, urls: views.Urls) -> None:
        self._db = db
        self._urls = urls

    async def create(self, account_sid: str, form: Form) -> dict[str, Any]:
        """Create a service (201).

        Raises:
            TwilioError: 60200 naming a bad parameter.
        """
        name = form.text("FriendlyName", required=True, max_length=MAX_NAME)
        assert name is not None
        length = form.integer("CodeLength", 4, 10) or DEFAULT_CODE_LENGTH
        options = _options(form, {})
        now = utcnow()
        sid = new_sid("VA")
        account_id = new_id("acc")
        values = {
            "sid": sid,
            "account_sid": account_sid,
            "account_id": account_id,
            "stats_key": "VA" + sid[-14:],
            "friendly_name": name,
            "code_length": length,
            "options": options,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }

        def work(conn: Connection) -> None:
            conn.execute(
                insert(_accounts).values(
                    id=account_id,
                    status=SERVICE_ACCOUNT,
                    needs="",
                    needs_all=False,
                    policy_version=STATS_VERSION,
                    arm=values["stats_key"],
                    flags=[],
                    shadow=False,
                    created_at=now,
                )
            )
            conn.execute(insert(_s).values(**values))

        await self._db.transact(work)
        return views.service(views.Row(values), self._urls)

    def find(self, conn: Connection, account_sid: str, sid: str) -> Any:
        """The credential's live service ``sid``, read in ``conn``.

        Raises:
            TwilioError: 20404, no such service for this credential.
        """
        row = None
        if is_sid(sid, "VA"):
            row = conn.execute(
                select(_s).where(
                    _s.c.sid == sid, _s.c.account_sid == account_sid, _s.c.deleted_at.is_(None)
                )
            ).first()
        if row is None:
            raise not_found(f"The requested resource /Services/{sid[:40]}")
        return row

    def fetch(self, account_sid: str, sid: str) -> dict[str, Any]:
        """One service.

        Raises:
            TwilioError: 20404.
        """
        with self._db.read() as conn:
            return views.service(self.find(conn, account_sid, sid), self._urls)

    def page(self, account_sid: str, query: Form) -> dict[str, Any]:
        """One page of the credential's services, oldest first.

        ``PageToken`` is the last SID of the previous page (the next page's URL carries
        it); ``Page`` is only echoed in ``meta``.

        Raises:
            TwilioError: 60200, a bad ``PageSize``, ``Page`` or ``PageToken``.
        """
        size = query.integer("PageSize", 1, MAX_PAGE) or DEFAULT_PAGE
        number = query.integer("Page", 0, 100_000) or 0
        token = query.text("PageToken", max_length=64)
        if token is not None and not is_sid(token, "VA"):
            raise invalid("PageToken")
        stmt = (
            select(_s)
            .where(_s.c.account_sid == account_sid, _s.c.deleted_at.is_(None))
            .order_by(_s.c.sid)
            .limit(size + 1)
        )
        if token is not None:
            stmt = stmt.where(_s.c.sid > token)
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        shown = rows[:size]
        following = shown[-1].sid if len(rows) > size else None
        items = [views.service(r, self._urls) for r in shown]
        return views.page("services", items, self._urls, size, number, following)

    async def update(self, account_sid: str, sid: str, form: Form) -> dict[str, Any]:
        """Change a service's fields; the others keep their values.

        Raises:
            TwilioError: 20404, or 60200 naming a bad parameter.
        """
        name = form.text("FriendlyName", max_length=MAX_NAME)
        length = form.integer("CodeLength", 4, 10)
        now = utcnow()

        def work(conn: Connection) -> Any:
            row = self.find(conn, account_sid, sid)
            changes: dict[str, Any] = {"options": _options(form, row.options or {})}
            changes["updated_at"] = now
            if name is not None:
                changes["friendly_name"] = name
            if length is not None:
                changes["code_length"] = length
            conn.execute(update(_s).where(_s.c.sid == row.sid).values(**changes))
            return views.Row({**row._asdict(), **changes})

        return views.service(await self._db.transact(work), self._urls)

    async def delete(self, account_sid: str, sid: str) -> None:
        """Delete a service: 404 from then on; its figures stay in the stats.

        Raises:
            TwilioError: 20404.
        """
        now = utcnow()

        def work(conn: Connection) -> None:
            row = self.find(conn, account_sid, sid)
            conn.execute(update(_s).where(_s.c.sid == row.sid).values(deleted_at=now))

        await self._db.transact(work)
