"""The dashboard's SVG charts: well-formed, inert, to scale, escaped, and sane when empty."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from markupsafe import Markup

from verifyd import charts
from verifyd.flows.stats import summarize
from verifyd.pricing import Prices

NS = "{http://www.w3.org/2000/svg}"
PRICES = Prices.parse({"currency": "USD", "email": 0.0004, "sms": {"default": 0.05}})


def arm(name: str, **counts: int) -> dict[str, Any]:
    """An arm's summary from its counters, as the stats build it."""
    return summarize(name, counts, PRICES)


def two_arms() -> list[dict[str, Any]]:
    phone = arm(
        "phone",
        **{"exposures": 200, "signups": 100, "signups.exposed": 90, "activated": 20},
        **{"sent.sms.GB.1": 100, "ttv.0": 10, "ttv.2": 10, "suspect": 5},
        **{"label.fake": 4, "label.fake.active": 2, "label.genuine": 6},
    )
    email = arm(
        "email",
        **{"exposures": 200, "signups": 150, "signups.exposed": 140, "activated": 60},
        **{"sent.email.-.1": 150, "ttv.5": 60, "suspect": 30},
        **{"label.fake": 12, "label.fake.active": 12, "label.genuine": 10},
    )
    return [phone, email]


def parse(chart: Markup) -> ET.Element:
    assert isinstance(chart, Markup)
    root = ET.fromstring(str(chart))
    assert root.tag == f"{NS}svg" and root.get("role") == "img"
    title = root.find(f"{NS}title")
    assert title is not None and title.text
    assert root.get("aria-labelledby", "").split()[0] == title.get("id")
    return root


def assert_inert(root: ET.Element) -> None:
    """Nothing that runs, loads or styles: what the dashboard's CSP would refuse anyway."""
    for node in root.iter():
        tag = node.tag.removeprefix(NS)
        assert tag not in ("script", "foreignObject", "image", "style", "a", "use"), tag
        for name, value in node.attrib.items():
            local = name.rsplit("}", 1)[-1]
            assert not local.startswith("on") and local not in ("href", "style"), name
            assert "url(" not in value and "javascript:" not in value, value


def texts(root: ET.Element) -> list[str]:
    return [n.text or "" for n in root.iter(f"{NS}text")]


def all_charts(arms: list[dict[str, Any]], currency: str | None = "USD") -> list[Markup]:
    return [
        charts.funnel(arms),
        charts.time_to_verify(arms),
        charts.cost_per_verified(arms, currency),
        charts.rates(arms, "conversion"),
        charts.rates(arms, "suspect"),
        charts.rates(arms, "fake"),
    ]


