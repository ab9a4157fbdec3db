"""Decode speed: bytes -> validated event, driftline's path against the naive one.

Run: ``python -m benchmarks.decode [--quick]``. Prints a markdown table of
per-event microseconds (median of repeats) and ratios against the baseline
measured in the same run: ``json.loads`` followed by pydantic validation of the
resulting dict (the "dict walking" path).
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


def _median_us(fn: Callable[[], object], n: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(samples)


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

    def driftline() -> None:
        for v in values:
            decoder.decode(v, "prediction")

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

    rows = [
        ("json.loads + model_validate (baseline)", _median_us(naive, n, repeats)),
        ("driftline Decoder (model_validate_json, strict)", _median_us(driftline, n, repeats)),
        ("json.loads alone (no validation)", _median_us(parse_only, n, repeats)),
        ("orjson.loads alone (no validation)", _median_us(orjson_only, n, repeats)),
        ("pydantic-core JSON -> dict (TypeAdapter(dict))", _median_us(pydantic_dict, n, repeats)),
    ]
    base = rows[0][1]
    size = sum(map(len, values)) / len(values)
    print(
        f"decode of {n} prediction events, 16 numeric + 2 categorical features + text, {size:.0f} B each\n"
    )
    print("| path | µs/event | events/s | speed-up vs baseline |")
    print("|---|---:|---:|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} | {1e6 / us:,.0f} | {base / us:.2f}x |")


if __name__ == "__main__":
    main()
