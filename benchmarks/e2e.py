"""End to end on the real local broker: throughput, event-to-alert latency and memory
of the sidecar against a floor and a naive baseline, measured in one run.

Run: ``python -m benchmarks.e2e [--quick] [--bootstrap HOST:PORT]`` (``make bench-e2e``).
The broker at ``--bootstrap`` (default ``127.0.0.1:$KAFKA_PORT``, 39092) is started
with deploy/kafka/kafka.sh when it does not answer, and stopped again at the end.

Variants, each a process of its own (every one gets its own topics):

* (a) floor: a bare kafka-python ``KafkaConsumer`` reading the input topic from the
  beginning and decoding each record with ``pipeline.core.decode.Decoder`` (the
  sidecar's fetch sizes and ``read_committed``, so that only driftline's work differs);
* (a0) (a) without the decode: kafka-python's own cost per record; (a-ck) the same
  reading with confluent-kafka (librdkafka), for comparison;
* (b) ``driftline run``, ``runtime.mode: exactly_once`` (the default monitor set: the
  config only names the models, their features and classes);
* (c) the same, ``at_least_once``;
* (d) naive: per message ``json.loads`` + ``PredictionEvent.model_validate``, one
  ``river.drift.PageHinkley`` per numeric feature and on confidence, the class mix by
  a counter (chi-square of a tumbling window against a reference), a consumer with
  ``enable_auto_commit=True`` (the sidecar's fetch sizes) and one alert JSON per
  detection through a plain producer;
* (b') exactly-once with an explicit monitor set doing the same detection work as (d)
  (Page-Hinkley per numeric feature and on confidence, categorical drift of the class);
* (d-ks) naive with the kind of test the default monitor set runs: (d) with one
  ``river.drift.KSWIN`` per numeric feature (1,200 values: 1,000 older against the
  latest 200, as the default KS windows) instead of Page-Hinkley. It keeps up with
  only a few hundred events/s, so it is timed over the first ``NAIVE_KS_EVENTS`` of
  the backlog (steady state) and has no paced phase;
* (q) the peer a Python team would build instead (:mod:`benchmarks.quix_peer`): a
  quixstreams application, exactly-once, keyed RocksDB state, river detectors of the
  default set's kinds and settings (KSWIN 500 against 3,000 per numeric feature, a
  chi-square of the class mix, ADWIN on joined errors). It runs in ``.venv-bench``
  (``make bench-e2e`` makes it; ``--peer-python``) and processes a few dozen events/s
  once its windows are full, so it is timed over ``PEER_STEADY_EVENTS`` events from
  there (the backlog must exceed 3,500 events per model) and has no paced phase;
* (b) with ``runtime.max_batch_events`` 100 and 500 (2000, the default, is (b)), and with
  ``runtime.max_batch_ms`` 50 (100, the default, is (b)): the cost of commit batching,
  and what a shorter batch window buys in latency and costs in CPU at the paced rate.

Per variant: events/s over a pre-produced backlog (steady state: from the first
progress seen to the last event; for the sidecar, progress = the group's committed
offsets), CPU time per event of the processing process, then a paced phase (events
at ``--rate``/s for ``--seconds`` with recurring drifts) in which each alert's latency
is the time a read_committed consumer got it minus the Kafka timestamp of the record
that caused it (the alert's ``source``), and the peak RSS (VmHWM) of the process.
Every variant runs ``--repeats`` times, interleaved; the tables show medians and the
ratios are taken within each round. A cProfile of an in-process ``Sidecar`` follows
(function names; it inflates Python-heavy code), then py-spy's sampled profile of (b)'s
process by stage (``benchmarks/e2e_spy.py``: the shares of the timed run).
Timings are never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchmarks._kafka import (
    REPO,
    AlertCollector,
    GroupProgress,
    cpu_seconds,
    create_topics,
    delete_topics,
    end_offsets,
    local_broker,
    paced_produce,
    produce,
    vm_hwm_kib,
)
from benchmarks.harness import machine_info, markdown_table
from benchmarks.quix_peer import PEER_STEADY_EVENTS
from pipeline.config import TopicSettings
from pipeline.generate import (
    CATEGORICAL,
    CLASSES,
    FEATURE_MEANS,
    NUMERIC_NAMES,
    DriftSpec,
    GeneratorConfig,
    generate,
)

MODELS = 4
NUMERIC = NUMERIC_NAMES[:16]
CATEGORICALS = list(CATEGORICAL)[:2]
FEATURES: dict[str, str] = {n: "numeric" for n in NUMERIC} | dict.fromkeys(
    CATEGORICALS, "categorical"
)
PARTITIONS = 3
# The fetch sizes of the sidecar's KafkaSource, for (a) and (d) too: with kafka-python's
# defaults (1 MiB per partition) a consumer of ~700-byte records is bound by fetch
# round trips, not by its processing, and the "floor" would not be one.
FETCH = {"max_partition_fetch_bytes": 2 * 1024 * 1024, "fetch_max_bytes": 50 * 1024 * 1024}


def _ph_params(name: str) -> dict[str, Any]:
    """Page-Hinkley in units of the feature's standard deviation (20 % of its mean):
    the example config's ``amount`` settings (threshold 300, delta 5 at sd 10)."""
    sd = 0.2 * FEATURE_MEANS[name]
    return {"threshold": 30.0 * sd, "delta": 0.5 * sd, "min_instances": 100}


