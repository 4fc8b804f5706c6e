"""Phone numbers and email addresses: sandbox recognition, validation, masking."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType

from verifyd.disposable import DisposableDomains
from verifyd.errors import InvalidRequest
from verifyd.settings import Settings

#: The fictional numbers that never reach a phone: NANP +1 NXX 555-0100…0199 and the
#: UK drama range +44 7700 900000…900999; and the reserved email domain example.test.
BUILTIN_SANDBOX_PATTERNS = (
    r"^\+1[2-9]\d{2}55501\d{2}$",
    r"^\+447700900\d{3}$",
    r"^[^@]+@example\.test$",
)

_FICTIONAL = [re.compile(p, re.ASCII) for p in BUILTIN_SANDBOX_PATTERNS[:2]]
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$", re.ASCII)
_NUMBER_TYPE_NAMES = {
    value: name for name, value in vars(PhoneNumberType).items() if isinstance(value, int)
}
_PHONE_PUNCTUATION = re.compile(r"[\s\-().\u00a0]")
#: Number types that reach a mobile phone; any other type not blocked flags ``non_mobile``.
_MOBILE_TYPES = {"MOBILE", "FIXED_LINE_OR_MOBILE"}
#: Never blocked whatever the settings say: most of North America is typed so.
_NEVER_BLOCKED = {"FIXED_LINE_OR_MOBILE"}


@dataclass(frozen=True)
class Destination:
    """A normalised phone (E.164) or email, and what was learnt checking it."""

    kind: str  # phone | email
    value: str
    sandbox: bool
    flags: tuple[str, ...] = field(default=())


class Destinations:
    """Parses destinations under the settings' sandbox, country and number-type rules.

    Args:
        settings: The running settings.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        patterns = (*BUILTIN_SANDBOX_PATTERNS, *settings.sandbox_patterns)
        # ASCII: "\d" must not match other scripts' digits (one number, one spelling).
        self._sandbox = [re.compile(p, re.ASCII) for p in patterns] if settings.sandbox_on else []
        self._blocked = set(settings.blocked_number_types) - _NEVER_BLOCKED
        self._blocked_regions = set(settings.blocked_regions)
        self._countries = set(settings.allowed_countries)
        self._disposable = DisposableDomains(settings)

    def is_sandbox(self, value: str) -> bool:
        """Whether a normalised destination is a sandbox destination (sandbox mode only)."""
        return any(p.search(value) for p in self._sandbox)

    def phone(self, raw: str) -> Destination:
        """Normalise a phone number to E.164.

        Raises:
            InvalidRequest: ``invalid_phone``, ``country_not_allowed`` or
                ``number_type_blocked``, on the field ``phone``.
        """
        compact = _PHONE_PUNCTUATION.sub("", unicodedata.normalize("NFKC", raw))
        if compact.startswith("00"):
            compact = "+" + compact[2:]
        if self.is_sandbox(compact):
            return Destination("phone", compact, sandbox=True)
        try:
            number = phonenumbers.parse(raw, self._settings.default_region)
        except phonenumbers.NumberParseException as exc:
            raise InvalidRequest.field(
                "invalid_phone", "phone", "not a phone number in international format (+CC…)"
            ) from exc
        if not phonenumbers.is_valid_number(number):
            raise InvalidRequest.field("invalid_phone", "phone", "not a valid phone number")
        value = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if any(p.search(value) for p in _FICTIONAL):
            # phonenumbers rates 555-01xx as valid: with the sandbox off they are refused,
            # never queued for a real SMS provider.
            raise InvalidRequest.field(
                "invalid_phone", "phone", "fictional numbers cannot receive messages"
            )
        region = phonenumbers.region_code_for_number(number) or ""
        if self._countries and region not in self._countries:
            raise InvalidRequest.field(
                "country_not_allowed",
                "phone",
                f"numbers from {region or 'this region'} are not accepted",
            )
        if region in self._blocked_regions:
            # Region ``001``: satellite and international networks, typed ``MOBILE``.
            raise InvalidRequest.field(
                "number_type_blocked",
                "phone",
                "satellite and international-network numbers cannot receive codes"
                if region == "001"
                else f"numbers from {region} cannot receive codes",
            )
        type_name = _NUMBER_TYPE_NAMES.get(phonenumbers.number_type(number), "UNKNOWN")
        if type_name in self._blocked:
            raise InvalidRequest.field(
                "number_type_blocked", "phone", f"{type_name.lower()} numbers cannot receive codes"
            )
        if type_name == "VOIP":
            flags: tuple[str, ...] = ("voip",)
        else:
            flags = () if type_name in _MOBILE_TYPES else ("non_mobile",)
        return Destination("phone", value, sandbox=False, flags=flags)

    def email(self, raw: str) -> Destination:
        """Normalise an email address (no DNS lookups).

        Raises:
            InvalidRequest: ``invalid_email`` on the field ``email``.
        """
        candidate = raw.strip()
        sandbox = self.is_sandbox(candidate.lower())
        try:
            result = validate_email(candidate, check_deliverability=False, test_environment=sandbox)
        except EmailNotValidError as exc:
            # A sandbox pattern may name any special-use domain (``.invalid``,
            # ``localhost``): only the domain is relaxed, the local part obeys the
            # same rules as any address's.
            relaxed = _special_use_sandbox(candidate) if sandbox else None
            if relaxed is None:
                raise InvalidRequest.field("invalid_email", "email", str(exc)) from exc
            return Destination("email", relaxed, sandbox=True)
        value = result.normalized.lower()
        if sandbox or self.is_sandbox(value):
            return Destination("email", value, sandbox=True)
        flags = ("disposable_email",) if self._disposable.is_disposable(value) else ()
        return Destination("email", value, sandbox=False, flags=flags)


def _special_use_sandbox(candidate: str) -> str | None:
    """A sandbox address on a domain email-validator refuses, normalised; else ``None``.

    The local part is checked by email-validator itself (on a stand-in domain), so a
    sandbox address is refused for exactly what a real one would be.
    """
    local, at, domain = candidate.rpartition("@")
    domain = domain.lower()
    if not at or not _HOSTNAME.match(domain):
        return None
    try:
        checked = validate_email(f"{local}@example.com", check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{checked.local_part}@{domain}".lower()


def mask(kind: str, value: str) -> str:
    """Mask a destination for display: ``+1 202-555-••42``, ``a•••@example.test``."""
    if kind == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}•••@{domain}"
    try:
        shown = phonenumbers.format_number(
            phonenumbers.parse(value), phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
    except phonenumbers.NumberParseException:
        shown = value
    chars = list(shown)
    digits = [i for i, c in enumerate(chars) if c.isdigit()]
    for i in digits[-4:-2]:
        chars[i] = "•"
    return "".join(chars)
