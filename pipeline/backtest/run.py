"""One backtest: replay the inputs once per config, trace, score."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.backtest.progress import Progress
from pipeline.backtest.scoring import (
    AlertRef,
    KeyScore,
    Margin,
    Totals,
    checkpoints_for,
    score_run,
)
from pipeline.backtest.sources import InputSpec, count_records, open_source
from pipeline.backtest.trace import Tracer, scope_of
from pipeline.backtest.truth import ChangePoint
from pipeline.config import Settings
from pipeline.core.records import Message
from pipeline.io.base import Sink, Source
from pipeline.io.files import JsonlSink
from pipeline.replay import ReplayOutcome, default_dead_letter_path, run_replay
from pipeline.state.file_store import Snapshot

__all__ = ["Backtest", "BacktestRun", "CollectingSink", "ConfigSource", "run_backtest"]


@dataclass(frozen=True)
class ConfigSource:
    label: str
    """How the user named it (the path on the command line)."""
    settings: Settings


class CollectingSink:
    """Keeps what scoring needs of the outputs, forwards them to ``inner``."""

    def __init__(self, inner: Sink | None = None) -> None:
        self.inner = inner
        self.alerts: list[AlertRef] = []
        self.rollbacks: list[dict[str, object]] = []
        self.dead_letters: Counter[str] = Counter()

    def send(self, message: Message) -> None:
        if message.kind == "alert" and message.value is not None:
            a = orjson.loads(message.value)
            self.alerts.append(
                AlertRef(
                    alert_id=a["alert_id"],
                    model_id=a["model_id"],
                    signal=a["signal"],
                    detector=a["detector"]["name"],
                    detected_at=datetime.fromisoformat(a["detected_at"].replace("Z", "+00:00")),
                    topic=a["source"]["topic"],
                    partition=a["source"]["partition"],
                    offset=a["source"]["offset"],
                    statistic=a.get("statistic"),
                    threshold=a.get("threshold"),
                    status=a.get("status", "firing"),
                    incident_id=a.get("incident_id"),
                    scope=scope_of(
                        a.get("variant", "production"),
                        ",".join(f"{k}={v}" for k, v in sorted((a.get("segment") or {}).items())),
                    ),
                )
            )
        elif message.kind == "rollback" and message.value is not None:
            self.rollbacks.append(orjson.loads(message.value))
        elif message.kind == "dead_letter":
            self.dead_letters[dict(message.headers).get("dl_reason", b"").decode()] += 1
        if self.inner is not None:
            self.inner.send(message)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


@dataclass
class BacktestRun:
    config: ConfigSource
    outcome: ReplayOutcome
    tracer: Tracer
    alerts: list[AlertRef]
    rollbacks: list[dict[str, object]]
    dead_letters: Counter[str]
    scores: list[KeyScore]
    totals: Totals
    elapsed_s: float = 0.0
    """Wall time (reported on the terminal, never written to the report)."""
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    """Derived artefacts (the plot scenes) shared by the report and the PNG export."""


@dataclass
class Backtest:
    inputs: list[InputSpec]
    margin: Margin
    truth: list[ChangePoint] | None
    truth_label: str | None
    runs: list[BacktestRun] = field(default_factory=list)


def run_backtest(
    config: ConfigSource,
    inputs: Sequence[InputSpec],
    *,
    truth: Sequence[ChangePoint] | None,
    margin: Margin,
    initial: Snapshot | None = None,
    alerts_path: Path | None = None,
    progress: bool | None = None,
    max_points: int = 512,
    keep_state: bool = True,
) -> BacktestRun:
    """Replay ``inputs`` with ``config`` through the sidecar's path and score it.

    ``progress`` None: a progress bar when stderr is a terminal. ``keep_state``
    False: the end state is not gathered (``run_replay``), for a run whose state
    nobody saves.
    """
    import time

    times, offsets = checkpoints_for(truth or [], margin)
    tracer = Tracer(time_checkpoints=times, offset_checkpoints=offsets, max_points=max_points)
    inner: Sink | None = None
    if alerts_path is not None:
        inner = JsonlSink(
            {
                "alert": alerts_path,
                "rollback": alerts_path,
                "dead_letter": default_dead_letter_path(alerts_path),
            }
        )
    sink = CollectingSink(inner)
    sources: list[Source] = []
    try:
        for spec in inputs:
            sources.append(
                open_source(spec, config.settings, positions=initial.positions if initial else None)
            )
        bar = Progress(None, label=config.label, enabled=progress)
        if bar.enabled:
            counts = [count_records(s, src) for s, src in zip(inputs, sources, strict=True)]
            bar.total = None if None in counts else sum(c or 0 for c in counts)
        started = time.perf_counter()
        outcome = run_replay(
            config.settings,
            sources,
            sink,
            observer=tracer,
            initial=initial,
            on_batch=bar.update,
            keep_state=keep_state,
        )
        elapsed = time.perf_counter() - started
        bar.close()
    finally:
        for src in sources:
            src.close()  # closing twice is harmless for every source here
        sink.close()
    scores, totals = score_run(tracer, sink.alerts, truth, margin)
    return BacktestRun(
        config=config,
        outcome=outcome,
        tracer=tracer,
        alerts=sink.alerts,
        rollbacks=sink.rollbacks,
        dead_letters=sink.dead_letters,
        scores=scores,
        totals=totals,
        elapsed_s=elapsed,
    )
