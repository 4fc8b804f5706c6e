"""Comparisons between two arms (a ``split`` experiment) or two policy versions.

For conversion, the suspect rate and the confirmed-fake rate among verified accounts:
the difference with its fixed-horizon 95 % interval and p-value (two-proportion
test), an always-valid interval and p-value (a mixture sequential test, safe to read
every day), the sample a decision needs and the power so far, and a verdict in plain
words. A ``split`` adds the sample-ratio-mismatch check of its exposures (or, without
exposures, its signups) against the weights.
"""

from __future__ import annotations

from typing import Any

from verifyd.significance import srm
from verifyd.verdicts import verdict
from verifyd.verify_models import STATS_VERSION

#: The rates compared: (key, the phrase a verdict uses, where the summary keeps the rate).
METRICS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("conversion", "conversion", ("conversion",)),
    ("suspect_rate", "suspect rate", ("suspect",)),
    ("fake_rate", "confirmed-fake rate among verified accounts", ("labels", "fake_rate")),
)


def _pick(summary: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        summary = summary[key]
    return summary


def compare(a: str, sa: dict[str, Any], b: str, sb: dict[str, Any]) -> dict[str, Any]:
    """Compare arm (or version) ``b`` with ``a``; differences are ``b - a``."""
    out: dict[str, Any] = {"a": a, "b": b}
    texts = []
    for key, phrase, path in METRICS:
        ra, rb = _pick(sa, path), _pick(sb, path)
        v = verdict(phrase, a, b, ra["count"], ra["of"], rb["count"], rb["of"])
        d, s = v.difference, v.sequential
        out[key] = {
            "a": ra["rate"],
            "b": rb["rate"],
            "n_a": ra["of"],
            "n_b": rb["of"],
            "difference": d.diff if d else None,
            "interval": [d.low, d.high] if d else None,
            "p_value": d.p_value if d else None,
            "always_valid": {"interval": [s.low, s.high], "p_value": s.p_value} if s else None,
            "required_per_arm": v.required_per_arm,
            "power": v.power,
            "decided": v.decided,
            "verdict": v.text,
        }
        if key != "fake_rate" or ra["count"] or rb["count"]:  # no labels: nothing to say
            texts.append(v.text)
    ta, tb = sa["time_to_verify"]["p50"], sb["time_to_verify"]["p50"]
    out["time_to_verify_p50"] = {"a": ta, "b": tb}
    if ta is not None and tb is not None and round(ta) != round(tb):
        faster, slower = (a, b) if ta < tb else (b, a)
        texts.append(
            f"{faster} verifies faster: median {min(ta, tb):,.0f} s vs {max(ta, tb):,.0f} s."
        )
    ca, cb = sa["cost"]["per_verified"], sb["cost"]["per_verified"]
    out["cost_per_verified"] = {"a": ca, "b": cb}
    if ca is not None and cb is not None and ca != cb:
        cheaper = a if ca < cb else b
        texts.append(
            f"{cheaper} costs less per verified account: {min(ca, cb):.4f} vs {max(ca, cb):.4f}."
        )
    out["verdict"] = texts
    return out


def compare_arms(
    by_arm: dict[str, dict[str, Any]], weights: dict[str, int]
) -> dict[str, Any] | None:
    """A ``split`` version's comparison: its first two weighted arms, and the SRM check.

    Args:
        by_arm: Every weighted arm's summary (an arm nobody reached has an empty one).
        weights: The version's weights.
    """
    order = [arm for arm in weights if weights[arm] > 0]
    if len(order) < 2:
        return None
    a, b = order[0], order[1]
    out = compare(a, by_arm[a], b, by_arm[b])
    exposures = {arm: by_arm[arm]["exposures"] if arm in by_arm else 0 for arm in weights}
    basis = "exposures"
    if not any(exposures.values()):
        basis = "signups"
        exposures = {arm: by_arm[arm]["signups"] if arm in by_arm else 0 for arm in weights}
    check = srm(exposures, {k: float(w) for k, w in weights.items()})
    out["sample_ratio"] = (
        {
            "basis": basis,
            "observed": exposures,
            "weights": weights,
            "chi2": check.chi2,
            "p_value": check.p_value,
            "mismatch": check.mismatch,
        }
        if check is not None
        else None
    )
    if check is not None and check.mismatch:
        out["verdict"].insert(
            0,
            f"Sample ratio mismatch: {basis} per arm do not match the weights"
            f" (p = {check.p_value:.1e}); distrust this experiment until the cause is found.",
        )
    return out


def parse_side(spec: str) -> tuple[int, str | None]:
    """``"5"`` or ``"5:phone"`` as (version, arm or None).

    Raises:
        ValueError: not a version number (from 1), optionally with an arm.
    """
    version, _, arm = spec.strip().partition(":")
    if not version.isdigit() or not version.isascii():
        raise ValueError(f"not a policy version: {spec!r}")
    if int(version) == STATS_VERSION:
        # Version 0 holds the Verify services' counters, which are no policy's arms.
        raise ValueError(
            f"not a policy version: {spec!r} (versions start at 1; the Verify services "
            "have their own section, verify_services)"
        )
    return int(version), (arm or None)


def parse_pair(raw: str) -> tuple[str, str]:
    """The two sides of ``compare``: ``"3,5"`` or ``"3:phone,5:email"``, each checked.

    Raises:
        ValueError: not two versions, each optionally with an arm.
    """
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if len(parts) != 2:
        raise ValueError(f"give two versions, e.g. 3,5 or 3:phone,5:email: {raw!r}")
    for part in parts:
        parse_side(part)
    return parts[0], parts[1]
