"""How ``verifyd report`` draws the stats: a table for an 80-column terminal, or CSV."""

from __future__ import annotations

import csv
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

WIDTH = 80

#: How a table row reads its cell from an arm's summary and the currency.
Cell = Callable[[dict[str, Any], str], str]


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min" if value < 3600 else f"{value / 3600:.1f} h"


def _money(value: float | None, currency: str) -> str:
    return "-" if value is None else f"{value:,.4f} {currency}"


def _f2(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _with_rate(r: dict[str, Any]) -> str:
    return f"{r['count']:,} ({_pct(r['rate'])})" if r["of"] else f"{r['count']:,}"


def _interval(r: dict[str, Any]) -> str:
    if r["interval"] is None:
        return "-"
    low, high = r["interval"]
    return f"{r['rate'] * 100:.1f} [{low * 100:.1f}, {high * 100:.1f}]"


#: The message rows of an arm's and of a Verify service's tables (the same figures).
MESSAGE_ROWS: tuple[tuple[str, Cell], ...] = (
    ("messages sent", lambda a, _: _n(a["messages"]["sent"])),
    ("resends", lambda a, _: _n(a["messages"]["resends"])),
    ("delivered", lambda a, _: _n(a["messages"]["delivered"])),
    ("failed", lambda a, _: _n(a["messages"]["failed"])),
)

ROWS: tuple[tuple[str, Cell], ...] = (
    ("exposures", lambda a, _: _n(a["exposures"])),
    ("signups", lambda a, _: _n(a["signups"])),
    ("signups / exposure", lambda a, _: _pct(a["signups_per_exposure"])),
    ("blocked", lambda a, _: _n(a["blocked"]["total"])),
    ("suspect", lambda a, _: _with_rate(a["suspect"])),
    *MESSAGE_ROWS,
    ("verified", lambda a, _: _n(a["conversion"]["count"])),
    ("conversion % [95 %]", lambda a, _: _interval(a["conversion"])),
    ("time to verify p50", lambda a, _: _seconds(a["time_to_verify"]["p50"])),
    ("time to verify p90", lambda a, _: _seconds(a["time_to_verify"]["p90"])),
    ("checks per approval", lambda a, _: _f2(a["checks"]["per_approval"])),
    ("link views unconfirmed", lambda a, _: _n(a["link_views"]["unconfirmed"])),
    ("cost total", lambda a, cur: _money(a["cost"]["total"], cur)),
    ("cost per verified", lambda a, cur: _money(a["cost"]["per_verified"], cur)),
    ("fake labelled", lambda a, _: _n(a["labels"]["fake"])),
    ("fake among verified", lambda a, _: _with_rate(a["labels"]["fake_rate"])),
)


#: The rows of a Verify service's table, one column per channel and one for all of them.
SERVICE_ROWS: tuple[tuple[str, Cell], ...] = (
    ("started", lambda f, _: _n(f["started"])),
    ("approved", lambda f, _: _n(f["approved"])),
    ("conversion % [95 %]", lambda f, _: _interval(f["conversion"])),
    ("max attempts", lambda f, _: _n(f["max_attempts"])),
    ("canceled", lambda f, _: _n(f["canceled"])),
    ("expired", lambda f, _: _n(f["expired"])),
    ("pending", lambda f, _: _n(f["pending"])),
    *MESSAGE_ROWS,
    ("checks incorrect", lambda f, _: _n(f["checks"]["incorrect"])),
    ("checks per approval", lambda f, _: _f2(f["checks"]["per_approval"])),
    ("cost total", lambda f, cur: _money(f["cost"]["total"], cur)),
    ("cost per approved", lambda f, cur: _money(f["cost"]["per_approved"], cur)),
)


def _wrap(text: str, indent: str = "") -> list[str]:
    # A no-break space (which textwrap does not break at) keeps "3.1 %" on one line.
    lines = textwrap.wrap(
        text.replace(" %", "\xa0%"),
        WIDTH,
        initial_indent=indent,
        subsequent_indent=" " * max(2, len(indent)),
    )
    return [line.replace("\xa0", " ") for line in lines]


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows under a header, first column left, the rest right; split into blocks of columns
    that fit in 80 characters (many arms)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for i in range(1, len(header)):
        if blocks[-1] and used + 2 + widths[i] > WIDTH:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(i)
        used += 2 + widths[i]
    lines: list[str] = []
    for cols in blocks:
        for r in [header, *rows]:
            cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in cols]
            lines.append("  ".join(cells).rstrip())
        lines.append("")
    return lines


