"""The sidecar: Kafka in, Kafka out, restorable state, until SIGTERM.

One checkpoint per batch, in this order (after quixstreams' checkpointing):

1. poll records until the batch is full (``max_batch_events``) or old
   (``max_batch_ms``); rebalance callbacks only record what changed, and the
   loop applies it between polls: revoked partitions are dropped (nothing of
   theirs is uncommitted at that point), newly assigned ones are restored from
   the changelog before any of their records is processed;
2. process the batch through the pure core (the same code replay runs);
3. exactly-once: in one Kafka transaction, send the alerts, rollback
   commands and dead letters, the changelog records of the state entries that
   changed (tagged with the source positions they reflect), then the consumer
   offsets (``send_offsets_to_transaction``), and commit.
   At-least-once: send and flush the outputs, then the changelog, then commit
   the offsets; after a crash the deterministic ids make repeats detectable and
   the position tags keep state from being applied twice.

Any failure in 3 aborts, rewinds every owned partition to its committed offset,
restores state from the changelog, and goes on: the detections equal those of an
uninterrupted run.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka.errors import KafkaError, ProducerFencedError

from pipeline.config import Settings
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.errors import DriftlineError, SinkError, SourceError
from pipeline.io.base import TopicPartition
from pipeline.io.kafka import (
    KafkaSink,
    KafkaSource,
    TransactionalKafkaSink,
    ensure_topics,
    partitions_of,
    read_partition,
)
from pipeline.io.permissions import missing_permissions
from pipeline.logs import get_logger
from pipeline.runtime.cloudevents import with_cloudevent_headers
from pipeline.runtime.dead_letters import FailFastError, check_dead_letter, stamped
from pipeline.runtime.http import HealthServer, liveness
from pipeline.runtime.kafka_trouble import KafkaTrouble
from pipeline.runtime.loop import RunStats
from pipeline.runtime.metrics import Metrics
from pipeline.state.changelog import decode_changelog, encode_entry, encode_position

__all__ = ["Sidecar", "run_sidecar"]

log = get_logger("driftline.sidecar")

_RETRYABLE = (KafkaError, SinkError, SourceError, OSError)


def _now() -> datetime:
    return datetime.now(UTC)


def _fenced(exc: BaseException) -> bool:
    """True when ``exc`` is, wraps or carries a ProducerFencedError (kafka-python
    reports a fenced producer as a generic KafkaError holding one in its args)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ProducerFencedError):
            return True
        if isinstance(item, BaseException):
            if "ProducerFencedError" in str(item):
                return True
            pending.extend(item.args)
            pending.extend(x for x in (item.__cause__, item.__context__) if x is not None)
    return False


def _raise_if_fenced(exc: BaseException) -> None:
    """A fenced producer (we are a zombie) is final: never retried."""
    if _fenced(exc):
        raise ProducerFencedError(str(exc)) from exc


