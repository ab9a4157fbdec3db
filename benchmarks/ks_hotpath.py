"""KSWindow as the sidecar runs it: the default monitor set's setting (derived by
``pipeline.core.monitor_set`` for a numeric feature: window 500 against the first
3,000 observations, tested every 20, alpha from ``policy.target_arl0``), fed through
``update_many`` in chunks of 125 values (a typical poll batch per detector), with a
``to_state()`` + ``orjson.dumps`` per batch as the engine's snapshot and changelog
take it.

Run: ``python -m benchmarks.ks_hotpath [--quick]``; ``python -m benchmarks.detectors``
prints the same table after its own.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import orjson

from benchmarks.harness import machine_info, markdown_table, median_seconds
from detectors import KSWindow

__all__ = ["CHUNK", "HEADERS", "SIDECAR", "rows", "table"]


def _sidecar() -> dict[str, Any]:
    from pipeline.config import ModelSpec
    from pipeline.core.monitor_set import derived_monitors

    (spec,) = [
        m for m in derived_monitors(ModelSpec(features={"x": "numeric"})) if m.signal == "feature:x"
    ]
    return dict(spec.params)


SIDECAR: dict[str, Any] = _sidecar()
"""The default monitor set's KSWindow parameters (``pipeline.core.monitor_set``)."""

CHUNK = 125
"""Values per ``update_many`` call: a typical poll batch for one detector."""

HEADERS = [
    "KSWindow setting",
    "stream",
    "detections",
    "ns/update",
    f"ns/obs update_many (chunks of {CHUNK})",
    "ns/obs update_many (one call)",
    "µs to_state",
    "µs to_state + orjson.dumps",
    "KiB dumped",
]


def stationary(n: int, seed: int = 0) -> np.ndarray:
    """N(0, 1) noise: the common case, no drift."""
    return np.random.default_rng(seed).normal(0.0, 1.0, n)


def steps(n: int, seed: int = 0) -> np.ndarray:
    """N(0, 0.25^2) noise whose mean steps by 1 every 20,000 values (as
    ``benchmarks.detectors.numeric_stream``): detections, then refills."""
    rng = np.random.default_rng(seed)
    return (np.arange(n) // 20_000 % 2).astype(np.float64) + rng.normal(0.0, 0.25, n)


def _chunks(values: list[float]) -> list[list[float]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def _per_event(detector: KSWindow, values: list[float]) -> None:
    update = detector.update
    for x in values:
        update(x)


def _chunked(detector: KSWindow, chunks: list[list[float]]) -> None:
    for chunk in chunks:
        detector.update_many(chunk)


def _snapshot_cost(
    make: Callable[[], KSWindow], chunks: list[list[float]], repeats: int
) -> tuple[float, float, float]:
    """µs of ``to_state()`` alone (after even chunks) and of ``to_state()`` +
    ``orjson.dumps`` (after odd chunks), and the KiB dumped: medians over the calls
    of a repeat, then over repeats. Per call by ``perf_counter_ns`` (a CPU-time
    clock costs a system call of a few µs, as much as what it would measure); the
    median keeps preemptions on a loaded machine out."""
    plain, dumped, sizes = [], [], []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        detector = make()
        t_plain, t_dumped, size = [], [], []
        for i, chunk in enumerate(chunks):
            detector.update_many(chunk)
            started = clock()
            if i % 2:
                size.append(len(orjson.dumps(detector.to_state())))
                t_dumped.append(clock() - started)
            else:
                detector.to_state()
                t_plain.append(clock() - started)
        plain.append(statistics.median(t_plain) / 1e3)
        dumped.append(statistics.median(t_dumped) / 1e3)
        sizes.append(statistics.median(size) / 1024)
    return statistics.median(plain), statistics.median(dumped), statistics.median(sizes)


def rows(n: int, repeats: int) -> list[list[object]]:
    out: list[list[object]] = []
    settings: Sequence[tuple[str, dict[str, Any]]] = [
        (
            f"sidecar: {SIDECAR['window_size']}/{SIDECAR['reference_size']} first-N, "
            f"stride {SIDECAR['stride']}, alpha {SIDECAR['alpha']:.1e}",
            SIDECAR,
        ),
    ]
    if SIDECAR.get("reference_knots") is not None:  # against the exact reference it replaced
        exact = {k: v for k, v in SIDECAR.items() if k != "reference_knots"}
        settings = [
            (f"{settings[0][0]}, {SIDECAR['reference_knots']} knots", SIDECAR),
            (f"{settings[0][0]}, exact reference", exact),
        ]
    streams = [("stationary N(0,1)", stationary), ("mean steps", steps)]
    for label, params in settings:
        for stream_label, stream in streams:

            def make(params: dict[str, Any] = params) -> KSWindow:
                return KSWindow(**params)

            values = stream(n).tolist()
            chunks = _chunks(values)
            detections = len(make().update_many(values))
            event = median_seconds(partial(_per_event, values=values), make, repeats)
            chunked = median_seconds(partial(_chunked, chunks=chunks), make, repeats)
            whole = median_seconds(partial(KSWindow.update_many, values=values), make, repeats)
            plain, dumped, kib = _snapshot_cost(make, chunks, repeats)
            out.append(
                [
                    label,
                    stream_label,
                    detections,
                    f"{event / n * 1e9:,.0f}",
                    f"{chunked / n * 1e9:,.0f}",
                    f"{whole / n * 1e9:,.0f}",
                    f"{plain:,.1f}",
                    f"{dumped:,.1f}",
                    f"{kib:,.1f}",
                ]
            )
    return out


def table(n: int, repeats: int) -> str:
    title = (
        f"## KSWindow in the sidecar hot path (median CPU time of {repeats} repeats, "
        f"{n} observations)\n\n"
    )
    return title + markdown_table(HEADERS, rows(n, repeats))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and repeats")
    parser.add_argument("--events", type=int, default=None, help="observations per run")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.events or (20_000 if args.quick else 100_000)
    repeats = args.repeats or (3 if args.quick else 5)
    print(", ".join(f"{k}: {v}" for k, v in machine_info().items()) + "\n")
    print(table(n, repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
