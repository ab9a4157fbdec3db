"""The FastAPI example (deploy/examples/emit_fastapi.py) under load against the real
broker: every prediction arrives once, as the sidecar decodes it, and nothing is
dropped. (What a call costs: benchmarks/emit.py.)"""

from __future__ import annotations

import importlib.util
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from pipeline.core.decode import Decoder
from pipeline.emit import Emitter
from pipeline.events import LabelEvent, PredictionEvent
from tests.integration.sidecars import read_topic

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "emit_fastapi.py"


def _example(
    monkeypatch: pytest.MonkeyPatch, bootstrap: str, predictions: str, labels: str
) -> ModuleType:
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("DRIFTLINE_PREDICTIONS_TOPIC", predictions)
    monkeypatch.setenv("DRIFTLINE_LABELS_TOPIC", labels)
    spec = importlib.util.spec_from_file_location(f"emit_fastapi_{uuid.uuid4().hex}", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fastapi_example_under_load(
    kafka_bootstrap: str, make_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, labels = make_topic(partitions=3), make_topic()
    app = _example(monkeypatch, kafka_bootstrap, topic, labels).app
    requests, threads = 3000, 6
    with TestClient(app) as client:

        def calls(worker: int) -> None:
            for i in range(requests // threads):
                response = client.post(
                    "/predict",
                    json={"amount": 10.0 + i % 90, "age": 20 + worker, "country": "FR"},
                    headers={"x-request-id": f"r-{worker}-{i}"},
                )
                assert response.status_code == 200

        workers = [threading.Thread(target=calls, args=(w,)) for w in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert client.post("/label", json={"request_id": "r-0-0", "label": "approve"}).json()
        stats_before_close = client.get("/emitter").json()
    assert stats_before_close["dropped"] == {}
    records = read_topic(kafka_bootstrap, topic)
    decoder = Decoder(1 << 20)
    events = [decoder.decode(r.value, "prediction") for r in records]
    assert all(isinstance(e, PredictionEvent) for e in events)
    assert sorted(e.request_id for e in events) == sorted(  # type: ignore[union-attr]
        f"r-{w}-{i}" for w in range(threads) for i in range(requests // threads)
    )
    assert {r.key for r in records} == {b"fraud"}
    (label,) = read_topic(kafka_bootstrap, labels)
    assert isinstance(decoder.decode(label.value, "label"), LabelEvent)


def test_a_broker_out_of_reach_costs_the_caller_nothing_and_is_counted() -> None:
    emitter = Emitter("127.0.0.1:1", model_id="m", model_version="1", max_queue=50)
    started = time.perf_counter()
    accepted = sum(emitter.predict(float(i), request_id=str(i)) for i in range(500))
    elapsed = time.perf_counter() - started
    emitter.close(timeout_s=1.0)
    assert accepted == 50 and elapsed < 2.0
    dropped = emitter.stats()["dropped"]
    assert dropped["queue_full"] == 450
    assert dropped.get("unsent_at_close", 0) == 50
