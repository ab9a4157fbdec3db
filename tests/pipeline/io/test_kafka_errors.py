"""Client errors leave pipeline.io typed; a fenced producer is recognised by type,
in each shape kafka-python reports it (no broker needed: nothing is sent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError, ProducerFencedError

from pipeline.io.errors import FencedError, SinkError
from pipeline.io.kafka import KafkaSink


@pytest.fixture
def sink() -> Iterator[KafkaSink]:
    # A pinned api_version: the producer is built without contacting a broker.
    sink = KafkaSink(
        {"alert": "alerts"},
        bootstrap_servers="127.0.0.1:1",
        transactional_id="driftline-test",
        extra={"api_version": (3, 0)},
    )
    yield sink
    sink.close()


def _raise(sink: KafkaSink, error: BaseException) -> None:
    with sink._writing("committing failed"):
        raise error


def test_a_client_error_becomes_a_sink_error(sink: KafkaSink) -> None:
    with pytest.raises(SinkError, match="committing failed") as info:
        _raise(sink, KafkaTimeoutError("no ack"))
    assert isinstance(info.value.__cause__, KafkaTimeoutError)


@pytest.mark.parametrize(
    "error",
    [ProducerFencedError(), KafkaError(ProducerFencedError())],
    ids=["itself", "in the args"],
)
def test_a_fenced_producer_becomes_a_fenced_error(sink: KafkaSink, error: KafkaError) -> None:
    with pytest.raises(FencedError):
        _raise(sink, error)


def test_a_generic_error_of_a_fenced_transaction_manager_is_fenced(sink: KafkaSink) -> None:
    # kafka-python's transactional calls after the fact raise a plain KafkaError that
    # only names the cause in its text; the manager still holds the typed error.
    sink._producer._transaction_manager._last_error = ProducerFencedError()
    with pytest.raises(FencedError):
        _raise(
            sink, KafkaError("Cannot execute transactional method because we are in an error state")
        )


def test_fenced_is_not_transient() -> None:
    from pipeline.io.errors import TRANSIENT

    assert not issubclass(FencedError, TRANSIENT)