class Sidecar:
    """The long-running consumer: one instance per process."""

    def __init__(self, settings: Settings, stop: threading.Event, metrics: Metrics | None = None):
        self.settings = settings
        self.stop = stop
        self.metrics = metrics or Metrics()
        self.stats = RunStats()
        self.exactly_once = settings.runtime.mode == "exactly_once"
        self.processor = Processor(settings, settings.topics.inputs())
        self.source: KafkaSource | None = None
        self.sink: KafkaSink | None = None
        self.owned: set[TopicPartition] = set()
        self.positions: dict[int, dict[str, int]] = {}
        """Per scope (partition number): next offset per input topic reflected in state."""
        self.skip_below: dict[TopicPartition, int] = {}
        self._unassigned_since: float | None = None
        self._warned_at = 0.0
        self._ever_assigned = False
        self._gauges_due = 0.0
        self._offsets_worker: ThreadPoolExecutor | None = None
        self.trouble = KafkaTrouble(settings)

    # ------------------------------------------------------------------ setup
    def _kafka_kwargs(self) -> dict[str, Any]:
        k = self.settings.kafka
        return {"bootstrap_servers": k.bootstrap_servers, "extra": k.client_options()}

    def _make_sink(self) -> KafkaSink:
        t, k = self.settings.topics, self.settings.kafka
        topics = {
            "alert": t.alerts,
            "rollback": t.rollback_commands,
            "dead_letter": t.dlq,
            "state": t.state,
        }
        if self.exactly_once:
            return TransactionalKafkaSink(
                topics,
                transactional_id=k.transactional_id,
                transaction_timeout_ms=self.settings.runtime.transaction_timeout_ms,
                client_id=k.client_id,
                **self._kafka_kwargs(),
            )
        return KafkaSink(topics, client_id=k.client_id, **self._kafka_kwargs())

    def _missing_permissions(self) -> list[str]:
        """The ACLs this sidecar needs (README "Secured Kafka") that it lacks."""
        t = self.settings.topics
        need: dict[str, set[str]] = {topic: {"READ"} for topic in self.settings.input_topics()}
        for topic in (t.alerts, t.rollback_commands, t.dlq):
            need.setdefault(topic, set()).add("WRITE")
        need.setdefault(t.state, set()).update({"READ", "WRITE"})
        return missing_permissions(
            self.settings.kafka.bootstrap_servers,
            self.settings.kafka.client_options(),
            topics=need,
            group=self.settings.kafka.group_id,
        )

    def _prepare_state_topic(self) -> None:
        t = self.settings.topics
        counts = partitions_of(
            self.settings.kafka.bootstrap_servers,
            [*self.settings.input_topics(), t.state],
            self.settings.kafka.client_options(),
        )
        needed = max((n for name, n in counts.items() if name != t.state), default=1)
        for topic in self.settings.serving_topics():
            if counts.get(topic, 1) > 1:
                log.warning(
                    "serving_topic_partitions",
                    topic=topic,
                    partitions=counts[topic],
                    detail="detector state is per partition and this topic is not keyed by "
                    "model: one model's predictions are split between detector instances; "
                    "give it one partition",
                )
        if t.state not in counts:
            if not self.settings.runtime.create_state_topic:
                raise DriftlineError(f"state topic {t.state!r} does not exist")
            ensure_topics(
                self.settings.kafka.bootstrap_servers,
                {t.state: needed},
                compacted=[t.state],
                extra=self.settings.kafka.client_options(),
            )
            log.info("state_topic_created", topic=t.state, partitions=needed)
        elif counts[t.state] < needed:
            raise DriftlineError(
                f"state topic {t.state!r} has {counts[t.state]} partitions; the inputs have "
                f"{needed}: it needs at least as many"
            )

    def connect(self) -> bool:
        """Connect, retrying with capped exponential backoff; False if stopped first."""
        delay = 0.5
        while not self.stop.is_set():
            self.metrics.mark_progress(time.time())
            if self.trouble.misconfigured():  # named in a second, not after a 30 s timeout
                self.stop.wait(max(delay, 5.0))
                delay = min(delay * 2, 30.0)
                continue
            try:
                if self.trouble.lacking(self._missing_permissions()):
                    self.stop.wait(max(delay, 5.0))
                    delay = min(delay * 2, 30.0)
                    continue
                self._prepare_state_topic()
                self.sink = self._make_sink()
                self.source = KafkaSource(
                    self.settings.input_topics(),
                    group_id=self.settings.kafka.group_id,
                    client_id=self.settings.kafka.client_id,
                    auto_offset_reset=self.settings.kafka.auto_offset_reset,
                    max_partition_fetch_bytes=max(
                        2 * 1024 * 1024, self.settings.runtime.max_event_bytes + 65536
                    ),
                    **self._kafka_kwargs(),
                )
                return True
            except _RETRYABLE as exc:
                self._close_clients()
                if self.trouble.failed(exc, stage="connect"):
                    delay = max(delay, 5.0)
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
        return False

    def _close_clients(self) -> None:
        if self.source is not None:
            self.source.close()
        if self.sink is not None:
            self.sink.close()
        self.source = self.sink = None

    # ------------------------------------------------------------------ state
    def _scopes_owned(self) -> set[int]:
        return {partition for _topic, partition in self.owned}

    def _restore_scope(self, partition: int) -> None:
        records = read_partition(
            self.settings.kafka.bootstrap_servers,
            self.settings.topics.state,
            partition,
            extra=self.settings.kafka.client_options(),
        )
        snapshot = decode_changelog(records)
        self.processor.restore(partition, snapshot.entries)
        self.positions[partition] = dict(snapshot.positions)
        self.metrics.restored_keys.inc(len(snapshot.entries))
        for topic, offset in snapshot.positions.items():
            # At-least-once: state may reflect records past the committed offset.
            self.skip_below[(topic, partition)] = offset
        log.info(
            "state_restored",
            partition=partition,
            entries=len(snapshot.entries),
            positions=snapshot.positions,
            skipped_records=snapshot.skipped,
        )

    def _apply_rebalance(self) -> None:
        assert self.source is not None
        events = self.source.rebalance_events()
        if not events:
            return
        before = self._scopes_owned()
        gone = events.revoked | events.lost
        self.owned -= gone
        self.owned |= events.assigned
        after = self._scopes_owned()
        for partition in before - after:
            self.processor.drop(partition)
            self.positions.pop(partition, None)
        for tp in gone:
            self.skip_below.pop(tp, None)
        # (Re)assigned scopes are restored from the changelog: it is the truth
        # at the committed offsets, whoever processed the partition meanwhile.
        for partition in sorted({p for _t, p in events.assigned}):
            self._restore_scope(partition)
        self.metrics.rebalances.labels("assigned").inc(len(events.assigned))
        self.metrics.rebalances.labels("revoked").inc(len(events.revoked))
        self.metrics.rebalances.labels("lost").inc(len(events.lost))
        self.metrics.assigned_partitions.set(len(self.owned))
        log.info(
            "rebalance",
            assigned=sorted(events.assigned),
            revoked=sorted(events.revoked),
            lost=sorted(events.lost),
            owned=sorted(self.owned),
        )

    # ------------------------------------------------------------------ loop
    def _poll_batch(self) -> list[Record]:
        assert self.source is not None
        rt = self.settings.runtime
        batch: list[Record] = []
        deadline = time.monotonic() + rt.max_batch_ms / 1000
        while len(batch) < rt.max_batch_events and not self.stop.is_set():
            # A batch closes when full, after max_batch_ms, or, once half full, when
            # the client has nothing more fetched: waiting to fill it would stall on a
            # fetch round trip each time a partition's buffer runs dry, while a poll
            # that returns at once sends that fetch, and the response arrives during
            # the batch's processing. (Small batches do wait: every batch rewrites the
            # snapshots of the detectors it touched.)
            if not batch:
                timeout = rt.poll_timeout_ms
            elif 2 * len(batch) >= rt.max_batch_events:
                timeout = 0
            else:
                timeout = max(0, min(rt.poll_timeout_ms, int((deadline - time.monotonic()) * 1000)))
            polled = self.source.poll(rt.max_batch_events - len(batch), timeout)
            self._apply_rebalance()
            # Records of partitions revoked or lost meanwhile are not ours to process.
            batch = [r for r in batch if (r.topic, r.partition) in self.owned]
            batch.extend(r for r in polled if (r.topic, r.partition) in self.owned)
            if not polled or time.monotonic() >= deadline:
                break
        return [r for r in batch if r.offset >= self.skip_below.get((r.topic, r.partition), -1)]

    def run(self) -> RunStats:
        if not self.connect():
            return self.stats
        log.info(
            "sidecar_started",
            mode=self.settings.runtime.mode,
            group_id=self.settings.kafka.group_id,
            transactional_id=self.settings.kafka.transactional_id if self.exactly_once else None,
            topics=sorted(self.settings.input_topics()),
        )
        self._offsets_worker = ThreadPoolExecutor(1, thread_name_prefix="driftline-offsets")
        try:
            while not self.stop.is_set():
                try:
                    self._cycle()
                    if self.trouble.problem is not None:
                        self.trouble.cleared()
                except FailFastError:
                    self._abort_quietly()
                    raise
                except _RETRYABLE as exc:
                    _raise_if_fenced(exc)
                    if self.trouble.failed(exc, stage="checkpoint"):
                        self.stop.wait(5.0)  # an ACL is missing: no tight retry loop
                    self._recover()
        except ProducerFencedError as exc:
            # Another instance took over our transactional id: we are the zombie.
            tid = self.settings.kafka.transactional_id
            log.error("producer_fenced", transactional_id=tid)
            raise DriftlineError(
                f"fenced: another sidecar with transactional id {tid!r} is active"
            ) from exc
        finally:
            self._offsets_worker.shutdown(wait=True)
            self._offsets_worker = None
            self._close_clients()
        log.info(
            "sidecar_stopped",
            events=self.stats.events,
            alerts=self.stats.alerts,
            dead_letters=self.stats.dead_letters,
        )
        return self.stats

    def _cycle(self) -> None:
        records = self._poll_batch()
        self.metrics.mark_progress(time.time())
        self._warn_if_unassigned()
        if time.monotonic() >= self._gauges_due:
            # Lag asks the broker, statistics walk every key: once per interval, not
            # per batch (they are scraped every few seconds at best).
            self._gauges_due = time.monotonic() + GAUGE_INTERVAL_S
            self._export_gauges()
        if not records:
            return
        started = time.perf_counter()
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            offsets[(record.topic, record.partition)] = record.offset + 1
        offsets_added = self._begin(offsets)
        try:
            outputs = self.processor.process_batch(records)
            self._checkpoint(records, outputs, offsets, offsets_added)
        finally:
            if offsets_added is not None:
                offsets_added.exception()  # on failure: settled before any abort
        now_ms = time.time() * 1000
        self.metrics.processing_seconds.observe(time.perf_counter() - started)
        per_topic = Counter(record.topic for record in records)
        for topic, count in per_topic.items():
            self.metrics.events.labels(topic).inc(count)
        observe = self.metrics.end_to_end_lag_seconds.observe
        for record in records:
            if record.timestamp_ms is not None and record.timestamp_ms > 0:
                observe(max(0.0, now_ms - record.timestamp_ms) / 1000)
        self.metrics.batches.inc()
        self.stats.batches += 1
        self.stats.events += len(records)

    def _warn_if_unassigned(self) -> None:
        """Say so when no partitions are assigned, once a minute. A consumer that was
        never assigned anything for 2x liveness_timeout_s is taken to be wedged in
        its group join (kafka-python 3 can stop heartbeating right after joining and
        never rejoin): exit with code 3 for the supervisor to restart it. The cost in
        the rare group with more members than partitions is a periodic restart."""
        now = time.monotonic()
        if self.owned:
            self._unassigned_since = None
            self._ever_assigned = True
            return
        if self._unassigned_since is None:
            self._unassigned_since = self._warned_at = now
            return
        limit = 2 * self.settings.runtime.liveness_timeout_s
        if not self._ever_assigned and now - self._unassigned_since > limit:
            log.error("never_assigned", group_id=self.settings.kafka.group_id, exit_code=3)
            sys.stderr.flush()
            os._exit(STALL_EXIT_CODE)
        if now - self._warned_at > 60:
            log.warning("no_partitions_assigned", group_id=self.settings.kafka.group_id)
            self._warned_at = now

    def _begin(self, offsets: dict[TopicPartition, int]) -> Future[None] | None:
        """Exactly-once: open the batch's transaction and add its consumer offsets to
        it on the side, so that those round trips overlap the batch's processing.
        (No poll runs until the transaction is committed or aborted: a rebalance
        cannot come in between.)"""
        sink = self.sink
        if not isinstance(sink, TransactionalKafkaSink):
            return None
        assert self.source is not None
        sink.begin()
        assert self._offsets_worker is not None
        return self._offsets_worker.submit(sink.add_offsets, offsets, self.source.group_metadata())

    def _checkpoint(
        self,
        records: list[Record],
        outputs: list[list[Message]],
        offsets: dict[TopicPartition, int],
        offsets_added: Future[None] | None,
    ) -> None:
        assert self.source is not None and self.sink is not None
        sink = self.sink
        touched: dict[int, None] = {}
        for record in records:
            touched[record.partition] = None
            self.positions.setdefault(record.partition, {})[record.topic] = record.offset + 1
        transaction = sink if isinstance(sink, TransactionalKafkaSink) else None
        if offsets_added is not None:
            offsets_added.result()  # the producer is not used from two threads at once
        alerts: list[Message] = []
        failed_at = _now().isoformat().encode()
        for record, messages in zip(records, outputs, strict=True):
            for message in messages:
                if message.kind == "dead_letter":
                    self._dead_letter(record, message)
                    message = stamped(message, failed_at)
                elif message.kind in ("alert", "rollback"):
                    alerts.append(message)
                sink.send(with_cloudevent_headers(message))
        if transaction is None:
            sink.flush()
        state_records = 0
        for partition in touched:
            positions = self.positions[partition]
            for key, state in self.processor.changed_state(partition).items():
                k, v = encode_entry(partition, key, state, positions)
                sink.send(Message("state", k, v, partition=partition))
                state_records += 1
            k, v = encode_position(partition, positions)
            sink.send(Message("state", k, v, partition=partition))
            state_records += 1
        if transaction is not None:
            transaction.commit()
        else:
            sink.flush()
            self.source.commit(offsets)
        self.metrics.transactions.labels("commit").inc()
        self.metrics.state_records.inc(state_records)
        for message in alerts:
            self._count_output(message)

    def _dead_letter(self, record: Record, message: Message) -> None:
        reason = check_dead_letter(record, message, fail_fast=self.settings.runtime.fail_fast)
        self.metrics.dead_letters.labels(reason).inc()
        self.stats.dead_letters += 1

    def _count_output(self, message: Message) -> None:
        try:
            body = orjson.loads(message.value or b"{}")
        except orjson.JSONDecodeError:
            return
        model = self.metrics.model_label(str(body.get("model_id", "")))
        source = body.get("source") or {}
        context = log.bind(
            model_id=body.get("model_id"),
            topic=source.get("topic"),
            partition=source.get("partition"),
            offset=source.get("offset"),
        )
        if message.kind == "alert":
            self.metrics.alerts.labels(
                str(body.get("severity", "")), model, str(body.get("status", "firing"))
            ).inc()
            self.stats.alerts += 1
            context.info(
                "alert_published",
                alert_id=body.get("alert_id"),
                signal=body.get("signal"),
                severity=body.get("severity"),
            )
        else:
            self.metrics.rollbacks.labels(model).inc()
            context.warning(
                "rollback_published",
                command_id=body.get("command_id"),
                to_checkpoint=body.get("to_checkpoint"),
                dry_run=body.get("dry_run"),
            )

    def _export_gauges(self) -> None:
        assert self.source is not None
        for (topic, partition), lag in self.source.lag().items():
            self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
        self.metrics.live_keys.set(self.processor.monitor.live_keys())
        self.metrics.observe_statistics(self._statistics())
        self.metrics.observe_inputs(
            self.processor.decoder.counters, self.processor.decoder.pending()
        )

    def _statistics(self) -> Iterable[tuple[str, str, str, float, float]]:
        for scope in list(self.processor.monitor.scopes.values()):
            for key, state in list(scope.items()):
                stat, thr = state.detector.statistic, state.detector.threshold
                if stat == stat and thr == thr:  # not NaN
                    yield key.model_id, key.signal, key.monitor_id, float(stat), float(thr)

    def _abort_quietly(self) -> None:
        if isinstance(self.sink, TransactionalKafkaSink):
            try:
                self.sink.abort()
            except Exception as exc:
                log.warning("abort_failed", error=str(exc) or type(exc).__name__)

    # -------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """Abort, rewind to the committed offsets, restore state; retry until it works."""
        self.metrics.transactions.labels("abort").inc()
        self.metrics.recoveries.inc()
        delay = 0.5
        while not self.stop.is_set():
            try:
                self._reset_sink()
                assert self.source is not None
                self.source.rewind_to_committed(sorted(self.owned))
                for partition in sorted(self._scopes_owned()):
                    self.processor.drop(partition)
                self.positions.clear()
                self.skip_below.clear()
                for partition in sorted(self._scopes_owned()):
                    self._restore_scope(partition)
                log.info("recovered", owned=sorted(self.owned))
                return
            except _RETRYABLE as exc:
                _raise_if_fenced(exc)
                if self.trouble.failed(exc, stage="recovery"):
                    delay = max(delay, 5.0)
                self.metrics.mark_progress(time.time())
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _reset_sink(self) -> None:
        sink = self.sink
        if isinstance(sink, TransactionalKafkaSink):
            try:
                sink.abort()
                return
            except ProducerFencedError:
                raise
            except Exception as exc:  # the producer is unusable: a new one fences it
                _raise_if_fenced(exc)
                log.warning("abort_failed", error=str(exc) or type(exc).__name__)
        if sink is not None:
            sink.close()
        self.sink = None
        self.sink = self._make_sink()


