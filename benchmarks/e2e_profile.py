"""The profile section of ``benchmarks/e2e.py``: a cProfile of an in-process
exactly-once ``Sidecar`` over the benchmark's backlog, summarised by pipeline stage
(cumulative), by code area (own time) and by function."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmarks._kafka import REPO, create_topics, delete_topics, produce
from benchmarks.e2e import PARTITIONS, VARIANTS, Run, sidecar_config, topic_names
from benchmarks.harness import markdown_table

__all__ = ["profile_sidecar"]


_STAGES = (
    ("poll (KafkaSource.poll + batch assembly)", "pipeline/runtime/loop.py", "poll_batch"),
    ("  of which KafkaSource.poll", "pipeline/io/kafka.py", "poll"),
    ("process_batch (decode + engine)", "pipeline/core/processor.py", "process_batch"),
    ("  of which Decoder.decode", "pipeline/core/decode.py", "decode"),
    ("  of which Engine.process", "pipeline/core/engine.py", "process"),
    ("checkpoint (sends + changelog + commit)", "pipeline/runtime/checkpoint.py", "commit"),
    ("  of which KafkaSink.send (outputs + changelog)", "pipeline/io/kafka.py", "send"),
    ("  of which changed_state (snapshots)", "pipeline/core/processor.py", "changed_state"),
    ("  of which commit (flush, offsets, txn commit)", "pipeline/io/kafka.py", "commit"),
    ("export gauges (lag, keys, statistics)", "pipeline/runtime/sidecar.py", "_export_gauges"),
)


def _category(filename: str, name: str) -> str:
    if filename == "~":
        if any(w in name for w in ("poll' of 'select", "acquire", "'wait'", "sleep", "select")):
            return "blocked (select/poll/locks: waiting on the broker or threads)"
        if "validate_json" in name:
            return "decode (pydantic validate_json)"
        if "orjson" in name or "dumps" in name or "loads" in name:
            return "JSON (orjson)"
        return "builtins (dict/list/str, hashing...)"
    for needle, label in (
        ("/kafka/consumer/", "kafka-python consumer (fetch, record parsing)"),
        ("/kafka/record/", "kafka-python consumer (fetch, record parsing)"),
        ("/kafka/producer/", "kafka-python producer (send, batches, transactions)"),
        ("/kafka/", "kafka-python network / protocol"),
        ("prometheus_client", "prometheus_client (metrics)"),
        ("/pipeline/core/", "pipeline/core (engine, monitor, policy)"),
        (f"{REPO}/detectors/", "detectors/"),
        ("/pipeline/", "pipeline runtime / io / state / events glue"),
        ("pydantic", "pydantic (python side)"),
    ):
        if needle in filename:
            return label
    return "other (stdlib, numpy, structlog...)"


def profile_sidecar(
    args: argparse.Namespace, backlog: Sequence[tuple[str, bytes]], workdir: Path, key: str
) -> str:
    """cProfile of an in-process exactly-once Sidecar over the backlog."""
    from pipeline.config import load_settings
    from pipeline.runtime.sidecar import Sidecar

    variant = VARIANTS[key]
    run = Run(variant, 0, args, workdir)
    run.prefix = f"e2e-{uuid.uuid4().hex[:8]}-profile"
    run.topics = topic_names(run.prefix)
    inputs = ("predictions", "features", "labels", "training")
    create_topics(
        args.bootstrap,
        {t: PARTITIONS if k in inputs else 1 for k, t in run.topics.items() if k != "state"},
    )
    try:
        produce(args.bootstrap, run.topics["predictions"], backlog)
        path = workdir / f"{run.prefix}.yaml"
        path.write_text(yaml.safe_dump(sidecar_config(variant, run.prefix, args.bootstrap)))
        stop = threading.Event()
        sidecar = Sidecar(load_settings(path, environ={}), stop)
        n = len(backlog)

        def watch() -> None:
            while not stop.is_set():
                if sidecar.stats.events >= n:
                    stop.set()
                stop.wait(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        sidecar.run()
        profiler.disable()
        wall = time.perf_counter() - started
        stop.set()
    finally:
        delete_topics(args.bootstrap, run.prefix)
    if args.profile_out:
        profiler.dump_stats(f"{args.profile_out}.{key}")
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _cc, _nc, tt, _ct, _callers in raw.values())
    lines = [
        f"cProfile of an in-process Sidecar, {variant.label}, over {n} events: "
        f"{wall:.1f} s wall incl. start-up and group join, {total:.1f} s profiled "
        f"(main thread only; profiling inflates Python-heavy code)\n"
    ]
    rows = []
    for label, file_suffix, func in _STAGES:
        cum = sum(
            ct
            for (fn, _line, name), (_cc, _nc, _tt, ct, _callers) in raw.items()
            if fn.endswith(file_suffix) and name == func
        )
        rows.append((label, f"{cum:.2f}", f"{100 * cum / total:.0f} %", f"{cum / n * 1e6:.0f}"))
    lines.append(markdown_table(("stage (cumulative)", "s", "share", "µs/event"), rows))
    per_category: Counter[str] = Counter()
    for (fn, _line, name), (_cc, _nc, tt, _ct, _callers) in raw.items():
        per_category[_category(fn, name)] += tt
    lines.append("")
    lines.append(
        markdown_table(
            ("where the time is (own time by code area)", "s", "share"),
            [(c, f"{t:.2f}", f"{100 * t / total:.0f} %") for c, t in per_category.most_common()],
        )
    )
    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:20]
    lines.append("")
    lines.append(
        markdown_table(
            ("top functions by own time", "calls", "own s", "cum s"),
            [
                (
                    f"{Path(fn).name}:{line}({name})" if fn != "~" else name,
                    nc,
                    f"{tt:.2f}",
                    f"{ct:.2f}",
                )
                for (fn, line, name), (_cc, nc, tt, ct, _callers) in top
            ],
        )
    )
    return "\n".join(lines)
