"""The loop that ``driftline run``, ``replay`` and ``backtest`` all drive.

One cycle: assemble a batch from polls (applying rebalances between polls),
open a ``Checkpoint``, process the batch through the pure core, commit the
checkpoint (``pipeline.runtime.checkpoint`` documents the order). What differs
between the three commands is only what the loop is given:

==============  ==========================  ======================  ==================
                source                      delivery                state store
==============  ==========================  ======================  ==================
sidecar         ``KafkaSource`` (a group)   exactly-once or         changelog topic
                                            at-least-once, Kafka
replay          a file, Parquet, a Kafka    at-least-once, files    a ``Snapshot``
                offset range                or memory
unit tests      ``MemorySource``            either, in memory       a memory changelog
==============  ==========================  ======================  ==================

Ownership: a partition's records are processed only while it is assigned. A
newly assigned partition's state is restored from the store before any of its
records is processed; a revoked or lost one's state is dropped. Records below
the positions a restored state reflects are skipped (at-least-once: the state
may be ahead of the committed offsets).

Recovery (``run(recover=True)``, the sidecar): a transient failure of a
checkpoint aborts it, rewinds every owned partition to its committed offset,
restores their state, and goes on; the detections equal those of an
uninterrupted run. Replay does not recover: an error ends it. A message the
broker keeps refusing is given up after a few identical refusals
(``pipeline.runtime.rejections``), so no record holds its partition forever;
``pipeline.runtime.progress`` keeps what each partition committed and how often
it was retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from pipeline.config import RuntimeSettings
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.io.base import RebalanceEvents, Sink, Source, TopicPartition
from pipeline.io.errors import TRANSIENT, FencedError, MessageRejected
from pipeline.logs import get_logger
from pipeline.runtime.checkpoint import Checkpoint, Delivery, Positions
from pipeline.runtime.dead_letters import FailFastError, check_dead_letter, stamped
from pipeline.runtime.progress import Progress
from pipeline.runtime.rejections import GivenUp, Identity, Rejections, identity
from pipeline.runtime.stores import StateStore
from pipeline.state.changelog import PartitionSnapshot

__all__ = ["FailFastError", "Loop", "LoopHooks", "RunStats", "catch_up_ms"]

log = get_logger("driftline.runtime")


def catch_up_ms(max_batch_ms: int) -> int:
    """How long a late batch waits for the fetch the broker answers at once: a quarter
    of the window (a round trip to the broker; at least 1 ms, none without a window)."""
    return max(1, max_batch_ms // 4) if max_batch_ms > 0 else 0


@dataclass
class RunStats:
    batches: int = 0
    events: int = 0
    alerts: int = 0
    dead_letters: int = 0


class LoopHooks:
    """What the loop reports as it goes (the sidecar turns it into metrics and logs;
    replay into a progress bar). The hooks do nothing by default, but for logging
    the failures the loop recovers from."""

    def cycle(self, loop: Loop, records: Sequence[Record]) -> None:
        """A batch was assembled (maybe empty): the loop is alive."""

    def rebalanced(self, events: RebalanceEvents, owned: set[TopicPartition]) -> None: ...

    def restored(self, partition: int, snapshot: PartitionSnapshot) -> None: ...

    def dead_letter(self, reason: str) -> None: ...

    def committed(self, records: Sequence[Record], checkpoint: Checkpoint, seconds: float) -> None:
        """``records`` are committed (``seconds``: from processing to commit)."""

    def published(self, message: Message) -> None:
        """An alert or rollback command was committed."""

    def aborted(self, error: BaseException) -> None:
        """A checkpoint failed; recovery follows."""
        log.warning("checkpoint_failed", error=str(error) or type(error).__name__)

    def recovering(self) -> None:
        """A step of recovery is about to start (each waits for the broker at most a
        bounded time): the loop is alive, if not cycling."""

    def recovery_failed(self, error: BaseException) -> None:
        """An attempt to recover failed; the next follows after a backoff."""
        log.warning("recovery_failed", error=str(error) or type(error).__name__)

    def gave_up(self, given: GivenUp) -> None:
        """A message refused ``given.attempts`` times will be left out (logged by the loop)."""


class Loop:
    """Drives a processor between a source, a delivery and a state store.

    ``clock`` stamps dead letters with the time they failed (replay passes None,
    so its output never depends on the wall clock); ``decorate`` adds headers to
    each output message (the sidecar's CloudEvents headers); ``reopen`` makes a
    fresh delivery when recovery finds the old one unusable (the sidecar's Kafka
    producers).
    """

    def __init__(
        self,
        processor: Processor,
        source: Source,
        delivery: Delivery,
        store: StateStore,
        settings: RuntimeSettings,
        *,
        clock: Callable[[], datetime] | None = None,
        decorate: Callable[[Message], Message] | None = None,
        reopen: Callable[[], Delivery] | None = None,
        hooks: LoopHooks | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.processor = processor
        self.source = source
        self.delivery = delivery
        self.store = store
        self.settings = settings
        self.clock = clock
        self.decorate = decorate
        self.reopen = reopen
        self.hooks = hooks or LoopHooks()
        self.stop = stop or threading.Event()
        self.stats = RunStats()
        self.owned: set[TopicPartition] = set()
        self.positions: Positions = {}
        self.skip_below: dict[TopicPartition, int] = {}
        self.progress = Progress()
        self.rejections = Rejections()
        self._sent: dict[int, tuple[Message, Identity, Record | None]] = {}
        self._offsets_worker: ThreadPoolExecutor | None = None
        self._delivery_broken = False
        self._window_opened: float | None = None
        """When the window of the batch being assembled opened (``poll_batch``)."""
        self._hold: Callable[[int], None] | None = getattr(source, "hold_fetches", None)
        """The source's ``hold_fetches`` (``KafkaSource``), if it has one."""

    # ------------------------------------------------------------------- run
    def run(self, *, recover: bool = False) -> RunStats:
        """Cycle until ``stop`` is set or a finite source is exhausted. ``recover``:
        a transient failure (``pipeline.io.errors.TRANSIENT``) aborts the checkpoint
        and recovers instead of ending the run; a fenced producer always ends it."""
        if self.delivery.transaction is not None:
            self._offsets_worker = ThreadPoolExecutor(1, thread_name_prefix="driftline-offsets")
        try:
            while not self.stop.is_set():
                try:
                    if not self.run_once() and self.source.exhausted:
                        break
                except FencedError:
                    raise
                except TRANSIENT as exc:
                    if not recover:
                        raise
                    self.hooks.aborted(exc)
                    self.recover()
        finally:
            if self._offsets_worker is not None:
                self._offsets_worker.shutdown(wait=True)
                self._offsets_worker = None
        return self.stats

    def run_once(self) -> bool:
        """One cycle; False when there was nothing to process."""
        records = self.poll_batch()
        self.hooks.cycle(self, records)
        if not records:
            return False
        self.progress.polled(records, time.monotonic())
        started = time.perf_counter()
        self._sent.clear()
        checkpoint = Checkpoint(
            records,
            processor=self.processor,
            source=self.source,
            delivery=self.delivery,
            store=self.store,
            positions=self.positions,
            offsets_worker=self._offsets_worker,
            state_sink=_StateGuard(self.delivery.sink, self),
        )
        try:
            checkpoint.begin()
            outputs = self.processor.process_batch(records)
            self._log_quarantined()
            failed_at = self.clock().isoformat().encode() if self.clock is not None else None
            checkpoint.commit(outputs, lambda r, m: self._publish(r, m, failed_at))
        except FailFastError:
            self._abort_quietly(checkpoint)
            raise
        except TRANSIENT as exc:
            self._failed(records, exc)
            raise
        finally:
            checkpoint.settle()
            self._sent.clear()
        self.progress.committed(checkpoint.offsets)
        self.stats.batches += 1
        self.stats.events += len(records)
        self.hooks.committed(records, checkpoint, time.perf_counter() - started)
        for messages in outputs:
            for message in messages:
                if message.kind == "alert":
                    self.stats.alerts += 1
                if message.kind in ("alert", "rollback"):
                    self.hooks.published(message)
        return True

    def _publish(self, record: Record, message: Message, failed_at: bytes | None) -> Message | None:
        key = identity(record, message)
        if self.rejections.given_up(key):
            return None
        if message.kind == "dead_letter":
            reason = check_dead_letter(record, message, fail_fast=self.settings.fail_fast)
            self.stats.dead_letters += 1
            self.hooks.dead_letter(reason)
            if failed_at is not None:
                message = stamped(message, failed_at)
        prepared = message if self.decorate is None else self.decorate(message)
        self._sent[id(prepared)] = (prepared, key, record)
        return prepared

    def _failed(self, records: Sequence[Record], error: BaseException) -> None:
        """Count the failed attempt; when the sink named the message it refused, count
        that refusal, and give the message up once it reached the limit."""
        self.progress.failed(records)
        if not isinstance(error, MessageRejected):
            return
        # kafka-python's transactional producer does not come back cleanly from a refused
        # record (it bumps its epoch, splits batches, and times out): start a new one.
        self._delivery_broken = self.reopen is not None
        sent = self._sent.get(id(error.message))
        if sent is None:
            return
        _message, key, record = sent
        given = self.rejections.refused(key, error.message.kind, error.reason)
        if given is None:
            return
        where = (
            {"topic": record.topic, "partition": record.partition, "offset": record.offset}
            if record is not None
            else {"state_partition": error.message.partition}
        )
        log.error(
            "output_given_up",
            kind=given.kind,
            reason=given.reason,
            attempts=given.attempts,
            outcome="tombstone" if given.kind == "state" else "left out",
            **where,
        )
        self.hooks.gave_up(given)

    def _log_quarantined(self) -> None:
        """Keys the core reset after a failure (``pipeline.core.quarantine``): one line
        per key and stage per process; the counts are in the processor's stats."""
        for notice in self.processor.drain_notices():
            log.warning("key_quarantined", stage=notice.stage, key=notice.key, error=notice.error)

    @staticmethod
    def _abort_quietly(checkpoint: Checkpoint) -> None:
        try:
            checkpoint.abort()
        except Exception as exc:
            log.warning("abort_failed", error=str(exc) or type(exc).__name__)

    # ----------------------------------------------------------------- batch
    def poll_batch(self) -> list[Record]:
        """Poll until the batch is full (``max_batch_events``) or its window is over
        (``max_batch_ms``), applying rebalances between polls.

        A batch's window opens when the previous batch was assembled, not when this
        one starts: records that arrived while the previous batch was processed and
        committed have waited that long already (at 300 events/s, a window opened
        at the poll added the previous batch's ~50 ms of processing and commit to
        every record's wait). Once the window is over, or the batch is
        half full, the loop takes only what the client has fetched: waiting to fill
        it would stall on a fetch round trip each time a partition's buffer runs
        dry, while a poll that returns at once sends that fetch, and the response
        arrives during the batch's processing. The Kafka source lets the broker do
        the waiting (``KafkaSource``'s ``batch_wait_ms``): one fetch per window, not
        one per few records.

        A batch whose window was over before its first poll (the previous batch's
        processing and commit outlasted the window) is *late*: the fetch the client
        holds was answered at the window's end, and the records that arrived since
        are still at the broker. Held for a whole new window, they would wait for
        the next batch. Instead the late batch's first poll takes what was fetched
        and asks for a fetch the broker answers at once, and the batch waits for
        that answer (at most a quarter of the window, ``catch_up_ms``) before it
        goes: the records of the overrun join this batch. Every other fetch is held
        for a window.
        """
        rt = self.settings
        batch: list[Record] = []
        now = time.monotonic()
        opened = self._window_opened if self._window_opened is not None else now
        deadline = opened + rt.max_batch_ms / 1000
        catch_up = catch_up_ms(rt.max_batch_ms)
        # late: "ask" for an immediate fetch, then "wait" for it once; else "held"
        step = "ask" if catch_up and now >= deadline else "held"
        while len(batch) < rt.max_batch_events and not self.stop.is_set():
            hold = rt.max_batch_ms
            if not batch:
                timeout = rt.poll_timeout_ms
                if step == "ask":
                    hold, timeout = 0, min(timeout, catch_up)
            elif 2 * len(batch) >= rt.max_batch_events:
                timeout = 0
            elif step == "wait":
                timeout, step = min(rt.poll_timeout_ms, catch_up), "held"
            else:
                left = int((deadline - time.monotonic()) * 1000)
                timeout = min(rt.poll_timeout_ms, max(0, left))
            self._hold_fetches(hold)
            polled = self.source.poll(rt.max_batch_events - len(batch), timeout)
            owned = self.owned
            events = self.apply_rebalance()
            if events:
                # Records of partitions revoked or lost meanwhile are not ours to process;
                # those of a partition (re)assigned are read again from its committed
                # offset, where its restored state stands (the source rewinds them).
                owned = self.owned - events.assigned
                batch = [r for r in batch if (r.topic, r.partition) in owned]
                owned = self.owned
            batch.extend([r for r in polled if (r.topic, r.partition) in owned])
            if step == "ask":
                # Nothing fetched yet (the held fetch is still on its way): poll as an
                # on-time batch does, without a second wait.
                step = "wait" if polled else "held"
                if not polled:
                    continue
            if not polled:
                break
        self._hold_fetches(rt.max_batch_ms)
        self._window_opened = time.monotonic()
        return [r for r in batch if r.offset >= self.skip_below.get((r.topic, r.partition), -1)]

    def _hold_fetches(self, wait_ms: int) -> None:
        if self._hold is not None:
            self._hold(wait_ms)

    # ------------------------------------------------------------- ownership
    def scopes_owned(self) -> set[int]:
        """State is kept per source partition number (all inputs are co-partitioned)."""
        return {partition for _topic, partition in self.owned}

    def apply_rebalance(self) -> RebalanceEvents:
        """Act on what the group changed: drop the state of partitions no longer
        owned; restore that of assigned ones from the store, which is the truth at
        the committed offsets, whoever processed the partition meanwhile. Returns
        the changes (false when there were none)."""
        events = self.source.rebalance_events()
        if not events:
            return events
        before = self.scopes_owned()
        gone = events.revoked | events.lost
        self.owned -= gone
        self.owned |= events.assigned
        for partition in before - self.scopes_owned():
            self.processor.drop(partition)
            self.positions.pop(partition, None)
        for tp in gone:
            self.skip_below.pop(tp, None)
        self.progress.released(gone)
        for partition in sorted({p for _t, p in events.assigned}):
            self.restore(partition)
        self.hooks.rebalanced(events, self.owned)
        log.info(
            "rebalance",
            assigned=sorted(events.assigned),
            revoked=sorted(events.revoked),
            lost=sorted(events.lost),
            owned=sorted(self.owned),
        )
        return events

    def restore(self, partition: int) -> None:
        started = time.monotonic()
        snapshot = self.store.load(partition)
        read = time.monotonic() - started
        snapshot.read_entries = len(snapshot.entries)
        deltas = sum(len(d) for d in snapshot.tail.deltas.values())
        # The store's entries are the loop's own (a changelog just decoded, a copy of
        # a snapshot's map): released as restored, so that they and the state built
        # from them are not held in full together.
        self.processor.restore(partition, snapshot.entries, snapshot.tail, release=True)
        self._log_quarantined()
        self.positions[partition] = dict(snapshot.positions)
        for topic, offset in snapshot.positions.items():
            # At-least-once: state may reflect records past the committed offset.
            self.skip_below[(topic, partition)] = offset
        self.hooks.restored(partition, snapshot)
        log.info(
            "state_restored",
            partition=partition,
            entries=snapshot.read_entries,
            deltas=deltas,
            positions=snapshot.positions,
            skipped_records=snapshot.skipped,
            read_seconds=round(read, 3),
            seconds=round(time.monotonic() - started, 3),
        )

    # -------------------------------------------------------------- recovery
    def recover(self) -> None:
        """Abort, rewind to the committed offsets, restore state; retry until it
        works (or ``stop``), backing off up to 10 s."""
        delay = 0.5
        while not self.stop.is_set():
            try:
                self._reset_delivery()
                self.hooks.recovering()
                self.progress.rewound(self.source.rewind_to_committed(sorted(self.owned)))
                for partition in sorted(self.scopes_owned()):
                    self.processor.drop(partition)
                self.positions.clear()
                self.skip_below.clear()
                for partition in sorted(self.scopes_owned()):
                    self.hooks.recovering()
                    self.restore(partition)
                log.info("recovered", owned=sorted(self.owned))
                return
            except FencedError:
                raise
            except TRANSIENT as exc:
                self.hooks.recovery_failed(exc)
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _reset_delivery(self) -> None:
        """Exactly-once: abort the open transaction. When that fails, or with
        at-least-once, replace the delivery if the loop can (a new transactional
        producer fences the old one)."""
        transaction = self.delivery.transaction
        self.hooks.recovering()
        if transaction is not None and not self._delivery_broken:
            try:
                transaction.abort()
                return
            except FencedError:
                raise
            except Exception as exc:  # the producer is unusable
                if self.reopen is None:
                    raise
                log.warning("abort_failed", error=str(exc) or type(exc).__name__)
        if self.reopen is not None:
            # Until a new delivery is made, the old one is not to be used again (an
            # abort that timed out leaves its producer aborting for good).
            self._delivery_broken = True
            self.delivery.sink.close()
            self.hooks.recovering()
            self.delivery = self.reopen()
            self._delivery_broken = False


class _StateGuard:
    """The sink the checkpoint sends state records to: a tombstone in place of an
    entry the loop gave up on, and each record remembered, so a refusal can be traced
    to its key."""

    def __init__(self, sink: Sink, loop: Loop) -> None:
        self.sink = sink
        self.loop = loop

    def send(self, message: Message) -> None:
        key = identity(None, message)
        if self.loop.rejections.given_up(key):
            message = Message("state", message.key, None, partition=message.partition)
        self.loop._sent[id(message)] = (message, key, None)
        self.sink.send(message)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()