STALL_EXIT_CODE = 3
GAUGE_INTERVAL_S = 1.0
"""Consumer lag, live keys and detector statistics are refreshed at most this often."""


def _watch_for_stalls(metrics: Metrics, limit_s: float, done: threading.Event) -> None:
    """Exit the process when the poll loop made no progress for ``limit_s``.

    kafka-python 3.x can block forever inside a client call (a cross-thread wait
    without a timeout that its IO thread never completes; seen in CI inside
    ``poll``). Nothing in-process can interrupt that thread, so the sidecar dumps
    every stack and exits with code 3 for its supervisor (Kubernetes) to restart
    it; exactly-once state and offsets make the restart lose and repeat nothing.
    """
    while not done.wait(min(5.0, limit_s / 4)):
        last = metrics.progress_at
        if last and time.time() - last > limit_s:
            log.error("poll_loop_stalled", seconds=round(time.time() - last, 1), exit_code=3)
            faulthandler.dump_traceback(all_threads=True)
            sys.stderr.flush()
            os._exit(STALL_EXIT_CODE)


def run_sidecar(settings: Settings, stop: threading.Event) -> RunStats:
    """Run until ``stop`` is set; the current batch is finished and committed first."""
    metrics = Metrics()
    sidecar = Sidecar(settings, stop, metrics)
    server = None
    rt = settings.runtime
    finished = threading.Event()
    threading.Thread(
        target=_watch_for_stalls,
        args=(metrics, rt.liveness_timeout_s * 1.5, finished),
        name="driftline-stall-watchdog",
        daemon=True,
    ).start()
    if rt.http_port is not None:
        server = HealthServer(
            metrics,
            host=rt.http_host,
            port=rt.http_port,
            alive=liveness(metrics, rt.liveness_timeout_s),
            ready=lambda: True,
            problem=lambda: sidecar.trouble.problem,
            max_connections=rt.http_max_connections,
            timeout_s=rt.http_timeout_s,
        ).start()
        log.info("http_listening", host=rt.http_host, port=server.port)
    try:
        return sidecar.run()
    finally:
        finished.set()
        if server is not None:
            server.stop()