CONFIDENCE_PH = {"threshold": 1.5, "delta": 0.02, "min_instances": 100}
CLASS_WINDOW, CLASS_REFERENCE, CLASS_ALPHA = 500, 2000, 1e-5
PH_MONITORS: list[dict[str, Any]] = [
    *(
        {"signal": f"feature:{n}", "detector": "page_hinkley", "params": _ph_params(n)}
        for n in NUMERIC
    ),
    {"signal": "confidence", "detector": "page_hinkley", "params": CONFIDENCE_PH},
    {
        "signal": "prediction",
        "detector": "categorical_drift",
        "params": {
            "window_size": CLASS_WINDOW,
            "reference_size": CLASS_REFERENCE,
            "alpha": CLASS_ALPHA,
        },
    },
]
PEER_PYTHON = REPO / ".venv-bench" / "bin" / "python"
NAIVE_KS_EVENTS = 3000
"""(d-ks) is timed over this many events of the backlog."""
# Signals with recurring drifts in the paced phase (on/off every ``width`` events).
PACED_DRIFTS = (
    ("feature:age", 3.0),
    ("feature:sessions", 3.0),
    ("feature:latency_ms", 3.0),
    ("feature:rating", 3.0),
    ("feature:balance", 3.0),
    ("feature:clicks", 3.0),
    ("feature:country", 0.5),
    ("prediction", 0.5),
)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    kind: str  # floor | consume | consume-ck | naive | naive-ks | peer | driftline
    mode: str = "exactly_once"
    monitors: str = "default"  # default | ph
    max_batch_events: int = 2000
    max_batch_ms: int = 100


VARIANTS = {
    v.key: v
    for v in (
        Variant("a", "(a) kafka-python consume + decode (floor)", "floor"),
        Variant("a0", "(a0) kafka-python consume only", "consume"),
        Variant("a-ck", "(a-ck) confluent-kafka (librdkafka) consume only", "consume-ck"),
        Variant("b", "(b) driftline exactly-once", "driftline"),
        Variant("c", "(c) driftline at-least-once", "driftline", mode="at_least_once"),
        Variant("d", "(d) naive: json.loads + pydantic + river, auto-commit", "naive"),
        Variant("d-ks", "(d-ks) naive, river KSWIN per numeric feature", "naive-ks"),
        Variant("q", "(q) peer: quixstreams exactly-once + river", "peer"),
        Variant("b-ph", "(b') driftline exactly-once, explicit PH set", "driftline", monitors="ph"),
        Variant("b-100", "(b) max_batch_events=100", "driftline", max_batch_events=100),
        Variant("b-500", "(b) max_batch_events=500", "driftline", max_batch_events=500),
        Variant("b-50ms", "(b) max_batch_ms=50", "driftline", max_batch_ms=50),
    )
}


