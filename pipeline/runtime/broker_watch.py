"""Say when the broker is unreachable: after a few seconds, then periodically, with the cause.

kafka-python retries an unreachable broker quietly (its own log lines say "socket
disconnected" once and then nothing an operator would read as an outage), and a loop
blocked in a bounded wait says nothing for up to that bound. The watch runs on its own
thread, so it speaks whatever the loop is doing: once the consumer has held no broker
connection for ``warn_after_s`` it logs ``kafka_unreachable`` (a warning, with how long
and, from one probe of the first bootstrap server, the cause: refused, timed out, TLS,
...), repeats it every ``repeat_s`` while it lasts, and logs ``kafka_reachable`` (info,
with how long it lasted) when a connection is back. ``unreachable_s`` feeds the
``driftline_kafka_unreachable_seconds`` gauge and keeps ``/healthz`` from blaming the
sidecar for partitions that cannot commit during an outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pipeline.io.diagnose import Diagnosis
from pipeline.logs import get_logger

__all__ = ["BrokerWatch"]

log = get_logger("driftline.kafka")


class BrokerWatch:
    """``connected``: does the client hold a broker connection (None: unknown);
    ``probe``: why the broker cannot be reached (None: the probe got through)."""

    def __init__(
        self,
        connected: Callable[[], bool | None],
        probe: Callable[[], Diagnosis | None],
        *,
        warn_after_s: float = 5.0,
        repeat_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connected = connected
        self.probe = probe
        self.warn_after_s = warn_after_s
        self.repeat_s = repeat_s
        self.clock = clock
        self.down_since: float | None = None
        self._warned_at: float | None = None
        self.warnings = 0

    def unreachable_s(self) -> float:
        """How long no broker connection has been held (0 while connected)."""
        since = self.down_since
        return 0.0 if since is None else max(0.0, self.clock() - since)

    def tick(self) -> None:
        """Look once; log what changed."""
        now = self.clock()
        if self.connected() is not False:  # connected, or the client does not say
            if self.down_since is not None and self._warned_at is not None:
                log.info("kafka_reachable", after_s=round(now - self.down_since, 1))
            self.down_since = self._warned_at = None
            return
        if self.down_since is None:
            self.down_since = now
            return
        down_s = now - self.down_since
        due = self._warned_at is None or now - self._warned_at >= self.repeat_s
        if down_s >= self.warn_after_s and due:
            self._warned_at = now
            self.warnings += 1
            found = self.probe()
            log.warning(
                "kafka_unreachable",
                seconds=round(down_s, 1),
                cause=found.cause if found is not None else "unknown",
                detail=str(found.message)
                if found is not None
                else "the broker answers a probe but the client holds no connection",
            )

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        while not stop.wait(interval_s):
            try:
                self.tick()
            except Exception as exc:  # never let the watch take the process down
                log.warning("broker_watch_failed", error=str(exc) or type(exc).__name__)
