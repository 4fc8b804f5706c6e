"""Shadow messages: handled by the dispatcher like any other, sent to nobody.

A signup for an identity an active account owns gets a *shadow* verification (see
``docs/security.md``). Its message is queued, claimed, loaded and settled by the same
statements as a real one, so every read a client can make (the verification's
``delivery``, the account, a resend, a check) moves on the same schedule. Only the
provider call is left out; to keep the *time* that call takes, a shadow waits for as
long as a recent real send through the same provider took.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque

#: Recent real send durations kept per provider (a shadow waits for one of them).
SAMPLES = 64


class ShadowSends:
    """Stands in for the provider call of a shadow message.

    Durations are kept per process: a shadow handled right after start-up, before any
    real send through its provider, waits for nothing.
    """

    def __init__(self) -> None:
        self._took: dict[str, deque[float]] = {}

    def observe(self, provider: str, seconds: float) -> None:
        """Remember how long a real, accepted send through ``provider`` took."""
        self._took.setdefault(provider, deque(maxlen=SAMPLES)).append(seconds)

    def wait_for(self, provider: str) -> float:
        """How long the next shadow through ``provider`` waits (a recent real send's time)."""
        took = self._took.get(provider)
        return random.choice(took) if took else 0.0

    async def send(self, provider: str) -> None:
        """Take the time a real send would; send nothing."""
        delay = self.wait_for(provider)
        if delay > 0:
            await asyncio.sleep(delay)
