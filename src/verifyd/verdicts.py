"""Verdicts: what the data show about one rate between two arms, in one sentence."""

from __future__ import annotations

from dataclasses import dataclass

from verifyd.sequential import Sequential, always_valid
from verifyd.significance import Difference, achieved_power, required_sample, two_proportion


@dataclass(frozen=True)
class Verdict:
    """A plain-language reading of one metric between two arms, safe to read daily."""

    decided: bool
    text: str
    difference: Difference | None
    sequential: Sequential | None
    required_per_arm: int | None
    power: float | None


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def _points(diff: float) -> str:
    return f"{diff * 100:+.1f}"


def _p(p_value: float) -> str:
    if p_value < 0.001:
        return "p < 0.001"
    return f"p = {p_value:.3f}" if p_value < 0.01 else f"p = {p_value:.2f}"


def _about(n: int) -> int:
    """``n`` rounded up to two significant figures: a planning figure, never an understatement."""
    step: int = 10 ** max(0, len(str(n)) - 2)
    return -(-n // step) * step


def verdict(
    metric: str,
    a: str,
    b: str,
    x_a: int,
    n_a: int,
    x_b: int,
    n_b: int,
    confidence: float = 0.95,
    power: float = 0.8,
) -> Verdict:
    """Say in one sentence what the data show about ``metric`` between arms ``a`` and ``b``.

    Decided only when the always-valid p-value is below 1 - confidence, so reading it every
    day does not inflate false alarms; the fixed-horizon interval and p-value are shown too.

    Args:
        metric: A noun phrase for the rate, e.g. "conversion" or "fake rate".
        a: Name of the first arm.
        b: Name of the second arm.
        x_a: Successes in arm a.
        n_a: Signups in arm a.
        x_b: Successes in arm b.
        n_b: Signups in arm b.
        confidence: Confidence of the intervals; 1 - confidence is the error rate.
        power: Power the sample-size figure aims for.
    """
    missing = [arm for arm, n in ((a, n_a), (b, n_b)) if n == 0]
    if missing:
        text = f"No data yet on {metric} for {' or '.join(missing)}."
        return Verdict(False, text, None, None, None, None)
    alpha = 1.0 - confidence
    difference = two_proportion(x_a, n_a, x_b, n_b, confidence)
    sequential = always_valid(x_a, n_a, x_b, n_b, alpha=alpha)
    assert difference is not None and sequential is not None  # both arms have data
    p_a, p_b = x_a / n_a, x_b / n_b
    required = required_sample(p_a, p_b, alpha, power)
    now = achieved_power(p_a, p_b, n_a, n_b, alpha)
    decided = sequential.p_value < alpha
    if decided:
        d = difference
        win, lose, p_w, p_l, diff, low, high = (
            (b, a, p_b, p_a, d.diff, d.low, d.high)
            if d.diff > 0
            else (a, b, p_a, p_b, -d.diff, -d.high, -d.low)
        )
        text = (
            f"{win} has the higher {metric}: {_pct(p_w)} vs {_pct(p_l)} ({_points(diff)} points,"
            f" {confidence * 100:g} % CI {_points(low)} to {_points(high)}, {_p(d.p_value)};"
            f" always-valid {_p(sequential.p_value)})."
        )
    else:
        text = (
            f"Not enough data yet on {metric}: {a} {_pct(p_a)} (n={n_a:,})"
            f" vs {b} {_pct(p_b)} (n={n_b:,}); "
        )
        power_now = f"power now {(now or 0.0) * 100:.0f} %"
        if required is None:
            text += "no difference so far."
        elif required > min(n_a, n_b):
            text += (
                f"detecting a difference of this size needs about {_about(required):,}"
                f" signups per arm ({power_now})."
            )
        else:
            text += (
                f"a single-look test needs about {_about(required):,} signups per arm, the"
                f" always-valid test somewhat more ({power_now})."
            )
    return Verdict(decided, text, difference, sequential, required, now)
