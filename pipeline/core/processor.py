"""Records in, the messages they cause out: decode -> engine (monitor, policy) -> encode.

The runtime drives this for the sidecar and for replay alike, so a backtest runs
exactly the production logic. ``process_batch`` is the entry point; ``process`` is
the same for one record (the property tests hold the two equal).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pipeline.config import Settings
from pipeline.core.engine import Engine, Output, Refused
from pipeline.core.eventtime import from_micros, micros, seconds_to_micros
from pipeline.core.journal import JournalTail, Report
from pipeline.core.monitor import Origin
from pipeline.core.quarantine import Notice
from pipeline.core.records import Message, Record
from pipeline.errors import DecodeError
from pipeline.events import AlertEvent, InputEvent, RollbackCommand
from pipeline.formats import RecordDecoder

__all__ = ["Processor", "alert_message", "alert_message_v1", "dead_letter", "rollback_message"]


DEAD_LETTER_HEADROOM: Final = 4096
"""Bytes kept free for the headers added after the processor (``dl_failed_at``, the
CloudEvents attributes, whose ``ce_source`` is bounded) and the record's framing."""
MAX_DEAD_LETTER_KEY: Final = 1024


def dead_letter(record: Record, reason: str, detail: str, *, max_bytes: int = 1_040_384) -> Message:
    """The original bytes, untouched, with where and why as headers — cut to fit
    ``max_bytes`` when they would not (``dl_truncated`` gives the original lengths,
    ``dl_sha256`` the hash of the original value)."""
    headers: list[tuple[str, bytes]] = [
        ("dl_reason", reason.encode()),
        ("dl_detail", detail[:2000].encode("utf-8", "replace")),
        ("dl_topic", record.topic.encode()),
        ("dl_partition", str(record.partition).encode()),
        ("dl_offset", str(record.offset).encode()),
    ]
    key, value = record.key, record.value
    cut: list[str] = []
    if key is not None and len(key) > MAX_DEAD_LETTER_KEY:
        cut.append(f"key={len(key)}")
        key = key[:MAX_DEAD_LETTER_KEY]
    used = sum(len(n) + len(v) for n, v in headers) + len(key or b"") + DEAD_LETTER_HEADROOM
    room = max(max_bytes - used - 128, 0)  # 128: the two headers added below
    if value is not None and len(value) > room:
        cut.append(f"value={len(value)}")
        headers.append(("dl_sha256", hashlib.sha256(value).hexdigest().encode()))
        value = value[:room]
    if cut:
        headers.append(("dl_truncated", ",".join(cut).encode()))
    return Message(kind="dead_letter", key=key, value=value, headers=tuple(headers))


def alert_message_v1(alert: AlertEvent) -> Message | None:
    """The alert for readers of ``alert.v1.json`` (``policy.alert_schema: 1``); a
    resolved alert has no version-1 form: None."""
    if alert.status != "firing":
        return None
    body = alert.as_v1().model_dump_json(by_alias=True).encode()
    return Message("alert", alert.model_id.encode(), body, (("schema", b"driftline.alert.v1"),))


def alert_message(alert: AlertEvent) -> Message:
    """The alert as published (contract version 2)."""
    return Message(
        kind="alert",
        key=alert.model_id.encode(),
        value=alert.model_dump_json(by_alias=True).encode(),
        headers=(("schema", b"driftline.alert.v2"),),
    )


def rollback_message(command: RollbackCommand) -> Message:
    headers: tuple[tuple[str, bytes], ...] = (("schema", b"driftline.rollback-command.v1"),)
    if command.dry_run:
        headers += (("dry_run", b"true"),)
    return Message(
        kind="rollback",
        key=command.model_id.encode(),
        value=command.model_dump_json(by_alias=True).encode(),
        headers=headers,
    )


