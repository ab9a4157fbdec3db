"""What ``Emitter.predict`` adds to a request, measured against the real broker.

Run: ``python -m benchmarks.emit [--quick] [--bootstrap 127.0.0.1:39092]`` (starts the
local broker when none answers; ``make bench-emit``). Two measurements, one run:

1. **per call**: ``emitter.predict(...)`` timed call by call (``perf_counter_ns``)
   while the background thread validates and sends everything to the broker, at a
   paced rate from several caller threads (a web server's worker threads); then
   whether every event was delivered.
2. **capacity**: 20,000 calls at once into a queue large enough for all of them, and
   the time until the broker acknowledged the last one: the events per second one
   process's background thread validates and sends (beyond it, the queue fills and
   calls are dropped as ``queue_full``, counted).
3. **per request**: the FastAPI example (``deploy/examples/emit_fastapi.py``) served
   in-process (``TestClient``), each request timed, alternating between the emitter
   and a stand-in that does nothing, so both see the same machine load.

Percentiles are of individual calls; on a shared machine the tail includes the
scheduler's and the GIL's hand-offs, which is what a service would see too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._kafka import create_topics, delete_topics, local_broker
from pipeline.emit import Emitter

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "emit_fastapi.py"
FEATURES = {"amount": 42.5, "age": 37.0, "tenure_days": 731.0, "country": "FR", "device": "mobile"}
PROBABILITIES = {"approve": 0.81, "review": 0.12, "decline": 0.07}


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def per_call(bootstrap: str, topic: str, rate: int, seconds: float, threads: int) -> dict[str, Any]:
    emitter = Emitter(bootstrap, model_id="bench", model_version="1", topics={"prediction": topic})
    durations: list[list[float]] = [[] for _ in range(threads)]
    per_thread = rate // threads
    interval = 1.0 / per_thread

    def caller(slot: int) -> None:
        out = durations[slot]
        start = time.perf_counter()
        n = int(per_thread * seconds)
        for i in range(n):
            due = start + i * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter_ns()
            emitter.predict(
                "approve",
                probabilities=PROBABILITIES,
                confidence=0.81,
                features=FEATURES,
                request_id=f"{slot}-{i}",
            )
            out.append((time.perf_counter_ns() - t0) / 1000.0)

    workers = [threading.Thread(target=caller, args=(s,)) for s in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    emitter.close(timeout_s=30)
    samples = [d for ds in durations for d in ds]
    stats = emitter.stats()
    return {
        "calls": len(samples),
        "rate": len(samples) / wall,
        "p50": _pct(samples, 0.50),
        "p99": _pct(samples, 0.99),
        "p999": _pct(samples, 0.999),
        "max": max(samples),
        "delivered": stats["delivered"],
        "dropped": stats["dropped"],
    }


def capacity(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    emitter = Emitter(
        bootstrap, model_id="bench", model_version="1", topics={"prediction": topic}, max_queue=n
    )
    emitter.predict("warm-up", features=FEATURES)
    emitter.flush(30)
    started = time.perf_counter()
    for i in range(n):
        emitter.predict(
            "approve",
            probabilities=PROBABILITIES,
            confidence=0.81,
            features=FEATURES,
            request_id=str(i),
        )
    while emitter.stats()["delivered"] < n + 1 and time.perf_counter() - started < 120:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    emitter.close(timeout_s=30)
    stats = emitter.stats()
    return {
        "events": n,
        "seconds": elapsed,
        "rate": (stats["delivered"] - 1) / elapsed,
        "dropped": stats["dropped"],
    }


class _Nothing:
    def predict(self, *_: Any, **__: Any) -> bool:
        return True

    def close(self) -> None:
        pass


def per_request(bootstrap: str, topic: str, requests: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    os.environ["DRIFTLINE_BOOTSTRAP_SERVERS"] = bootstrap
    os.environ["DRIFTLINE_PREDICTIONS_TOPIC"] = topic
    spec = importlib.util.spec_from_file_location("emit_fastapi_bench", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    timings: dict[str, list[float]] = {"emitter": [], "none": []}
    with TestClient(module.app) as client:
        real = module.app.state.emitter
        for _ in range(200):  # warm up both paths
            client.post("/predict", json={"amount": 1.0, "age": 30.0, "country": "FR"})
        for i in range(requests):
            name = "emitter" if i % 2 == 0 else "none"
            module.app.state.emitter = real if name == "emitter" else _Nothing()
            t0 = time.perf_counter_ns()
            response = client.post(
                "/predict",
                json={"amount": 10.0 + i % 90, "age": 30.0, "country": "FR"},
                headers={"x-request-id": f"q-{i}"},
            )
            timings[name].append((time.perf_counter_ns() - t0) / 1000.0)
            assert response.status_code == 200
        module.app.state.emitter = real
    return {
        name: {"p50": _pct(v, 0.5), "p99": _pct(v, 0.99), "mean": statistics.fmean(v)}
        for name, v in timings.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '39092')}")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with local_broker(args.bootstrap):
        prefix = f"bench-emit-{uuid.uuid4().hex[:8]}"
        topic, api_topic = f"{prefix}.predictions", f"{prefix}.api"
        create_topics(args.bootstrap, {topic: 3, api_topic: 3})
        try:
            seconds = 3.0 if args.quick else 10.0
            rate, threads = 2_000, 4
            call = per_call(args.bootstrap, topic, rate, seconds, threads)
            cap = capacity(args.bootstrap, topic, 20_000)
            request = per_request(args.bootstrap, api_topic, 1_000 if args.quick else 4_000)
        finally:
            delete_topics(args.bootstrap, prefix)
    print(f"## Emitter.predict, real broker ({threads} caller threads, {rate:,} calls/s target)\n")
    print("| calls | achieved calls/s | p50 | p99 | p99.9 | max | delivered | dropped |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {call['calls']:,} | {call['rate']:,.0f} | {call['p50']:.1f} µs | {call['p99']:.1f} µs "
        f"| {call['p999']:.1f} µs | {call['max']:.0f} µs | {call['delivered']:,} "
        f"| {call['dropped'] or 'none'} |"
    )
    print(
        f"\ncapacity: {cap['events']:,} events delivered in {cap['seconds']:.1f} s = "
        f"{cap['rate']:,.0f} events/s from one process (dropped: {cap['dropped'] or 'none'})"
    )
    e, n = request["emitter"], request["none"]
    print("\n## FastAPI example, one request at a time (TestClient), alternating\n")
    print("| path | p50 | p99 | mean |")
    print("|---|---:|---:|---:|")
    for name, row in (("with the emitter", e), ("without (a no-op stand-in)", n)):
        print(f"| {name} | {row['p50']:.0f} µs | {row['p99']:.0f} µs | {row['mean']:.0f} µs |")
    print(
        f"\nadded per request: p50 {e['p50'] - n['p50']:+.0f} µs, p99 {e['p99'] - n['p99']:+.0f} µs, "
        f"mean {e['mean'] - n['mean']:+.0f} µs"
    )


if __name__ == "__main__":
    main()
