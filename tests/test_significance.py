"""Policy-comparison statistics against published values, and peeking behaviour by simulation."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from statistics import NormalDist

import pytest

from verifyd.sequential import DEFAULT_TAU, Sequential, always_valid
from verifyd.significance import (
    Difference,
    achieved_power,
    chi2_sf,
    required_sample,
    srm,
    two_proportion,
    wilson,
    z_for,
)
from verifyd.verdicts import verdict

# Hard-coded standard normal quantiles (any printed table): z_0.975, z_0.90, z_0.80.
Z975, Z90, Z80 = 1.959964, 1.281552, 0.841621


def _some(value: Difference | Sequential | None) -> Difference | Sequential:
    assert value is not None
    return value


# --------------------------------------------------------------------------- normal quantile


@pytest.mark.parametrize(
    ("confidence", "z"), [(0.95, Z975), (0.80, Z90), (0.90, 1.644854), (0.99, 2.575829)]
)
def test_z_for_matches_the_printed_table(confidence: float, z: float) -> None:
    assert z_for(confidence) == pytest.approx(z, abs=1e-6)


@pytest.mark.parametrize("confidence", [1e-9, 0.3, 0.5, 0.95, 0.999999, 1 - 1e-12])
def test_z_for_matches_the_standard_library_far_into_the_tails(confidence: float) -> None:
    # statistics.NormalDist implements Wichura's AS241, an independent algorithm.
    reference = -NormalDist().inv_cdf((1 - confidence) / 2)
    assert z_for(confidence) == pytest.approx(reference, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_z_for_refuses_a_confidence_outside_the_open_unit_interval(confidence: float) -> None:
    with pytest.raises(ValueError):
        z_for(confidence)


# --------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # Statistics in Medicine 17:857-872, Table I, method 3 (score, no continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0000),
    ],
)
def test_wilson_matches_newcombe_table_one(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson(successes, n)
    assert interval is not None
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)


def test_wilson_pins_the_ends_at_zero_and_one_and_narrows_with_lower_confidence() -> None:
    none, every = wilson(0, 10), wilson(10, 10)
    assert none is not None and none.low == 0.0 and 0.0 < none.high < 1.0
    assert every is not None and every.high == 1.0 and 0.0 < every.low < 1.0
    wide, narrow = wilson(81, 263, 0.99), wilson(81, 263, 0.90)
    assert wide is not None and narrow is not None
    assert wide.low < narrow.low < narrow.high < wide.high


def test_wilson_without_trials_is_none_and_impossible_counts_raise() -> None:
    assert wilson(0, 0) is None
    for successes, n in [(11, 10), (-1, 10), (0, -1)]:
        with pytest.raises(ValueError):
            wilson(successes, n)


# --------------------------------------------------------------------------- two proportions


def test_z_test_matches_the_statsmodels_documentation_example() -> None:
    # statsmodels.stats.proportion.proportions_ztest docstring: count [5, 12], nobs [83, 99]
    # -> two-sided p 0.159; its test suite (GH 2969) pins z = -1.4078304151258787 and
    # p = 0.15918129181156992 for prop[0] - prop[1]. Ours is p_b - p_a, hence +z.
    result = _some(two_proportion(5, 83, 12, 99))
    assert round(result.z, 3) == 1.408 and round(result.p_value, 3) == 0.159
    assert result.z == pytest.approx(1.4078304151258787, abs=1e-9)
    assert result.p_value == pytest.approx(0.15918129181156992, abs=1e-9)


@pytest.mark.parametrize(
    ("x_b", "n_b", "x_a", "n_a", "low", "high"),
    [
        # Newcombe (1998), "Interval estimation for the difference between independent
        # proportions", Statistics in Medicine 17:873-890, Table II, method 1 (Wald, no
        # correction); the third row is the degenerate interval that paper lists as an aberration.
        (56, 70, 48, 80, 0.0575, 0.3425),
        (9, 10, 3, 10, 0.2605, 0.9395),
        (10, 10, 0, 20, 1.0000, 1.0000),
    ],
)
def test_wald_interval_matches_newcombe_table_two(
    x_b: int, n_b: int, x_a: int, n_a: int, low: float, high: float
) -> None:
    result = _some(two_proportion(x_a, n_a, x_b, n_b))
    assert result.diff == pytest.approx(x_b / n_b - x_a / n_a)
    assert (result.low, result.high) == (
        pytest.approx(low, abs=5e-5),
        pytest.approx(high, abs=5e-5),
    )


def test_z_test_flips_sign_with_the_arms() -> None:
    forward, backward = _some(two_proportion(5, 83, 12, 99)), _some(two_proportion(12, 99, 5, 83))
    assert backward.z == pytest.approx(-forward.z)
    assert backward.p_value == pytest.approx(forward.p_value)
    assert (backward.low, backward.high) == (
        pytest.approx(-forward.high),
        pytest.approx(-forward.low),
    )


@pytest.mark.parametrize(("x_a", "n_a", "x_b", "n_b"), [(0, 10, 0, 15), (10, 10, 15, 15)])
def test_both_arms_at_zero_or_hundred_percent_are_no_evidence(
    x_a: int, n_a: int, x_b: int, n_b: int
) -> None:
    result = _some(two_proportion(x_a, n_a, x_b, n_b))
    assert (result.diff, result.low, result.high, result.z, result.p_value) == (0, 0, 0, 0, 1.0)


def test_two_proportion_without_trials_is_none() -> None:
    assert two_proportion(0, 0, 3, 10) is None
    assert two_proportion(3, 10, 0, 0) is None


# --------------------------------------------------------------------------- sample size, power


def test_required_sample_for_ten_versus_fifteen_percent() -> None:
    # Fleiss's formula without continuity correction, worked with printed z values:
    # n = (z_.975 sqrt(2 pbar qbar) + z_.8 sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2 = 685.6 -> 686.
    by_hand = (Z975 * math.sqrt(2 * 0.125 * 0.875) + Z80 * math.sqrt(0.09 + 0.1275)) ** 2 / 0.0025
    assert math.ceil(by_hand) == 686
    assert required_sample(0.10, 0.15) == 686
    assert required_sample(0.15, 0.10) == 686


def test_required_sample_matches_r_power_prop_test() -> None:
    # R's documented example power.prop.test(p1 = .50, p2 = .75, power = .90) solves the same
    # equation: n = 76.7 per group, so 77 signups.
    assert required_sample(0.50, 0.75, power=0.90) == 77


def test_achieved_power_matches_r_power_prop_test() -> None:
    # R's documented example power.prop.test(n = 50, p1 = .50, p2 = .75): power = 0.7401659.
    # R counts one rejection region; the other adds about 1.3e-6 here.
    power = achieved_power(0.50, 0.75, 50, 50)
    assert power == pytest.approx(0.7401659, abs=5e-6)


def test_required_sample_is_the_smallest_size_reaching_the_power() -> None:
    n = required_sample(0.10, 0.15)
    assert n is not None
    above, below = achieved_power(0.10, 0.15, n, n), achieved_power(0.10, 0.15, n - 1, n - 1)
    assert above is not None and below is not None
    assert below < 0.8 <= above


def test_power_and_sample_size_degenerate_cases() -> None:
    assert required_sample(0.3, 0.3) is None
    assert achieved_power(0.3, 0.4, 0, 10) is None
    assert achieved_power(0.3, 0.3, 500, 700) == pytest.approx(0.05, abs=1e-9)  # size = alpha
    assert achieved_power(0.0, 0.0, 10, 10) == 0.0
    assert achieved_power(0.0, 1.0, 10, 10) == 1.0
    assert required_sample(0.0, 1.0) == 2
    with pytest.raises(ValueError):
        required_sample(0.1, 1.2)


# --------------------------------------------------------------------------- chi-square, SRM


@pytest.mark.parametrize(
    ("x", "df", "tail"),
    [
        # Upper quantiles from any chi-square table.
        (3.841459, 1, 0.05),
        (5.991465, 2, 0.05),
        (10.828, 1, 0.001),
        (16.266, 3, 0.001),
        (18.307, 10, 0.05),
        # Lower quantiles: the series branch of the incomplete gamma function.
        (3.940, 10, 0.95),
        (0.004, 1, 0.95),
    ],
)
def test_chi2_sf_matches_the_table(x: float, df: int, tail: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(tail, rel=2e-3)


@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 2.9, 3.1, 7.0, 40.0, 300.0])
def test_chi2_sf_agrees_with_closed_forms_for_one_and_two_degrees(x: float) -> None:
    assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-10, abs=1e-300)
    assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-10, abs=1e-300)


def test_chi2_sf_edges() -> None:
    assert chi2_sf(0.0, 4) == 1.0
    assert chi2_sf(1e6, 3) == 0.0
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


def test_srm_accepts_an_even_split() -> None:
    result = srm({"phone": 5000, "email": 5000}, {"phone": 50, "email": 50})
    assert result is not None
    assert (result.chi2, result.df, result.p_value, result.mismatch) == (0.0, 1, 1.0, False)


def test_srm_flags_five_thousand_against_fifty_four_hundred() -> None:
    result = srm({"phone": 5000, "email": 5400}, {"phone": 50, "email": 50})
    assert result is not None
    # 2 * 200^2 / 5200 by hand; one degree of freedom, so the tail is erfc(sqrt(chi2 / 2)).
    assert result.chi2 == pytest.approx(80000 / 5200)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(80000 / 5200 / 2)))
    assert result.p_value < 0.001 and result.mismatch


def test_srm_respects_uneven_weights() -> None:
    result = srm({"phone": 900, "email": 100}, {"phone": 90, "email": 10})
    assert result is not None and not result.mismatch and result.chi2 == 0.0


def test_srm_counts_signups_in_an_unweighted_arm_as_a_mismatch() -> None:
    result = srm({"phone": 500, "email": 500, "both": 1}, {"phone": 50, "email": 50, "both": 0})
    assert result is not None and result.mismatch and result.p_value == 0.0 and result.df == 1


def test_srm_three_arms_and_missing_counts() -> None:
    result = srm({"a": 100, "b": 100}, {"a": 1, "b": 1, "c": 1})
    assert result is not None and result.df == 2 and result.mismatch  # c got nothing of 200


def test_srm_is_none_without_observations_or_without_two_weighted_arms() -> None:
    assert srm({"phone": 0, "email": 0}, {"phone": 50, "email": 50}) is None
    assert srm({"phone": 10}, {"phone": 100, "email": 0}) is None


# --------------------------------------------------------------------------- always valid


def test_confidence_sequence_ends_are_where_the_mixture_rejects_exactly_at_alpha() -> None:
    result = _some(always_valid(96, 200, 124, 200, alpha=0.05))
    p_a, p_b = 96.5 / 201, 124.5 / 201  # the documented half pseudo-counts
    v = p_a * (1 - p_a) / 200 + p_b * (1 - p_b) / 200
    t2 = DEFAULT_TAU**2

    def inverse_lambda(theta: float) -> float:
        d = result.diff - theta
        return math.sqrt((v + t2) / v) * math.exp(-t2 * d * d / (2 * v * (v + t2)))

    assert inverse_lambda(result.low) == pytest.approx(0.05, rel=1e-9)
    assert inverse_lambda(result.high) == pytest.approx(0.05, rel=1e-9)
    assert result.p_value == pytest.approx(inverse_lambda(0.0), rel=1e-12)


def test_confidence_sequence_is_wider_than_the_fixed_interval() -> None:
    fixed, sequential = (
        _some(two_proportion(96, 200, 124, 200)),
        _some(always_valid(96, 200, 124, 200)),
    )
    assert sequential.low < fixed.low and fixed.high < sequential.high
    assert sequential.p_value > fixed.p_value


@pytest.mark.parametrize(
    ("x_a", "n_a", "x_b", "n_b"), [(0, 10, 0, 10), (10, 10, 10, 10), (0, 1, 1, 1), (10, 10, 0, 10)]
)
def test_always_valid_degenerate_rates_stay_finite(x_a: int, n_a: int, x_b: int, n_b: int) -> None:
    result = _some(always_valid(x_a, n_a, x_b, n_b))
    values = (result.diff, result.low, result.high, result.p_value)
    assert all(math.isfinite(v) for v in values)
    assert -1.0 <= result.low <= result.diff <= result.high <= 1.0 and 0.0 <= result.p_value <= 1.0


def test_always_valid_without_trials_or_with_bad_tau() -> None:
    assert always_valid(0, 0, 5, 10) is None
    assert always_valid(5, 10, 0, 0) is None
    with pytest.raises(ValueError):
        always_valid(5, 10, 5, 10, tau=0.0)


def _daily_totals(
    rng: random.Random, p_a: float, p_b: float, days: int, per_day: int
) -> Iterator[tuple[int, int, int, int]]:
    """Cumulative counts after each day; each signup an exact Bernoulli draw (fast enough here)."""
    x_a = x_b = 0
    for day in range(1, days + 1):
        x_a += sum(rng.random() < p_a for _ in range(per_day))
        x_b += sum(rng.random() < p_b for _ in range(per_day))
        yield x_a, day * per_day, x_b, day * per_day


def test_daily_peeking_breaks_the_fixed_test_but_not_the_always_valid_one() -> None:
    rng = random.Random(20170101)
    experiments, fixed_alarms, sequential_alarms = 400, 0, 0
    for _ in range(experiments):
        fixed_hit = sequential_hit = False
        for x_a, n_a, x_b, n_b in _daily_totals(rng, 0.3, 0.3, days=30, per_day=40):
            fixed = _some(two_proportion(x_a, n_a, x_b, n_b))
            sequential = _some(always_valid(x_a, n_a, x_b, n_b))
            fixed_hit |= fixed.p_value < 0.05
            sequential_hit |= sequential.p_value < 0.05
            # The interval and the p-value are the same test read two ways.
            assert (sequential.low <= 0.0 <= sequential.high) == (sequential.p_value >= 0.05)
        fixed_alarms += fixed_hit
        sequential_alarms += sequential_hit
    # Thirty looks at a 5 % test: far more than 5 % of A/A experiments "win" at some look.
    assert fixed_alarms / experiments > 0.15
    # The always-valid test keeps its 5 %; 0.07 leaves three binomial standard errors.
    assert sequential_alarms / experiments <= 0.07


def test_always_valid_test_finds_a_real_ten_point_difference() -> None:
    rng = random.Random(20170102)
    runs, found = 100, 0
    for _ in range(runs):
        for x_a, n_a, x_b, n_b in _daily_totals(rng, 0.30, 0.40, days=30, per_day=200):
            if _some(always_valid(x_a, n_a, x_b, n_b)).p_value < 0.05:
                found += 1
                break
    assert found / runs >= 0.8


# --------------------------------------------------------------------------- verdict


def test_verdict_names_the_winner_when_the_always_valid_test_decides() -> None:
    result = verdict("conversion", "phone", "email", 192, 400, 248, 400)
    assert result.decided
    # 62 % vs 48 % of 400: Wald SE sqrt(.62*.38/400 + .48*.52/400) = 0.03483, so +14.0 +- 6.83.
    assert result.text == (
        "email has the higher conversion: 62.0 % vs 48.0 % (+14.0 points, 95 % CI +7.2 to +20.8,"
        " p < 0.001; always-valid p = 0.008)."
    )
    assert result.difference is not None and result.sequential is not None
    assert result.sequential.p_value < 0.05 and result.power is not None


def test_verdict_reads_the_same_with_the_arms_swapped() -> None:
    forward = verdict("conversion", "phone", "email", 192, 400, 248, 400)
    backward = verdict("conversion", "email", "phone", 248, 400, 192, 400)
    assert backward.decided and backward.text == forward.text


def test_verdict_waits_when_only_the_fixed_test_would_call_it() -> None:
    # 62 % vs 48 % of 200: fixed p = 0.005, but the always-valid p is 0.18 — not yet.
    result = verdict("conversion", "phone", "email", 96, 200, 124, 200)
    assert result.difference is not None and result.difference.p_value < 0.05
    assert not result.decided and result.text.startswith("Not enough data yet on conversion:")


def test_verdict_says_how_much_data_is_needed() -> None:
    result = verdict("conversion", "phone", "email", 24, 50, 26, 50)
    assert not result.decided
    # 2,452 per arm by the formula, shown rounded up to two figures; power 6.8 %.
    assert result.text == (
        "Not enough data yet on conversion: phone 48.0 % (n=50) vs email 52.0 % (n=50);"
        " detecting a difference of this size needs about 2,500 signups per arm (power now 7 %)."
    )
    assert result.required_per_arm == 2452


def test_verdict_formats_thousands_and_equal_rates() -> None:
    result = verdict("fake rate", "phone", "email", 123, 1234, 123, 1234)
    assert not result.decided and result.required_per_arm is None
    assert "phone 10.0 % (n=1,234) vs email 10.0 % (n=1,234); no difference so far." in result.text


@pytest.mark.parametrize(
    ("n_a", "n_b", "text"),
    [
        (0, 50, "No data yet on conversion for phone."),
        (50, 0, "No data yet on conversion for email."),
        (0, 0, "No data yet on conversion for phone or email."),
    ],
)
def test_verdict_without_data(n_a: int, n_b: int, text: str) -> None:
    result = verdict("conversion", "phone", "email", 0, n_a, 0, n_b)
    assert (result.decided, result.text, result.difference, result.sequential) == (
        False,
        text,
        None,
        None,
    )
    assert result.required_per_arm is None and result.power is None
