"""The worker processes of ``benchmarks/e2e.py`` other than the sidecar: (a) the floor,
(d)/(d-ks) the naive consumers, (q) the quixstreams peer (:mod:`benchmarks.quix_peer`).
Each prints one JSON line (events counted, first and last wall/CPU clocks) that the
harness turns into events/s and CPU per event."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections import Counter
from typing import Any

from benchmarks.e2e import (
    CATEGORICALS,
    CLASS_ALPHA,
    CLASS_REFERENCE,
    CLASS_WINDOW,
    CONFIDENCE_PH,
    FETCH,
    MODELS,
    NAIVE_KS_EVENTS,
    NUMERIC,
    _ph_params,
)
from pipeline.generate import CLASSES

__all__ = ["run_worker"]


def _report(c0: int, first: tuple[float, float], n: int) -> None:
    t_first, cpu_first = first
    print(
        json.dumps(
            {
                "c0": c0,
                "t_first": t_first,
                "cpu_first": cpu_first,
                "t_end": time.monotonic(),
                "cpu_end": time.process_time(),
                "n": n,
            }
        ),
        flush=True,
    )


def _floor_worker(args: argparse.Namespace, stop: threading.Event) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from pipeline.core.decode import Decoder

    decoder = Decoder(1 << 20)
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **FETCH,
    )
    tps = [TopicPartition(args.topic, p) for p in sorted(consumer.partitions_for_topic(args.topic))]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    n, c0, first = 0, 0, None
    decode = args.worker == "floor"  # "consume": kafka-python's own cost alone
    while n < args.events and not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            if decode:
                for r in records:
                    decoder.decode(r.value, "prediction")
            n += len(records)
        if first is None and n:
            c0, first = n, (time.monotonic(), time.process_time())
    if first is not None:
        _report(c0, first, n)
    stop.wait()
    consumer.close()


def _confluent_worker(args: argparse.Namespace, stop: threading.Event) -> None:
    """(a-ck): what the same reading costs with librdkafka (confluent-kafka), for the
    proposal of an optional client backend behind ``pipeline/io``: consume only,
    read_committed, batches of up to 2,000 (the sidecar's batch size)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"{args.group}-ck",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.max.bytes": FETCH["fetch_max_bytes"],
            "max.partition.fetch.bytes": FETCH["max_partition_fetch_bytes"],
        }
    )
    metadata = consumer.list_topics(args.topic, timeout=30)
    partitions = sorted(metadata.topics[args.topic].partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    n, c0, first = 0, 0, None
    while n < args.events and not stop.is_set():
        messages = consumer.consume(num_messages=2000, timeout=0.2)
        for m in messages:
            if m.error() is None:
                m.value()
                n += 1
        if first is None and n:
            c0, first = n, (time.monotonic(), time.process_time())
    if first is not None:
        _report(c0, first, n)
    stop.wait()
    consumer.close()


class _NaiveModel:
    """What a hand-written monitor would keep per model."""

    def __init__(self, chi2_critical: float, ks: bool = False) -> None:
        from river.drift import KSWIN, PageHinkley

        self.features: dict[str, Any] = {n: PageHinkley(**_ph_params(n)) for n in NUMERIC}
        if ks:
            self.features = {
                n: KSWIN(alpha=1e-6, window_size=1200, stat_size=200, seed=k)
                for k, n in enumerate(NUMERIC)
            }
        self.detector = "ks_window" if ks else "page_hinkley"
        self.confidence = PageHinkley(**CONFIDENCE_PH)
        self.reference: Counter[str] = Counter()
        self.window: Counter[str] = Counter()
        self.chi2_critical = chi2_critical

    def update(self, event: Any) -> list[tuple[str, str, float | None]]:
        fired: list[tuple[str, str, float | None]] = []
        for name, value in (event.features or {}).items():
            detector = self.features.get(name)
            if detector is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            detector.update(value)
            if detector.drift_detected:
                fired.append((f"feature:{name}", self.detector, None))
        if event.confidence is not None:
            self.confidence.update(event.confidence)
            if self.confidence.drift_detected:
                fired.append(("confidence", "page_hinkley", None))
        label = str(event.prediction)
        if sum(self.reference.values()) < CLASS_REFERENCE:
            self.reference[label] += 1
            return fired
        self.window[label] += 1
        if sum(self.window.values()) >= CLASS_WINDOW:
            total = sum(self.reference.values())
            chi2 = 0.0
            for c in set(self.reference) | set(self.window):
                expected = max(CLASS_WINDOW * self.reference[c] / total, 0.5)
                chi2 += (self.window[c] - expected) ** 2 / expected
            if chi2 > self.chi2_critical:
                fired.append(("prediction", "chi_square", chi2))
            self.window.clear()
        return fired


def _naive_worker(args: argparse.Namespace, stop: threading.Event) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from scipy.stats import chi2

    from pipeline.events import PredictionEvent

    critical = float(chi2.isf(CLASS_ALPHA, len(CLASSES) - 1))
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=True,
        auto_offset_reset="earliest",
        consumer_timeout_ms=200,
        **FETCH,
    )
    producer = KafkaProducer(bootstrap_servers=args.bootstrap)
    models: dict[str, _NaiveModel] = {}
    n, first, reported = 0, None, False
    while not stop.is_set():
        for msg in consumer:
            try:
                event = PredictionEvent.model_validate(json.loads(msg.value), strict=False)
            except ValueError:  # malformed JSON or a schema violation: skip it
                continue
            model = models.get(event.model_id)
            if model is None:
                model = models[event.model_id] = _NaiveModel(critical, ks=args.worker == "naive-ks")
            for signal_name, detector, statistic in model.update(event):
                alert = {
                    "alert_id": f"{event.model_id}:{signal_name}:{msg.partition}:{msg.offset}",
                    "model_id": event.model_id,
                    "model_version": event.model_version,
                    "signal": signal_name,
                    "detector": {"name": detector},
                    "statistic": statistic,
                    "detected_at": event.timestamp.isoformat(),
                    "source": {
                        "topic": msg.topic,
                        "partition": msg.partition,
                        "offset": msg.offset,
                    },
                }
                producer.send(
                    args.alerts_topic, key=event.model_id.encode(), value=json.dumps(alert).encode()
                )
            n += 1
            if first is None:
                first = (time.monotonic(), time.process_time())
            if not reported and n >= (
                min(args.events, NAIVE_KS_EVENTS) if args.worker == "naive-ks" else args.events
            ):
                _report(1, first, n)
                reported = True
            if stop.is_set():
                break
    producer.flush()
    producer.close()
    consumer.close()


def run_worker(args: argparse.Namespace) -> None:
    """The process of a non-driftline variant: its report is one JSON line on stdout."""
    if args.worker == "peer":
        from benchmarks.quix_peer import run_peer

        args.models = MODELS
        run_peer(args, list(NUMERIC), list(CATEGORICALS))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.worker in ("floor", "consume"):
        _floor_worker(args, stop)
    elif args.worker == "consume-ck":
        _confluent_worker(args, stop)
    else:
        _naive_worker(args, stop)