@dataclass
class Result:
    variant: str
    rep: int
    events_per_s: float
    cpu_us: float
    startup_s: float
    alerts: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    rate: float | None = None
    paced_cpu: float | None = None
    """Percent of a core the process used in the paced phase (from its first paced
    record to the last committed)."""
    rss_mib: float = 0.0
    load: list[float] = field(default_factory=list)
    steady: bool | None = None
    """(q): timed with its KS windows full."""
    version: str | None = None
    """(q): the quixstreams version it ran with."""
    fill: dict[str, float] | None = None
    """(q): events, CPU and wall seconds while its KS windows filled (before timing)."""


# ---------------------------------------------------------------------- workload
def workload(backlog: int, paced: int, seed: int) -> list[tuple[str, bytes]]:
    """One stream: ``backlog`` events with two drifts (amount of model-1, abrupt;
    confidence of every model, gradual), then ``paced`` events with recurring drifts.
    One stream, so that event time keeps moving forward from backlog to paced part."""
    n = backlog
    width = max(400, paced // 8)  # ~4 on/off cycles; >= 100 events per model and phase
    drifts = [
        DriftSpec("feature:amount", "abrupt", at=n // 3, magnitude=2.0, model="model-1"),
        DriftSpec("confidence", "gradual", at=2 * n // 3, width=max(1, n // 50), magnitude=1.0),
        *(
            DriftSpec(signal, "recurring", at=n + 200, width=width, magnitude=magnitude)
            for signal, magnitude in PACED_DRIFTS
        ),
    ]
    config = GeneratorConfig(
        events=backlog + paced,
        models=MODELS,
        numeric_features=len(NUMERIC),
        categorical_features=len(CATEGORICALS),
        seed=seed,
        drifts=tuple(drifts),
    )
    return list(generate(config))


def topic_names(prefix: str) -> dict[str, str]:
    return TopicSettings.prefixed(prefix)


def sidecar_config(variant: Variant, prefix: str, bootstrap: str) -> dict[str, Any]:
    model: dict[str, Any] = {"features": FEATURES, "classes": list(CLASSES)}
    if variant.monitors == "ph":
        model |= {"default_monitors": False, "monitors": PH_MONITORS}
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": prefix,
            "client_id": prefix,
            "transactional_id": prefix,
        },
        "topics": topic_names(prefix),
        "runtime": {
            "mode": variant.mode,
            "http_port": None,
            "max_batch_events": variant.max_batch_events,
            "max_batch_ms": variant.max_batch_ms,
        },
        "models": {f"model-{k}": model for k in range(MODELS)},
        # Recurring drifts re-fire within minutes of event time: no cooldown suppression.
        "policy": {"cooldown": "1s"},
    }


def _clean_env() -> dict[str, str]:
    # DRIFTLINE_* variables are config overrides: none leaks into the sidecars.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return env | {"PYTHONUNBUFFERED": "1"}  # logs reach the file as they happen


# ------------------------------------------------------------------------- runs
class Run:
    """One variant, one repeat: topics, backlog, process, measurements, teardown."""

    def __init__(self, variant: Variant, rep: int, args: argparse.Namespace, workdir: Path):
        self.variant, self.rep, self.args = variant, rep, args
        self.prefix = f"e2e-{uuid.uuid4().hex[:8]}-{variant.key}-{rep}"
        self.topics = topic_names(self.prefix)
        self.log_path = workdir / f"{self.prefix}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.load: list[float] = []
        self.steady: bool | None = None
        self.version: str | None = None
        self.fill: dict[str, float] | None = None
        self.paced_cpu: float | None = None
        self.alert_times: list[tuple[int, int, float, float]] = []
        """Paced phase: (partition, offset, sent ms, received ms) of each alert's record."""

    def _tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-30:])

    def _alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.variant.key} exited with {self.proc.returncode}:\n{self._tail()}"
            )

    def start(self) -> None:
        v, a = self.variant, self.args
        log = self.log_path.open("ab")
        if v.kind == "driftline":
            path = self.log_path.with_suffix(".yaml")
            path.write_text(yaml.safe_dump(sidecar_config(v, self.prefix, a.bootstrap)))
            cmd = [sys.executable, "-m", "pipeline.cli", "--log-json", "run", "--config", str(path)]
            stdout: Any = log
        else:
            python = a.peer_python if v.kind == "peer" else sys.executable
            cmd = [
                python, "-m", "benchmarks.e2e", "--worker", v.kind,
                "--bootstrap", a.bootstrap, "--topic", self.topics["predictions"],
                "--alerts-topic", self.topics["alerts"], "--group", self.prefix,
                "--events", str(a.events),
            ]  # fmt: skip
            stdout = subprocess.PIPE
        self.proc = subprocess.Popen(
            cmd, stdout=stdout, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO, env=_clean_env()
        )
        log.close()

    def throughput(self, progress: GroupProgress) -> tuple[float, float, float]:
        """(events/s, CPU µs/event, start-up seconds) over the backlog."""
        assert self.proc is not None
        n = self.args.events
        started = time.monotonic()
        # (q) reports only once its KS windows are full (3,500 events per model, each
        # written to its state as a pickle): at a load of 20 that took 8-10 minutes.
        deadline = started + self.args.timeout * (3 if self.variant.kind == "peer" else 1)
        if self.variant.kind != "driftline":
            assert self.proc.stdout is not None
            while not select.select([self.proc.stdout], [], [], 0.5)[0]:
                self._alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.variant.key}: no report within the timeout")
            line = self.proc.stdout.readline()
            if not line:  # its stdout closed: it is exiting, maybe not yet reaped
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
                raise RuntimeError(
                    f"{self.variant.key} closed its output without a report "
                    f"(exit {self.proc.poll()}):\n{self._tail()}"
                )
            r = json.loads(line)
            self.load.append(os.getloadavg()[0])
            self.steady, self.version, self.fill = r.get("steady"), r.get("version"), r.get("fill")
            n = r["n"]
            return (
                (n - r["c0"]) / (r["t_end"] - r["t_first"]),
                (r["cpu_end"] - r["cpu_first"]) / (n - r["c0"]) * 1e6,
                r["t_first"] - started,
            )
        first: tuple[int, float, float] | None = None
        done: int | None = None
        while True:
            self._alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.variant.key}: committed {done} of {n} records in time\n{self._tail()}"
                )
            done = progress.committed(self.prefix, self.topics["predictions"])
            now, cpu = time.monotonic(), cpu_seconds(self.proc.pid)
            if done and first is None:
                first = (done, now, cpu)
            if done is not None and done >= n and first is not None:
                self.load.append(os.getloadavg()[0])
                c0, t0, cpu0 = first
                if done == c0:  # caught up within one poll: no steady state seen
                    raise RuntimeError(f"{self.variant.key}: backlog too small to time")
                return (n - c0) / (now - t0), (cpu - cpu0) / (n - c0) * 1e6, t0 - started
            time.sleep(0.25)  # the admin calls cost CPU on a 2-core machine: not too often

    def latency(
        self, progress: GroupProgress, paced: Sequence[tuple[str, bytes]]
    ) -> tuple[int, float | None, float | None, float]:
        """Paced phase: (alerts of paced records, p50 ms, p99 ms, achieved rate)."""
        a, topic = self.args, self.topics["predictions"]
        collector = AlertCollector(a.bootstrap, self.topics["alerts"])
        collector.start()
        assert self.proc is not None
        cpu0, t0 = cpu_seconds(self.proc.pid), time.monotonic()
        stamps, rate = paced_produce(a.bootstrap, topic, paced, a.rate)
        total = sum(end_offsets(a.bootstrap, topic).values())
        deadline = time.monotonic() + a.timeout
        while (progress.committed(self.prefix, topic) or 0) < total:
            self._alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.variant.key}: paced phase not caught up")
            time.sleep(0.25)
        self.paced_cpu = 100 * (cpu_seconds(self.proc.pid) - cpu0) / (time.monotonic() - t0)
        time.sleep(1.0)  # the last alerts' fetch
        latencies = []
        for received_ms, value in collector.finish():
            source = orjson.loads(value).get("source") or {}
            sent_ms = stamps.get((source.get("partition"), source.get("offset")))
            if source.get("topic") == topic and sent_ms is not None:
                latencies.append(received_ms - sent_ms)
                self.alert_times.append(
                    (source["partition"], source["offset"], sent_ms, received_ms)
                )
        if not latencies:
            return 0, None, None, rate
        return len(latencies), _percentile(latencies, 50), _percentile(latencies, 99), rate

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def execute(
        self, backlog: Sequence[tuple[str, bytes]], paced: Sequence[tuple[str, bytes]]
    ) -> Result:
        a = self.args
        inputs = ("predictions", "features", "labels", "training")
        create_topics(
            a.bootstrap,
            {t: PARTITIONS if k in inputs else 1 for k, t in self.topics.items() if k != "state"},
        )
        progress = GroupProgress(a.bootstrap)
        try:
            produce(a.bootstrap, self.topics["predictions"], backlog)
            self.load.append(os.getloadavg()[0])
            self.start()
            assert self.proc is not None
            eps, cpu_us, startup = self.throughput(progress)
            result = Result(
                self.variant.key, self.rep, eps, cpu_us, startup, steady=self.steady,
                version=self.version, fill=self.fill,
            )  # fmt: skip
            if self.variant.kind not in ("floor", "consume", "consume-ck", "naive-ks", "peer"):
                result.alerts, result.p50_ms, result.p99_ms, result.rate = self.latency(
                    progress, paced
                )
                result.paced_cpu = self.paced_cpu
            self._alive()
            result.rss_mib = vm_hwm_kib(self.proc.pid) / 1024
            self.load.append(os.getloadavg()[0])
            result.load = self.load
            return result
        finally:
            self.stop()
            progress.close()
            delete_topics(a.bootstrap, self.prefix)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ---------------------------------------------------------------------- report
