"""The demo's progress bar: redrawn in place on a terminal, a line per tenth otherwise."""

from __future__ import annotations

import time
from typing import TextIO

#: Characters of the bar.
WIDTH = 30


class Progress:
    """Counts finished people on a stream (standard error).

    Args:
        total: How many people the run has.
        stream: Where the bar goes; a terminal gets it redrawn, anything else a line
            every 10 % (a log or CI output stays readable).
        enabled: ``False`` draws nothing (``--quiet``).
    """

    def __init__(self, total: int, stream: TextIO, *, enabled: bool = True) -> None:
        self._total = max(total, 1)
        self._stream = stream
        self._enabled = enabled
        self._tty = enabled and stream.isatty()
        self._done = 0
        self._tenths = 0
        self._drawn_at = 0.0
        self._started = time.monotonic()

    def advance(self) -> None:
        """One more person finished."""
        self._done += 1
        if not self._enabled:
            return
        if self._tty:
            now = time.monotonic()
            if now - self._drawn_at >= 0.1 or self._done == self._total:
                self._drawn_at = now
                self._stream.write("\r" + self._line())
                self._stream.flush()
            return
        tenths = self._done * 10 // self._total
        if tenths > self._tenths:
            self._tenths = tenths
            self._stream.write(self._line() + "\n")
            self._stream.flush()

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self._tty and self._done:
            self._stream.write("\n")
            self._stream.flush()

    def _line(self) -> str:
        filled = WIDTH * self._done // self._total
        bar = "#" * filled + "." * (WIDTH - filled)
        share = 100 * self._done // self._total
        elapsed = time.monotonic() - self._started
        return (
            f"verifyd demo [{bar}] {share:3d}% {self._done}/{self._total} people, {elapsed:4.1f} s"
        )
