"""kafka-python's ConsumerRecord -> Record: a tombstone stays a tombstone."""

from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from pipeline.io.consumer_records import to_record


def _consumer_record(value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        topic="preds",
        partition=2,
        leader_epoch=0,
        offset=9,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=b"model-0",
        value=value,
        headers=[("h", None)],
        checksum=None,
        serialized_key_size=7,
        serialized_value_size=-1 if value is None else len(value),
        serialized_header_size=-1,
    )


def test_a_tombstone_keeps_its_null_value() -> None:
    record = to_record(_consumer_record(None))
    assert record.value is None
    assert (record.topic, record.partition, record.offset) == ("preds", 2, 9)
    assert record.key == b"model-0" and record.timestamp_ms == 1_700_000_000_000
    assert record.headers == (("h", b""),)


def test_an_empty_value_stays_empty() -> None:
    assert to_record(_consumer_record(b"")).value == b""


def test_equals_the_dataclass_constructor() -> None:
    """The slots are set directly (the frozen __init__ costs twice as much): the same
    record as ``Record(...)``, hashing and comparing alike."""
    from pipeline.core.records import Record

    got = to_record(_consumer_record(b"{}"))
    expected = Record("preds", 2, 9, b"{}", b"model-0", 1_700_000_000_000, (("h", b""),))
    assert got == expected and hash(got) == hash(expected) and repr(got) == repr(expected)
