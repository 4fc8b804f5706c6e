"""The SMS-pumping drill over real HTTP, on SQLite and PostgreSQL, with the default defences.

The attack that was measured before the defences: 1,000 signups to sequential
real-looking mobile numbers in one UK prefix from many client addresses, none ever
verified. Here it runs against a live server with every pumping setting at its default:
the SMS a provider gets must stay within the prefix budget, the budget must refuse
(429 with ``Retry-After``), the breaker must trip (403 ``sms_destination_suspended``, listed
by the admin API, counted in ``/metrics``), and the stats must count every refusal.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from support.liveserver import LiveServer
from support.outbox import Flaky, wait
from verifyd.app import create_app
from verifyd.registry import Registry
from verifyd.runtime import Runtime
from verifyd.settings import Settings

SIGNUPS = 1000
ADDRESSES = 50
#: +44 7911 120000 … 120199: valid mobiles for phonenumbers, one prefix (+447911120).
NUMBERS = [f"+4479111{20000 + i:05d}" for i in range(200)]
PREFIX = "+447911120"


@pytest.fixture
def live(
    make_settings: Callable[..., Settings], backup: type[Flaky]
) -> Iterator[tuple[LiveServer, Runtime, type[Flaky]]]:
    """A live server whose SMS go to ``backup`` (it records them); defences at defaults."""
    installed = Registry.from_entry_points()
    registry = Registry(
        channels=installed.channels, providers={**installed.providers, "backup": backup}
    )
    settings = make_settings(
        sms_provider="backup", email_provider="backup", trusted_proxies=["127.0.0.1"]
    )
    app = create_app(settings, registry=registry)
    with LiveServer(app) as server:
        yield server, app.state.runtime, backup


def _clear_of_the_hour() -> None:
    """The budgets are hourly windows: never start the drill in a window's last seconds."""
    left = 3600 - int(time.time()) % 3600
    if left < 45:
        time.sleep(left + 1)


async def _attack(base_url: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=ADDRESSES)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        gate = asyncio.Semaphore(ADDRESSES)

        async def one(i: int) -> httpx.Response:
            forwarded = {"X-Forwarded-For": f"198.51.100.{i % ADDRESSES + 1}"}
            async with gate:
                return await http.post(
                    "/v1/accounts", json={"phone": NUMBERS[i % len(NUMBERS)]}, headers=forwarded
                )

        return list(await asyncio.gather(*(one(i) for i in range(SIGNUPS))))


def _metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


def test_pumping_drill(live: tuple[LiveServer, Runtime, type[Flaky]]) -> None:
    server, rt, provider = live
    key, _ = rt.admin_keys.create("drill", "cli:test")
    admin = {"Authorization": f"Bearer {key}"}
    budget = rt.settings.sms_budget_per_prefix_per_hour
    _clear_of_the_hour()

    started = time.monotonic()
    answers = asyncio.run(_attack(server.base_url))
    took = time.monotonic() - started
    statuses = Counter(r.status_code for r in answers)
    codes = Counter(r.json().get("code") for r in answers if r.status_code != 201)

    # Every signup got an answer: sent, budget-refused or suspended; nothing else.
    assert set(statuses) == {201, 429, 403}, (statuses, codes)
    assert codes == {"rate_limited": statuses[429], "sms_destination_suspended": statuses[403]}
    assert statuses[201] == budget
    for r in answers:
        if r.status_code != 201:
            assert r.headers["content-type"] == "application/problem+json"
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["retry_after"] == int(r.headers["Retry-After"])
    # The breaker tripped at the first refusal; the rest are suspended.
    assert statuses[403] > statuses[429] >= 1

    # What the SMS provider actually got: the budget, no more, all in the one prefix.
    wait("the admitted codes to go out", lambda: len(provider.sent) >= budget)
    time.sleep(0.3)  # anything else queued would have gone by now
    assert len(provider.sent) == budget
    assert {m.to[:-3] for m in provider.sent} == {PREFIX}

    with httpx.Client(base_url=server.base_url, headers=admin) as http:
        listed = http.get("/v1/admin/breakers").json()["breakers"]
        assert [(b["scope"], b["key"], b["verified"]) for b in listed] == [("prefix", PREFIX, 0)]
        assert listed[0]["sent"] == budget
        expires = datetime.fromisoformat(listed[0]["expires_at"])
        hold = expires - datetime.fromisoformat(listed[0]["tripped_at"])
        assert hold.total_seconds() == rt.settings.sms_breaker_hold_seconds
        assert expires > datetime.now(UTC)

        arms = [a for v in http.get("/v1/admin/stats").json()["versions"] for a in v["arms"]]
        blocked: Counter[str] = Counter()
        for arm in arms:
            blocked.update(arm["blocked"]["by_reason"])
        assert blocked["sms_budget_prefix"] == statuses[429]
        assert blocked["sms_destination_suspended"] == statuses[403]
        assert sum(a["signups"] for a in arms) == budget

        metrics = http.get("/metrics").text
        assert _metric(metrics, "verifyd_sms_breaker_trips_total", 'scope="prefix"') == 1
        assert _metric(metrics, "verifyd_sms_breakers_active", 'scope="prefix"') == 1
    print(f"drill: {dict(statuses)} in {took:.1f} s; {len(provider.sent)} SMS sent")
