"""A fake clock for the whole service: every module's ``utcnow`` reads it.

The flows, the outbox and the limiters take the time from ``verifyd.models.utcnow``
(imported by name into each module); swapping that name in every loaded ``verifyd``
module moves the service through simulated days in milliseconds, including a live
server running in this process (``support.liveserver``).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import pytest

from verifyd import modelbase


class FakeClock:
    """A settable UTC time.

    Args:
        start: The first time it reads (timezone-aware).
    """

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds``; returns the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
        """Make every loaded ``verifyd`` module read this clock (undone at teardown)."""
        real = modelbase.utcnow
        for name, module in list(sys.modules.items()):
            if name.startswith("verifyd") and getattr(module, "utcnow", None) is real:
                monkeypatch.setattr(module, "utcnow", self)
        return self
