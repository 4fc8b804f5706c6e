"""The Verify services' part of ``GET /v1/admin/stats``: per service and Twilio channel.

Verifications started through the Twilio-compatible surface (``/v2``) are counted under
policy version 0 with their service as arm (``service_counters.py``); here they become
one entry per service that has counters, with the figures of each channel and of the
service in all, built from the same parts as a policy arm's (``figures.py``).
"""

from __future__ import annotations

from typing import Any

from verifyd.flows import figures
from verifyd.pricing import Prices
from verifyd.service_counters import Service, by_channel


def figures_of(c: dict[str, int], prices: Prices | None) -> dict[str, Any]:
    """One channel's (or a whole service's) figures from its counters.

    ``conversion`` is approved of started; ``max_attempts`` the verifications whose every
    check was used (Twilio's 60202); ``cost.per_approved`` the spend per approval.
    """
    made = figures.verifications(c)
    started, approved = made["created"], made["approved"]
    spend = figures.cost(figures.sent_by_basis(c), approved, prices)
    sent = figures.messages(c)
    return {
        "started": started,
        "approved": approved,
        "canceled": made["canceled"],
        "expired": made["expired"],
        "max_attempts": made["locked"],
        "pending": made["pending"],
        "conversion": figures.rate(approved, started),
        "messages": {
            key: sent[key] for key in ("sent", "first_sends", "resends", "delivered", "failed")
        },
        "checks": figures.checks(c),
        "cost": {
            "total": spend["total"],
            "per_approved": spend["per_verified"],
            "unpriced": spend["unpriced"],
        },
    }


def service_entry(
    service: Service | None, c: dict[str, int], prices: Prices | None
) -> dict[str, Any]:
    """One service's entry: its name, its channels, its totals, refusals and time to verify.

    Args:
        service: Its row; ``None`` for counters whose service row is gone.
        c: Its counters (``rollup.read``'s, under its ``stats_key``).
        prices: The price list, if one is set.
    """
    channels = by_channel(c)
    return {
        "sid": service.sid if service else None,
        "friendly_name": service.friendly_name if service else None,
        "deleted_at": service.deleted_at if service else None,
        "channels": [
            {"channel": name, **figures_of(channels[name], prices)} for name in sorted(channels)
        ],
        "total": figures_of(c, prices),
        # Refusals (an SMS-pumping breaker) and approvals' timing carry no channel.
        "blocked": figures.blocked(c),
        "time_to_verify": figures.time_to_verify(c),
    }


def services_report(
    counts: dict[str, dict[str, int]], services: dict[str, Service], prices: Prices | None
) -> list[dict[str, Any]]:
    """Every service with counters, by name (then sid); counters of no known service last.

    Args:
        counts: The services' counters by ``stats_key`` (``service_counters.split``).
        services: The services by ``stats_key`` (``service_counters.services``).
        prices: The price list, if one is set.
    """
    entries = [service_entry(services.get(key), c, prices) for key, c in counts.items()]
    return sorted(
        entries,
        key=lambda e: (e["sid"] is None, (e["friendly_name"] or "").casefold(), e["sid"] or ""),
    )
