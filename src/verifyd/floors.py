"""Production floors: what production refuses to start with, and what it warns about.

Development runs with anything, so a laptop needs no configuration. Production
**refuses** settings that make the service unsafe however it is deployed (sandbox
on, a development provider, a guessable secret, no HTTPS address of its own), and
**warns** about settings that are legitimate somewhere but weaken a defence below
its default (a looser guess bound, fewer blocked number types, plaintext to a
relay): those are logged at start on ``verifyd.floors`` and exposed as
``verifyd_config_warnings{setting=...}`` in ``/metrics``, so an alert can catch
a configuration that drifted. Kept apart from ``settings.py`` so the floors read
in one place.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from verifyd.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from collections.abc import Hashable

log = logging.getLogger("verifyd.floors")

#: The shortest secret production accepts, in characters.
SECRET_MIN_LENGTH = 32
#: The least estimated entropy (bits) production accepts in a secret: see :func:`secret_bits`.
SECRET_MIN_BITS = 128


@dataclass(frozen=True)
class Floor:
    """A setting whose default is a defence: moving it in ``direction`` weakens it.

    The default compared against is the field's own default in :class:`Settings`, so
    the two cannot drift apart. A new defence joins the table with one line.

    Attributes:
        field: The :class:`Settings` field (``VERIFYD_<FIELD>`` in the environment).
        direction: ``higher`` (a limit raised), ``lower`` (a wait shortened) or
            ``fewer`` (a list missing entries of its default).
        defence: What the setting defends, for the warning.
    """

    field: str
    direction: Literal["higher", "lower", "fewer"]
    defence: str


#: Settings that bound guessing or SMS pumping. ``sandbox_limit_multiplier`` is not
#: here: it applies to sandbox destinations only, and production refuses the sandbox.
FLOORS: tuple[Floor, ...] = (
    Floor("guess_budget_per_day", "higher", "the guess bound per destination"),
    Floor("sms_max_checks", "higher", "the guesses one code allows"),
    Floor("sends_per_destination_per_hour", "higher", "SMS pumping to one number"),
    Floor("sms_resend_cooldown_seconds", "lower", "SMS pumping by resends"),
    Floor("signups_per_ip_per_hour", "higher", "signups (and sends) per client address"),
    Floor("checks_per_ip_per_minute", "higher", "guesses per client address"),
    Floor("admin_login_attempts_per_ip", "higher", "admin key guessing per client address"),
    Floor("blocked_number_types", "fewer", "SMS pumping to premium and non-mobile numbers"),
    Floor("guess_backoff_base_seconds", "lower", "the guess bound per destination"),
    Floor("guess_backoff_cap_seconds", "lower", "the guess bound per destination"),
    Floor("send_backoff_base_seconds", "lower", "SMS pumping to one number"),
    Floor("send_backoff_cap_seconds", "lower", "SMS pumping to one number"),
    Floor("blocked_regions", "fewer", "SMS pumping to satellite and international networks"),
    Floor("sms_prefix_tail_digits", "lower", "the SMS budget per number prefix"),
    Floor("sms_budget_per_prefix_per_hour", "higher", "SMS pumping to one number prefix"),
    Floor("sms_budget_per_country_per_hour", "higher", "SMS pumping to one country"),
    Floor("sms_budget_per_day", "higher", "the daily SMS bill"),
    Floor("sms_breaker_min_sends", "higher", "the SMS-pumping breaker per prefix"),
    Floor("sms_breaker_country_min_sends", "higher", "the SMS-pumping breaker per country"),
    Floor("sms_breaker_min_verified_percent", "lower", "the SMS-pumping breaker"),
    Floor("sms_breaker_hold_seconds", "lower", "the SMS-pumping breaker"),
)


@dataclass(frozen=True)
class ConfigWarning:
    """One setting production starts with, but that weakens a defence.

    Attributes:
        setting: The environment variable (``VERIFYD_GUESS_BUDGET_PER_DAY``): the
            ``setting`` label of ``verifyd_config_warnings``.
        message: What it weakens, without the value of a secret.
    """

    setting: str
    message: str


def refusals(settings: Settings) -> list[str]:
    """Every reason production cannot start with these settings (empty in development)."""
    if not settings.production:
        return []
    problems = []
    if settings.sandbox_on:
        problems.append("VERIFYD_SANDBOX must be off")
    chosen = {*settings.sms_provider, *settings.email_provider}
    if "console" in chosen:
        problems.append("the console provider is for development only")
    if "sandbox" in chosen:
        # It keeps codes in clear: for sandbox destinations, in sandbox mode, only.
        problems.append("the sandbox provider is for sandbox destinations only")
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    weak = secret_problem(key)
    if weak is not None:
        problems.append(weak)
    url = public_base_url_problem(settings)
    if url is not None:
        problems.append(url)
    if settings.sandbox_fixed_code:
        problems.append("VERIFYD_SANDBOX_FIXED_CODE is sandbox-only")
    return problems


def check(settings: Settings) -> None:
    """Refuse configurations that must never run in production.

    Raises:
        ConfigurationError: naming every refusal at once (see :func:`refusals`).
    """
    problems = refusals(settings)
    if problems:
        raise ConfigurationError("production mode: " + "; ".join(problems))


def secret_problem(key: str) -> str | None:
    """Why ``key`` is too weak a server secret for production, or ``None``.

    It must have :data:`SECRET_MIN_LENGTH` characters and :func:`secret_bits` of at
    least :data:`SECRET_MIN_BITS`. The message never quotes the key.
    """
    advice = "generate one with `openssl rand -hex 32`"
    if not key:
        return f"VERIFYD_SECRET_KEY must be set ({SECRET_MIN_LENGTH}+ random characters; {advice})"
    if len(key) < SECRET_MIN_LENGTH:
        return (
            f"VERIFYD_SECRET_KEY must be set to {SECRET_MIN_LENGTH}+ characters "
            f"(it has {len(key)}; {advice})"
        )
    bits = secret_bits(key)
    if bits < SECRET_MIN_BITS:
        return (
            f"VERIFYD_SECRET_KEY has too little entropy (estimated {bits:.0f} bits, "
            f"at least {SECRET_MIN_BITS} needed: repeated characters or a pattern?); {advice}"
        )
    return None


def secret_bits(key: str) -> float:
    """A conservative estimate of a secret's entropy in bits.

    The key is first reduced to what an attacker would have to guess: runs of one
    character collapse to one (``zzzz`` -> ``z``), and a key that repeats a block
    keeps the block once (``abcabcab`` -> ``abc``). The estimate is the block's
    length times the lower of two Shannon entropies, measured on the block itself:
    of its characters (never more than log2 of the distinct characters, so a short
    alphabet scores low), and of the steps between neighbouring characters (so
    ``0123…`` and ``abcd…`` score near zero). Random keys score well above 128 bits:
    ``openssl rand -hex 32`` about 240, ``secrets.token_urlsafe(32)`` and
    ``openssl rand -base64 32`` over 200. It catches placeholders and patterns, not
    a phrase someone made up: generate the key.
    """
    collapsed = "".join(c for i, c in enumerate(key) if i == 0 or c != key[i - 1])
    block = collapsed[: _period(collapsed)]
    steps = [ord(b) - ord(a) for a, b in zip(block, block[1:], strict=False)]
    return len(block) * min(_shannon(block), _shannon(steps))


def _shannon(items: Sequence[Hashable]) -> float:
    """Bits per item of the items' own frequency distribution."""
    n = len(items)
    if n == 0:
        return 0.0
    return max(0.0, -sum(c / n * math.log2(c / n) for c in Counter(items).values()))


