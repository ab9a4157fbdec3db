"""Detector speed: ns per observation, per event and through ``update_many``,
against river's detectors measured in the same run.

Run: ``python -m benchmarks.detectors [--quick] [--only NAME ...]``.

Every registered detector gets a row (built with its default parameters on a
stream of its input kind); ``ENTRIES`` adds river comparators and targets for the
detectors that have one. Ratios are of medians over repeats, each repeat on a
fresh detector. To add a detector with a special setup or a comparator, append a
``BenchEntry`` to ``ENTRIES``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import detectors
from benchmarks import ks_hotpath
from benchmarks.harness import machine_info, markdown_table, median_seconds
from detectors.adwin import NATIVE, PythonADWIN

# -- streams ---------------------------------------------------------------------------


def numeric_stream(n: int, seed: int = 0) -> np.ndarray:
    """N(0, 0.25^2) noise whose mean steps up or down by 1 every 20 000 values."""
    rng = np.random.default_rng(seed)
    level = (np.arange(n) // 20_000 % 2).astype(np.float64)
    return level + rng.normal(0.0, 0.25, n)


def binary_stream(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = np.where(np.arange(n) // 20_000 % 2 == 0, 0.1, 0.3)
    return (rng.random(n) < rate).astype(np.float64)


def categorical_stream(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [f"c{int(i)}" for i in rng.zipf(1.5, n) % 20]


def text_stream(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)]
    return [" ".join(rng.choice(words, size=int(rng.integers(3, 15)))) for _ in range(n)]


def vector_stream(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 16)).tolist()  # type: ignore[no-any-return]


def logprobs_stream(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [(-rng.exponential(1.0, size=int(rng.integers(5, 30)))).tolist() for _ in range(n)]


def vector768_stream(n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 768)).tolist()  # type: ignore[no-any-return]


STREAMS: dict[str, Callable[[int], Any]] = {
    "numeric": numeric_stream,
    "vector768": vector768_stream,
    "binary": binary_stream,
    "categorical": categorical_stream,
    "text": text_stream,
    "vector": vector_stream,
    "logprobs": logprobs_stream,
}

# -- entries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchEntry:
    """One row: our detector, optionally a river comparator, and the targets.

    ``max_event_ratio``: our per-event ns / river per-event ns must not exceed it.
    ``min_batch_speedup``: river per-event ns / our ``update_many`` ns must reach it.
    ``min_event_speedup``: river per-event ns / our per-event ns must reach it.
    ``river_events`` caps the events fed to a slow comparator.
    """

    label: str
    make: Callable[[], Any]
    kind: str = "numeric"
    river: Callable[[], Any] | None = None
    river_label: str = ""
    max_event_ratio: float | None = None
    min_batch_speedup: float | None = None
    min_event_speedup: float | None = None
    river_events: int | None = None


def _river() -> Any:
    from river import drift

    return drift


ENTRIES: list[BenchEntry] = [
    BenchEntry(
        "adwin (native)" if NATIVE else "adwin (pure Python: native core NOT built)",
        lambda: detectors.ADWIN(),
        river=lambda: _river().ADWIN(),
        river_label="ADWIN",
        max_event_ratio=1.5,
        min_batch_speedup=2.0,
    ),
    # the reference engine, for comparison (the fallback without a compiler)
    BenchEntry(
        "adwin (pure Python)",
        lambda: PythonADWIN(),
        river=lambda: _river().ADWIN(),
        river_label="ADWIN",
    ),
    BenchEntry(
        "page_hinkley",
        lambda: detectors.PageHinkley(),
        river=lambda: _river().PageHinkley(),
        river_label="PageHinkley",
        max_event_ratio=1.0,
        min_batch_speedup=10.0,
    ),
    BenchEntry(
        "cusum(h=12, warmup=100)",
        lambda: detectors.CUSUM(h=12.0, warmup=100),
        river=lambda: _river().PageHinkley(),
        river_label="PageHinkley",
        max_event_ratio=1.0,
        min_batch_speedup=10.0,
    ),
    BenchEntry(
        "ewma(L=4.5, warmup=100)",
        lambda: detectors.EWMA(L=4.5, warmup=100),
        river=lambda: _river().PageHinkley(),
        river_label="PageHinkley",
        max_event_ratio=1.0,
        min_batch_speedup=10.0,
    ),
    # defaults: ARL0 of about 500, so on this stream they alarm every few hundred
    # observations and update_many mostly measures restarts
    BenchEntry(
        "cusum (defaults)",
        lambda: detectors.CUSUM(),
        river=lambda: _river().PageHinkley(),
        river_label="PageHinkley",
    ),
    BenchEntry(
        "ewma (defaults)",
        lambda: detectors.EWMA(),
        river=lambda: _river().PageHinkley(),
        river_label="PageHinkley",
    ),
    BenchEntry(
        "ks_window",
        lambda: detectors.KSWindow(window_size=100, reference_size=100, stride=1),
        river=lambda: _river().KSWIN(window_size=200, stat_size=100, seed=1),
        river_label="KSWIN(200, 100)",
        min_event_speedup=100.0,
        river_events=1500,
    ),
    BenchEntry(
        "ks_window (sliding)",
        lambda: detectors.KSWindow(window_size=100, reference_size=100, mode="sliding"),
        river=lambda: _river().KSWIN(window_size=200, stat_size=100, seed=1),
        river_label="KSWIN(200, 100)",
        river_events=1500,
    ),
    BenchEntry(
        "ddm",
        lambda: detectors.DDM(),
        kind="binary",
        river=lambda: _river().binary.DDM(),
        river_label="binary.DDM",
    ),
    BenchEntry(
        "hddm_a",
        lambda: detectors.HDDM_A(),
        kind="binary",
        river=lambda: _river().binary.HDDMA(),
        river_label="binary.HDDMA",
    ),
    # distribution detectors without a river counterpart: entries only for variants
    # (the defaults get a row from all_entries())
    BenchEntry("rolling_threshold", lambda: detectors.RollingThreshold()),
    BenchEntry(
        "rolling_threshold (quantile)",
        lambda: detectors.RollingThreshold(aggregate="quantile"),
    ),
    BenchEntry("embedding_drift", lambda: detectors.EmbeddingDrift(), kind="vector"),
    BenchEntry(
        "embedding_drift (dim 768)",
        lambda: detectors.EmbeddingDrift(),
        kind="vector768",
    ),
]


def all_entries() -> list[BenchEntry]:
    """``ENTRIES`` plus a default row for every other registered detector."""
    entries = list(ENTRIES)
    covered = {e.label.split(" ")[0].split("(")[0] for e in entries}
    for name, cls in sorted(detectors.REGISTRY.items()):
        if name not in covered:
            entries.append(BenchEntry(name, cls, kind=cls.input_kind))
    return entries


# -- measuring -------------------------------------------------------------------------


def per_event_ns(make: Callable[[], Any], values: Sequence[Any], repeats: int) -> float:
    def run(detector: Any) -> None:
        update = detector.update
        for x in values:
            update(x)

    return median_seconds(run, make, repeats) / len(values) * 1e9


def batch_ns(make: Callable[[], Any], values: Any, repeats: int) -> float:
    return median_seconds(lambda d: d.update_many(values), make, repeats) / len(values) * 1e9


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None or math.isnan(x):
        return "-"
    return f"{x:,.{digits}f}"


def bench(entry: BenchEntry, n: int, repeats: int) -> list[object]:
    stream = STREAMS[entry.kind](n)
    as_list = stream.tolist() if isinstance(stream, np.ndarray) else list(stream)
    ours_event = per_event_ns(entry.make, as_list, repeats)
    ours_batch = batch_ns(entry.make, stream, repeats)
    detections = len(entry.make().update_many(stream))
    river_ns: float | None = None
    if entry.river is not None:
        m = min(n, entry.river_events or n)
        river_ns = per_event_ns(
            entry.river, as_list[:m], max(1, min(repeats, 3) if entry.river_events else repeats)
        )
    event_ratio = ours_event / river_ns if river_ns else None
    batch_speedup = river_ns / ours_batch if river_ns else None
    event_speedup = river_ns / ours_event if river_ns else None
    targets, met = [], []
    if entry.max_event_ratio is not None and event_ratio is not None:
        targets.append(f"event <= {entry.max_event_ratio:g}x river")
        met.append(event_ratio <= entry.max_event_ratio)
    if entry.min_event_speedup is not None and event_speedup is not None:
        targets.append(f"event >= {entry.min_event_speedup:g}x faster")
        met.append(event_speedup >= entry.min_event_speedup)
    if entry.min_batch_speedup is not None and batch_speedup is not None:
        targets.append(f"batch >= {entry.min_batch_speedup:g}x faster")
        met.append(batch_speedup >= entry.min_batch_speedup)
    verdict = "-" if not met else ("yes" if all(met) else "NO: " + ", ".join(
        t for t, ok in zip(targets, met, strict=True) if not ok))  # fmt: skip
    return [
        entry.label,
        detections,
        _fmt(ours_event),
        _fmt(ours_batch),
        entry.river_label or "-",
        _fmt(river_ns),
        _fmt(event_ratio, 2),
        _fmt(event_speedup, 1),
        _fmt(batch_speedup, 1),
        "; ".join(targets) or "-",
        verdict,
    ]


HEADERS = [
    "detector",
    "detections",
    "ours ns/update",
    "ours ns/obs update_many",
    "river comparator",
    "river ns/update",
    "event ratio (ours/river)",
    "event speedup",
    "batch speedup",
    "target",
    "met",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and repeats")
    parser.add_argument("--events", type=int, default=None, help="observations per run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="labels to run")
    args = parser.parse_args(argv)
    n = args.events or (20_000 if args.quick else 100_000)
    repeats = args.repeats or (3 if args.quick else 5)
    info = machine_info()
    print(f"## Detector speed (median CPU time of {repeats} repeats, {n} observations)\n")
    print(", ".join(f"{k}: {v}" for k, v in info.items()) + "\n")
    rows = []
    for entry in all_entries():
        if args.only and not any(entry.label.startswith(o) for o in args.only):
            continue
        small = entry.kind in ("text", "vector", "vector768", "logprobs", "categorical")
        rows.append(bench(entry, n // 10 if small else n, repeats))
        print(f"  measured {entry.label}", file=sys.stderr, flush=True)
    print(markdown_table(HEADERS, rows))
    if not args.only or any(o.startswith("ks") for o in args.only):
        # KSWindow as the sidecar runs it: chunks of 125, a snapshot per chunk
        print("\n" + ks_hotpath.table(n, repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
