"""The sidecar: Kafka in, Kafka out, until SIGTERM."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from pipeline.config import Settings
from pipeline.core.processor import Processor
from pipeline.errors import SinkError, SourceError
from pipeline.io.kafka import KafkaSink, KafkaSource
from pipeline.logs import get_logger
from pipeline.runtime.loop import RunStats, Runtime

__all__ = ["connect", "run_sidecar"]

log = get_logger("driftline.sidecar")


def _now() -> datetime:
    return datetime.now(UTC)


def connect(settings: Settings, stop: threading.Event) -> tuple[KafkaSource, KafkaSink] | None:
    """Connect to Kafka, retrying with capped exponential backoff until ``stop``."""
    delay = 0.5
    while not stop.is_set():
        try:
            source = KafkaSource(
                settings.topics.inputs(),
                bootstrap_servers=settings.kafka.bootstrap_servers,
                group_id=settings.kafka.group_id,
                client_id=settings.kafka.client_id,
                auto_offset_reset=settings.kafka.auto_offset_reset,
                extra=settings.kafka.extra,
            )
            sink = KafkaSink(
                {
                    "alert": settings.topics.alerts,
                    "rollback": settings.topics.rollback_commands,
                    "dead_letter": settings.topics.dlq,
                    "state": settings.topics.state,
                },
                bootstrap_servers=settings.kafka.bootstrap_servers,
                client_id=settings.kafka.client_id,
                extra=settings.kafka.extra,
            )
            return source, sink
        except (SourceError, SinkError) as exc:
            log.warning("kafka_unavailable", error=str(exc), retry_in_s=delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
    return None


def run_sidecar(settings: Settings, stop: threading.Event) -> RunStats:
    """Run until ``stop`` is set; the current batch is finished and committed first."""
    connected = connect(settings, stop)
    if connected is None:
        return RunStats()
    source, sink = connected
    processor = Processor(settings, settings.topics.inputs())
    runtime = Runtime(processor, source, sink, settings.runtime, clock=_now)
    log.info(
        "sidecar_started",
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=settings.kafka.group_id,
        topics=sorted(settings.topics.inputs()),
    )
    started = time.monotonic()
    try:
        stats = runtime.run(stop)
    finally:
        source.close()
        sink.close()
    log.info(
        "sidecar_stopped",
        events=stats.events,
        alerts=stats.alerts,
        dead_letters=stats.dead_letters,
        seconds=round(time.monotonic() - started, 3),
    )
    return stats
