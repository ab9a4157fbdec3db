"""A state entry kept encoded until the restore reaches it.

A detector snapshot decoded from JSON takes ~2-3x its encoded bytes (dicts, strings,
lists of floats), and a partition of thousands of warmed models decoded whole held
all of that beside the state being built from it: a sidecar restoring 400 warmed
models held ~222 KiB per model for ~47 KiB of detectors. Kept as its record (the
changelog fold holds it compressed), an entry costs those bytes until its detector
is rebuilt, and then nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Deferred:
    """``read(raw)`` on demand: the entry's state (a JSON object); ``raw`` is
    whatever ``read`` takes (the changelog's: a record compressed)."""

    __slots__ = ("raw", "read")

    def __init__(self, raw: bytes, read: Callable[[bytes], dict[str, Any]]) -> None:
        self.raw = raw
        self.read = read

    def load(self) -> dict[str, Any]:
        return self.read(self.raw)


def loaded(state: Any) -> Any:
    """``state`` itself, or what a ``Deferred`` holds."""
    return state.load() if isinstance(state, Deferred) else state
