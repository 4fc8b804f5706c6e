"""Fixed-horizon statistics of proportions: intervals, the two-proportion test, sample size
and power, the sample-ratio check (``sequential.py`` has the always-valid test)."""

from __future__ import annotations

import math
from dataclasses import dataclass

_SQRT2 = math.sqrt(2.0)
# Acklam's rational approximation of the inverse normal CDF (relative error 1.15e-9).
_A = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
      -30.66479806614716, 2.506628277459239)  # fmt: skip
_B = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
      -13.28068155288572, 1.0)  # fmt: skip
_C = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
      4.374664141464968, 2.938163982698783)  # fmt: skip
_D = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416, 1.0)
_P_LOW = 0.02425
# Incomplete gamma iteration limits (Numerical Recipes `gammq`).
_ITMAX = 1000
_EPS = 1e-15
_FPMIN = 1e-300


@dataclass(frozen=True)
class Interval:
    """A confidence interval for one proportion, within [0, 1]."""

    low: float
    high: float


@dataclass(frozen=True)
class Difference:
    """The fixed-horizon comparison of two arms.

    Attributes:
        diff: p_b - p_a.
        low: Lower bound of the Wald (unpooled) interval for ``diff``.
        high: Upper bound of that interval.
        z: The pooled two-proportion z statistic (positive when b is higher).
        p_value: Its two-sided p-value; valid for one look only.
    """

    diff: float
    low: float
    high: float
    z: float
    p_value: float


@dataclass(frozen=True)
class SampleRatio:
    """A sample-ratio-mismatch check: the chi-square of the arm counts against the weights."""

    chi2: float
    df: int
    p_value: float
    mismatch: bool


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _horner(coefficients: tuple[float, ...], x: float) -> float:
    total = 0.0
    for coefficient in coefficients:
        total = total * x + coefficient
    return total


def _z_upper(tail: float) -> float:
    """The z with P(Z > z) = tail, from Acklam's approximation polished by one Halley step."""
    if tail > 0.5:
        return -_z_upper(1.0 - tail)
    if tail < _P_LOW:
        q = math.sqrt(-2.0 * math.log(tail))
        x = _horner(_C, q) / _horner(_D, q)
    else:
        q = tail - 0.5
        x = _horner(_A, q * q) * q / _horner(_B, q * q)
    # Halley's step on erfc brings the 1e-9 approximation to machine precision.
    u = (_phi(x) - tail) * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return -(x - u / (1.0 + x * u / 2.0))


def z_for(confidence: float) -> float:
    """The two-sided normal quantile: z with P(|Z| < z) = confidence (1.959964 for 0.95)."""
    _check_unit("confidence", confidence)
    return _z_upper((1.0 - confidence) / 2.0)


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval | None:
    """The Wilson score interval for ``successes`` of ``n``; None when ``n`` is 0.

    Raises:
        ValueError: Counts out of range or confidence outside (0, 1).
    """
    _check_counts(successes, n)
    z = z_for(confidence)
    if n == 0:
        return None
    p = successes / n
    z2n = z * z / n
    center = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return Interval(low, high)


