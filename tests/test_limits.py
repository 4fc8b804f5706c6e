"""The flows' named limits: each counts in its own bucket and says what it counted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from verifyd.db import Database
from verifyd.errors import RateLimited
from verifyd.flows.limits import Limits
from verifyd.models import utcnow
from verifyd.settings import Settings


@pytest.mark.parametrize(
    ("name", "setting", "says"),
    [
        ("signup_ip", "signups_per_ip_per_hour", "too many signups from this address"),
        ("send_destination", "sends_per_destination_per_hour", "sent to this destination"),
        ("check_ip", "checks_per_ip_per_minute", "too many checks from this address"),
        ("guess_destination", "guess_budget_per_day", "guesses at codes for this destination"),
    ],
)
def test_each_limit_trips_after_its_setting_and_names_what_it_counts(
    make_settings: Callable[..., Settings], name: str, setting: str, says: str
) -> None:
    settings = make_settings(**{setting: 2}, sandbox_limit_multiplier=3)
    limits, db, now = Limits(settings), Database(settings.database_url), utcnow()
    try:
        with db.write() as conn:
            for _ in range(2):
                limits.hit(conn, name, "who", False, now)
            with pytest.raises(RateLimited) as info:
                limits.hit(conn, name, "who", False, now)
            assert info.value.code == "rate_limited"
            assert says in info.value.detail and "_" not in info.value.detail
            limits.hit(conn, name, "someone else", False, now)
            for _ in range(6):  # the sandbox twin: its own bucket, 3 times looser
                limits.hit(conn, name, "who", True, now)
            with pytest.raises(RateLimited):
                limits.hit(conn, name, "who", True, now)
    finally:
        db.dispose()
