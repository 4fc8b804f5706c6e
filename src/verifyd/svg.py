"""Small SVG primitives for the dashboard's charts: escaped, script-free, style-free.

Everything is drawn with presentation attributes (``fill``, ``stroke``…), which no CSP
directive governs, so the charts need neither ``style-src 'unsafe-inline'`` nor any
resource from elsewhere. Every text and attribute value is escaped here, once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from markupsafe import Markup, escape

#: Okabe–Ito colours (safe for colour-blind readers), one per arm, stable by name.
ARM_COLOURS = {
    "phone": "#0072B2",
    "email": "#E69F00",
    "either": "#009E73",
    "both": "#CC79A7",
    "all": "#56B4E9",
}
_SPARE = ("#D55E00", "#999933", "#882255", "#44AA99", "#332288")
INK, MUTED, GRID = "#1b1b1f", "#5d5d68", "#d9d9e0"
FONT = "system-ui, sans-serif"
WIDTH = 640

_ids = itertools.count(1)


def colours(arms: Iterable[str]) -> dict[str, str]:
    """A colour per arm: the arm's own, else the next spare one, in order."""
    spare = iter(_SPARE * 4)
    return {arm: ARM_COLOURS.get(arm) or next(spare) for arm in arms}


def _attrs(attrs: dict[str, object]) -> str:
    parts = []
    for name, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.2f}".rstrip("0").rstrip(".")
        parts.append(f' {name.rstrip("_").replace("_", "-")}="{escape(str(value))}"')
    return "".join(parts)


def el(tag: str, text: str | None = None, **attrs: object) -> str:
    """One element; ``text`` (escaped) as its content, else self-closing.

    Attribute names use ``_`` for ``-`` (``text_anchor``); a trailing ``_`` is dropped
    (``class_``).
    """
    if text is None:
        return f"<{tag}{_attrs(attrs)}/>"
    return f"<{tag}{_attrs(attrs)}>{escape(text)}</{tag}>"


def label(x: float, y: float, text: str, **attrs: object) -> str:
    """A line of text in the charts' font (12 px, ink colour unless told)."""
    values: dict[str, object] = {"font_size": 12, "fill": INK, "font_family": FONT}
    values.update(attrs)
    return el("text", text, x=x, y=y, **values)


def figure(title: str, height: float, body: Iterable[str], desc: str | None = None) -> Markup:
    """The ``<svg>`` around ``body``: 640 wide, scaling with the page, titled for readers."""
    n = next(_ids)
    title_id, desc_id = f"chart-{n}-title", f"chart-{n}-desc"
    labelled = f"{title_id} {desc_id}" if desc else title_id
    head = el("title", title, id=title_id) + (el("desc", desc, id=desc_id) if desc else "")
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="100%" role="img" aria-labelledby="{labelled}">'
        f"{head}{''.join(body)}</svg>"
    )


def message(title: str, text: str) -> Markup:
    """A chart with nothing to draw: its title and one line saying why."""
    return figure(title, 40, [label(10, 24, text, fill=MUTED)])