def two_proportion(
    x_a: int, n_a: int, x_b: int, n_b: int, confidence: float = 0.95
) -> Difference | None:
    """Compare b with a once: the Wald interval of p_b - p_a and the pooled z-test.

    Returns None when either arm is empty. When both arms sit at 0 % or both at 100 % the
    pooled standard error is 0 and there is no evidence either way: z is 0, p_value 1.

    Raises:
        ValueError: Counts out of range or confidence outside (0, 1).
    """
    _check_counts(x_a, n_a)
    _check_counts(x_b, n_b)
    half_width = z_for(confidence)
    if n_a == 0 or n_b == 0:
        return None
    p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_b - p_a
    half_width *= math.sqrt(p_a * (1.0 - p_a) / n_a + p_b * (1.0 - p_b) / n_b)
    pooled = (x_a + x_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    z = diff / se0 if se0 > 0.0 else 0.0
    p_value = math.erfc(abs(z) / _SQRT2) if se0 > 0.0 else 1.0
    return Difference(diff, max(-1.0, diff - half_width), min(1.0, diff + half_width), z, p_value)


def required_sample(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Signups per arm a two-sided two-proportion test needs to detect p_b - p_a.

    The usual formula (Fleiss, no continuity correction): pooled variance under H0, unpooled
    under H1, rounded up. None when the rates are equal (no finite size detects nothing).

    Raises:
        ValueError: A rate outside [0, 1] or alpha/power outside (0, 1).
    """
    for rate in (p_a, p_b):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rates must lie in [0, 1], got {rate}")
    _check_unit("alpha", alpha)
    _check_unit("power", power)
    if p_a == p_b:
        return None
    pooled = (p_a + p_b) / 2.0
    spread = _z_upper(alpha / 2.0) * math.sqrt(2.0 * pooled * (1.0 - pooled)) + _z_upper(
        1.0 - power
    ) * math.sqrt(p_a * (1.0 - p_a) + p_b * (1.0 - p_b))
    n = (max(0.0, spread) / (p_b - p_a)) ** 2
    # round() first so that an exact integer lost to float noise does not gain one.
    return max(1, math.ceil(round(n, 9)))


def achieved_power(p_a: float, p_b: float, n_a: int, n_b: int, alpha: float = 0.05) -> float | None:
    """Power of the two-sided pooled z-test at these rates and sizes (normal approximation).

    Both rejection regions count. None when either arm is empty.

    Raises:
        ValueError: A rate outside [0, 1], a negative size, or alpha outside (0, 1).
    """
    for rate in (p_a, p_b):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rates must lie in [0, 1], got {rate}")
    if n_a < 0 or n_b < 0:
        raise ValueError("sample sizes must not be negative")
    _check_unit("alpha", alpha)
    if n_a == 0 or n_b == 0:
        return None
    z = _z_upper(alpha / 2.0)
    pooled = (n_a * p_a + n_b * p_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    se1 = math.sqrt(p_a * (1.0 - p_a) / n_a + p_b * (1.0 - p_b) / n_b)
    delta = abs(p_b - p_a)
    if se1 == 0.0:  # both rates at 0 or 1: the outcome is certain
        return 1.0 if delta > z * se0 else 0.0
    return min(1.0, _phi((delta - z * se0) / se1) + _phi((-delta - z * se0) / se1))


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-square with ``df`` degrees of freedom: Q(df/2, x/2).

    Raises:
        ValueError: ``df`` below 1.
    """
    if df < 1:
        raise ValueError(f"df must be at least 1, got {df}")
    if x <= 0.0:
        return 1.0
    a, y = df / 2.0, x / 2.0
    log_prefactor = -y + a * math.log(y) - math.lgamma(a)
    if y < a + 1.0:  # the series for P converges fast here
        term = total = 1.0 / a
        ap = a
        for _ in range(_ITMAX):
            ap += 1.0
            term *= y / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    # Modified Lentz evaluation of the continued fraction for Q.
    b = y + 1.0 - a
    c, d = 1.0 / _FPMIN, 1.0 / b
    h = d
    for i in range(1, _ITMAX + 1):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _FPMIN if abs(d) < _FPMIN else d
        c = b + an / c
        c = _FPMIN if abs(c) < _FPMIN else c
        d = 1.0 / d
        h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def srm(
    observed: dict[str, int], weights: dict[str, int | float], threshold: float = 0.001
) -> SampleRatio | None:
    """Check that the arms received signups in the ratio of their weights.

    Arms without weight (0 or absent) expect nothing: any signup there is a mismatch by
    itself, reported with p_value 0 (chi2 and df then describe the weighted arms). None when
    nothing was observed or fewer than two arms have weight.

    Raises:
        ValueError: A negative count or weight.
    """
    if any(v < 0 for v in observed.values()) or any(w < 0 for w in weights.values()):
        raise ValueError("counts and weights must not be negative")
    weighted = {arm: w for arm, w in weights.items() if w > 0}
    total = sum(observed.values())
    if total == 0 or len(weighted) < 2:
        return None
    stray = sum(count for arm, count in observed.items() if arm not in weighted)
    share = (total - stray) / sum(weighted.values())
    chi2 = 0.0
    if share > 0.0:
        for arm, weight in weighted.items():
            expected = share * weight
            chi2 += (observed.get(arm, 0) - expected) ** 2 / expected
    df = len(weighted) - 1
    p_value = 0.0 if stray else chi2_sf(chi2, df)
    return SampleRatio(chi2, df, p_value, p_value < threshold)
