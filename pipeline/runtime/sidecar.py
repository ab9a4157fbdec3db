"""The sidecar: Kafka in, Kafka out, restorable state, until SIGTERM.

This module only wires the loop (``pipeline.runtime.loop``) to Kafka: a
``KafkaSource`` in the consumer group, a ``TransactionalKafkaSink``
(exactly-once) or a ``KafkaSink`` (at-least-once), the changelog topic as the
state store; it connects with backoff, and turns what the loop reports into
metrics and logs (``SidecarHooks``); a ``BrokerWatch`` thread says when the broker is
unreachable. The checkpoint order is
``pipeline.runtime.checkpoint.Checkpoint``'s; rebalances and recovery are the
loop's.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.errors import DriftlineError
from pipeline.io.base import RebalanceEvents, TopicPartition
from pipeline.io.diagnose import diagnose
from pipeline.io.errors import TRANSIENT, FencedError
from pipeline.io.kafka import KafkaSink, KafkaSource, TransactionalKafkaSink
from pipeline.io.kafka_topics import ensure_topics, partitions_of, read_partition
from pipeline.io.permissions import missing_permissions
from pipeline.logs import get_logger
from pipeline.runtime.assignment_check import IncompleteAssignment, missing_partitions
from pipeline.runtime.broker_watch import BrokerWatch
from pipeline.runtime.checkpoint import Checkpoint, Delivery
from pipeline.runtime.cloudevents import with_cloudevent_headers
from pipeline.runtime.copartition import Mismatch, PartitionerCheck
from pipeline.runtime.exit_codes import STALL_EXIT_CODE
from pipeline.runtime.http import HealthServer, liveness
from pipeline.runtime.kafka_trouble import KafkaTrouble
from pipeline.runtime.loop import Loop, LoopHooks, RunStats
from pipeline.runtime.metrics import Metrics, lags_seconds
from pipeline.runtime.rejections import GivenUp
from pipeline.runtime.stores import ChangelogStore
from pipeline.state.changelog import PartitionSnapshot

__all__ = ["Sidecar", "SidecarHooks", "run_sidecar"]

log = get_logger("driftline.sidecar")


def _now() -> datetime:
    return datetime.now(UTC)


class Sidecar:
    """The long-running consumer: one instance per process."""

    def __init__(self, settings: Settings, stop: threading.Event, metrics: Metrics | None = None):
        self.settings = settings
        self.stop = stop
        self.metrics = metrics or Metrics()
        self.exactly_once = settings.runtime.mode == "exactly_once"
        self.processor = Processor(settings, settings.topics.inputs())
        self.source: KafkaSource | None = None
        self.delivery: Delivery | None = None
        self.loop: Loop | None = None
        self._idle_stats = RunStats()
        self.trouble = KafkaTrouble(settings)
        self.watch: BrokerWatch | None = None

    def stalled(self) -> str | None:
        """Why /healthz fails although the loop cycles: a partition held records and
        committed none of them for ``liveness_timeout_s`` (a record or an output that
        keeps failing). Not while the broker is unreachable: a restart cannot help
        that, and the broker watch says it."""
        loop, watch = self.loop, self.watch
        if loop is None or (watch is not None and watch.unreachable_s() > 0):
            return None
        limit = self.settings.runtime.liveness_timeout_s
        stalled = loop.progress.stalled(time.monotonic(), limit)
        if not stalled:
            return None
        parts = []
        for tp in stalled[:5]:
            state = loop.progress.partitions.get(tp)
            at = state.committed if state is not None else None
            tries = state.attempts if state is not None else 0
            parts.append(f"{tp[0]}[{tp[1]}] at offset {at} ({tries} failed attempts)")
        more = f" and {len(stalled) - 5} more" if len(stalled) > 5 else ""
        return f"no committed progress for {limit:g} s: {', '.join(parts)}{more}"

    @property
    def stats(self) -> RunStats:
        """Events, alerts and dead letters so far (live while running)."""
        return self.loop.stats if self.loop is not None else self._idle_stats

    # ------------------------------------------------------------------ setup
    def make_delivery(self) -> Delivery:
        """A new producer: transactional (exactly-once; it fences any older one with
        the same transactional id) or plain (at-least-once)."""
        t, k = self.settings.topics, self.settings.kafka
        topics = {
            "alert": t.alerts,
            "rollback": t.rollback_commands,
            "dead_letter": t.dlq,
            "state": t.state,
        }
        common: dict[str, Any] = {
            "bootstrap_servers": k.bootstrap_servers,
            "client_id": k.client_id,
            "extra": k.client_options(),
        }
        if self.exactly_once:
            return Delivery.exactly_once(
                TransactionalKafkaSink(
                    topics,
                    transactional_id=k.transactional_id,
                    transaction_timeout_ms=self.settings.runtime.transaction_timeout_ms,
                    **common,
                )
            )
        return Delivery.at_least_once(KafkaSink(topics, **common))

    def changelog(self) -> ChangelogStore:
        k, t = self.settings.kafka, self.settings.topics
        return ChangelogStore(
            lambda partition: read_partition(
                k.bootstrap_servers,
                t.state,
                partition,
                extra=k.client_options(),
                alive=lambda: self.metrics.mark_progress(time.time()),
            )
        )

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
                self.delivery = self.make_delivery()
                self.source = KafkaSource(
                    self.settings.input_topics(),
                    group_id=self.settings.kafka.group_id,
                    client_id=self.settings.kafka.client_id,
                    auto_offset_reset=self.settings.kafka.auto_offset_reset,
                    max_partition_fetch_bytes=max(
                        2 * 1024 * 1024, self.settings.runtime.max_event_bytes + 65536
                    ),
                    bootstrap_servers=self.settings.kafka.bootstrap_servers,
                    batch_wait_ms=self.settings.runtime.max_batch_ms,
                    extra=self.settings.kafka.client_options(),
                )
                return True
            except TRANSIENT as exc:
                self._close_clients()
                if self.trouble.failed(exc, stage="connect"):
                    delay = max(delay, 5.0)
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
        return False

    def _close_clients(self) -> None:
        if self.source is not None:
            self.source.close()
        delivery = self.loop.delivery if self.loop is not None else self.delivery
        if delivery is not None:
            delivery.sink.close()
        self.source = self.delivery = None

    # -------------------------------------------------------------------- run
    def run(self) -> RunStats:
        if not self.connect():
            return self.stats
        assert self.source is not None and self.delivery is not None
        log.info(
            "sidecar_started",
            mode=self.settings.runtime.mode,
            group_id=self.settings.kafka.group_id,
            transactional_id=self.settings.kafka.transactional_id if self.exactly_once else None,
            topics=sorted(self.settings.input_topics()),
        )
        hooks = SidecarHooks(self.settings, self.metrics, self.source, self.trouble, self.stop)
        self.loop = Loop(
            self.processor,
            self.source,
            self.delivery,
            self.changelog(),
            self.settings.runtime,
            clock=_now,
            decorate=with_cloudevent_headers,
            reopen=self.make_delivery,
            hooks=hooks,
            stop=self.stop,
        )
        k = self.settings.kafka
        self.watch = BrokerWatch(
            self.source.broker_connected,
            lambda: diagnose(k.bootstrap_servers, k.client_options()),
        )
        hooks.unreachable_s = self.watch.unreachable_s
        self.metrics.kafka_unreachable_seconds.set_function(self.watch.unreachable_s)
        watching = threading.Event()
        threading.Thread(
            target=self.watch.run,
            args=(watching,),
            name="driftline-broker-watch",
            daemon=True,
        ).start()
        try:
            self.loop.run(recover=True)
        except FencedError as exc:
            # Another instance took over our transactional id: we are the zombie.
            tid = self.settings.kafka.transactional_id
            log.error("producer_fenced", transactional_id=tid)
            raise DriftlineError(
                f"fenced: another sidecar with transactional id {tid!r} is active"
            ) from exc
        finally:
            watching.set()
            self._close_clients()
        log.info(
            "sidecar_stopped",
            events=self.stats.events,
            alerts=self.stats.alerts,
            dead_letters=self.stats.dead_letters,
        )
        return self.stats


class SidecarHooks(LoopHooks):
    """What the loop reports, as Prometheus metrics and logs; plus the liveness mark,
    the watch for a consumer that never gets a partition, and the Kafka problems
    (``KafkaTrouble``: logged once per minute, named on /healthz, backed off from)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        source: KafkaSource,
        trouble: KafkaTrouble,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.source = source
        self.trouble = trouble
        self.stop = stop
        self._unassigned_since: float | None = None
        self._warned_at = 0.0
        self._ever_assigned = False
        self._rejoined_at = 0.0
        self._rejoins = 0
        self._incomplete = IncompleteAssignment()
        self._assignment_checked = 0.0
        self._gauges_due = 0.0
        self.unreachable_s: Callable[[], float] = lambda: 0.0
        """How long the broker has been unreachable (the sidecar's ``BrokerWatch``)."""
        self._retries_seen: dict[TopicPartition, int] = {}
        self._partition_series: set[TopicPartition] = set()
        keyed = set(settings.input_topics()) - set(settings.serving_topics())
        self.copartition = PartitionerCheck(keyed, on_mismatch=self._mismatch)
        # Counters start at 0 for every label value known up front (rate() needs a start).
        for topic in sorted(keyed):
            metrics.partition_mismatches.labels(topic)
        for kind in ("alert", "rollback", "dead_letter", "state"):
            metrics.rejected_outputs.labels(kind)

    def _mismatch(self, mismatch: Mismatch) -> None:
        self.metrics.partition_mismatches.labels(mismatch.topic).inc()

    def cycle(self, loop: Loop, records: Sequence[Record]) -> None:
        if not records:
            self.trouble.cleared()  # the poll worked
        self.copartition.observe(records)
        self.metrics.mark_progress(time.time())
        self._warn_if_unassigned(loop.owned)
        if not records:  # between batches: a rejoin hands back only committed work
            self._rejoin_if_incomplete(loop.owned)
        if time.monotonic() >= self._gauges_due:
            # Lag asks the broker, statistics walk every key: once per interval, not
            # per batch (they are scraped every few seconds at best).
            self._gauges_due = time.monotonic() + GAUGE_INTERVAL_S
            self._export_gauges(loop)

    def rebalanced(self, events: RebalanceEvents, owned: set[TopicPartition]) -> None:
        self.metrics.rebalances.labels("assigned").inc(len(events.assigned))
        self.metrics.rebalances.labels("revoked").inc(len(events.revoked))
        self.metrics.rebalances.labels("lost").inc(len(events.lost))
        self.metrics.assigned_partitions.set(len(owned))

    def restored(self, partition: int, snapshot: PartitionSnapshot) -> None:
        self.metrics.restored_keys.inc(snapshot.read_entries)

    def dead_letter(self, reason: str) -> None:
        self.metrics.dead_letters.labels(reason).inc()

    def committed(self, records: Sequence[Record], checkpoint: Checkpoint, seconds: float) -> None:
        self.trouble.cleared()
        self.metrics.transactions.labels("commit").inc()
        self.metrics.state_records.inc(checkpoint.state_records)
        self.metrics.processing_seconds.observe(seconds)
        for topic, count in Counter(record.topic for record in records).items():
            self.metrics.events.labels(topic).inc(count)
        self.metrics.end_to_end_lag_seconds.observe_many(lags_seconds(records, time.time()))
        self.metrics.batches.inc()

    def published(self, message: Message) -> None:
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

    def gave_up(self, given: GivenUp) -> None:
        self.metrics.rejected_outputs.labels(given.kind).inc()

    def aborted(self, error: BaseException) -> None:
        self.metrics.mark_progress(time.time())  # a bounded wait ended: the loop is alive
        self.metrics.transactions.labels("abort").inc()
        self.metrics.recoveries.inc()
        if self.trouble.failed(error, stage="checkpoint"):
            self.stop.wait(5.0)  # an ACL is missing: no tight retry loop

    def recovering(self) -> None:
        self.metrics.mark_progress(time.time())

    def recovery_failed(self, error: BaseException) -> None:
        self.metrics.mark_progress(time.time())
        if self.trouble.failed(error, stage="recovery"):
            self.stop.wait(5.0)

    def _warn_if_unassigned(self, owned: set[TopicPartition]) -> None:
        """Say so when no partitions are assigned, once a minute. A consumer that was
        never assigned anything rejoins its group every ``REJOIN_AFTER_S``, at most
        ``MAX_REJOINS`` times; one still never assigned anything for 2x
        liveness_timeout_s is taken to be wedged in
        its group join (kafka-python 3 can stop heartbeating right after joining and
        never rejoin): exit with code 3 for the supervisor to restart it. The cost in
        the rare group with more members than partitions is a periodic restart. Time
        while the broker is unreachable does not count: no group can assign then."""
        now = time.monotonic()
        if owned:
            self._unassigned_since = None
            self._ever_assigned = True
            return
        if self._unassigned_since is None or self.unreachable_s() > 0:
            self._unassigned_since = self._warned_at = self._rejoined_at = now
            return
        if (
            not self._ever_assigned
            and self._rejoins < MAX_REJOINS
            and now - self._rejoined_at > REJOIN_AFTER_S
        ):
            # Cheaper than the exit below, and it needs no supervisor; bounded, because
            # each rejoin rebalances the whole group (a member that is simply one too
            # many for the partitions would otherwise disturb it forever).
            self._rejoins += 1
            self._rejoined_at = now
            log.warning(
                "rejoining_group",
                group_id=self.settings.kafka.group_id,
                unassigned_s=round(now - self._unassigned_since, 1),
                attempt=self._rejoins,
            )
            self.source.rejoin()
            return
        limit = 2 * self.settings.runtime.liveness_timeout_s
        if not self._ever_assigned and now - self._unassigned_since > limit:
            log.error(
                "never_assigned", group_id=self.settings.kafka.group_id, exit_code=STALL_EXIT_CODE
            )
            sys.stderr.flush()
            os._exit(STALL_EXIT_CODE)
        if now - self._warned_at > 60:
            log.warning("no_partitions_assigned", group_id=self.settings.kafka.group_id)
            self._warned_at = now

    def _rejoin_if_incomplete(self, owned: set[TopicPartition]) -> None:
        """Rejoin when this member owns a partition number of some co-partitioned
        inputs and not of the others (``pipeline.runtime.assignment_check``)."""
        now = time.monotonic()
        if now - self._assignment_checked < ASSIGNMENT_CHECK_S:
            return
        self._assignment_checked = now
        missing = missing_partitions(owned, self.source.partition_counts())
        if not self._incomplete.should_rejoin(missing, now):
            return
        log.warning(
            "assignment_incomplete",
            group_id=self.settings.kafka.group_id,
            missing=sorted(missing),
            attempt=self._incomplete.rejoins,
            detail="partitions of some inputs were assigned without the same partitions "
            "of the others (the group leader lacked their metadata): rejoining the group",
        )
        self.source.rejoin()

    def _export_gauges(self, loop: Loop) -> None:
        processor, progress = loop.processor, loop.progress
        ends = self.source.ends()
        for (topic, partition), (position, high) in ends.items():
            self.metrics.consumer_lag.labels(topic, str(partition)).set(max(0, high - position))
            state = progress.partitions.get((topic, partition))
            held = state is not None and state.pending_since is not None
            start = state.committed if held and state is not None else None
            lag = high - (start if start is not None else position)
            self.metrics.committed_lag.labels(topic, str(partition)).set(max(0, lag))
            attempts = state.attempts if state is not None else 0
            self.metrics.offset_retries.labels(topic, str(partition))  # from 0
            self.metrics.offset_attempts.labels(topic, str(partition)).set(attempts)
        for tp in self._partition_series - set(ends):  # no longer ours
            for gauge in (self.metrics.committed_lag, self.metrics.offset_attempts):
                with contextlib.suppress(KeyError):
                    gauge.remove(tp[0], str(tp[1]))
        self._partition_series = set(ends)
        for tp, count in list(progress.retries.items()):
            seen = self._retries_seen.get(tp, 0)
            if count > seen:
                self.metrics.offset_retries.labels(tp[0], str(tp[1])).inc(count - seen)
                self._retries_seen[tp] = count
        limit = self.settings.runtime.liveness_timeout_s
        self.metrics.stalled_partitions.set(len(progress.stalled(time.monotonic(), limit)))
        self.metrics.live_keys.set(processor.monitor.live_keys())
        self.metrics.observe_statistics(_statistics(processor))
        self.metrics.observe_inputs(processor.decoder.counters, processor.decoder.pending())
        self.metrics.observe_quarantined(processor.engine.stats)


def _statistics(processor: Processor) -> Iterable[tuple[str, str, str, float, float]]:
    for scope in list(processor.monitor.scopes.values()):
        for key, state in list(scope.items()):
            stat, thr = state.detector.statistic, state.detector.threshold
            if stat == stat and thr == thr:  # not NaN
                yield key.model_id, key.signal, key.monitor_id, float(stat), float(thr)


# A member never assigned anything rejoins its group this often, this many times,
# before the never_assigned exit (see SidecarHooks._warn_if_unassigned).
REJOIN_AFTER_S = 20.0
MAX_REJOINS = 3
ASSIGNMENT_CHECK_S = 5.0
"""How often a member compares its partitions across its co-partitioned inputs."""
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
            log.error(
                "poll_loop_stalled", seconds=round(time.time() - last, 1), exit_code=STALL_EXIT_CODE
            )
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
            problem=lambda: sidecar.trouble.problem or sidecar.stalled(),
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
