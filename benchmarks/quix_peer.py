"""The peer of ``benchmarks/e2e.py``: what a Python team would build instead of driftline.

A quixstreams application (``pip install -e ".[bench]"``; the version is printed in the
report) with its own exactly-once processing guarantee (Kafka transactions) and its keyed
state store (RocksDB, backed by a changelog topic), running river detectors of the kinds
and settings the sidecar's default monitor set runs for the benchmark's models:

* ``river.drift.KSWIN`` per numeric feature where the default set runs a KS window (500
  recent values against 3,000 older ones, alpha 2e-4: ``window_size=3500, stat_size=500``);
* a chi-square test of the class mix per categorical feature and on the predicted class,
  over tumbling windows of 500 against the first 2,000 values (alpha 1e-5, the default
  set's ``categorical_drift``);
* ``river.drift.ADWIN`` (delta 0.02) on the errors of the label join: each prediction's
  class is kept in the state under its request id (with an event-time TTL) for the label
  that may follow on the same topic (the benchmark's stream carries none, as for the
  sidecar, which keeps its join state too).

Written as the quixstreams documentation shows: ``Application(processing_guarantee=
"exactly-once")``, a ``StreamingDataFrame`` over the input topic, one stateful
``apply(..., expand=True)`` returning the alerts of the event, ``to_topic`` for them.
The record key is the model id, so the state of a key is one model's detectors. They are
stored in the state as one pickle per model, written after every event (the store
commits with each checkpoint's transaction, so whatever a restart restores matches the
committed offsets); an in-memory copy is used while the state's version tag says it is
the one last written by this process, so that only a restore or another member's writes
make the application unpickle. Events are validated with the pydantic contract
(``model_validate_json`` from bytes); an invalid one is counted and skipped.

The detectors' cost differs from driftline's on purpose (that is what the comparison
shows): river's KSWIN runs ``scipy.stats.ks_2samp`` of 500 against a fresh random
sample of 500 of the older values at every update, and the pickled model state (16
windows of 3,500 floats) is written once per event. Not run: the default set's class
entropy and confidence threshold (river has neither).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

__all__ = ["KS_PARAMS", "PEER_STEADY_EVENTS", "run_peer"]

KS_PARAMS = {"alpha": 2e-4, "window_size": 3500, "stat_size": 500}
"""river KSWIN as the default set's KS window: 500 recent against 3,000 older values."""
CLASS_WINDOW, CLASS_REFERENCE, CLASS_ALPHA = 500, 2000, 1e-5
ADWIN_DELTA = 0.02
LABEL_TTL = timedelta(hours=1)
PEER_STEADY_EVENTS = 400
"""Events timed once every model's KSWIN windows are full (river's KSWIN only tests a
full window; before that an update is an append). At ~30-60 events/s this is ~10 s."""


class ClassMix:
    """Chi-square of a tumbling window's category counts against the first values."""

    def __init__(self, critical: float) -> None:
        self.critical = critical
        self.reference: Counter[str] = Counter()
        self.window: Counter[str] = Counter()
        self.seen = 0
        self.in_window = 0

    def update(self, value: str) -> float | None:
        """The statistic when a window closed with a drift, else None."""
        if self.seen < CLASS_REFERENCE:
            self.seen += 1
            self.reference[value] += 1
            return None
        self.window[value] += 1
        self.in_window += 1
        if self.in_window < CLASS_WINDOW:
            return None
        chi2 = 0.0
        for c in set(self.reference) | set(self.window):
            expected = max(CLASS_WINDOW * self.reference[c] / CLASS_REFERENCE, 0.5)
            chi2 += (self.window[c] - expected) ** 2 / expected
        self.window.clear()
        self.in_window = 0
        return chi2 if chi2 > self.critical else None


class ModelDetectors:
    """One model's detectors (what the state holds per key)."""

    def __init__(self, numeric: list[str], categorical: list[str], critical: float) -> None:
        from river.drift import ADWIN, KSWIN

        self.ks = {n: KSWIN(**KS_PARAMS, seed=k) for k, n in enumerate(numeric)}
        self.mix = {f"feature:{n}": ClassMix(critical) for n in categorical}
        self.mix["prediction"] = ClassMix(critical)
        self.errors = ADWIN(delta=ADWIN_DELTA)
        self.events = 0


