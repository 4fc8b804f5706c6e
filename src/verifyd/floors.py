"""Production floors: what production refuses to start with, and what it warns about.

Development runs with anything, so a laptop needs no configuration; production
refuses settings that would make the service unsafe however it is deployed. Kept
apart from ``settings.py`` so the list of floors reads in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from verifyd.settings import ConfigurationError

if TYPE_CHECKING:
    from verifyd.settings import Settings


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
    if len(key) < 32:
        problems.append("VERIFYD_SECRET_KEY must be set (32+ characters)")
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
