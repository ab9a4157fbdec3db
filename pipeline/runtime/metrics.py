"""Prometheus metrics of the sidecar, on a registry of its own.

Label cardinality is bounded: model and signal labels come from the config and
from live monitor keys, capped at ``MAX_SERIES`` series per metric; beyond the
cap values are folded into ``model="other"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline.core.quarantine import STAGES as QUARANTINE_STAGES
from pipeline.core.records import Record
from pipeline.runtime.batch_histogram import BatchHistogram

__all__ = ["MAX_SERIES", "Metrics", "lags_seconds"]

MAX_SERIES = 500
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric the sidecar exports (names follow Prometheus conventions)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("driftline_events", "Input records processed.", ["topic"], registry=r)
        self.batches = Counter("driftline_batches", "Batches processed.", registry=r)
        self.processing_seconds = Histogram(
            "driftline_processing_seconds",
            "Time to process and commit one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_lag_seconds = BatchHistogram(
            "driftline_end_to_end_lag_seconds",
            "From the record's Kafka timestamp to the commit of its outputs.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "driftline_dead_letters",
            "Records sent to the dead-letter topic.",
            ["reason"],
            registry=r,
        )
        self.alerts = Counter(
            "driftline_alerts",
            "Alerts published (status firing: an incident opened or re-notified; resolved).",
            ["severity", "model", "status"],
            registry=r,
        )
        self.rollbacks = Counter(
            "driftline_rollback_commands", "Rollback commands published.", ["model"], registry=r
        )
        self.transactions = Counter(
            "driftline_transactions", "Checkpoints (Kafka transactions).", ["outcome"], registry=r
        )
        self.recoveries = Counter(
            "driftline_recoveries", "Rewinds to the last checkpoint after a failure.", registry=r
        )
        self.rebalances = Counter(
            "driftline_rebalances", "Partition assignment changes.", ["change"], registry=r
        )
        self.state_records = Counter(
            "driftline_state_records", "State changelog records written.", registry=r
        )
        self.restored_keys = Counter(
            "driftline_restored_state_entries", "State entries restored.", registry=r
        )
        self.consumer_lag = Gauge(
            "driftline_consumer_lag",
            "Records behind the high watermark.",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_lag = Gauge(
            "driftline_committed_lag",
            "Records behind the high watermark that are not committed (while a batch is "
            "held or retried: from the committed offset; a transactional producer's last "
            "commit marker counts as one).",
            ["topic", "partition"],
            registry=r,
        )
        self.offset_retries = Counter(
            "driftline_offset_retries",
            "Failed checkpoints per partition: each re-reads the partition from its "
            "committed offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.offset_attempts = Gauge(
            "driftline_offset_attempts",
            "Checkpoints in a row that failed at the partition's committed offset "
            "(0 after a commit).",
            ["topic", "partition"],
            registry=r,
        )
        self.stalled_partitions = Gauge(
            "driftline_stalled_partitions",
            "Owned partitions holding records not committed for runtime.liveness_timeout_s.",
            registry=r,
        )
        self.rejected_outputs = Counter(
            "driftline_rejected_outputs",
            "Messages the broker refused on every attempt, given up so the partition "
            "moves on (an output left out; a state entry written as a tombstone); the "
            "error log line names the record and the broker's reason.",
            ["kind"],
            registry=r,
        )
        self.partition_mismatches = Counter(
            "driftline_partition_mismatches",
            "Records whose key was first seen on another partition number (of any input "
            "topic): producers that hash keys differently.",
            ["topic"],
            registry=r,
        )
        self.kafka_unreachable_seconds = Gauge(
            "driftline_kafka_unreachable_seconds",
            "How long the consumer has held no broker connection (0 while connected).",
            registry=r,
        )
        self.live_keys = Gauge("driftline_monitor_keys", "Live detector instances.", registry=r)
        self.assigned_partitions = Gauge(
            "driftline_assigned_partitions", "Input partitions owned.", registry=r
        )
        self.detector_statistic = Gauge(
            "driftline_detector_statistic",
            "Latest detector statistic per monitored signal.",
            ["model", "signal", "detector"],
            registry=r,
        )
        self.detector_threshold = Gauge(
            "driftline_detector_threshold",
            "Threshold the statistic is compared with.",
            ["model", "signal", "detector"],
            registry=r,
        )
        self.last_poll_timestamp = Gauge(
            "driftline_last_poll_timestamp_seconds",
            "Unix time of the last completed poll-loop iteration.",
            registry=r,
        )
        self.progress_at = 0.0
        self._models: set[str] = set()
        self._series: set[tuple[str, str, str]] = set()
        self.input_halves = Counter(
            "driftline_input_halves",
            "Request/response halves of a serving-stack input (pipeline/formats) by outcome: "
            "paired, expired_request, expired_response, evicted, duplicate, skipped_*.",
            ["input", "outcome"],
            registry=r,
        )
        self.input_pending = Gauge(
            "driftline_input_pending_halves",
            "Halves waiting for their other half, per serving-stack input.",
            ["input"],
            registry=r,
        )
        self._input_counts: dict[tuple[str, str], int] = {}
        self.quarantined = Counter(
            "driftline_quarantined",
            "Failures the core contained, by stage (pipeline/core/quarantine.py): route "
            "(the event was dead-lettered), update, snapshot, restore (the detector or "
            "entry was reset), policy (the model's policy state was reset). Each key's "
            "first failure per stage is logged as key_quarantined.",
            ["stage"],
            registry=r,
        )
        for stage in QUARANTINE_STAGES:
            self.quarantined.labels(stage)  # exported from 0
        self._quarantined: dict[str, int] = {}

    def mark_progress(self, now: float) -> None:
        """The poll loop completed an iteration (or a connection attempt)."""
        self.progress_at = now
        self.last_poll_timestamp.set(now)

    def model_label(self, model: str) -> str:
        if model in self._models:
            return model
        if len(self._models) < MAX_SERIES:
            self._models.add(model)
            return model
        return "other"

    def observe_inputs(self, counters: Mapping[str, int], pending: Mapping[str, int]) -> None:
        """The input decoder's cumulative counters (``<input>:<outcome>``) as counter
        increments, and its waiting halves per input. Labels come from the config."""
        for name, value in counters.items():
            source, _, outcome = name.rpartition(":")
            seen = self._input_counts.get((source, outcome), 0)
            if value > seen:
                self.input_halves.labels(source, outcome).inc(value - seen)
                self._input_counts[(source, outcome)] = value
        for source, count in pending.items():
            self.input_pending.labels(source).set(count)

    def observe_quarantined(self, stats: Mapping[str, int]) -> None:
        """The engine's cumulative ``quarantined:<stage>`` counters as increments."""
        for stage in QUARANTINE_STAGES:
            value = stats.get(f"quarantined:{stage}", 0)
            seen = self._quarantined.get(stage, 0)
            if value > seen:
                self.quarantined.labels(stage).inc(value - seen)
                self._quarantined[stage] = value

    def observe_statistics(self, rows: Iterable[tuple[str, str, str, float, float]]) -> None:
        """Record (model, signal, detector, statistic, threshold) rows, capped."""
        for model, signal, detector, statistic, threshold in rows:
            series = (model, signal, detector)
            if series not in self._series:
                if len(self._series) >= MAX_SERIES:
                    continue
                self._series.add(series)
            self.detector_statistic.labels(model, signal, detector).set(statistic)
            self.detector_threshold.labels(model, signal, detector).set(threshold)


def lags_seconds(records: Sequence[Record], now_s: float) -> np.ndarray:
    """Seconds from each record's broker timestamp to ``now_s`` (none for a record
    without one; never negative, whatever the producer's clock says)."""
    stamps = np.fromiter((r.timestamp_ms or 0 for r in records), np.float64, len(records))
    stamps = stamps[stamps > 0]
    return np.maximum(0.0, now_s * 1000 - stamps) / 1000
