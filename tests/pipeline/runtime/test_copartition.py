"""A key seen on two partition numbers across input topics is a partitioner mismatch."""

from __future__ import annotations

import pytest
import structlog

from pipeline.core.records import Record
from pipeline.runtime import copartition
from pipeline.runtime.copartition import Mismatch, PartitionerCheck


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A logger not yet cached by an earlier test's configure_logging, so capture_logs
    sees it."""
    monkeypatch.setattr(copartition, "log", structlog.get_logger("driftline.runtime"))


def _r(topic: str, partition: int, key: bytes | None) -> Record:
    return Record(topic, partition, 0, b"{}", key)


def test_a_key_on_another_partition_number_is_counted_and_warned_once_a_minute() -> None:
    seen: list[Mismatch] = []
    check = PartitionerCheck({"preds", "labels"}, on_mismatch=seen.append)
    with structlog.testing.capture_logs() as logs:
        check.observe([_r("preds", 3, b"model-1"), _r("labels", 3, b"model-1")])
        assert seen == []
        check.observe([_r("labels", 5, b"model-1"), _r("labels", 5, b"model-1")])
    assert seen == [Mismatch(b"model-1", "labels", 5, "preds", 3)] * 2
    (warning,) = [e for e in logs if e["event"] == "partitioner_mismatch"]
    assert warning["log_level"] == "warning"
    assert "murmur2_random" in warning["detail"]


def test_unkeyed_records_and_other_topics_are_ignored() -> None:
    seen: list[Mismatch] = []
    check = PartitionerCheck({"preds"}, on_mismatch=seen.append)
    check.observe([_r("preds", 0, None), _r("preds", 1, None)])
    check.observe([_r("preds", 0, b"m"), _r("serving", 1, b"m")])
    assert seen == []


def test_memory_is_bounded() -> None:
    check = PartitionerCheck({"preds"}, capacity=10)
    check.observe([_r("preds", 0, f"m{i}".encode()) for i in range(1000)])
    assert len(check._seen) == 10
    # forgotten keys start over: no mismatch for m0 on another partition
    assert check.observe([_r("preds", 1, b"m0")]) == []
