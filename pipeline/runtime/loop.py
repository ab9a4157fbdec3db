"""The processing loop, shared by the sidecar and replay.

Order per batch (at-least-once): process every record, send the outputs, flush
the sink (wait for acks), then commit the source offsets. A crash between flush
and commit re-processes the batch; the deterministic alert ids make the repeats
detectable downstream.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pipeline.config import RuntimeSettings
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.io.base import Sink, Source, TopicPartition
from pipeline.logs import get_logger
from pipeline.runtime.dead_letters import FailFastError, check_dead_letter, stamped

__all__ = ["FailFastError", "RunStats", "Runtime"]

log = get_logger("driftline.runtime")


@dataclass
class RunStats:
    batches: int = 0
    events: int = 0
    alerts: int = 0
    dead_letters: int = 0


class Runtime:
    """Drives a processor between a source and a sink.

    ``clock`` stamps dead letters with the time they failed; replay passes None so
    its output never depends on the wall clock.
    """

    def __init__(
        self,
        processor: Processor,
        source: Source,
        sink: Sink,
        settings: RuntimeSettings,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.processor = processor
        self.source = source
        self.sink = sink
        self.settings = settings
        self.clock = clock
        self.stats = RunStats()
        self.last_progress: float | None = None

    def run(self, stop: threading.Event | None = None) -> RunStats:
        """Process until the source is exhausted or ``stop`` is set; then flush,
        commit and return."""
        while stop is None or not stop.is_set():
            if not self.run_once() and self.source.exhausted:
                break
        return self.stats

    def run_once(self) -> bool:
        """Process one polled batch; False when the poll returned nothing."""
        records = self.source.poll(self.settings.max_batch_events, self.settings.poll_timeout_ms)
        if not records:
            return False
        offsets: dict[TopicPartition, int] = {}
        for record, messages in zip(records, self.processor.process_batch(records), strict=True):
            for message in messages:
                self._publish(record, message)
            offsets[(record.topic, record.partition)] = record.offset + 1
        self.sink.flush()
        self.source.commit(offsets)
        self.stats.batches += 1
        self.stats.events += len(records)
        return True

    def _publish(self, record: Record, message: Message) -> None:
        if message.kind == "dead_letter":
            try:
                check_dead_letter(record, message, fail_fast=self.settings.fail_fast)
            except FailFastError:
                self.sink.flush()
                raise
            self.stats.dead_letters += 1
            if self.clock is not None:
                message = stamped(message, self.clock().isoformat().encode())
        elif message.kind == "alert":
            self.stats.alerts += 1
        self.sink.send(message)