def _arms(
    labels: list[str],
    summaries: list[dict[str, Any]],
    currency: str,
    cells: tuple[tuple[str, Cell], ...] = ROWS,
) -> list[str]:
    rows = [[name] + [cell(s, currency) for s in summaries] for name, cell in cells]
    return _grid(["", *labels], rows)


def _service(s: dict[str, Any], currency: str) -> list[str]:
    """One Verify service: its name, a column per channel (and ``all``), what has no channel."""
    text = f"Verify service {s['friendly_name'] or '(unknown)'} ({s['sid'] or 'no sid'})"
    if s["deleted_at"] is not None:
        text += f", deleted {_iso(s['deleted_at'])}"
    lines = [*_wrap(text), ""]
    columns, labels = list(s["channels"]), [c["channel"] for c in s["channels"]]
    if len(columns) > 1:
        columns.append(s["total"])
        labels.append("all")
    lines += _arms(labels, columns, currency, SERVICE_ROWS)
    ttv, blocked = s["time_to_verify"], s["blocked"]
    if ttv["count"]:
        text = f"Time to verify: p50 {_seconds(ttv['p50'])}, p90 {_seconds(ttv['p90'])}."
        lines += _wrap(text, "- ")
    if blocked["total"]:
        reasons = ", ".join(f"{r} {n:,}" for r, n in blocked["by_reason"].items())
        lines += _wrap(f"Refused: {blocked['total']:,} ({reasons}).", "- ")
    return [*lines, ""]


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


#: The compared rates, as the comparison keys them and as the table names them.
METRICS = (
    ("conversion", "conversion"),
    ("suspect_rate", "suspect rate"),
    ("fake_rate", "fake rate"),
)


def _comparison(c: dict[str, Any]) -> list[str]:
    lines = _wrap(f"{c['b']} vs {c['a']} (differences are {c['b']} - {c['a']}, in points):")
    header = ["", "difference [95 %]", "p", "always-valid p", "decided"]
    rows = []
    for key, name in METRICS:
        m = c[key]
        diff = "-"
        if m["difference"] is not None:
            low, high = m["interval"]
            diff = f"{m['difference'] * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]"
        valid = m["always_valid"]["p_value"] if m["always_valid"] else None
        rows.append([name, diff, _p(m["p_value"]), _p(valid), "yes" if m["decided"] else "no"])
    lines += _grid(header, rows)
    ratio = c.get("sample_ratio")
    if ratio is not None:
        observed = ", ".join(f"{arm} {n:,}" for arm, n in ratio["observed"].items())
        weights = "/".join(str(w) for w in ratio["weights"].values())
        state = "MISMATCH" if ratio["mismatch"] else "ok"
        text = (
            f"Sample ratio ({ratio['basis']}): {observed} for weights {weights}, "
            f"p {'< 0.001' if ratio['p_value'] < 0.001 else '= ' + _p(ratio['p_value'])}: {state}."
        )
        lines += [*_wrap(text), ""]
    for text in c["verdict"]:
        lines += _wrap(text, "- ")
    return [*lines, ""]


