"""Input formats: what a source topic carries, decoded into driftline events before the core.

A topic of ``topics`` (``driftline.predictions``...) or an ``inputs`` entry with
``format: driftline`` carries driftline's own JSON events. An ``inputs`` entry with
``format: kserve-cloudevents`` (:mod:`pipeline.formats.kserve`) or ``seldon-oip``
(:mod:`pipeline.formats.seldon`) carries what a serving stack already writes, and
its adapter pairs each request with its response into prediction events. Whatever a
topic carries, the rest is the same: routing, detectors, policy, exactly-once, and
the dead-letter topic for a record that cannot be decoded (with the reason).

An adapter's waiting halves are state of the source partition, reported by
``changed_state`` under ``pairs:<topic>`` keys next to the engine's entries and
restored with them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

from pipeline.core.decode import Decoder
from pipeline.core.records import Record
from pipeline.errors import DecodeError
from pipeline.events import InputEvent
from pipeline.formats.kserve import KServeAdapter
from pipeline.formats.pairing import PairBuffer
from pipeline.formats.seldon import SeldonAdapter
from pipeline.formats.specs import DriftlineInput, InputSpec, KServeInput, SeldonInput

__all__ = [
    "DriftlineInput",
    "InputSpec",
    "KServeInput",
    "RecordDecoder",
    "SeldonInput",
    "STATE_PREFIX",
]

STATE_PREFIX: Final = "pairs:"


class Adapter(Protocol):
    pairs: PairBuffer
    counters: Counter[str]

    def decode(self, record: Record) -> list[InputEvent]: ...


class RecordDecoder:
    """Record -> the events it carries, by the format of its topic.

    ``topic_kinds`` maps driftline topics to their event kind (a topic not in it and
    not an adapter's is decoded by each event's ``schema`` tag).
    """

    def __init__(
        self,
        max_event_bytes: int,
        topic_kinds: Mapping[str, str],
        inputs: Iterable[DriftlineInput | KServeInput | SeldonInput] = (),
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.json = Decoder(max_event_bytes)
        self.kinds = dict(topic_kinds)
        self.adapters: dict[str, Adapter] = {}
        self.named: dict[str, Adapter] = {}
        """State key -> adapter."""
        self._stale: dict[int, set[str]] = {}
        self.restore_failures: list[tuple[str, Exception]] = []
        """Entries ``restore`` could not read (dropped; the processor reports them)."""
        for spec in inputs:
            if isinstance(spec, DriftlineInput):
                if spec.kind is not None:
                    self.kinds[spec.topic] = spec.kind
                continue
            adapter: Adapter = (
                KServeAdapter(spec) if isinstance(spec, KServeInput) else SeldonAdapter(spec)
            )
            for topic in spec.topics():
                self.adapters[topic] = adapter
            self.named[STATE_PREFIX + spec.topics()[0]] = adapter

    def decode(self, record: Record) -> list[InputEvent]:
        value = record.value
        if value is None:
            raise DecodeError("tombstone", "the record's value is null (a Kafka tombstone)")
        adapter = self.adapters.get(record.topic)
        if adapter is None:
            return [self.json.decode(value, self.kinds.get(record.topic))]
        if len(value) > self.max_event_bytes:
            raise DecodeError(
                "oversized",
                f"payload is {len(value)} bytes, the limit is {self.max_event_bytes}",
            )
        return adapter.decode(record)

    @property
    def counters(self) -> Counter[str]:
        """Per input (``<topic>:<counter>``): paired, expired_request,
        expired_response, evicted, duplicate, skipped_*."""
        out: Counter[str] = Counter()
        for name, adapter in self.named.items():
            for counter, value in (adapter.pairs.counters + adapter.counters).items():
                out[f"{name.removeprefix(STATE_PREFIX)}:{counter}"] = value
        return out

    def pending(self) -> dict[str, int]:
        """Halves waiting per input (over every partition held)."""
        return {
            name.removeprefix(STATE_PREFIX): adapter.pairs.pending_total()
            for name, adapter in self.named.items()
        }

    # -- state ---------------------------------------------------------------------
    def changed_state(self, partition: int) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = dict.fromkeys(self._stale.pop(partition, ()))
        for name, adapter in self.named.items():
            snapshot = adapter.pairs.snapshot(partition)
            if snapshot is not None:
                out[name] = snapshot
        return out

    def restore(self, partition: int, entries: Mapping[str, Any]) -> dict[str, Any]:
        """Load this decoder's entries of ``entries`` (anything held before for the
        partition is dropped); the rest (the engine's)."""
        for adapter in self.named.values():
            adapter.pairs.drop(partition)
        rest: dict[str, Any] = {}
        for key, state in entries.items():
            if not key.startswith(STATE_PREFIX):
                rest[key] = state
            elif key in self.named:
                try:
                    self.named[key].pairs.restore(partition, state)
                except Exception as exc:  # the waiting halves are lost, not the partition
                    self.named[key].pairs.drop(partition)
                    self._stale.setdefault(partition, set()).add(key)
                    self.restore_failures.append((key, exc))
            else:  # an input no longer configured: delete its entry
                self._stale.setdefault(partition, set()).add(key)
        return rest

    def drop(self, partition: int) -> None:
        self._stale.pop(partition, None)
        for adapter in self.named.values():
            adapter.pairs.drop(partition)
