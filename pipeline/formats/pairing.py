"""Request and response halves waiting for each other, per source partition.

KServe's logger and Seldon Core 2 write a request and its response as two records;
driftline needs both (features from one, the answer from the other) to make one
prediction event. A half that arrives first waits here under its pair key until
its other half arrives (in either order), or until it is ``ttl`` older, in event
time, than the newest half seen on its partition: then it expires and is counted
(a request whose response was an error never gets one). At most ``max_pending``
halves wait per partition; beyond that the oldest is evicted, and counted.

The waiting halves are state like the detectors': per source partition, a plain
JSON snapshot (``snapshot``/``restore``) written to the changelog in the same
transaction as the offsets, so after a crash or a rebalance a half read before the
last commit is still waiting. Event time only: replays pair identically.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["PairBuffer", "Side"]

Side = Literal["request", "response"]
_OTHER: dict[str, Side] = {"request": "response", "response": "request"}
_VERSION = 1


@dataclass
class _Scope:
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    """pair key -> half (``side``, ``at`` and the format's payload), oldest first."""
    watermark: int | None = None
    dirty: bool = False


class PairBuffer:
    """Halves of one input (one topic, or one Seldon model's two topics)."""

    def __init__(self, ttl_micros: int, max_pending: int) -> None:
        self.ttl_micros = ttl_micros
        self.max_pending = max_pending
        self.counters: Counter[str] = Counter()
        """``paired``, ``expired_request``, ``expired_response``, ``evicted``, ``duplicate``."""
        self._scopes: dict[int, _Scope] = {}

    def offer(
        self, partition: int, key: str, side: Side, at: int, half: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Keep ``half``; the (request, response) pair once both are here."""
        scope = self._scopes.setdefault(partition, _Scope())
        scope.dirty = True
        if scope.watermark is None or at > scope.watermark:
            scope.watermark = at
        entry = {**half, "side": side, "at": at}
        waiting = scope.pending.get(key)
        result = None
        if waiting is not None and waiting["side"] == _OTHER[side]:
            del scope.pending[key]
            self.counters["paired"] += 1
            result = (entry, waiting) if side == "request" else (waiting, entry)
        else:
            if waiting is not None:
                self.counters["duplicate"] += 1
                del scope.pending[key]
            scope.pending[key] = entry
        self._expire(scope)
        return result

    def _expire(self, scope: _Scope) -> None:
        assert scope.watermark is not None
        horizon = scope.watermark - self.ttl_micros
        pending = scope.pending
        while pending:
            key = next(iter(pending))
            half = pending[key]
            if half["at"] >= horizon and len(pending) <= self.max_pending:
                break
            del pending[key]
            if half["at"] < horizon:
                self.counters[f"expired_{half['side']}"] += 1
            else:
                self.counters["evicted"] += 1

    def pending_total(self) -> int:
        return sum(len(scope.pending) for scope in self._scopes.values())

    def pending(self, partition: int) -> int:
        scope = self._scopes.get(partition)
        return 0 if scope is None else len(scope.pending)

    # -- state ---------------------------------------------------------------------
    def snapshot(self, partition: int) -> dict[str, Any] | None:
        """The partition's waiting halves if they changed since the last call."""
        scope = self._scopes.get(partition)
        if scope is None or not scope.dirty:
            return None
        scope.dirty = False
        return {
            "version": _VERSION,
            "watermark": scope.watermark,
            "pending": [[key, half] for key, half in scope.pending.items()],
        }

    def restore(self, partition: int, state: dict[str, Any]) -> None:
        if state.get("version") != _VERSION:
            raise ValueError(f"pairing state version {state.get('version')!r} unsupported")
        watermark = state["watermark"]
        self._scopes[partition] = _Scope(
            pending={str(key): dict(half) for key, half in state["pending"]},
            watermark=None if watermark is None else int(watermark),
        )

    def drop(self, partition: int) -> None:
        self._scopes.pop(partition, None)
