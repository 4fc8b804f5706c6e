"""The HTML of the email-link pages: a confirm form (no script) and its outcomes."""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from fastapi.responses import HTMLResponse

from verifyd.errors import VerifydError
from verifyd.settings import Settings

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;"
    "color:#1b1b1f}button{font-size:1.1rem;padding:.7rem 1.4rem;border:0;border-radius:.4rem;"
    "background:#1d5bd6;color:#fff;cursor:pointer}code{background:#f1f1f4;padding:.1rem .3rem}"
)


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


def _page(settings: Settings, title: str, inner: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<meta name=robots content="noindex"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{inner}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=security_headers(settings))


def confirm_page(settings: Settings, token: str) -> HTMLResponse:
    """The page a link opens: one button that POSTs the token. Opening it consumes nothing."""
    action = f"{settings.public_base_url}/v1/email/verify"
    inner = (
        "<h1>Confirm your email address</h1>"
        "<p>Press the button to finish signing up.</p>"
        f'<form method=post action="{escape(action)}">'
        f'<input type=hidden name=token value="{escape(token)}">'
        "<button type=submit id=confirm>Confirm my email</button></form>"
    )
    return _page(settings, "Confirm your email address", inner)


def success_page(settings: Settings) -> HTMLResponse:
    """Shown after a confirmation when the signup gave no ``redirect_url``."""
    inner = (
        '<h1 id=result data-status="verified">Email confirmed</h1>'
        "<p>Your email address is verified. You can close this page.</p>"
    )
    return _page(settings, "Email confirmed", inner)


def failure_page(settings: Settings, error: VerifydError) -> HTMLResponse:
    """A confirmation that did not go through, with the problem ``code`` shown.

    A link pressed again after it worked keeps its 409, but the page tells the truth:
    the address is verified and nothing more is needed.
    """
    code = escape(error.code)
    if error.extra.get("verification_status") == "approved":
        inner = (
            f'<h1 id=result data-code="{code}" data-status="verified">Email already confirmed</h1>'
            "<p>This address is already verified: this link was used before. "
            "There is nothing more to do; you can close this page.</p>"
            f"<p>Reason: <code>{code}</code></p>"
        )
        return _page(settings, "Email already confirmed", inner, error.status)
    inner = (
        f'<h1 id=result data-code="{code}">This link cannot be used</h1>'
        f"<p>{escape(error.detail)}.</p><p>Reason: <code>{code}</code></p>"
        "<p>Go back to the app and ask for a new link.</p>"
    )
    return _page(settings, "Link not valid", inner, error.status)
