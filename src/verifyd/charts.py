"""The dashboard's charts, drawn as inline SVG from the stats' per-arm summaries.

Each function takes the arms of one comparison (``summarize``'s dicts, see
docs/stats.md) and returns ``Markup`` for a template. Arms share one scale in every
chart, so their bars compare; every series is named in text as well as by colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from verifyd.svg import GRID, MUTED, WIDTH, colours, el, figure, label, message

Arms = Sequence[Mapping[str, Any]]

#: Left margin for stage and arm names; right margin for the value beside a bar.
LEFT, RIGHT = 120, 150
BAR = WIDTH - LEFT - RIGHT
#: Axis ends a rate chart rounds up to, each with the ticks that divide it evenly.
NICE = {0.01: 4, 0.02: 4, 0.05: 5, 0.1: 5, 0.2: 4, 0.25: 5, 0.5: 5, 0.75: 3, 1.0: 4}
#: A rate chart's axis: narrower, to leave room for the rate and interval written out.
RATE_LEFT, RATE_BAR = 90, 330


def pct(rate: float) -> str:
    """``0.4321`` as ``43.2 %``."""
    return f"{rate * 100:.1f} %"


def duration(seconds: float) -> str:
    """A bucket edge or percentile for people: ``45 s``, ``90 s``, ``2 min``, ``4 h``, ``7 d``."""
    if seconds < 120 and seconds % 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _bar(x: float, y: float, length: float, height: float, fill: str) -> str:
    return el("rect", x=x, y=y, width=max(length, 0.0), height=height, fill=fill)


def funnel(arms: Arms) -> Markup:
    """Per arm: exposed, signed up, sent, verified, on one scale, with shares of the first.

    The share is of the arm's exposures when it has any, else of its signups. "Sent" counts
    first sends only: a resend is the same person again, and would let the stage outgrow
    the one before it.
    """
    title = "Funnel per arm: exposed, signed up, sent, verified"
    if not arms:
        return message(title, "no data")
    stages = ("exposed", "signed up", "sent", "verified")
    rows = {
        a["arm"]: (
            a["exposures"],
            a["signups"],
            a["messages"]["first_sends"],
            a["conversion"]["count"],
        )
        for a in arms
    }
    top = max(max(values) for values in rows.values()) or 1
    palette = colours(rows)
    body: list[str] = []
    y = 6.0
    for a in arms:
        arm = a["arm"]
        values = rows[arm]
        base = values[0] or values[1]
        body.append(label(6, y + 12, arm, font_weight="bold", fill=palette[arm]))
        refused = a["blocked"]["total"]
        body.append(
            label(WIDTH - 6, y + 12, f"refused: {refused:,}", fill=MUTED, text_anchor="end")
        )
        y += 18
        for stage, value in zip(stages, values, strict=True):
            length = BAR * value / top
            body.append(label(LEFT - 8, y + 11, stage, text_anchor="end"))
            body.append(_bar(LEFT, y, length, 14, palette[arm]))
            share = f" ({pct(value / base)})" if base and stage != "exposed" else ""
            if stage == "exposed" and not values[0]:
                share = " (no exposures recorded)"
            body.append(label(LEFT + length + 6, y + 11, f"{value:,}{share}"))
            y += 18
        y += 10
    return figure(title, y, body, "Bars share one scale across arms.")


def _bucket_name(le: float | None, previous: float | None) -> str:
    if le is None:
        return f">{duration(previous)}" if previous is not None else "beyond"
    return f"≤{duration(le)}"


def time_to_verify(arms: Arms) -> Markup:
    """The time-to-verify histogram: per bucket, each arm's share of its verified accounts."""
    title = "Time from signup to verified, share of each arm's verified accounts"
    shares: dict[str, dict[float | None, float]] = {}
    for a in arms:
        ttv = a["time_to_verify"]
        total = ttv["count"] or sum(b["count"] for b in ttv["histogram"])
        if total:
            shares[a["arm"]] = {b["le"]: b["count"] / total for b in ttv["histogram"]}
    if not shares:
        return message(title, "no verified accounts yet")
    edges = sorted({le for s in shares.values() for le in s}, key=lambda e: (e is None, e or 0))
    palette = colours(a["arm"] for a in arms)
    top = max(max(s.values()) for s in shares.values())
    left, plot_h, base_y = 44, 150.0, 170.0
    slot = (WIDTH - left - 10) / len(edges)
    bar_w = max(2.0, (slot - 6) / len(shares))
    body = [el("line", x1=left, y1=base_y, x2=WIDTH - 10, y2=base_y, stroke=GRID)]
    for tick in (0.0, top / 2, top):
        y = base_y - plot_h * tick / top
        body.append(label(left - 4, y + 4, pct(tick), text_anchor="end", font_size=10, fill=MUTED))
    previous = None
    for i, le in enumerate(edges):
        x = left + i * slot + 3
        for j, arm in enumerate(shares):
            h = plot_h * shares[arm].get(le, 0.0) / top
            body.append(_bar(x + j * bar_w, base_y - h, bar_w - 1, h, palette[arm]))
        name = _bucket_name(le, previous)
        body.append(
            label(x + (slot - 6) / 2, base_y + 14, name, text_anchor="middle", font_size=10)
        )
        previous = le
    y = base_y + 34
    for a in arms:
        ttv = a["time_to_verify"]
        if a["arm"] not in shares:
            continue
        p50, p90 = ttv["p50"], ttv["p90"]
        text = f"{a['arm']}: median {duration(p50) if p50 is not None else '–'}, "
        text += f"90 % within {duration(p90) if p90 is not None else '–'}"
        body.append(_bar(left, y - 9, 10, 10, palette[a["arm"]]))
        body.append(label(left + 16, y, f"{text} ({ttv['count']:,} verified)"))
        y += 18
    return figure(title, y, body)


