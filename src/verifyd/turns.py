"""Turns at calling a provider: a bound on sends in flight that a stop cuts short.

The outbox claims a batch and delivers it concurrently; each message takes a turn
before its provider call and gives it back after. ``stop`` wakes every message still
waiting for a turn with a refusal, so a stopping worker hands those back at once
instead of sending them (see ``outbox.Dispatcher.stop``).
"""

from __future__ import annotations

import asyncio
import contextlib


class Turns:
    """At most ``concurrency`` turns out at once; none granted after ``stop``.

    Args:
        concurrency: Provider calls in flight at once.
    """

    def __init__(self, concurrency: int) -> None:
        self._free = asyncio.Semaphore(concurrency)
        self._stopped = asyncio.Event()
        self.stopping = False

    def stop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Refuse every turn from now on, waking the waiters (callable from any thread).

        Args:
            loop: The loop the waiters run on, or ``None`` when nothing runs yet.
        """
        self.stopping = True
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stopped.set)

    async def take(self) -> bool:
        """Wait for a turn: ``True`` with one held (``release`` it), ``False`` once stopping.

        Without contention this is one uncontended acquire, as cheap as no bound at all.
        """
        if self.stopping:
            return False
        if not self._free.locked():
            await self._free.acquire()
            return True
        turn = asyncio.ensure_future(self._free.acquire())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait([turn, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not turn.done():
                turn.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await turn
        if turn.cancelled():
            return False
        if self.stopping:  # granted and stopped at once: stopping wins
            self._free.release()
            return False
        return True

    def release(self) -> None:
        """Give back a turn ``take`` granted."""
        self._free.release()
