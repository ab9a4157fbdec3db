"""The Kafka side of :class:`pipeline.emit.Emitter`: one producer, created lazily.

Creating a kafka-python producer contacts the brokers and can block for seconds (or
raise) while they are unreachable; the emitter therefore builds it in its own
background thread, never in the caller's, and retries with capped backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pipeline.io.client_options import client_options

__all__ = ["KafkaTransport", "TransportError"]

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "acks": 1,
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "retries": 5,
    # send() never waits long for buffer space or metadata: the emitter's own queue is
    # the only place where a prediction waits.
    "max_block_ms": 1000,
    "request_timeout_ms": 10_000,
}


class TransportError(Exception):
    """The producer could not be created or refused a record."""


class KafkaTransport:
    """``send(topic, key, value, ...)``, ``flush``, ``close`` over one producer."""

    def __init__(self, bootstrap_servers: str, options: Mapping[str, Any] | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        # Through the gate: unreadable TLS files named, secrets kept out of the logs.
        self.options = {**PRODUCER_DEFAULTS, **client_options(options)}
        self._producer: KafkaProducer | None = None

    def connect(self) -> None:
        """Create the producer (blocks while the brokers are unreachable: call it from
        the background thread only)."""
        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers, **self.options
                )
            except (KafkaError, OSError, ValueError) as exc:
                raise TransportError(str(exc) or type(exc).__name__) from exc

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        on_sent: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Hand one record to the producer; ``on_sent`` / ``on_error`` run on the
        producer's I/O thread once the broker answered."""
        self.connect()
        assert self._producer is not None
        try:
            future = self._producer.send(topic, key=key, value=value)
        except (KafkaError, OSError, ValueError) as exc:
            raise TransportError(str(exc) or type(exc).__name__) from exc
        future.add_callback(on_sent)
        future.add_errback(on_error)

    def flush(self, timeout_s: float) -> None:
        if self._producer is not None:
            try:
                self._producer.flush(timeout=timeout_s)
            except (KafkaError, OSError) as exc:
                raise TransportError(str(exc) or type(exc).__name__) from exc

    def close(self, timeout_s: float) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.close(timeout=timeout_s)
