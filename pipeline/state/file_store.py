"""A local snapshot file: detector state per source partition plus the source
positions it reflects.

Used by replay and backtests (the loop's ``SnapshotStore``: start from a snapshot,
save at the end, to continue a backtest later). The sidecar keeps its state in the
changelog topic instead.

The file is JSON, never pickle, and is replaced atomically (temp file in the same
directory, fsync, rename), so a crash leaves either the old or the new snapshot::

    {"schema": "driftline.state-file.v1",
     "partitions": {"0": {"<state key>": {...}, ...}, ...},
     "positions": {"0": {"<topic>": <next offset>, ...}, ...}}

The API is deliberately small: ``FileStateStore(path).load() -> Snapshot`` and
``.save(snapshot)``; ``Snapshot.apply`` folds ``Processor.changed_state`` into it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import DriftlineError

__all__ = ["FileStateStore", "Snapshot", "StateFileError"]

SCHEMA = "driftline.state-file.v1"


class StateFileError(DriftlineError):
    """The snapshot file cannot be read or written."""


@dataclass
class Snapshot:
    """State entries per source partition, and per partition the next offset to read
    of every topic (the positions the state reflects)."""

    partitions: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    positions: dict[int, dict[str, int]] = field(default_factory=dict)

    def apply(
        self,
        partition: int,
        changed: Mapping[str, Mapping[str, Any] | None],
        positions: Mapping[str, int] | None = None,
    ) -> None:
        """Fold ``Processor.changed_state(partition)`` in (None deletes a key) and
        record how far the source got."""
        entries = self.partitions.setdefault(partition, {})
        for key, state in changed.items():
            if state is None:
                entries.pop(key, None)
            else:
                entries[key] = dict(state)
        if positions:
            self.positions.setdefault(partition, {}).update(positions)

    def copy(self) -> Snapshot:
        """A snapshot that ``apply`` can change without changing this one: the maps
        are copied, the entries (never edited in place, only replaced) shared."""
        return Snapshot(
            partitions={p: dict(entries) for p, entries in self.partitions.items()},
            positions={p: dict(offsets) for p, offsets in self.positions.items()},
        )

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "schema": SCHEMA,
                "partitions": {str(p): e for p, e in sorted(self.partitions.items())},
                "positions": {str(p): o for p, o in sorted(self.positions.items())},
            },
            option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, raw: bytes, *, source: str = "snapshot") -> Snapshot:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StateFileError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise StateFileError(f"{source} is not a driftline state file ({SCHEMA})")
        try:
            partitions = {
                int(p): {str(k): dict(v) for k, v in entries.items()}
                for p, entries in data.get("partitions", {}).items()
            }
            positions = {
                int(p): {str(t): int(o) for t, o in offsets.items()}
                for p, offsets in data.get("positions", {}).items()
            }
        except (AttributeError, TypeError, ValueError) as exc:
            raise StateFileError(f"{source} is malformed: {exc}") from None
        return cls(partitions=partitions, positions=positions)


class FileStateStore:
    """One snapshot in one JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> Snapshot:
        """The saved snapshot; an empty one when the file does not exist."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Snapshot()
        except OSError as exc:
            raise StateFileError(f"cannot read {self.path}: {exc.strerror}") from None
        return Snapshot.from_json(raw, source=str(self.path))

    def save(self, snapshot: Snapshot) -> None:
        """Replace the file atomically with ``snapshot``."""
        directory = self.path.parent
        data = snapshot.to_json() + b"\n"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise StateFileError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StateFileError(f"cannot write {self.path}: {exc.strerror}") from None
        with contextlib.suppress(OSError):  # make the rename durable (POSIX)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
