"""Ground truth for scoring: where each (model, signal) really changed.

Two formats are read:

* the generator's truth file (``driftline generate --truth``): an object whose
  ``changes`` list holds ``{model_id, signal, position, timestamp, kind, ...}``;
* an annotated JSON list of change points, each ``{"model_id", "signal",
  "timestamp"}`` and/or ``"position"`` (optionally ``"kind"``, ``"note"``).

A change is located by its event ``timestamp`` when it has one (event time is what
drives a replay); ``position`` alone means the record's offset in its source (the
line number of a JSONL file, the row of a Parquet file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import DriftlineError

__all__ = ["ChangePoint", "TruthError", "group_changes", "load_truth", "parse_truth"]


class TruthError(DriftlineError):
    """The ground-truth file cannot be used."""


@dataclass(frozen=True)
class ChangePoint:
    model_id: str
    signal: str
    timestamp: datetime | None
    position: int | None
    kind: str = ""
    note: str = ""

    def sort_key(self) -> tuple[float, int]:
        t = self.timestamp.timestamp() if self.timestamp is not None else float("-inf")
        return (t, self.position if self.position is not None else -1)

    def label(self) -> str:
        if self.timestamp is not None:
            return self.timestamp.isoformat().replace("+00:00", "Z")
        return f"offset {self.position}"


def _parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise TruthError(f"{where}: timestamp must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TruthError(f"{where}: bad timestamp {value!r}") from None
    if parsed.tzinfo is None:
        raise TruthError(f"{where}: timestamp {value!r} needs a time zone (e.g. Z)")
    return parsed


def parse_truth(data: Any, *, source: str = "truth") -> list[ChangePoint]:
    """Change points from a decoded truth document, sorted by event time."""
    entries = data.get("changes") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise TruthError(f"{source}: expected a list of change points or an object with 'changes'")
    changes: list[ChangePoint] = []
    for i, entry in enumerate(entries):
        where = f"{source}: change {i}"
        if not isinstance(entry, dict):
            raise TruthError(f"{where}: expected an object")
        model = entry.get("model_id", entry.get("model"))
        signal = entry.get("signal")
        if not isinstance(model, str) or not isinstance(signal, str):
            raise TruthError(f"{where}: needs 'model_id' and 'signal' strings")
        raw_ts, raw_pos = entry.get("timestamp"), entry.get("position")
        if raw_ts is None and raw_pos is None:
            raise TruthError(f"{where}: needs 'timestamp' or 'position'")
        if raw_pos is not None and (not isinstance(raw_pos, int) or raw_pos < 0):
            raise TruthError(f"{where}: position must be a non-negative integer")
        changes.append(
            ChangePoint(
                model_id=model,
                signal=signal,
                timestamp=None if raw_ts is None else _parse_time(raw_ts, where),
                position=raw_pos,
                kind=str(entry.get("kind", "")),
                note=str(entry.get("note", "")),
            )
        )
    changes.sort(key=lambda c: (c.model_id, c.signal, c.sort_key()))
    return changes


def load_truth(path: str | Path) -> list[ChangePoint]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TruthError(f"cannot read truth file {path}: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TruthError(f"truth file {path} is not valid JSON: {exc}") from None
    return parse_truth(data, source=str(path))


def group_changes(changes: Iterable[ChangePoint]) -> dict[tuple[str, str], list[ChangePoint]]:
    """(model_id, signal) -> its change points in event-time order."""
    grouped: dict[tuple[str, str], list[ChangePoint]] = {}
    for change in changes:
        grouped.setdefault((change.model_id, change.signal), []).append(change)
    for points in grouped.values():
        points.sort(key=ChangePoint.sort_key)
    return grouped
