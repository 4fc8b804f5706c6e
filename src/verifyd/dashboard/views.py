"""What the dashboard's pages show, built from the stats report and the policy documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from verifyd import charts

#: The compared rates, in the order the table shows them: (key, what a reader calls it).
RATES = (
    ("conversion", "Conversion (verified ÷ signups)"),
    ("suspect_rate", "Suspect signups"),
    ("fake_rate", "Confirmed fake among verified"),
)


def chart_set(arms: Sequence[Mapping[str, Any]], currency: str | None) -> dict[str, Markup]:
    """Every chart of a set of arms (a version's, or the two sides of a comparison)."""
    return {
        "funnel": charts.funnel(arms),
        "time_to_verify": charts.time_to_verify(arms),
        "cost": charts.cost_per_verified(arms, currency),
        "conversion": charts.rates(arms, "conversion"),
        "suspect": charts.rates(arms, "suspect"),
        "fake": charts.rates(arms, "fake"),
    }


def rate_rows(comparison: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The differences of a comparison, one row per compared rate."""
    rows = []
    for key, label in RATES:
        entry = comparison.get(key)
        if not entry:
            continue
        always = entry.get("always_valid") or {}
        rows.append(
            {
                "label": label,
                "a": entry["a"],
                "b": entry["b"],
                "n_a": entry["n_a"],
                "n_b": entry["n_b"],
                "difference": entry["difference"],
                "interval": entry["interval"],
                "p_value": entry["p_value"],
                "always_interval": always.get("interval"),
                "always_p": always.get("p_value"),
                "decided": entry["decided"],
                "verdict": entry["verdict"],
            }
        )
    return rows


def version_view(version: Mapping[str, Any], currency: str | None) -> dict[str, Any]:
    """One policy version's section: its arms, their charts and, for a split, the verdict."""
    arms = version["arms"]
    comparison = version.get("comparison")
    return {
        "policy_version": version["policy_version"],
        "mode": version["mode"],
        "weights": version["weights"],
        "experiment": version["experiment"],
        "arms": arms,
        "signups": sum(a["signups"] for a in arms),
        "charts": chart_set(arms, currency),
        "comparison": comparison,
        "rows": rate_rows(comparison) if comparison else [],
    }


def compare_view(compare: Mapping[str, Any], currency: str | None) -> dict[str, Any]:
    """Two versions (or version:arm) side by side: ``b - a``, charted under their labels."""
    sides = [
        {**compare["a_summary"], "arm": compare["a"]},
        {**compare["b_summary"], "arm": compare["b"]},
    ]
    return {
        "a": compare["a"],
        "b": compare["b"],
        "arms": sides,
        "charts": chart_set(sides, currency),
        "comparison": compare,
        "rows": rate_rows(compare),
    }