@pytest.mark.parametrize(
    "arms",
    [
        [],
        [arm("phone")],
        two_arms(),
        [arm("email", signups=10**9, exposures=10**9, activated=10**9 // 3, **{"ttv.21": 5})],
    ],
    ids=["none", "all-zero", "two", "huge"],
)
def test_every_chart_is_well_formed_and_inert(arms: list[dict[str, Any]]) -> None:
    for chart in all_charts(arms):
        assert_inert(parse(chart))


def _bar_widths(root: ET.Element) -> list[float]:
    return [float(r.get("width", "0")) for r in root.iter(f"{NS}rect")]


def test_funnel_bars_share_one_scale_across_arms() -> None:
    root = parse(charts.funnel(two_arms()))
    widths = _bar_widths(root)
    # phone: exposed 200, signed up 100, sent 100, verified 20; email: 200, 150, 150, 60.
    assert len(widths) == 8
    assert widths[0] == pytest.approx(widths[4], abs=0.01)  # both exposed 200
    assert widths[1] == pytest.approx(widths[0] / 2, abs=0.01)
    assert widths[7] == pytest.approx(3 * widths[3], abs=0.01)  # 60 vs 20 verified
    words = " ".join(texts(root))
    assert "20 (10.0 %)" in words and "60 (30.0 %)" in words  # shares of exposures


def test_funnel_without_exposures_takes_shares_of_signups() -> None:
    words = " ".join(texts(parse(charts.funnel([arm("phone", signups=40, activated=10)]))))
    assert "10 (25.0 %)" in words and "no exposures recorded" in words


def test_time_to_verify_compares_shares_not_counts() -> None:
    root = parse(charts.time_to_verify(two_arms()))
    heights = [float(r.get("height", "0")) for r in root.iter(f"{NS}rect") if r.get("height")]
    drawn = [h for h in heights if h > 0.5]
    # phone: half of its 20 in bucket 0 and half in bucket 2; email: all 60 in bucket 5.
    assert max(drawn) == pytest.approx(2 * min(h for h in drawn if h > 20), abs=0.01)
    words = texts(root)
    assert {"≤5 s", "≤15 s", "≤45 s"} <= set(words)
    assert any(w.startswith("phone: median") for w in words)
    assert any(w.startswith("email: median") and "(60 verified)" in w for w in words)


def test_time_to_verify_names_the_last_bucket_beyond_the_last_edge() -> None:
    root = parse(charts.time_to_verify([arm("email", activated=3, **{"ttv.20": 1, "ttv.21": 2})]))
    assert {"≤7 d", ">7 d"} <= set(texts(root))


def test_cost_bars_are_proportional_and_labelled() -> None:
    root = parse(charts.cost_per_verified(two_arms(), "USD"))
    phone, email = _bar_widths(root)
    # phone: 100 SMS at 0.05 for 20 verified = 0.25; email: 150 at 0.0004 for 60 = 0.001.
    assert phone / email == pytest.approx(250, rel=0.01)
    assert {"0.2500 USD", "0.0010 USD"} <= set(texts(root))


def test_cost_says_why_there_is_none() -> None:
    assert "no price list (VERIFYD_PRICES)" in texts(parse(charts.cost_per_verified([], None)))
    unverified = parse(charts.cost_per_verified([arm("phone", signups=3)], "USD"))
    assert "no verified accounts" in texts(unverified)


def test_rate_whiskers_span_the_interval_on_the_axis() -> None:
    arms = two_arms()
    root = parse(charts.rates(arms, "conversion"))
    circles = list(root.iter(f"{NS}circle"))
    assert len(circles) == 2
    lines = [ln for ln in root.iter(f"{NS}line") if ln.get("stroke-width") == "2"]
    spans = [ln for ln in lines if ln.get("y1") == ln.get("y2")]
    ticks = [float(t.text.rstrip(" %")) for t in root.iter(f"{NS}text") if t.text.endswith(" %")]
    end = max(ticks) / 100
    assert end == 0.5  # the email interval ends below 50 %: the axis rounds up to 50 %
    (axis,) = [ln for ln in root.iter(f"{NS}line") if ln.get("stroke-width") is None][:1]
    left, right = float(axis.get("x1", "0")), float(axis.get("x2", "0"))
    for a, span, dot in zip(arms, spans, circles, strict=True):
        low, high = a["conversion"]["interval"]
        x = lambda rate: left + (right - left) * rate / end  # noqa: E731
        assert float(span.get("x1", "0")) == pytest.approx(x(low), abs=0.01)
        assert float(span.get("x2", "0")) == pytest.approx(x(high), abs=0.01)
        assert float(dot.get("cx", "0")) == pytest.approx(x(a["conversion"]["rate"]), abs=0.01)
    assert any(t.startswith("20.0 % [") and t.endswith("n = 100") for t in texts(root))


def test_rates_say_when_there_is_nothing_to_show() -> None:
    fresh = [arm("phone", signups=5, activated=2)]
    assert "no labels yet" in texts(parse(charts.rates(fresh, "fake")))
    assert "no data" in texts(parse(charts.rates([arm("email")], "conversion")))
    with pytest.raises(ValueError):
        charts.rates(fresh, "bogus")


def test_names_are_escaped() -> None:
    hostile = [arm('<b>&"', signups=4, activated=1, **{"ttv.0": 1})]
    for chart in all_charts(hostile):
        assert "<b>" not in str(chart)
        assert '<b>&"' in " ".join(texts(parse(chart))) or "no" in str(chart)


def test_every_arm_has_a_colour_and_each_chart_its_own_ids() -> None:
    first, second = charts.funnel(two_arms()), charts.funnel(two_arms())
    assert parse(first).get("aria-labelledby") != parse(second).get("aria-labelledby")
    fills = {r.get("fill") for r in parse(first).iter(f"{NS}rect")}
    assert len(fills) == 2


def test_funnel_counts_first_sends_so_no_stage_outgrows_the_one_before() -> None:
    # 100 signups, 100 first codes and 30 resends: the funnel's "sent" is 100, not 130.
    phone = arm(
        "phone",
        exposures=200,
        signups=100,
        activated=20,
        **{"sent.sms.GB.1": 130, "resends.sms": 30},
    )
    words = " ".join(texts(parse(charts.funnel([phone]))))
    assert "100 (50.0 %)" in words and "130" not in words
