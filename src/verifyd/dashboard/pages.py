"""Rendering the dashboard's pages: one Jinja environment, number formats, the headers.

The pages load nothing from elsewhere and run no script: the CSP allows the
dashboard's own stylesheet and nothing else; the charts are inline SVG drawn with
presentation attributes, which no CSP directive governs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

HERE = Path(__file__).parent

#: Every dashboard answer carries these: no caching, no framing, nothing from elsewhere.
#: ``same-origin`` referrers, not ``no-referrer``: under ``no-referrer`` Chromium sends
#: ``Origin: null`` with a form's POST, and the origin check could not tell it from a
#: sandboxed frame's.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

#: The stylesheet, served at ``/admin/style.css``.
STYLESHEET = (HERE / "admin.css").read_text(encoding="utf-8")


def pct(value: float | None, digits: int = 1) -> str:
    """``0.4321`` as ``43.2 %``; ``None`` as an en dash."""
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def points(value: float | None) -> str:
    """A difference of rates in percentage points, signed."""
    return "–" if value is None else f"{value * 100:+.1f} pp"


def interval(bounds: list[float] | None, unit: str = "pp") -> str:
    """A 95 % interval of a difference, ``[-3.1, +4.0] pp``."""
    if not bounds:
        return "–"
    low, high = bounds
    return f"[{low * 100:+.1f}, {high * 100:+.1f}] {unit}"


def p_value(value: float | None) -> str:
    """A p-value the way a reader takes it in (``< 0.001``)."""
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def seconds(value: float | None) -> str:
    """A duration for people: ``42 s``, ``3 min 20 s``, ``2 h 5 min``."""
    if value is None:
        return "–"
    s = round(value)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def money(value: float | None, currency: str | None) -> str:
    """An amount in the price list's currency."""
    if value is None or currency is None:
        return "–"
    return f"{value:,.4f} {currency}"


def setting(value: Any) -> str:
    """A policy setting as a reader takes it in: ``phone 30, email 70``, not a dict's repr."""
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{key} {setting(item)}" for key, item in value.items())
    return str(value)


def when(value: datetime | str | None) -> str:
    """A moment for people, to the minute, in UTC: ``2026-12-02 22:37 UTC``."""
    if value is None:
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=pct,
        points=points,
        interval=interval,
        p_value=p_value,
        seconds=seconds,
        money=money,
        when=when,
        setting=setting,
    )
    env.filters["num"] = lambda n: "–" if n is None else f"{n:,}"
    return env


_env = _environment()


def render(name: str, **values: Any) -> str:
    """A dashboard page (``templates/<name>``) filled with ``values``."""
    return _env.get_template(name).render(**values)