def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _spread(values: Sequence[float]) -> str:
    if len(values) < 2:
        return ""
    m = statistics.median(values)
    return f" (±{50 * (max(values) - min(values)) / m:.0f} %)" if m else ""


def _fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "-" if value is None else pattern.format(value)


def _row(key: str, results: Sequence[Result]) -> list[str]:
    eps = [r.events_per_s for r in results]
    cpu = [r.cpu_us for r in results]
    return [
        VARIANTS[key].label,
        _fmt(statistics.median(eps)) + _spread(eps),
        _fmt(1e6 / statistics.median(cpu)) + _spread(cpu),
        _fmt(_median([r.alerts for r in results])),
        _fmt(_median([r.p50_ms for r in results]), "{:,.1f}"),
        _fmt(_median([r.p99_ms for r in results]), "{:,.1f}"),
        _fmt(statistics.median(r.rss_mib for r in results), "{:,.0f}"),
    ]


def _ratio(by: dict[str, list[Result]], num: str, den: str, attr: str, invert: bool = False) -> str:
    rounds = {r.rep: r for r in by.get(den, [])}
    ratios = []
    for r in by.get(num, []):
        other = rounds.get(r.rep)
        if other is not None:
            x, y = getattr(r, attr), getattr(other, attr)
            ratios.append(y / x if invert else x / y)
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f}x (per round: {', '.join(f'{x:.2f}' for x in ratios)})"