def run_peer(args: argparse.Namespace, numeric: list[str], categorical: list[str]) -> None:
    """The peer process: consume ``args.topic``, alert to ``args.alerts_topic``; print
    the timing report (one JSON line) once ``PEER_STEADY_EVENTS`` events were processed
    with full windows (or the backlog ended first: ``"steady": false``)."""
    import quixstreams
    from pydantic import TypeAdapter, ValidationError
    from quixstreams import Application, State
    from scipy.stats import chi2

    from pipeline.events import LabelEvent, PredictionEvent

    critical = float(chi2.isf(CLASS_ALPHA, 2))  # 3 classes / the benchmark's categories
    adapter: TypeAdapter[PredictionEvent | LabelEvent] = TypeAdapter(
        PredictionEvent | LabelEvent  # the schema tag tells them apart
    )
    instance = uuid.uuid4().hex
    cache: dict[str, tuple[str, ModelDetectors]] = {}
    steady_at = KS_PARAMS["window_size"] * args.models + 200
    clock: dict[str, Any] = {"n": 0, "first": None, "steady": None, "reported": False}

    def load(model_id: str, state: State) -> tuple[int, ModelDetectors]:
        version = state.get("version")
        cached = cache.get(model_id)
        if cached is not None and version is not None and cached[0] == version:
            return int(version.rsplit(":", 1)[1]), cached[1]
        blob = state.get_bytes("detectors")
        if blob is None:
            return 0, ModelDetectors(numeric, categorical, critical)
        return int(version.rsplit(":", 1)[1]), pickle.loads(blob)

    def detect(value: bytes, key: Any, timestamp: int, headers: Any, state: State) -> list[dict]:
        tick()
        try:
            event = adapter.validate_json(value)
        except ValidationError:
            return []
        counter, model = load(event.model_id, state)
        alerts: list[dict[str, Any]] = []

        def fired(signal: str, detector: str, statistic: float | None) -> None:
            alerts.append(
                {
                    "alert_id": f"{event.model_id}:{signal}:{event.event_id}",
                    "model_id": event.model_id,
                    "signal": signal,
                    "detector": {"name": detector},
                    "statistic": statistic,
                    "detected_at": event.timestamp.isoformat(),
                }
            )

        if isinstance(event, LabelEvent):
            predicted = state.get(f"request:{event.request_id}")
            if predicted is None:
                return []
            state.delete(f"request:{event.request_id}")
            model.errors.update(float(predicted != event.label))
            if model.errors.drift_detected:
                fired("error", "adwin", None)
        else:
            features = event.features or {}
            for name, detector in model.ks.items():
                value_ = features.get(name)
                if isinstance(value_, int | float) and not isinstance(value_, bool):
                    detector.update(value_)
                    if detector.drift_detected:
                        fired(f"feature:{name}", "kswin", None)
            for signal, mix in model.mix.items():
                category = event.prediction if signal == "prediction" else features.get(signal[8:])
                if category is not None:
                    statistic = mix.update(str(category))
                    if statistic is not None:
                        fired(signal, "chi_square", statistic)
            if event.request_id is not None:
                state.set(f"request:{event.request_id}", event.prediction, ttl=LABEL_TTL)
        version = f"{instance}:{counter + 1}"
        state.set("version", version)
        state.set_bytes("detectors", pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        cache[event.model_id] = (version, model)
        return alerts

    def tick() -> None:
        n = clock["n"] = clock["n"] + 1
        if clock["first"] is None:
            clock["first"] = (n, time.monotonic(), time.process_time())
        if n == steady_at:
            clock["steady"] = (n, time.monotonic(), time.process_time())
        if clock["reported"]:
            return
        end = steady_at + PEER_STEADY_EVENTS if args.events > steady_at else args.events
        if n >= end:
            report()

    def report() -> None:
        c0, t0, cpu0 = clock["steady"] or clock["first"]
        fill = clock["first"]
        print(
            json.dumps(
                {
                    "c0": c0,
                    "t_first": t0,
                    "cpu_first": cpu0,
                    "t_end": time.monotonic(),
                    "cpu_end": time.process_time(),
                    "n": clock["n"],
                    "steady": clock["steady"] is not None,
                    "version": quixstreams.__version__,
                    "fill": None
                    if clock["steady"] is None
                    else {
                        "events": clock["steady"][0] - fill[0],
                        "cpu_s": clock["steady"][2] - fill[2],
                        "wall_s": clock["steady"][1] - fill[1],
                    },
                }
            ),
            flush=True,
        )
        clock["reported"] = True

    with tempfile.TemporaryDirectory(prefix="driftline-quix-") as state_dir:
        app = Application(
            broker_address=args.bootstrap,
            consumer_group=args.group,
            auto_offset_reset="earliest",
            processing_guarantee="exactly-once",
            state_dir=state_dir,
            # The sidecar commits a batch after at most 2,000 events or 100 ms; the
            # quixstreams default (5 s) would hold every alert back that long.
            commit_interval=0.1,
            commit_every=2000,
            loglevel="WARNING",
        )
        source = app.topic(args.topic, key_deserializer="str", value_deserializer="bytes")
        alerts = app.topic(args.alerts_topic, key_serializer="str", value_serializer="json")
        sdf = app.dataframe(source)
        sdf = sdf.apply(detect, stateful=True, expand=True, metadata=True)
        sdf = sdf.to_topic(alerts)  # keyed by the input's key: the model id
        app.run()  # stops on SIGTERM (the benchmark's stop)


if __name__ == "__main__":  # pragma: no cover - run through benchmarks.e2e
    raise SystemExit(f"run through: python -m benchmarks.e2e --variants q ({os.getpid()})")
