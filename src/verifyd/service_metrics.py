"""``/metrics``' families of the Verify services: per service (its sid) and Twilio channel.

Read from the same rollup as the policies' arms (policy version 0, see
``service_counters.py``); ``metrics.py`` adds them, and their time-to-verify histogram,
to the business families.
"""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from verifyd.flows.figures import by_prefix
from verifyd.service_counters import Service, by_channel

_LABELS = ["service", "channel"]
#: ``verifyd_verify_<family>_total``: per (service, channel), its ``<prefix>…`` counters summed.
FAMILIES = (
    ("verifications", "verifications.", "Verifications started through the Twilio API (/v2)."),
    ("resends", "resends.", "Codes sent again (a start for the same To, or a resend)."),
    ("approved", "approved.", "Verifications approved."),
    ("canceled", "canceled.", "Verifications canceled."),
    ("expired", "expired.", "Verifications expired."),
    ("max_attempts", "locked.", "Verifications whose every check was used (Twilio's 60202)."),
    ("messages_sent", "sent.", "Messages a provider accepted."),
    ("messages_delivered", "delivered.", "Messages reported delivered."),
    ("messages_failed", "failed.", "Messages given up on (dead or undelivered)."),
)


def sids(by_service: dict[str, dict[str, int]], services: dict[str, Service]) -> dict[str, str]:
    """The ``service`` label per ``stats_key``: the service's sid (the key, for a row gone)."""
    return {key: services[key].sid if key in services else key for key in by_service}


def families(by_service: dict[str, dict[str, int]], sids: dict[str, str]) -> list[Metric]:
    """The counters per service and channel (zero where a channel has none), checks by
    outcome, and refusals by reason.

    Args:
        by_service: The services' counters by ``stats_key`` (``service_counters.split``).
        sids: The ``service`` label per ``stats_key`` (:func:`sids`).
    """
    rows = [
        (sids[key], channel, c)
        for key in sorted(by_service)
        for channel, c in sorted(by_channel(by_service[key]).items())
    ]
    out: list[Metric] = []
    for family, prefix, doc in FAMILIES:
        metric = CounterMetricFamily(f"verifyd_verify_{family}_total", doc, labels=_LABELS)
        for sid, channel, c in rows:
            metric.add_metric([sid, channel], sum(by_prefix(c, prefix).values()))
        out.append(metric)
    checks = CounterMetricFamily(
        "verifyd_verify_checks_total",
        "Code checks (VerificationCheck), by outcome (approved or incorrect).",
        labels=[*_LABELS, "outcome"],
    )
    for sid, channel, c in rows:
        made = by_prefix(c, "checks.")
        for outcome in ("approved", "incorrect"):
            n = sum(n for rest, n in made.items() if rest.endswith(f".{outcome}"))
            checks.add_metric([sid, channel, outcome], n)
    blocked = CounterMetricFamily(
        "verifyd_verify_blocked_total",
        "Sends refused (an SMS-pumping breaker), by reason.",
        labels=["service", "reason"],
    )
    for key in sorted(by_service):
        for reason, n in by_prefix(by_service[key], "blocked.").items():
            blocked.add_metric([sids[key], reason], n)
    return [*out, checks, blocked]
