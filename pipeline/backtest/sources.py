"""Where a backtest reads history from.

``--input`` takes a path or a topic:

* ``events.jsonl`` / ``events.jsonl.gz`` — one event per line (``JsonlSource``);
* ``events.parquet`` — Parquet (``pip install driftline[parquet]``): either one
  column ``value`` holding each event's JSON (a dump of a topic), or one column per
  event field (``schema``, ``event_id``, ``model_id``, ``timestamp``, ``features``
  as a struct or map...). Timestamps without a time zone are read as UTC;
* ``kafka:TOPIC`` — the topic between ``--from`` and ``--to`` (offsets or
  ISO-8601 times) read by a throw-away consumer (``KafkaRangeSource``).

A record's offset is its line (JSONL) or row (Parquet) number, or its Kafka
offset: alert ids and dead letters point at it.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.core.records import Record
from pipeline.errors import SourceError
from pipeline.io.base import Source, Standalone, TopicPartition
from pipeline.io.files import JsonlSource

__all__ = [
    "InputSpec",
    "ParquetSource",
    "count_records",
    "open_source",
    "parse_bound",
    "parse_input",
]

KAFKA_PREFIX = "kafka:"


@dataclass(frozen=True)
class InputSpec:
    """One ``--input``: a file (``path``) or a Kafka topic range (``topic``)."""

    text: str
    kind: str  # "jsonl" | "parquet" | "kafka"
    path: Path | None = None
    topic: str | None = None
    start: int | datetime | None = None
    end: int | datetime | None = None

    @property
    def label(self) -> str:
        if self.kind != "kafka":
            return self.text
        bounds = [
            "" if b is None else (b.isoformat() if isinstance(b, datetime) else str(b))
            for b in (self.start, self.end)
        ]
        return f"{self.text} [{bounds[0] or 'earliest'} .. {bounds[1] or 'end'})"


def parse_bound(text: str | None) -> int | datetime | None:
    """An offset (digits) or an ISO-8601 time with a zone (``Z`` allowed)."""
    if text is None or text == "":
        return None
    if text.isdigit():
        return int(text)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(f"bound {text!r} is neither an offset nor an ISO-8601 time") from None
    if value.tzinfo is None:
        raise SourceError(f"time bound {text!r} needs a time zone (e.g. Z)")
    return value


def parse_input(text: str, *, start: str | None = None, end: str | None = None) -> InputSpec:
    if text.startswith(KAFKA_PREFIX):
        topic = text.removeprefix(KAFKA_PREFIX)
        if not topic:
            raise SourceError("kafka input needs a topic: kafka:TOPIC")
        return InputSpec(text, "kafka", topic=topic, start=parse_bound(start), end=parse_bound(end))
    if start is not None or end is not None:
        raise SourceError("--from/--to apply to kafka:TOPIC inputs only")
    path = Path(text)
    kind = "parquet" if path.suffix in (".parquet", ".pq") else "jsonl"
    return InputSpec(text, kind, path=path)


def open_source(
    spec: InputSpec,
    settings: Settings,
    *,
    positions: Mapping[int, Mapping[str, int]] | None = None,
) -> Source:
    """Open ``spec``. A Kafka range without ``--from`` starts where ``positions``
    (from a snapshot) say this topic's partitions stopped."""
    if spec.kind == "jsonl":
        assert spec.path is not None
        return JsonlSource(spec.path)
    if spec.kind == "parquet":
        assert spec.path is not None
        return ParquetSource(spec.path)
    from pipeline.io.kafka_range import KafkaRangeSource

    assert spec.topic is not None
    start: Any = spec.start
    if start is None and positions:
        resumed = {p: o[spec.topic] for p, o in positions.items() if spec.topic in o}
        start = resumed or None
    return KafkaRangeSource(
        spec.topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        start=start,
        end=spec.end,
        client_id=f"{settings.kafka.client_id}-backtest",
        extra=settings.kafka.client_options(),
    )


def count_records(spec: InputSpec, source: Source) -> int | None:
    """How many records ``source`` will deliver (for an ETA); None if unknown."""
    total = getattr(source, "total", None)
    if isinstance(total, int):
        return total
    if spec.kind == "jsonl" and spec.path is not None:
        opener: Any = gzip.open if spec.path.suffix == ".gz" else open
        lines = 0
        last = b"\n"
        with opener(spec.path, "rb") as f:
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return lines + (last != b"\n")
    return None


# ------------------------------------------------------------------------- Parquet
def _plain(value: Any) -> Any:
    """pyarrow's Python values -> JSON-ready ones (map columns come as pair lists)."""
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class ParquetSource(Standalone):
    """Rows of a Parquet file as records of partition 0 of ``file:<name>``."""

    def __init__(self, path: str | Path, topic: str | None = None, batch_rows: int = 8192) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SourceError(
                "reading Parquet needs pyarrow: pip install 'driftline[parquet]'"
            ) from None
        self.path = Path(path)
        self.topic = topic or f"file:{self.path.name}"
        try:
            self._file = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot open {self.path} as Parquet: {exc}") from None
        schema = self._file.schema_arrow
        names = set(schema.names)
        self._raw = "value" in names and "event_id" not in names
        if self._raw:
            kind = schema.field("value").type
            if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
                    or pa.types.is_string(kind) or pa.types.is_large_string(kind)):  # fmt: skip
                raise SourceError(f"{self.path}: column 'value' must be binary or string")
        self._batch_rows = batch_rows
        self._batches = self._file.iter_batches(batch_size=batch_rows)
        self._pending: Iterator[bytes] = iter(())
        self._row = 0
        self._done = False
        self.committed: dict[TopicPartition, int] = {}
        self._assign_all([(self.topic, 0)])

    @property
    def total(self) -> int:
        return int(self._file.metadata.num_rows)

    @property
    def exhausted(self) -> bool:
        return self._done

    def _next_batch(self) -> bool:
        try:
            batch = next(self._batches)
        except StopIteration:
            self._done = True
            return False
        if self._raw:
            values = batch.column("value").to_pylist()
            self._pending = iter(
                b"" if v is None else (v.encode() if isinstance(v, str) else v) for v in values
            )
        else:
            rows = batch.to_pylist()
            self._pending = iter(self._encode(row) for row in rows)
        return True

    @staticmethod
    def _encode(row: dict[str, Any]) -> bytes:
        event = {k: _plain(v) for k, v in row.items() if v is not None}
        return orjson.dumps(event, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        out: list[Record] = []
        while len(out) < max_records and not self._done:
            for value in self._pending:
                out.append(Record(self.topic, 0, self._row, value))
                self._row += 1
                if len(out) >= max_records:
                    break
            else:
                self._next_batch()
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def rewind_to_committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Read again from the first row, skipping to the committed one."""
        if (self.topic, 0) not in set(partitions):
            return {}
        row = self.committed.get((self.topic, 0), 0)
        self._batches = self._file.iter_batches(batch_size=self._batch_rows)
        self._pending, self._row, self._done = iter(()), 0, False
        while self._row < row and self.poll(min(row - self._row, 65536), 0):
            pass
        return {(self.topic, 0): row}

    def close(self) -> None:
        self._file.close()
