"""A one-line progress bar with events/s and ETA, on a terminal only.

The wall clock is read here for display and never reaches the replay's results.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_eta"]


def format_eta(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``update(n)`` after each batch; redraws at most every ``interval`` seconds.

    ``enabled=None`` shows the bar only when ``stream`` is a TTY.
    """

    def __init__(
        self,
        total: int | None,
        *,
        label: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
        width: int = 28,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.label = label
        self.interval = interval
        self.width = width
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn >= self.interval:
            self._drawn = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        head = f"{self.label} " if self.label else ""
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            eta = format_eta((self.total - self.done) / rate) if rate > 0 else "?"
            return (
                f"{head}[{bar}] {frac * 100:5.1f}% {self.done:,}/{self.total:,} events "
                f"{rate:,.0f} ev/s ETA {eta}"
            )
        return f"{head}{self.done:,} events {rate:,.0f} ev/s {format_eta(elapsed)} elapsed"

    def _draw(self, now: float) -> None:
        self.stream.write("\r\x1b[2K" + self.line(now))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