def _targets(by: dict[str, list[Result]]) -> list[str]:
    """Issue 17's targets for (b): CPU per event absolute, against the floor and the
    peer (per round), and the paced p99 event-to-alert latency."""
    if "b" not in by:
        return []
    b = by["b"]
    out = ["\ncost per event (issue 17), (b) exactly-once, default monitor set:"]
    per_cpu = 1e6 / statistics.median(r.cpu_us for r in b)
    verdict = "met" if per_cpu >= 25_000 else "MISSED"
    out.append(f"- (b) events per CPU-s: {per_cpu:,.0f} — target ≥ 25,000: {verdict}")
    for den, target, text in (("a", 0.7, "≥ 0.7x the floor"), ("q", 1.0, "ahead of the peer")):
        rounds = {r.rep: r for r in by.get(den, [])}
        ratios = [rounds[r.rep].cpu_us / r.cpu_us for r in b if r.rep in rounds]
        if ratios:
            med = statistics.median(ratios)
            ok = med >= target if den == "a" else med > target
            out.append(
                f"- (b)/({den}) per CPU-s: {med:.2f}x (per round: "
                f"{', '.join(f'{x:.2f}' for x in ratios)}) — target {text}: "
                f"{'met' if ok else 'MISSED'}"
            )
    p99 = _median([r.p99_ms for r in b])
    if p99 is not None:
        rate = _median([r.rate for r in b]) or 0.0
        verdict = "met" if p99 <= 250 else "MISSED"
        out.append(
            f"- (b) p99 event-to-alert latency at {rate:,.0f} events/s: {p99:,.0f} ms — "
            f"target ≤ 250 ms: {verdict}"
        )
    paced_cpu = _median([r.paced_cpu for r in b])
    if paced_cpu is not None:
        out.append(f"- (b) CPU at the paced rate: {paced_cpu:.1f} % of a core (not a target)")
    return out


