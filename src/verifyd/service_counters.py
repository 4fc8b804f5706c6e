"""The rollup's counters of the Verify services (policy version 0), per Twilio channel.

A verification started under ``/v2`` is counted under
:data:`~verifyd.verify_models.STATS_VERSION` with its service's ``stats_key`` as arm
(see ``verify_models.py``). The stats, the report and ``/metrics`` show those counters
per service and per channel as Twilio names it, never as a policy arm: :func:`split`
parts ``rollup.read``'s answer into the two, and :func:`by_channel` parts a service's
counters per channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from verifyd.models import table_of
from verifyd.verify.sends import BUILT_IN
from verifyd.verify_models import STATS_VERSION, VerifyService

#: A ``rollup.read`` answer: counters per (policy version, arm).
Counts = dict[tuple[int, str], dict[str, int]]

#: verifyd's channel names where Twilio's differ (a code by email is Twilio's ``email``),
#: from the one mapping the ``/v2`` starts use.
TWILIO_CHANNELS = {ours: theirs for theirs, ours in BUILT_IN.items() if ours != theirs}
#: Counters named ``<prefix><channel>``, one per verification event.
_PER_CHANNEL = (
    "verifications.",
    "resends.",
    "approved.",
    "locked.",
    "canceled.",
    "expired.",
    "checks_to_approve.",
)
#: Counters named ``<prefix><kind>…``, one per message; a message's kind (``sms``, ``email``)
#: is the Twilio name of the channel that sent it.
_PER_KIND = ("sent.", "delivered.", "failed.", "suppressed.")

_vs = table_of(VerifyService).c


@dataclass(frozen=True)
class Service:
    """What the stats name a service by."""

    sid: str
    friendly_name: str
    deleted_at: datetime | None


def split(counts: Counts) -> tuple[Counts, dict[str, dict[str, int]]]:
    """The signup policies' arms, and the services' counters by ``stats_key``."""
    arms = {key: c for key, c in counts.items() if key[0] != STATS_VERSION}
    services = {key[1]: c for key, c in counts.items() if key[0] == STATS_VERSION}
    return arms, services


def twilio_channel(channel: str) -> str:
    """Twilio's name for a verifyd channel (``email_code`` -> ``email``)."""
    return TWILIO_CHANNELS.get(channel, channel)


def channel_of(name: str) -> str | None:
    """The Twilio channel a counter belongs to; ``None`` for a service-wide one
    (``blocked.<reason>``, ``ttv.<bucket>``)."""
    for prefix in _PER_CHANNEL:
        if name.startswith(prefix):
            return twilio_channel(name[len(prefix) :])
    if name.startswith("checks."):
        return twilio_channel(name[len("checks.") :].rpartition(".")[0])
    for prefix in _PER_KIND:
        if name.startswith(prefix):
            return name[len(prefix) :].split(".", 1)[0]
    return None


def by_channel(c: dict[str, int]) -> dict[str, dict[str, int]]:
    """A service's counters per Twilio channel, under their own names."""
    out: dict[str, dict[str, int]] = {}
    for name, n in c.items():
        channel = channel_of(name)
        if channel is not None:
            out.setdefault(channel, {})[name] = n
    return out


def services(conn: Connection) -> dict[str, Service]:
    """Every service by its ``stats_key``, deleted ones included (their stats stay)."""
    rows = conn.execute(select(_vs.stats_key, _vs.sid, _vs.friendly_name, _vs.deleted_at))
    return {r.stats_key: Service(r.sid, r.friendly_name, r.deleted_at) for r in rows}