def _version_header(v: dict[str, Any]) -> list[str]:
    text = f"Policy version {v['policy_version']}: {v['mode'] or 'unknown mode'}"
    if v["weights"]:
        text += " (" + ", ".join(f"{arm} {w}" for arm, w in v["weights"].items()) + ")"
    if v["changed_at"] is not None:
        text += f", changed {_iso(v['changed_at'])}"
    lines = _wrap(text)
    if v["experiment"]:
        lines += _wrap(f"experiment {v['experiment']}", "  ")
    return [*lines, ""]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def table(answer: dict[str, Any]) -> str:
    """The report as text for a terminal: no line longer than 80 characters."""
    currency = answer["currency"] or ""
    compared = answer.get("compare")
    has_compare = compared is not None and any(
        compared[side]["signups"] or compared[side]["exposures"]
        for side in ("a_summary", "b_summary")
    )
    window = "".join(
        f" {word} {_iso(answer[word])}" for word in ("since", "until") if answer[word] is not None
    )
    services = answer.get("verify_services") or []
    if not answer["versions"] and not has_compare and not services:
        return f"Nothing to report yet: no exposures or signups{window or ' so far'}.\n"
    lines = _wrap(f"Signups{window or ' of all time'}; costs in {currency or 'no prices set'}.")
    lines.append("")
    for v in answer["versions"]:
        lines += _version_header(v)
        # Columns in the weights' order, as the comparison reads them (a, then b).
        order = list(v["weights"] or {})
        arms = sorted(
            v["arms"],
            key=lambda a: (order.index(a["arm"]) if a["arm"] in order else len(order), a["arm"]),
        )
        lines += _arms([a["arm"] for a in arms], arms, currency)
        if v.get("comparison"):
            lines += _comparison(v["comparison"])
    if has_compare and compared is not None:
        lines += [*_wrap(f"Compare {compared['a']} with {compared['b']}"), ""]
        summaries = [compared["a_summary"], compared["b_summary"]]
        lines += _arms([compared["a"], compared["b"]], summaries, currency)
        lines += _comparison(compared)
    if services:
        text = f"Verify services: verifications started through /v2{window or ' of all time'}."
        lines += [*_wrap(text), ""]
    for service in services:
        lines += _service(service, currency)
    return "\n".join(lines).rstrip("\n") + "\n"


#: The CSV's columns after policy_version, mode and arm: name, then path in the summary
#: (the currency is the report's).
CSV_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (name, tuple(path.split("."))) for name, path in (
        ("exposures", "exposures"), ("signups", "signups"),
        ("exposed_signups", "exposed_signups"), ("signups_per_exposure", "signups_per_exposure"),
        ("blocked", "blocked.total"), ("suspect", "suspect.count"),
        ("suspect_rate", "suspect.rate"), ("sent", "messages.sent"),
        ("first_sends", "messages.first_sends"), ("resends", "messages.resends"),
        ("delivered", "messages.delivered"), ("failed", "messages.failed"),
        ("verifications", "verifications.created"), ("approved", "verifications.approved"),
        ("expired", "verifications.expired"), ("locked", "verifications.locked"),
        ("canceled", "verifications.canceled"), ("pending", "verifications.pending"),
        ("verified", "conversion.count"), ("conversion", "conversion.rate"),
        ("ttv_p50_seconds", "time_to_verify.p50"), ("ttv_p90_seconds", "time_to_verify.p90"),
        ("checks_incorrect", "checks.incorrect"), ("checks_per_approval", "checks.per_approval"),
        ("link_views", "link_views.views"), ("link_views_unconfirmed", "link_views.unconfirmed"),
        ("cost_total", "cost.total"), ("cost_per_verified", "cost.per_verified"),
        ("currency", "-"), ("fake_labelled", "labels.fake"),
        ("genuine_labelled", "labels.genuine"), ("fake_verified", "labels.fake_verified"),
        ("fake_rate", "labels.fake_rate.rate"),
    )
)  # fmt: skip


def _dig(summary: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = summary
    for key in path:
        value = value[key]
    return value


def write_csv(answer: dict[str, Any], out: Any) -> None:
    """One row per (policy version, arm), header first; an empty cell is a ``null``."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["policy_version", "mode", "arm", *(name for name, _ in CSV_COLUMNS)])
    for v in answer["versions"]:
        for arm in v["arms"]:
            row = [v["policy_version"], v["mode"] or "", arm["arm"]]
            for name, path in CSV_COLUMNS:
                value = answer["currency"] if name == "currency" else _dig(arm, path)
                row.append("" if value is None else value)
            writer.writerow(row)