def report(results: list[Result], args: argparse.Namespace, broker_facts: str) -> str:
    by: dict[str, list[Result]] = {}
    for r in results:
        by.setdefault(r.variant, []).append(r)
    steady = all(r.steady is not False for r in by.get("q", []))
    version = next((r.version for r in by.get("q", []) if r.version), "(not run)")
    loads = [x for r in results for x in r.load]
    info = machine_info()
    from kafka.record import util as kafka_record_util

    crc = (
        "C extension (crc32c package)"
        if getattr(kafka_record_util, "crc32c_c", None) is not None
        else "pure Python (no crc32c package)"
    )
    out = [
        f"## driftline end to end ({args.events:,} backlog events; paced {args.rate:,.0f}/s "
        f"for {args.seconds:.0f} s; {args.repeats} interleaved repeats, medians)\n",
        f"machine: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}; "
        f"load average (1 min) during the runs: min {min(loads):.1f}, median "
        f"{statistics.median(loads):.1f}, max {max(loads):.1f}; {broker_facts}; "
        f"kafka-python record CRC32C: {crc}.",
        f"workload: prediction events, {MODELS} models, {len(NUMERIC)} numeric + "
        f"{len(CATEGORICALS)} categorical features, confidence and class "
        f"(~{args.event_bytes:.0f} B each), {PARTITIONS} partitions; sidecar defaults "
        "max_batch_events 2000, max_batch_ms 100.",
        "(b)/(c): the default monitor set (the config names models, features, classes): "
        "KS window per numeric feature, categorical drift per categorical feature and on "
        "the class, class entropy, rolling threshold on confidence. (b') and (d): "
        "Page-Hinkley per numeric feature and on confidence + class mix. (d-ks): (d) with "
        f"river KSWIN (1,000 against 200) per numeric feature, timed over {NAIVE_KS_EVENTS:,} "
        "events, no paced phase. (q): the quixstreams peer (benchmarks/quix_peer.py: "
        f"quixstreams {version}, exactly-once, RocksDB state; river KSWIN 500 "
        "against 3,000 per numeric feature, chi-square class mix per categorical feature and "
        "on the class, ADWIN on joined errors), timed over "
        f"{PEER_STEADY_EVENTS:,} events once its KS windows are full"
        + (
            ", which this backlog does not reach: timed over the whole backlog"
            if not steady
            else ""
        )
        + "; no paced phase.\n",
    ]
    headers = (
        "variant",
        "events/s (backlog)",
        "events per CPU-s",
        "alerts (paced)",
        "p50 alert latency ms",
        "p99 alert latency ms",
        "peak RSS MiB",
    )
    main_keys = [k for k in ("a", "a0", "a-ck", "b", "c", "d", "d-ks", "q", "b-ph") if k in by]
    out.append(markdown_table(headers, [_row(k, by[k]) for k in main_keys]))
    out.append("\n(±: half the min-max spread over the repeats, relative to the median)\n")
    for num, den, target in (
        ("b", "a", 0.5),
        ("b", "d", 3.0),
        ("b", "d-ks", 3.0),
        ("b-ph", "d", 3.0),
    ):
        if num in by and den in by:
            eps = _ratio(by, num, den, "events_per_s")
            cpu = _ratio(by, num, den, "cpu_us", invert=True)
            med = statistics.median(
                r.events_per_s / o.events_per_s for r in by[num] for o in by[den] if o.rep == r.rep
            )
            verdict = "met" if med >= target else "MISSED"
            out.append(
                f"- {num}/{den} events/s: {eps}; per CPU-s: {cpu} — target ≥ {target:g}x: {verdict}"
            )
    fills = [r.fill for r in by.get("q", []) if r.fill and r.fill["cpu_s"] > 0]
    if fills:
        out.append(
            "- (q) while its KS windows filled (river's KSWIN only appends then; not timed "
            "above, its 'start-up s' below includes it): "
            + ", ".join(
                f"{f['events']:,.0f} events at {f['events'] / f['cpu_s']:,.0f} per CPU-s"
                for f in fills
            )
        )
    out.extend(_targets(by))
    batch_keys = [k for k in ("b-100", "b-500", "b-50ms", "b") if k in by]
    if len(batch_keys) > 1:
        out.append("\n### commit batching (exactly-once, default monitors)\n")
        rows = []
        for k in batch_keys:
            rs = by[k]
            eps = [r.events_per_s for r in rs]
            rows.append(
                [
                    str(VARIANTS[k].max_batch_events),
                    str(VARIANTS[k].max_batch_ms),
                    _fmt(statistics.median(eps)) + _spread(eps),
                    _fmt(1e6 / statistics.median(r.cpu_us for r in rs)),
                    _fmt(_median([r.paced_cpu for r in rs]), "{:.1f}"),
                    _fmt(_median([r.p50_ms for r in rs]), "{:,.1f}"),
                    _fmt(_median([r.p99_ms for r in rs]), "{:,.1f}"),
                ]
            )
        out.append(
            markdown_table(
                (
                    "max_batch_events",
                    "max_batch_ms",
                    "events/s",
                    "events per CPU-s",
                    "paced: % of a core",
                    "p50 ms",
                    "p99 ms",
                ),
                rows,
            )
        )
    out.append("\n### every run\n")
    out.append(
        markdown_table(
            (
                "variant",
                "round",
                "events/s",
                "CPU µs/event",
                "start-up s",
                "alerts",
                "p50 ms",
                "p99 ms",
                "paced rate",
                "paced % core",
                "RSS MiB",
                "load",
            ),
            [
                (
                    r.variant,
                    r.rep,
                    _fmt(r.events_per_s),
                    _fmt(r.cpu_us),
                    f"{r.startup_s:.1f}",
                    _fmt(r.alerts),
                    _fmt(r.p50_ms, "{:.1f}"),
                    _fmt(r.p99_ms, "{:.1f}"),
                    _fmt(r.rate),
                    _fmt(r.paced_cpu, "{:.1f}"),
                    f"{r.rss_mib:.0f}",
                    "/".join(f"{x:.1f}" for x in r.load),
                )
                for r in results
            ],
        )
    )
    return "\n".join(out)


