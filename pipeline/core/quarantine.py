"""Keys that failed: reset, counted, reported once — never retried for ever.

The rule of the processing loop: no exception raised while routing an event,
updating a detector, applying the policy, or snapshotting or restoring a key's state
leaves the loop. An event whose routing fails is dead-lettered
(``processing_error``); a *key* whose detector update, snapshot or restore fails is
quarantined: its detector (or the model's policy state, or the entry) is reset to a
fresh one, the failure is counted (``quarantined:<stage>`` in the engine's stats, the
sidecar's ``driftline_quarantined_total{stage}``) and reported once per key and
stage through :meth:`Quarantine.drain` (the runtime logs it), and the fresh state is
what the next checkpoint writes, so a corrupt snapshot is not restored again.

The detectors themselves keep finite state for every input the decoder lets
through (numbers within ±1e100, see ``pipeline.events``); this is the net under
that, for bugs and for snapshots written by something else.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["STAGES", "Notice", "Quarantine", "finite_json"]

STAGES: Final = ("route", "update", "snapshot", "restore", "policy")
"""Where a failure was caught: an event's routing (the event is dead-lettered), a
detector update, a snapshot (``to_state`` raised or held NaN/inf), a restore (the
entry could not be read back), the alert policy of a model."""
MAX_PENDING: Final = 256
"""Notices kept until the runtime drains them (more are counted, not kept)."""
MAX_REMEMBERED: Final = 65_536
"""(stage, key) pairs already reported; past this many the memory starts over."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One key's first failure at one stage, for the log."""

    stage: str
    key: str
    error: str


class Quarantine:
    """Counts failures into ``stats`` and keeps the first of each key for the log."""

    def __init__(self, stats: Counter[str]) -> None:
        self.stats = stats
        self._reported: set[tuple[str, str]] = set()
        self._pending: list[Notice] = []

    def record(self, stage: str, key: str, exc: BaseException) -> None:
        self.stats[f"quarantined:{stage}"] += 1
        ident = (stage, key)
        if ident in self._reported:
            return
        if len(self._reported) >= MAX_REMEMBERED:
            self._reported.clear()
        self._reported.add(ident)
        if len(self._pending) >= MAX_PENDING:
            self.stats["quarantined:notices_dropped"] += 1
            return
        text = f"{type(exc).__name__}: {exc}"
        self._pending.append(Notice(stage, key[:300], text[:500]))

    def drain(self) -> list[Notice]:
        """The notices since the last call (each key and stage once per process)."""
        out, self._pending = self._pending, []
        return out


def finite_json(value: Any) -> bool:
    """Whether a plain-JSON value holds no NaN or infinity (they would be written as
    ``null`` and fail on restore)."""
    if type(value) is float:
        return math.isfinite(value)
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list | tuple):
        return True
    isfinite = math.isfinite
    for item in value:
        if type(item) is float:
            if not isfinite(item):
                return False
        elif isinstance(item, dict | list | tuple) and not finite_json(item):
            return False
    return True
