"""Decode speed: bytes -> validated event, driftline's path against the naive one.

Run: ``python -m benchmarks.decode [--quick]``. Prints a markdown table of
per-event microseconds of CPU (process time, median of interleaved repeats: wall
clock swings with CPU steal on a shared machine) and ratios against the baseline
measured in the same run: ``json.loads`` followed by pydantic validation of the
resulting dict (the "dict walking" path). The decoder is measured with its fast path
(:mod:`pipeline.core.fast_decode`) and without it (the v1 contract's pydantic models
alone, what every refused event still goes through).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import TypeAdapter

from pipeline.core.decode import Decoder
from pipeline.events import PredictionEvent
from pipeline.generate import GeneratorConfig, generate


def _medians_us(fns: list[Callable[[], object]], n: int, repeats: int) -> list[float]:
    """Per-event process time of each function, the median over rounds that run
    every function once in turn (so load changes hit them alike)."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples, strict=True):
            started = time.process_time()
            fn()
            out.append((time.process_time() - started) / n * 1e6)
    return [statistics.median(s) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    repeats = 3 if args.quick else 7
    values = [
        v
        for _m, v in generate(
            GeneratorConfig(events=n, numeric_features=16, categorical_features=2, text=True)
        )
    ]
    decoder = Decoder(1 << 20)
    contract = Decoder(1 << 20, fast=False)

    def driftline() -> None:
        for v in values:
            decoder.decode(v, "prediction")

    def driftline_by_tag() -> None:
        for v in values:
            decoder.decode(v)

    def contract_only() -> None:
        for v in values:
            contract.decode(v, "prediction")

    def naive() -> None:
        for v in values:
            PredictionEvent.model_validate(json.loads(v), strict=False)

    def parse_only() -> None:
        for v in values:
            json.loads(v)

    def orjson_only() -> None:
        for v in values:
            orjson.loads(v)

    as_dict = TypeAdapter(dict[str, Any]).validate_json

    def pydantic_dict() -> None:  # pydantic-core's JSON -> Python objects, no model
        for v in values:
            as_dict(v)

    paths: list[tuple[str, Callable[[], object]]] = [
        ("json.loads + model_validate (baseline)", naive),
        ("driftline Decoder (fast path: msgspec mirror, pydantic event)", driftline),
        ("driftline Decoder, kind from the schema tag", driftline_by_tag),
        ("the v1 contract alone (Decoder(fast=False): model_validate_json, strict)", contract_only),
        ("json.loads alone (no validation)", parse_only),
        ("orjson.loads alone (no validation)", orjson_only),
        ("pydantic-core JSON -> dict (TypeAdapter(dict))", pydantic_dict),
    ]
    medians = _medians_us([fn for _, fn in paths], n, repeats)
    rows = [(name, us) for (name, _), us in zip(paths, medians, strict=True)]
    base = rows[0][1]
    size = sum(map(len, values)) / len(values)
    print(
        f"decode of {n} prediction events, 16 numeric + 2 categorical features + text, "
        f"{size:.0f} B each; CPU µs per event, median of {repeats} interleaved rounds\n"
    )
    print("| path | CPU µs/event | events per CPU-s | speed-up vs baseline |")
    print("|---|---:|---:|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} | {1e6 / us:,.0f} | {base / us:.2f}x |")


if __name__ == "__main__":
    main()
