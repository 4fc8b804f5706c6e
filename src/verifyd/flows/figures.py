"""The figures a set of rollup counters makes: shared by a policy arm's and a Verify service's.

Each function reads counters named as ``rollup.py`` documents them and answers one part of
``GET /v1/admin/stats`` (see docs/stats.md): a policy arm (``stats.summarize``) and a
Verify service's channel (``service_stats``) are built from the same parts, so a figure
means the same thing in both.
"""

from __future__ import annotations

from typing import Any

from verifyd import rollup
from verifyd.pricing import Prices
from verifyd.significance import wilson

#: How a verification ends, as its counter's prefix names it (``locked``: every check used).
CLOSED = ("approved", "expired", "locked", "canceled")


def by_prefix(counts: dict[str, int], prefix: str) -> dict[str, int]:
    """Counters named ``prefix<rest>``, by ``rest``; zeros left out."""
    # A signup counts some signals with zero (see ``flows/signup.py``).
    return {
        name[len(prefix) :]: n
        for name, n in sorted(counts.items())
        if name.startswith(prefix) and n
    }


def rate(x: int, n: int) -> dict[str, Any]:
    """``x`` of ``n``, its rate and the rate's 95 % Wilson interval (``None`` when ``n`` is 0)."""
    interval = wilson(max(0, min(x, n)), n) if n > 0 else None
    return {
        "count": x,
        "of": n,
        "rate": x / n if n else None,
        "interval": [interval.low, interval.high] if interval else None,
    }


def percentile(buckets: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (0–1) of a time-to-verify histogram, interpolated in its bucket."""
    total = sum(buckets.values())
    if total == 0:
        return None
    target = q * total
    seen = 0
    edges = (0, *rollup.TTV_EDGES)
    for i in sorted(buckets):
        n = buckets[i]
        if n and seen + n >= target:
            low = edges[min(i, len(edges) - 1)]
            high = rollup.TTV_EDGES[i] if i < len(rollup.TTV_EDGES) else low
            return float(low + (high - low) * (target - seen) / n)
        seen += n
    return float(rollup.TTV_EDGES[-1])


def sent_by_basis(c: dict[str, int]) -> dict[str, int]:
    """Messages sent per ``<kind>.<country>.<segments>`` (what a price applies to)."""
    return by_prefix(c, "sent.")


def messages(c: dict[str, int]) -> dict[str, Any]:
    """Messages sent (first sends and resends), delivered and failed."""
    sent_by_kind: dict[str, int] = {}
    for basis, n in sent_by_basis(c).items():
        kind = basis.split(".", 1)[0]
        sent_by_kind[kind] = sent_by_kind.get(kind, 0) + n
    resends = sum(by_prefix(c, "resends.").values())
    return {
        "sent": sum(sent_by_kind.values()),
        "first_sends": sum(sent_by_kind.values()) - resends,
        "resends": resends,
        "delivered": sum(by_prefix(c, "delivered.").values()),
        "failed": sum(by_prefix(c, "failed.").values()),
        "sent_by_kind": sent_by_kind,
    }


def verifications(c: dict[str, int]) -> dict[str, Any]:
    """Verifications created, how many ended each way, the pending rest, and per channel."""
    created = by_prefix(c, "verifications.")
    closed = {status: sum(by_prefix(c, f"{status}.").values()) for status in CLOSED}
    total = sum(created.values())
    return {
        "created": total,
        **closed,
        "pending": total - sum(closed.values()),
        "by_channel": created,
    }


def checks(c: dict[str, int]) -> dict[str, Any]:
    """Wrong codes, approvals, and the checks an approval took on average."""
    made = by_prefix(c, "checks.")
    approved = sum(n for k, n in made.items() if k.endswith(".approved"))
    to_approve = sum(by_prefix(c, "checks_to_approve.").values())
    return {
        "incorrect": sum(n for k, n in made.items() if k.endswith(".incorrect")),
        "approved": approved,
        "per_approval": to_approve / approved if approved else None,
    }


def blocked(c: dict[str, int]) -> dict[str, Any]:
    """Refusals, in all and by reason."""
    reasons = by_prefix(c, "blocked.")
    return {"total": sum(reasons.values()), "by_reason": reasons}


def time_to_verify(c: dict[str, int]) -> dict[str, Any]:
    """The ``ttv.<bucket>`` histogram: its count, median, 90th percentile and buckets."""
    ttv = {int(k): n for k, n in by_prefix(c, "ttv.").items()}
    edges = rollup.TTV_EDGES
    return {
        "count": sum(ttv.values()),
        "p50": percentile(ttv, 0.5),
        "p90": percentile(ttv, 0.9),
        # Non-empty buckets; ``le`` None: beyond the last edge.
        "histogram": [
            {"le": edges[i] if i < len(edges) else None, "count": ttv[i]} for i in sorted(ttv)
        ],
    }


def cost(sent: dict[str, int], verified: int, prices: Prices | None) -> dict[str, Any]:
    """The spend under the price list: per kind, in all, and per verified account."""
    if prices is None:
        return {"total": None, "per_verified": None, "by_kind": {}, "unpriced": 0}
    by_kind: dict[str, float] = {}
    unpriced = 0
    for basis, n in sent.items():
        kind, country, parts = basis.rsplit(".", 2)
        price = prices.of(kind, country)
        if price is None:
            unpriced += n
            continue
        by_kind[kind] = by_kind.get(kind, 0.0) + price * int(parts) * n
    total = round(sum(by_kind.values()), 6)
    return {
        "total": total,
        "per_verified": round(total / verified, 6) if verified else None,
        "by_kind": {k: round(v, 6) for k, v in by_kind.items()},
        "unpriced": unpriced,
    }
