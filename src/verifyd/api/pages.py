"""The HTML of the email-link pages: a confirm form (no script) and its outcomes.

The pages are templates (``<locale>/pages/confirm.html``, ``success.html``,
``failure.html``, sharing ``_layout/page.html``), rendered in the locale of the signup
the link belongs to, with ``lang`` and ``dir`` set for right-to-left languages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import HTMLResponse

from verifyd.errors import VerifydError
from verifyd.settings import Settings
from verifyd.texts import shared


def security_headers(settings: Settings) -> dict[str, str]:
    """No caching, no referrer, a CSP that loads nothing from elsewhere.

    ``form-action`` lists the public base URL's origin (the form posts there, even when
    the page was reached under another host name) and the allowed redirect origins:
    Chromium applies it to the 303 that follows a confirmed form, and would refuse one
    to another origin.
    """
    origins = sorted(
        {
            f"{p.scheme}://{p.netloc}"
            for p in map(urlsplit, [settings.public_base_url, *settings.redirect_allowlist])
            if p.scheme and p.netloc
        }
    )
    form_action = " ".join(["'self'", *origins])
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def _page(
    settings: Settings, locale: str | None, name: str, status: int = 200, **values: Any
) -> HTMLResponse:
    page = shared(settings.template_dir).render(
        locale, f"pages/{name}.html", app_name=settings.app_name, **values
    )
    headers = {**security_headers(settings), "Content-Language": page.locale}
    return HTMLResponse(page.text, status_code=status, headers=headers)


def confirm_page(settings: Settings, token: str, locale: str | None = None) -> HTMLResponse:
    """The page a link opens: one button that POSTs the token. Opening it consumes nothing.

    Args:
        settings: The running settings (public base URL, app name, templates).
        token: The link's token, posted back by the form.
        locale: The signup's locale (or the reader's ``Accept-Language``); English if ``None``.
    """
    action = f"{settings.public_base_url}/v1/email/verify"
    return _page(settings, locale, "confirm", action=action, token=token)


def success_page(settings: Settings, locale: str | None = None) -> HTMLResponse:
    """Shown after a confirmation when the signup gave no ``redirect_url``."""
    return _page(settings, locale, "success")


def failure_page(
    settings: Settings, error: VerifydError, locale: str | None = None
) -> HTMLResponse:
    """A confirmation that did not go through, with the problem ``code`` shown.

    A link pressed again after it worked keeps its 409, but the page tells the truth:
    the address is verified and nothing more is needed.
    """
    return _page(
        settings,
        locale,
        "failure",
        error.status,
        code=error.code,
        detail=error.detail,
        verification_status=error.extra.get("verification_status"),
        http_status=error.status,
    )
