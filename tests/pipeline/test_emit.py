"""The emitter's contract with the code that calls it: never blocks, never raises,
counts every drop; what it sends is what the sidecar decodes. (The real producer and
broker: tests/integration/test_emit.py.)"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.core.decode import Decoder
from pipeline.emit import Emitter
from pipeline.events import LabelEvent, PredictionEvent


class ListTransport:
    """Keeps what it is given; ``down`` makes connect fail (a broker out of reach)."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.closed = False

    def connect(self) -> None:
        if self.down:
            raise ConnectionError("no broker")

    def send(self, topic: str, key: bytes, value: bytes, on_sent: Any, on_error: Any) -> None:
        self.sent.append((topic, key, value))
        on_sent(None)

    def flush(self, timeout_s: float) -> None:
        pass

    def close(self, timeout_s: float) -> None:
        self.closed = True


def _emitter(transport: ListTransport, **options: Any) -> Emitter:
    return Emitter(
        transport=transport, model_id="fraud", model_version="3", linger_s=0.005, **options
    )


class TestSends:
    def test_a_prediction_arrives_as_the_sidecar_decodes_it(self) -> None:
        transport = ListTransport()
        with _emitter(transport) as emitter:
            assert emitter.predict(
                "approve",
                probabilities={"approve": 0.9, "decline": 0.1},
                confidence=0.9,
                features={"amount": 12, "country": "FR"},
                request_id="r-1",
            )
            assert emitter.label("r-1", "approve")
        (topic, key, value), (label_topic, _, label_value) = transport.sent
        event = Decoder(1 << 20).decode(value, "prediction")
        assert isinstance(event, PredictionEvent)
        assert (topic, key) == ("driftline.predictions", b"fraud")
        assert event.features == {"amount": 12.0, "country": "FR"} and event.model_version == "3"
        assert event.timestamp.tzinfo is not None and len(event.event_id) == 32
        assert label_topic == "driftline.labels"
        assert isinstance(Decoder(1 << 20).decode(label_value, "label"), LabelEvent)
        assert transport.closed and emitter.stats()["delivered"] == 2

    def test_emit_takes_a_model_instance(self) -> None:
        transport = ListTransport()
        event = PredictionEvent(
            event_id="e",
            model_id="m",
            model_version="1",
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            prediction=1.5,
        )
        with _emitter(transport) as emitter:
            assert emitter.emit(event)
        assert Decoder(1 << 20).decode(transport.sent[0][2]) == event


class TestDrops:
    def test_invalid_events_are_counted_and_logged_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        transport = ListTransport()
        with caplog.at_level(logging.WARNING, "driftline.emit"), _emitter(transport) as emitter:
            assert emitter.predict("a", confidence=float("nan"))
            assert emitter.predict("a", features={"x": object()})
            assert emitter.predict("a", features={"x": [1, 2]})
            assert emitter.emit({"schema": "driftline.nope.v1"})
        assert transport.sent == []
        assert emitter.stats()["dropped"] == {"invalid": 4}
        assert sum("invalid event" in r.message for r in caplog.records) == 1
        assert "confidence" in caplog.text

    def test_a_full_queue_drops_the_newest_without_waiting(self) -> None:
        transport = ListTransport(down=True)
        emitter = _emitter(transport, max_queue=100)
        started = time.perf_counter()
        accepted = sum(emitter.predict(float(i)) for i in range(1000))
        elapsed = time.perf_counter() - started
        emitter.close(timeout_s=0.2)
        assert accepted == 100
        stats = emitter.stats()
        assert stats["dropped"] == {"queue_full": 900, "unsent_at_close": 100}
        assert elapsed < 5  # generous: a blocking call would wait for the broker forever

    def test_after_close_calls_are_dropped_as_closed(self) -> None:
        emitter = _emitter(ListTransport())
        emitter.close()
        emitter.close()  # idempotent
        assert emitter.predict(1.0) is False
        assert emitter.stats()["dropped"] == {"closed": 1}

    def test_nothing_raises_into_the_caller(self) -> None:
        class Exploding:
            def model_dump(self, **_: Any) -> Any:
                raise RuntimeError("boom")

        with _emitter(ListTransport()) as emitter:
            assert emitter.emit(Exploding()) is False  # type: ignore[arg-type]
        assert emitter.stats()["dropped"] == {"error": 1}

    def test_a_send_error_is_counted(self) -> None:
        class Refusing(ListTransport):
            def send(
                self, topic: str, key: bytes, value: bytes, on_sent: Any, on_error: Any
            ) -> None:
                on_error(RuntimeError("refused"))

        with _emitter(Refusing()) as emitter:
            emitter.predict(1.0)
        assert emitter.stats()["dropped"] == {"send_failed": 1}


class TestThreads:
    def test_many_callers_lose_nothing(self) -> None:
        transport = ListTransport()
        emitter = _emitter(transport, max_queue=100_000)

        def calls() -> None:
            for i in range(2000):
                emitter.predict(float(i))

        threads = [threading.Thread(target=calls) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        emitter.close()
        assert len(transport.sent) == 16_000 and emitter.stats()["dropped"] == {}


class TestLight:
    def test_importing_the_emitter_pulls_in_no_detector_machinery(self) -> None:
        import subprocess
        import sys

        heavy = ["numpy", "river", "detectors", "pipeline.core.engine", "pipeline.config", "yaml"]
        code = (
            "import sys, pipeline.emit, pipeline.io.emit_transport; "
            f"print([m for m in {heavy!r} if m in sys.modules])"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"
