"""Messages the broker keeps refusing: after a few identical failures, an error that advances.

A dead letter is cut to fit the broker's default limit, but a broker (or a topic) can
still refuse a record: a lower ``max.message.bytes`` on the dead-letter topic, an
invalid record, a topic the principal may not write. Retrying the checkpoint sends the
same message again (processing is deterministic), so without this the partition would
abort and recover at the same offset forever.

The rule: when the same message (the same record's output of the same kind and
content, or the same state entry) is refused ``REJECTED_ATTEMPTS`` times in a row, the
loop gives up on it. The next attempt commits without it: an output (alert, rollback
command, dead letter) is left out; a state entry is written as a tombstone (the key
restarts from scratch on its next restore, instead of from a stale snapshot). Each
give-up is logged as an error with the reason and counted
(``driftline_rejected_outputs_total{kind,reason}``); the offset moves past.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pipeline.core.records import Message, Record

__all__ = ["REJECTED_ATTEMPTS", "GivenUp", "Identity", "Rejections", "identity"]

REJECTED_ATTEMPTS = 5
"""Identical refusals of one message before the loop stops retrying it."""

Identity = tuple[object, ...]


def identity(record: Record | None, message: Message) -> Identity:
    """What stays the same when a batch is processed again: an output by its record's
    position, kind and content; a state entry by its key (its content changes with
    every batch that touches it)."""
    if message.kind == "state" or record is None:
        return ("state", message.partition, message.key)
    digest = hashlib.sha256(message.value or b"").hexdigest()[:32]
    return (record.topic, record.partition, record.offset, message.kind, message.key, digest)


@dataclass(frozen=True)
class GivenUp:
    kind: str
    reason: str
    attempts: int


class Rejections:
    """Counts refusals per message identity; bounded (oldest forgotten first)."""

    def __init__(self, limit: int = REJECTED_ATTEMPTS, capacity: int = 10_000) -> None:
        self.limit = limit
        self.capacity = capacity
        self._counts: OrderedDict[Identity, int] = OrderedDict()
        self._given_up: OrderedDict[Identity, GivenUp] = OrderedDict()

    def refused(self, key: Identity, kind: str, reason: str) -> GivenUp | None:
        """One more refusal of ``key``; the give-up when this one reaches the limit."""
        count = self._counts.pop(key, 0) + 1
        if count < self.limit:
            self._counts[key] = count
            _bound(self._counts, self.capacity)
            return None
        given = GivenUp(kind, reason, count)
        self._given_up[key] = given
        _bound(self._given_up, self.capacity)
        return given

    def given_up(self, key: Identity) -> bool:
        return key in self._given_up


def _bound(entries: OrderedDict[Identity, Any], capacity: int) -> None:
    while len(entries) > capacity:
        entries.popitem(last=False)