def cost_per_verified(arms: Arms, currency: str | None) -> Markup:
    """Per arm, what each verified account cost under the price list."""
    title = "Cost per verified account"
    if currency is None:
        return message(title, "no price list (VERIFYD_PRICES)")
    if not arms:
        return message(title, "no data")
    costs = {a["arm"]: a["cost"]["per_verified"] for a in arms}
    top = max((c for c in costs.values() if c is not None), default=0.0) or 1.0
    palette = colours(costs)
    body: list[str] = []
    y = 8.0
    for arm, cost in costs.items():
        body.append(label(LEFT - 8, y + 13, arm, text_anchor="end"))
        if cost is None:
            body.append(label(LEFT, y + 13, "no verified accounts", fill=MUTED))
        else:
            length = BAR * cost / top
            body.append(_bar(LEFT, y, length, 18, palette[arm]))
            body.append(label(LEFT + length + 6, y + 13, f"{cost:,.4f} {currency}"))
        y += 28
    return figure(title, y + 4, body)


_RATE_TITLES = {
    "conversion": "Conversion: verified ÷ signups, with 95 % intervals",
    "suspect": "Suspect signups, with 95 % intervals",
    "fake": "Confirmed fake among verified accounts, with 95 % intervals",
}


def _rate_of(arm: Mapping[str, Any], which: str) -> Mapping[str, Any]:
    if which == "conversion":
        return arm["conversion"]  # type: ignore[no-any-return]
    if which == "suspect":
        return arm["suspect"]  # type: ignore[no-any-return]
    return arm["labels"]["fake_rate"]  # type: ignore[no-any-return]


def rates(arms: Arms, which: str) -> Markup:
    """Per arm a dot at the rate and a whisker over its 95 % interval, on one axis.

    Args:
        arms: The arms' summaries.
        which: ``conversion``, ``suspect`` or ``fake`` (among verified accounts).

    Raises:
        ValueError: another ``which``.
    """
    if which not in _RATE_TITLES:
        raise ValueError(f"no rate chart {which!r}")
    title = _RATE_TITLES[which]
    if not arms:
        return message(title, "no data")
    found = [(a, _rate_of(a, which)) for a in arms]
    highs = [r["interval"][1] for _, r in found if r["interval"]]
    end = next((n for n in NICE if n >= max(highs, default=0.0) - 1e-12), 1.0)
    palette = colours(a["arm"] for a in arms)
    left, bar = RATE_LEFT, RATE_BAR
    scale = bar / end
    body: list[str] = []
    y = 8.0
    for a, r in found:
        arm = a["arm"]
        body.append(label(left - 8, y + 12, arm, text_anchor="end"))
        unlabelled = which == "fake" and not (a["labels"]["fake"] + a["labels"]["genuine"])
        if r["rate"] is None or unlabelled:
            # Without a single label, 0 fake is no finding: say so rather than draw 0 %.
            none = "no labels yet" if unlabelled else "no data"
            body.append(label(left, y + 12, none, fill=MUTED))
        else:
            low, high = r["interval"]
            x_low, x_high = left + low * scale, left + high * scale
            colour = palette[arm]
            body.append(
                el("line", x1=x_low, y1=y + 8, x2=x_high, y2=y + 8, stroke=colour, stroke_width=2)
            )
            for x in (x_low, x_high):
                body.append(
                    el("line", x1=x, y1=y + 3, x2=x, y2=y + 13, stroke=colour, stroke_width=2)
                )
            body.append(el("circle", cx=left + r["rate"] * scale, cy=y + 8, r=5, fill=colour))
            text = f"{pct(r['rate'])} [{pct(low)}, {pct(high)}] · n = {r['of']:,}"
            body.append(label(left + bar + 10, y + 12, text, font_size=11))
        y += 24
    body.append(el("line", x1=left, y1=y, x2=left + bar, y2=y, stroke=GRID))
    steps = NICE[end]
    for i in range(steps + 1):
        x = left + bar * i / steps
        body.append(el("line", x1=x, y1=y, x2=x, y2=y + 4, stroke=GRID))
        tick = end * i / steps
        body.append(
            label(x, y + 16, f"{tick * 100:.4g} %", text_anchor="middle", font_size=10, fill=MUTED)
        )
    return figure(title, y + 24, body)
