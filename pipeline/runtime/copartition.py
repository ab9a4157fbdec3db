"""Notice when one key (a model id) arrives on different partition numbers across input topics.

driftline keeps state and joins labels per partition number, so a model's events must
land in the same partition number on every input topic (README "Producers: key by
model, hash with murmur2"). A producer on librdkafka's default partitioner (CRC32)
and one on Java's or kafka-python's (murmur2) place most keys differently, and
nothing fails: the label join just pairs nothing. This check remembers, for the keys
of the driftline-format input topics it sees, the partition number each was first
seen on; a key seen later on another number is a mismatch, counted per topic
(``driftline_partition_mismatches_total``) and warned about at most once a minute
per topic pair. It sees only the partitions this instance owns: with several
sidecars, a key split between two members' partitions goes unnoticed by both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from pipeline.core.records import Record
from pipeline.logs import RateLimiter, get_logger

__all__ = ["Mismatch", "PartitionerCheck"]

log = get_logger("driftline.runtime")

MAX_KEYS = 20_000
"""Keys remembered (least recently seen forgotten first)."""
MAX_KEY_CHARS = 120
"""A key is logged cut to this many characters."""


@dataclass(frozen=True)
class Mismatch:
    key: bytes
    topic: str
    partition: int
    first_topic: str
    first_partition: int


class PartitionerCheck:
    def __init__(
        self,
        topics: Collection[str],
        *,
        on_mismatch: Callable[[Mismatch], None] = lambda m: None,
        capacity: int = MAX_KEYS,
        window_s: float = 60.0,
    ) -> None:
        self.topics = frozenset(topics)
        self.on_mismatch = on_mismatch
        self.capacity = capacity
        self._seen: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self._limiter = RateLimiter(window_s)

    def observe(self, records: Sequence[Record]) -> list[Mismatch]:
        found: list[Mismatch] = []
        for record in records:
            if not record.key or record.topic not in self.topics:
                continue
            first = self._seen.get(record.key)
            if first is None:
                self._seen[record.key] = (record.topic, record.partition)
                if len(self._seen) > self.capacity:
                    self._seen.popitem(last=False)
                continue
            self._seen.move_to_end(record.key)
            if first[1] != record.partition:
                mismatch = Mismatch(record.key, record.topic, record.partition, *first)
                found.append(mismatch)
                self.on_mismatch(mismatch)
                self._warn(mismatch)
        return found

    def _warn(self, m: Mismatch) -> None:
        held_back = self._limiter.allow((m.first_topic, m.topic))
        if held_back is None:
            return
        log.warning(
            "partitioner_mismatch",
            key=m.key[:MAX_KEY_CHARS].decode("utf-8", "replace"),
            topic=m.topic,
            partition=m.partition,
            first_topic=m.first_topic,
            first_partition=m.first_partition,
            repeated=held_back,
            detail="one key on two partition numbers: the producers hash keys differently "
            "(librdkafka's default is CRC32; set partitioner=murmur2_random) or the topics "
            "have different partition counts; the label join and state are per partition",
        )