# ------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_bootstrap = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '39092')}"
    parser.add_argument("--bootstrap", default=default_bootstrap)
    parser.add_argument("--events", type=int, help="backlog events (50,000; --quick 10,000)")
    parser.add_argument("--quick", action="store_true", help="10k backlog, 8 s paced phase")
    parser.add_argument("--rate", type=float, default=300.0, help="paced events/s (300)")
    parser.add_argument("--seconds", type=float, help="paced phase length (30; --quick 10)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--variants", default="a,b,c,d,d-ks,q,b-ph,b-100,b-500", help="comma-separated keys"
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-out", help="also dump the cProfile stats to PATH.<variant>")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase")
    parser.add_argument("--out", help="also write the report (markdown) here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--peer-python",
        default=str(PEER_PYTHON if PEER_PYTHON.exists() else sys.executable),
        help="interpreter with quixstreams for (q) (.venv-bench, made by make bench-e2e)",
    )
    # internal: the worker processes of (a) and (d)
    parser.add_argument(
        "--worker",
        choices=("floor", "consume", "consume-ck", "naive", "naive-ks", "peer"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--alerts-topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from benchmarks.e2e_workers import run_worker

        run_worker(args)
        return
    args.events = args.events or (10_000 if args.quick else 50_000)
    args.seconds = args.seconds or (10.0 if args.quick else 30.0)
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")

    with local_broker(args.bootstrap) as started_broker:
        t0 = time.perf_counter()
        items = workload(args.events, int(args.rate * args.seconds), args.seed)
        backlog, paced = items[: args.events], items[args.events :]
        args.event_bytes = statistics.mean(len(v) for _k, v in backlog[:1000])
        print(f"generated {len(items):,} events in {time.perf_counter() - t0:.1f} s", flush=True)
        results: list[Result] = []
        with tempfile.TemporaryDirectory(prefix="driftline-e2e-") as tmp:
            workdir = Path(tmp)
            for rep in range(args.repeats):
                for key in keys:
                    for attempt in (1, 2):
                        try:
                            result = Run(VARIANTS[key], rep, args, workdir).execute(backlog, paced)
                            break
                        except RuntimeError as exc:  # a stuck or dead process: retry once
                            print(f"[{rep}] {key}: attempt {attempt} failed: {exc}", flush=True)
                            if attempt == 2:
                                raise
                    results.append(result)
                    print(
                        f"[{rep}] {key}: {result.events_per_s:,.0f} events/s, "
                        f"{result.cpu_us:.0f} CPU µs/event, alerts {result.alerts}, "
                        f"p50 {_fmt(result.p50_ms, '{:.1f}')} ms, "
                        f"p99 {_fmt(result.p99_ms, '{:.1f}')} ms, RSS {result.rss_mib:.0f} MiB",
                        flush=True,
                    )
            broker = "broker started by the benchmark" if started_broker else "existing broker"
            text = report(results, args, f"{broker} at {args.bootstrap}")
            for key in [] if args.no_profile else [k for k in ("b", "b-ph") if k in keys]:
                from benchmarks.e2e_profile import profile_sidecar

                text += "\n\n### profile\n\n" + profile_sidecar(args, backlog, workdir, key)
            if "b" in keys and not args.no_profile:
                from benchmarks.e2e_spy import spy_sidecar

                text += "\n\n### where the CPU goes (sampled)\n\n" + spy_sidecar(
                    args, backlog, workdir
                )
        print("\n" + text)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
