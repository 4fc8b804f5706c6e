"""The always-valid comparison of two proportions: safe to read after every signup."""

from __future__ import annotations

import math
from dataclasses import dataclass

from verifyd.significance import _check_counts, _check_unit

# Mixing standard deviation of the always-valid test, on the absolute difference scale.
# It is fixed in advance, never taken from the data: a mixture tuned on the rates seen so far
# is no longer a fixed mixture, and its time-uniform guarantee is lost. 0.05 (5 points) is the
# size of effect that makes an operator switch policies; a wrong guess costs power, not validity.
DEFAULT_TAU = 0.05


@dataclass(frozen=True)
class Sequential:
    """The always-valid comparison: a confidence sequence and a p-value for p_b - p_a."""

    diff: float
    low: float
    high: float
    p_value: float


def _smoothed_variance(successes: int, n: int) -> float:
    # Half a pseudo-success and half a pseudo-failure keep the variance above 0 at 0 % or 100 %.
    p = (successes + 0.5) / (n + 1.0)
    return p * (1.0 - p) / n


def always_valid(
    x_a: int, n_a: int, x_b: int, n_b: int, alpha: float = 0.05, tau: float | None = None
) -> Sequential | None:
    """Compare b with a in a way that stays valid however often the result is read.

    A normal-mixture sequential probability ratio test (mSPRT; Johari et al. 2017, "Peeking
    at A/B tests"), mixing over effects N(0, tau²). For the estimate d = p_b - p_a with
    variance V, the likelihood ratio against "no difference" is
    Lambda = sqrt(V / (V + tau²)) * exp(tau² d² / (2 V (V + tau²))).

    ``low``/``high`` form a confidence sequence: the effects the mixture does not reject at
    level ``alpha``. It covers the true difference at all times simultaneously, so it may be
    read after every signup (asymptotically: V is estimated, the data are Bernoulli).
    ``p_value`` = min(1, 1/Lambda) is for the current look; a caller that keeps state should
    report the running minimum over looks, which is the always-valid p-value proper.

    Args:
        x_a: Successes in arm a.
        n_a: Trials in arm a.
        x_b: Successes in arm b.
        n_b: Trials in arm b.
        alpha: Error rate of the confidence sequence.
        tau: Mixing standard deviation; None takes ``DEFAULT_TAU`` (5 points, fixed in advance).

    Returns:
        The result, or None when either arm is empty.

    Raises:
        ValueError: Counts out of range, alpha outside (0, 1) or tau not positive.
    """
    _check_counts(x_a, n_a)
    _check_counts(x_b, n_b)
    _check_unit("alpha", alpha)
    mix = DEFAULT_TAU if tau is None else tau
    if not mix > 0.0:
        raise ValueError(f"tau must be positive, got {tau}")
    if n_a == 0 or n_b == 0:
        return None
    diff = x_b / n_b - x_a / n_a
    v = _smoothed_variance(x_a, n_a) + _smoothed_variance(x_b, n_b)
    t2 = mix * mix
    radius = math.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + math.log((v + t2) / v)))
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * diff * diff / (2.0 * v * (v + t2))
    p_value = 1.0 if log_lambda <= 0.0 else math.exp(-log_lambda)
    return Sequential(diff, max(-1.0, diff - radius), min(1.0, diff + radius), p_value)