class Processor:
    """Pure record processing. ``topic_kinds`` maps an input topic to its event
    kind; a topic not in it is decoded by each event's ``schema`` tag, unless the
    config's ``inputs`` give it a format (:mod:`pipeline.formats`)."""

    def __init__(self, settings: Settings, topic_kinds: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.topic_kinds = dict(topic_kinds or {})
        self.decoder = RecordDecoder(
            settings.runtime.max_event_bytes, self.topic_kinds, settings.inputs
        )
        self._dl_max = settings.runtime.max_dead_letter_bytes
        self._skew = seconds_to_micros(settings.limits.max_future_skew)
        self.engine = Engine(settings)
        self.monitor = self.engine
        """The engine under the name the runtime and backtests use (``observer``,
        ``live_keys()``, ``scopes``)."""
        self._stats: Counter[str] = Counter()

    @property
    def stats(self) -> Counter[str]:
        """Counters for metrics: events, dead letters by reason, alerts, rollbacks,
        the engine's (keys created/expired/refused, type mismatches, keys
        quarantined by stage: ``quarantined:<stage>``...) and the label
        join's (``labels:joined``, ``labels:late``, ``labels:orphan``...)."""
        out = Counter(self._stats)
        out.update(self.engine.stats)
        out.update({f"labels:{k}": v for k, v in self.engine.label_counters().items()})
        out.update({f"inputs:{k}": v for k, v in self.decoder.counters.items()})
        return out

    def process(self, record: Record) -> list[Message]:
        return self.process_batch([record])[0]

    def process_batch(self, records: Sequence[Record]) -> list[list[Message]]:
        """The messages of each record, in order: one list per record, the same as
        calling ``process`` on each in turn. A record may carry several events (a
        batched request) or none yet (half of a pair)."""
        out: list[list[Message]] = [[] for _ in records]
        index: list[int] = []
        items: list[tuple[InputEvent, Origin]] = []
        times: list[int | None] = []
        self._stats["events"] += len(records)
        for i, record in enumerate(records):
            try:
                events = self.decoder.decode(record)
            except DecodeError as exc:
                self._stats[f"dead_letter:{exc.reason}"] += 1
                out[i].append(dead_letter(record, exc.reason, exc.detail, max_bytes=self._dl_max))
                continue
            except Exception as exc:  # a decoder bug must not stop the partition
                self._stats["dead_letter:processing_error"] += 1
                detail = f"decoding: {type(exc).__name__}: {exc}"
                out[i].append(
                    dead_letter(record, "processing_error", detail, max_bytes=self._dl_max)
                )
                continue
            ahead, at = self._too_far_ahead(record, events)
            if ahead is not None:
                self._stats["dead_letter:timestamp_out_of_range"] += 1
                out[i].append(
                    dead_letter(record, "timestamp_out_of_range", ahead, max_bytes=self._dl_max)
                )
                continue
            origin = Origin(record.topic, record.partition, record.offset)
            for j, event in enumerate(events):
                index.append(i)
                items.append((event, origin))
                times.append(None if at is None else at[j])
        for i, outputs in zip(index, self.engine.process(items, times), strict=True):
            for o in outputs:
                message = self._encode(records[i], o)
                if message is not None:
                    out[i].append(message)
        return out

    def _too_far_ahead(
        self, record: Record, events: Sequence[InputEvent]
    ) -> tuple[str | None, list[int] | None]:
        """Why the record's events are too far in the future of its Kafka timestamp
        (``limits.max_future_skew``; None when they are not, or it has none), and
        the events' times in µs when they were computed for it (the engine's too)."""
        stamp = record.timestamp_ms
        if stamp is None or stamp <= 0 or not events:
            return None, None
        limit = stamp * 1000 + self._skew
        times = [micros(event.timestamp) for event in events]
        for at in times:
            if at > limit:
                return (
                    f"timestamp {from_micros(at).isoformat()} is more than "
                    f"limits.max_future_skew ({self.settings.limits.max_future_skew:g} s) ahead "
                    f"of the record's Kafka timestamp {from_micros(stamp * 1000).isoformat()}"
                ), times
        return None, times

    def _encode(self, record: Record, output: Output) -> Message | None:
        if isinstance(output, Refused):
            self._stats[f"dead_letter:{output.reason}"] += 1
            return dead_letter(record, output.reason, output.detail, max_bytes=self._dl_max)
        if isinstance(output, RollbackCommand):
            self._stats["rollbacks"] += 1
            return rollback_message(output)
        if self.settings.policy.alert_schema == 1:
            message = alert_message_v1(output)
        else:
            message = alert_message(output)
        if message is None:
            self._stats["alerts:resolved_not_published_v1"] += 1
            return None
        self._stats["alerts"] += 1
        if output.status == "resolved":
            self._stats["alerts:resolved"] += 1
        return message

    # -- state, per source partition (the runtime owns when it is saved) ---------
    def changed_state(self, partition: int) -> dict[str, dict[str, Any] | None]:
        """Snapshots of the state entries of ``partition`` changed since the last
        call (None: the entry was deleted)."""
        return {**self.engine.changed_state(partition), **self.decoder.changed_state(partition)}

    def report_state(self, partition: int) -> Report:
        """``partition``'s changes since the last call as a journal: the engine's
        (deltas for detectors logged in full, :mod:`pipeline.core.journal`), the
        decoder's entries as records of their own."""
        report = self.engine.report_state(partition) or Report(0)
        report.records.update(self.decoder.changed_state(partition))
        return report

    def restore(
        self,
        partition: int,
        entries: dict[str, dict[str, Any]],
        tail: JournalTail | None = None,
        *,
        release: bool = False,
    ) -> None:
        """Load ``partition``'s state as read back from the changelog (full entries,
        and the deltas of ``tail``). Never raises for an entry: what cannot be read
        is reset and reported (:mod:`pipeline.core.quarantine`). ``release``:
        ``entries`` is emptied, each entry let go of once its component is rebuilt
        (a restore then never holds all of a partition's decoded snapshots beside
        the state built from them)."""
        rest = self.decoder.restore(partition, entries)
        if release:
            entries.clear()
        for key, exc in self.decoder.restore_failures:
            self.engine.quarantine.record("restore", key, exc)
        self.decoder.restore_failures.clear()
        self.engine.restore(partition, rest, tail, release=release)

    def drain_notices(self) -> list[Notice]:
        """Keys quarantined since the last call, each key and stage once: the runtime
        logs them (``key_quarantined``)."""
        return self.engine.drain_notices()

    def drop(self, partition: int) -> None:
        """Forget ``partition``'s state (revoked or lost)."""
        self.engine.drop(partition)
        self.decoder.drop(partition)
