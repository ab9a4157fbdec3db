"""The checkpoint: the one place that decides in which order a batch becomes durable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.io.base import Sink, Source, TopicPartition, TransactionalSink
from pipeline.runtime.stores import StateStore

__all__ = ["Checkpoint", "Delivery", "Positions"]

Positions = dict[int, dict[str, int]]
"""Per source partition number (a state scope): the next offset per input topic
that its state reflects."""


@dataclass(frozen=True)
class Delivery:
    """Where a checkpoint's records go, and how they become durable.

    Exactly-once: ``transaction`` is ``sink`` itself, a ``TransactionalSink``.
    At-least-once: ``transaction`` is None; ``sink`` is flushed and the source
    commits the offsets afterwards.
    """

    sink: Sink
    transaction: TransactionalSink | None = None

    @classmethod
    def exactly_once(cls, sink: TransactionalSink) -> Delivery:
        return cls(sink, sink)

    @classmethod
    def at_least_once(cls, sink: Sink) -> Delivery:
        return cls(sink)


class Checkpoint:
    """One batch, from processed records to committed offsets.

    The loop opens a checkpoint for each batch it polled, processes the batch,
    and commits the checkpoint with the messages the batch caused. The order
    (after quixstreams' ``checkpointing/checkpoint.py``):

    1. **begin** (before the batch is processed). Exactly-once: open a
       transaction and add the batch's consumer offsets to it on the side, so
       those broker round trips overlap the processing. At-least-once: nothing.
    2. **outputs**: send the alerts, rollback commands and dead letters, in
       record order. At-least-once: flush them, so that they are durable before
       anything below claims their records were processed.
    3. **changelog**: for every source partition the batch touched, record the
       positions its state now reflects and save the state entries that changed
       (``StateStore.save``; the changelog store sends them through the same sink,
       tagged with those positions; a lazy store — replay's — only records the
       positions and takes the entries from the processor when it is read).
    4. **commit**. Exactly-once: wait for the offsets of step 1, then commit the
       transaction: outputs, changelog and offsets become visible together, or
       not at all. At-least-once: flush the changelog, then commit the offsets
       to the source.

    A failure anywhere in 2-4 leaves the loop to call ``abort`` and recover
    (rewind to the committed offsets, restore state from the store). With
    exactly-once the abort discards everything the batch sent; with
    at-least-once what was already sent may still arrive, so a reprocessed batch
    repeats outputs (same deterministic ids) and never loses one; the positions
    tags keep a restored state from counting a record twice.
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        processor: Processor,
        source: Source,
        delivery: Delivery,
        store: StateStore,
        positions: Positions,
        offsets_worker: Executor | None = None,
        state_sink: Sink | None = None,
    ) -> None:
        self.records = records
        self.processor = processor
        self.source = source
        self.delivery = delivery
        self.store = store
        self.positions = positions
        self.offsets_worker = offsets_worker
        self.state_sink = state_sink
        """Where state records are sent (default: the delivery's sink)."""
        self.offsets: dict[TopicPartition, int] = {}
        for record in records:
            self.offsets[(record.topic, record.partition)] = record.offset + 1
        self.state_records = 0
        self._offsets_added: Future[None] | None = None

    def begin(self) -> None:
        # Step 1: exactly-once opens the transaction; its offsets join it on the side
        # (nothing polls until the checkpoint ends, so no rebalance can come between).
        transaction = self.delivery.transaction
        if transaction is None:
            return
        transaction.begin()
        metadata = self.source.group_metadata()
        if self.offsets_worker is None:
            transaction.add_offsets(self.offsets, metadata)
        else:
            self._offsets_added = self.offsets_worker.submit(
                transaction.add_offsets, self.offsets, metadata
            )

    def commit(
        self,
        outputs: Sequence[Sequence[Message]],
        publish: Callable[[Record, Message], Message | None],
    ) -> None:
        """Steps 2-4; ``publish`` prepares each output message (logs and counts a dead
        letter, adds headers) just before it is sent, or returns None to leave it out."""
        sink, transaction = self.delivery.sink, self.delivery.transaction
        # The producer is never used from two threads at once: the offsets first.
        self._settle_offsets()
        # Step 2: the outputs, in record order; at-least-once makes them durable now.
        for record, messages in zip(self.records, outputs, strict=True):
            for message in messages:
                prepared = publish(record, message)
                if prepared is not None:
                    sink.send(prepared)
        if transaction is None:
            sink.flush()
        # Step 3: the changelog of every partition the batch touched.
        touched: dict[int, None] = {}
        for record in self.records:
            touched[record.partition] = None
            self.positions.setdefault(record.partition, {})[record.topic] = record.offset + 1
        for partition in touched:
            positions = self.positions[partition]
            state_sink = self.state_sink or sink
            if self.store.incremental:
                report = self.processor.report_state(partition)
                self.state_records += self.store.save_report(
                    state_sink, partition, report, positions
                )
            elif self.store.lazy:
                self.store.save_positions(partition, positions)
            else:
                changes = self.processor.changed_state(partition)
                self.state_records += self.store.save(state_sink, partition, changes, positions)
        # Step 4: make it all durable, offsets last.
        if transaction is not None:
            transaction.commit()
        else:
            sink.flush()
            self.source.commit(self.offsets)

    def settle(self) -> None:
        """Wait for step 1's offsets (whatever their outcome): nothing else may use
        the producer meanwhile, an abort included."""
        if self._offsets_added is not None:
            self._offsets_added.exception()

    def abort(self) -> None:
        """Discard what an exactly-once checkpoint sent; at-least-once has nothing
        to take back."""
        self.settle()
        if self.delivery.transaction is not None:
            self.delivery.transaction.abort()

    def _settle_offsets(self) -> None:
        if self._offsets_added is not None:
            future, self._offsets_added = self._offsets_added, None
            future.result()