def _period(text: str) -> int:
    """The shortest p with ``text[i] == text[i + p]`` throughout (KMP's failure function)."""
    if not text:
        return 0
    border = [0] * len(text)
    for i in range(1, len(text)):
        k = border[i - 1]
        while k and text[i] != text[k]:
            k = border[k - 1]
        if text[i] == text[k]:
            k += 1
        border[i] = k
    return len(text) - border[-1]


def public_base_url_problem(settings: Settings) -> str | None:
    """Why the public base URL cannot serve production, or ``None``.

    Links in emails and the redirect checks are built on it: left at its default
    (``http://127.0.0.1:8000``), every link would point at the server's own loopback,
    and an ``http://`` one would carry link tokens in clear.
    """
    default = Settings.model_fields["public_base_url"].default
    if settings.public_base_url == default.rstrip("/"):
        return (
            f"VERIFYD_PUBLIC_BASE_URL must be set (it is the default {default}; "
            "give the https:// address users reach)"
        )
    parts = urlsplit(settings.public_base_url)
    if parts.scheme != "https" or not parts.hostname:
        return "VERIFYD_PUBLIC_BASE_URL must be an https:// URL with a host"
    return None


def warnings(settings: Settings) -> list[ConfigWarning]:
    """The settings production starts with that weaken a defence (none in development)."""
    if not settings.production:
        return []
    found = [w for floor in FLOORS if (w := _weakened(settings, floor)) is not None]
    if "smtp" in settings.email_provider and settings.smtp_tls == "none":
        found.append(
            ConfigWarning(
                "VERIFYD_SMTP_TLS",
                "VERIFYD_SMTP_TLS=none: emails (with their links) reach the relay in plaintext",
            )
        )
    gateways = (
        ("twilio", settings.twilio_base_url, "VERIFYD_TWILIO_BASE_URL"),
        ("webhook", settings.webhook_url, "VERIFYD_WEBHOOK_URL"),
    )
    chosen = {*settings.sms_provider, *settings.email_provider}
    for provider, url, setting in gateways:
        if provider in chosen and (url or "").lower().startswith("http://"):
            message = f"{setting} is http://: codes reach the gateway in plaintext"
            found.append(ConfigWarning(setting, message))
    return found


def _weakened(settings: Settings, floor: Floor) -> ConfigWarning | None:
    setting = f"VERIFYD_{floor.field.upper()}"
    default = Settings.model_fields[floor.field].get_default(call_default_factory=True)
    value = getattr(settings, floor.field)
    if floor.direction == "fewer":
        missing = [entry for entry in default if entry not in value]
        if not missing:
            return None
        return ConfigWarning(
            setting, f"{setting} leaves out {', '.join(missing)}: weakens {floor.defence}"
        )
    if value > default if floor.direction == "higher" else value < default:
        side = "above" if floor.direction == "higher" else "below"
        return ConfigWarning(
            setting, f"{setting}={value} is {side} its default {default}: weakens {floor.defence}"
        )
    return None


def announce(settings: Settings) -> list[ConfigWarning]:
    """Log every warning on ``verifyd.floors`` (once per start, by ``serve`` and ``worker``).

    Returns:
        The warnings logged.
    """
    found = warnings(settings)
    for warning in found:
        log.warning("production setting weakens a defence: %s", warning.message)
    return found
