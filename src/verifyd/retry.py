"""When a failed delivery is tried again: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from verifyd.settings import Settings


@dataclass(frozen=True)
class Backoff:
    """Full jitter: the n-th retry waits a uniform time in ``[0, min(cap, base * 2**(n-1))]``.

    Spreading retries over the whole window keeps a gateway that comes back from being
    hit by every queued message at the same instant (the thundering herd a fixed
    exponential schedule causes). A provider's ``Retry-After`` is a floor: it is
    honoured even past the cap.

    Args:
        base: The first retry's window, in seconds (it comes within a few seconds).
        cap: The largest window, in seconds.
        max_attempts: Tries on one provider before the message fails over (or dies).
    """

    base: float
    cap: float
    max_attempts: int
    rng: random.Random = field(default_factory=random.SystemRandom, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        """The backoff the ``VERIFYD_DELIVERY_*`` settings describe."""
        return cls(
            base=settings.delivery_backoff_base_seconds,
            cap=settings.delivery_backoff_cap_seconds,
            max_attempts=settings.delivery_max_attempts,
        )

    def window(self, attempts: int) -> float:
        """The longest wait after the ``attempts``-th failed try (1 = the first)."""
        return float(min(self.cap, self.base * 2 ** max(0, attempts - 1)))

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed try."""
        wait = self.rng.uniform(0, self.window(attempts))
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait
