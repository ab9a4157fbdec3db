"""Emit driftline events from your own inference service, without ever slowing it down.

::

    from pipeline.emit import Emitter

    emitter = Emitter("broker:9092", model_id="fraud", model_version="3")

    def predict(request):
        ...
        emitter.predict(label, probabilities=probs, features=row, request_id=request.id)
        return label

    emitter.close()            # at shutdown: sends what is queued (5 s at most)

A call costs the caller a dict and an append to a bounded in-memory queue: it never
waits for the network, a lock held by I/O or a broker, and it never raises. A
background thread takes the queue in batches, validates each event against the v1
contract exactly as the sidecar's decoder will, and hands it to a kafka-python
producer (keyed by ``model_id``). What cannot be sent is dropped and counted by reason
(``stats()``), and logged at most every ``log_every_s``:

- ``queue_full``: the queue holds ``max_queue`` events (the broker is slow or down);
- ``invalid``: the event breaks the contract (NaN, a missing field, a string where a
  number belongs...): it would have been a dead letter;
- ``send_failed``: the broker refused the record or the producer gave up;
- ``closed``: emitted after ``close()``; ``unsent_at_close``: still queued when
  ``close``'s timeout ran out.

``topics`` maps an event kind (``prediction``, ``label``, ``feature``, ``training``) to
its topic when the sidecar's are not the defaults. Create one emitter per process (in a forking server, per worker after the fork: in
FastAPI's lifespan, for instance) and close it at shutdown; ``atexit`` closes one that
is left open.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
from pydantic import TypeAdapter, ValidationError

from pipeline.events import FeatureEvent, LabelEvent, PredictionEvent, TrainingEvent

__all__ = ["Emitter", "Transport"]

log = logging.getLogger("driftline.emit")

_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    "driftline.prediction.v1": TypeAdapter(PredictionEvent),
    "driftline.feature.v1": TypeAdapter(FeatureEvent),
    "driftline.label.v1": TypeAdapter(LabelEvent),
    "driftline.training.v1": TypeAdapter(TrainingEvent),
}
DEFAULT_TOPICS: Final[Mapping[str, str]] = {
    "prediction": "driftline.predictions",
    "feature": "driftline.features",
    "label": "driftline.labels",
    "training": "driftline.training",
}
"""Event kind -> topic (the sidecar's ``topics`` defaults)."""


class Transport(Protocol):
    """Where validated events go (a Kafka producer: :mod:`pipeline.io.emit_transport`)."""

    def connect(self) -> None: ...

    def send(self, topic: str, key: bytes, value: bytes, on_sent: Any, on_error: Any) -> None: ...

    def flush(self, timeout_s: float) -> None: ...

    def close(self, timeout_s: float) -> None: ...


class Emitter:
    """A fire-and-forget client for driftline's input topics (see the module doc)."""

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        model_id: str | None = None,
        model_version: str | None = None,
        variant: str = "production",
        topics: Mapping[str, str] | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        linger_s: float = 0.05,
        close_timeout_s: float = 5.0,
        log_every_s: float = 10.0,
        producer_options: Mapping[str, Any] | None = None,
        transport: Transport | None = None,
    ) -> None:
        if transport is None:
            if bootstrap_servers is None:
                raise ValueError("give bootstrap_servers (or a transport)")
            from pipeline.io.emit_transport import KafkaTransport

            transport = KafkaTransport(bootstrap_servers, producer_options)
        if max_queue < 1 or batch_size < 1 or linger_s <= 0:
            raise ValueError("max_queue and batch_size must be >= 1, linger_s > 0")
        self.transport = transport
        self.model_id = model_id
        self.model_version = model_version
        self.variant = variant
        self.topics = {**DEFAULT_TOPICS, **(topics or {})}
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.close_timeout_s = close_timeout_s
        self.log_every_s = log_every_s
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._dropped: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()  # queued, handed, delivered
        self._logged: Counter[str] = Counter()
        self._logged_at = 0.0
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-emitter", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the caller's side: never blocks, never raises -----------------------------------
    def predict(
        self,
        prediction: float | str | bool,
        *,
        features: Mapping[str, Any] | None = None,
        probabilities: Mapping[str, float] | None = None,
        confidence: float | None = None,
        request_id: str | None = None,
        model_id: str | None = None,
        model_version: str | None = None,
        variant: str | None = None,
        timestamp: datetime | None = None,
        event_id: str | None = None,
        **fields: Any,
    ) -> bool:
        """Queue one prediction event; False when it was dropped (and counted).
        ``fields`` are the contract's other optional fields (``embedding``,
        ``output_text``, ``token_logprobs``, ``golden``)."""
        try:
            event: dict[str, Any] = {
                "schema": "driftline.prediction.v1",
                "event_id": event_id,
                "model_id": model_id or self.model_id,
                "model_version": model_version or self.model_version,
                "variant": variant or self.variant,
                "timestamp": timestamp or time.time(),
                "request_id": request_id,
                "prediction": prediction,
                "probabilities": probabilities,
                "confidence": confidence,
                "features": features,
                **fields,
            }
            return self._enqueue(event)
        except Exception:  # the request path must never see an emitter error
            self._drop("error")
            return False

    def label(
        self,
        request_id: str,
        label: float | str | bool,
        *,
        model_id: str | None = None,
        timestamp: datetime | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Queue the ground truth of an earlier prediction (joined by ``request_id``)."""
        try:
            return self._enqueue(
                {
                    "schema": "driftline.label.v1",
                    "event_id": event_id,
                    "model_id": model_id or self.model_id,
                    "request_id": request_id,
                    "label": label,
                    "timestamp": timestamp or time.time(),
                }
            )
        except Exception:
            self._drop("error")
            return False

    def emit(
        self, event: Mapping[str, Any] | PredictionEvent | FeatureEvent | LabelEvent | TrainingEvent
    ) -> bool:
        """Queue any v1 input event: a model instance, or a mapping with its ``schema``."""
        try:
            if not isinstance(event, Mapping):
                event = event.model_dump(by_alias=True)
            return self._enqueue(dict(event))
        except Exception:
            self._drop("error")
            return False

    def _enqueue(self, event: dict[str, Any]) -> bool:
        if self._closed:
            self._drop("closed")
            return False
        if len(self._queue) >= self.max_queue:
            self._drop("queue_full")
            return False
        self._queue.append(event)
        return True

    def _drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[reason] += n

    # -- what happened -----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """``handed`` to the producer, ``delivered`` (acknowledged), ``queued`` now, and
        ``dropped`` by reason."""
        with self._lock:
            return {
                "handed": self._counts["handed"],
                "delivered": self._counts["delivered"],
                "queued": len(self._queue),
                "dropped": dict(self._dropped),
            }

    # -- the background thread ---------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.5
        while True:
            stopping = self._stop.wait(self.linger_s)
            try:
                self.transport.connect()
                backoff = 0.5
                self._drain()
            except Exception as exc:  # a broker down: the queue waits, then overflows
                self._log_drops(force=False, error=str(exc) or type(exc).__name__)
                if self._stop.wait(backoff) and not self._queue:
                    break
                backoff = min(backoff * 2, 10.0)
                if not stopping:
                    continue
            self._log_drops(force=False)
            if stopping and not self._queue:
                break

    def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            for i, event in enumerate(batch):
                encoded = self._encode(event)
                if encoded is None:
                    continue
                topic, key, value = encoded
                try:
                    self.transport.send(topic, key, value, self._on_sent, self._on_error)
                except Exception:
                    self._drop("send_failed", len(batch) - i)
                    raise
                with self._lock:
                    self._counts["handed"] += 1

    def _encode(self, event: dict[str, Any]) -> tuple[str, bytes, bytes] | None:
        schema = event.get("schema")
        adapter = _ADAPTERS.get(schema) if isinstance(schema, str) else None
        if adapter is None:
            self._drop("invalid")
            self._note_invalid(f"unknown schema {schema!r}")
            return None
        if event.get("event_id") is None:
            event["event_id"] = uuid.uuid4().hex
        stamp = event.get("timestamp")
        if isinstance(stamp, float):
            event["timestamp"] = datetime.fromtimestamp(stamp, UTC)
        for name in [k for k, v in event.items() if v is None]:
            del event[name]  # optional fields left out
        try:
            model = adapter.validate_python(event)
            # The validated mapping as JSON (orjson: a tenth of model_dump_json's cost);
            # validation refused NaN and infinities, the only values orjson would alter.
            value = orjson.dumps(event)
        except (ValidationError, TypeError) as exc:
            self._drop("invalid")
            if isinstance(exc, ValidationError):
                first = exc.errors(include_url=False)[0]
                self._note_invalid(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
            else:
                self._note_invalid(str(exc))
            return None
        kind = schema.split(".")[1]  # type: ignore[union-attr]
        return self.topics[kind], model.model_id.encode(), value

    def _note_invalid(self, detail: str) -> None:
        if self._logged["invalid"] == 0:  # the first one in full, then counts
            log.warning("driftline emitter dropped an invalid event: %s", detail)
            self._logged["invalid"] = 1

    def _on_sent(self, _metadata: Any) -> None:
        with self._lock:
            self._counts["delivered"] += 1

    def _on_error(self, exc: BaseException) -> None:
        self._drop("send_failed")

    def _log_drops(self, *, force: bool, error: str | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._logged_at < self.log_every_s:
            return
        with self._lock:
            new = self._dropped - self._logged
            self._logged.update(new)
        if new or error:
            log.warning(
                "driftline emitter: %s dropped since last report%s",
                dict(new) or "none",
                f"; producer unavailable: {error}" if error else "",
            )
        self._logged_at = now

    # -- shutdown --------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the queue is empty and the producer has sent what it holds; True
        when that happened within ``timeout_s`` (default: ``close_timeout_s``)."""
        deadline = time.monotonic() + (self.close_timeout_s if timeout_s is None else timeout_s)
        while self._queue and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(min(self.linger_s, 0.01))
        with contextlib.suppress(Exception):
            self.transport.flush(max(0.0, deadline - time.monotonic()))
        return not self._queue

    def close(self, timeout_s: float | None = None) -> None:
        """Send what is queued (within ``timeout_s``, default ``close_timeout_s``), then
        close the producer. Never raises; events still queued then are counted as
        ``unsent_at_close``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        timeout = self.close_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = len(self._queue)
        if left:
            self._queue.clear()
            self._drop("unsent_at_close", left)
        with contextlib.suppress(Exception):
            self.transport.flush(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            self.transport.close(max(0.0, deadline - time.monotonic()))
        self._log_drops(force=True)

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
