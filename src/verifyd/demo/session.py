"""One demo run against the private server: the experiment, the crowd, the labels, the stats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from verifyd.demo.driver import Api, Crowd, Tally, labels
from verifyd.demo.population import Person
from verifyd.demo.progress import Progress

#: The experiment's arms and weights.
WEIGHTS = {"phone": 50, "email": 50}
#: Connections to the private server at once (the rest of the crowd waits its turn).
CONNECTIONS = 16
#: Labels per ``POST /v1/admin/labels`` (it takes at most 10,000).
LABELS_PER_CALL = 5000


@dataclass(frozen=True)
class Outcome:
    """What a run did and what the service made of it.

    Attributes:
        version: The policy version the demo created (left in force).
        tally: The demo's own count.
        labelled: Labels sent, by label.
        stats: ``GET /v1/admin/stats?policy_version=…`` of that version.
    """

    version: int
    tally: Tally
    labelled: dict[str, int]
    stats: dict[str, Any]


async def drive(
    base_url: str,
    key: str,
    people: list[Person],
    *,
    experiment: str,
    seed: int,
    progress: Progress,
) -> Outcome:
    """Start a split experiment, run the crowd through it, label accounts, read the stats.

    Args:
        base_url: The private server.
        key: An admin key (``vdk_…``) for the policy, the labels and the stats.
        people: The population.
        experiment: The new experiment's name (a new salt, a new policy version).
        seed: The population's seed (it picks the labelled accounts too).
        progress: Advanced per person.

    Raises:
        DemoFailure: the service failed or refused an admin call.
    """
    admin = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    timeout = httpx.Timeout(30.0, pool=60.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        api = Api(client, CONNECTIONS)
        policy = await api.expect(
            200,
            "PUT",
            "/v1/admin/policy",
            json={"mode": "split", "weights": WEIGHTS, "experiment": experiment},
            headers=admin,
        )
        version = int(policy["version"])
        tally = await Crowd(api, version, progress).run(people)
        progress.close()
        truth = labels(tally, seed)
        labelled: Counter[str] = Counter()
        for at in range(0, len(truth), LABELS_PER_CALL):
            chunk = truth[at : at + LABELS_PER_CALL]
            answer = await api.expect(
                200, "POST", "/v1/admin/labels", json={"labels": chunk}, headers=admin
            )
            labelled.update(answer["by_label"])
        stats = await api.expect(
            200, "GET", "/v1/admin/stats", params={"policy_version": version}, headers=admin
        )
    return Outcome(version, tally, dict(labelled), stats)


#: Rows of the summary: a label and where its figure is in an arm of the stats.
_ROWS = (
    ("exposed to the form", ("exposures",)),
    ("signed up", ("signups",)),
    ("verified", ("conversion", "count")),
    ("suspect signups", ("suspect", "count")),
    ("labelled fake", ("labels", "fake")),
    ("confirmed fake among verified", ("labels", "fake_verified")),
)


def report(outcome: Outcome, people: list[Person], *, seed: int, took: float, base_url: str) -> str:
    """What ``verifyd demo`` prints at the end: the service's figures and where to look next.

    Args:
        outcome: The run.
        people: Its population.
        seed: Its seed.
        took: Seconds it took, server start included.
        base_url: The user's server (``VERIFYD_PUBLIC_BASE_URL``), for ``/admin``.
    """
    bots = sum(1 for p in people if p.bot)
    tally, v = outcome.tally, outcome.version
    refusals: Counter[str] = Counter()
    for (_, code), n in tally.refused.items():
        refusals[code] += n
    why = ", ".join(f"{code} {n}" for code, n in sorted(refusals.items()))
    labelled = ", ".join(f"{label} {n}" for label, n in sorted(outcome.labelled.items()))
    weights = " / ".join(f"{arm} {w}" for arm, w in WEIGHTS.items())
    experiment = (outcome.stats["versions"] or [{}])[0].get("experiment")
    lines = [
        f"verifyd demo: {_count(len(people), 'person', 'people')} ({len(people) - bots} "
        f"genuine, {_count(bots, 'bot', 'bots')}, seed {seed}) in {took:.1f} s. Times are "
        "compressed: the demo's seconds stand for a real user's minutes.",
        f"Signups refused, by the demo's count: {sum(refusals.values())}"
        + (f" ({why})" if why else "")
        + " (the stats count refusals by a block, not by a rate limit); accounts labelled: "
        + f"{labelled or 'none'}.",
        "",
        f"Policy version {v}, split {weights} (experiment {experiment}), as the service counts it:",
        *_table(outcome),
        "",
        f"Policy version {v} stays in force; change it with verifyd policy set phone "
        "(or email, or split --weights phone=70,email=30).",
        f"Open {base_url}/admin (log in with an admin key: verifyd admin-key create "
        f"--name you) or run verifyd report --policy-version {v}",
    ]
    if tally.other_version:
        lines.append(
            f"Note: {tally.other_version} policy reads were answered under another version: "
            "the policy was changed during the run."
        )
    return "\n".join(lines)


def _table(outcome: Outcome) -> list[str]:
    """The service's own figures of the demo's version, per arm, and its verdict."""
    (version,) = outcome.stats["versions"] or [{"arms": [], "comparison": None}]
    arms = {arm["arm"]: arm for arm in version["arms"]}
    names = [a for a in WEIGHTS if a in arms] + sorted(set(arms) - set(WEIGHTS))
    width = max(len(label) for label, _ in _ROWS)
    lines = ["  " + " " * width + "".join(f"{name:>10}" for name in names)]
    for label, path in _ROWS:
        cells = "".join(f"{_figure(arms[name], path):>10}" for name in names)
        lines.append(f"  {label:<{width}}{cells}")
    comparison = version.get("comparison") or {}
    verdict = comparison.get("verdict") or []
    if verdict:
        lines += ["", "  The verdict:"] + [f"  - {sentence}" for sentence in verdict]
    return lines


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _figure(arm: dict[str, Any], path: tuple[str, ...]) -> str:
    value: Any = arm
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return "-" if value is None else str(value)
