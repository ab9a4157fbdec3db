"""KafkaSource against the real broker: a rejoin (the sidecar's remedy for a member that
joined before its topics' metadata and was assigned nothing) leaves the group, joins it
again, gets its partitions back and goes on reading from the committed offsets."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from kafka.coordinator.assignors.range import RangePartitionAssignor

from pipeline.core.records import Record
from pipeline.io.kafka import BATCH_FETCH_MIN_BYTES, MAX_FETCH_WAIT_MS, KafkaSource
from pipeline.io.kafka_topics import produce_all
from pipeline.runtime.assignment_check import missing_partitions


def _read(source: KafkaSource, expected: int, deadline_s: float = 60) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + deadline_s
    while len(records) < expected and time.monotonic() < deadline:
        records.extend(source.poll(max_records=500, timeout_ms=500))
    return records


def test_rejoin_gets_the_partitions_back_and_reads_on(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    produce_all(kafka_bootstrap, topic, [(f"k{i}", b"first") for i in range(20)])
    source = KafkaSource(
        [topic], bootstrap_servers=kafka_bootstrap, group_id=f"rejoin-{uuid.uuid4().hex[:8]}"
    )
    try:
        first = _read(source, 20)
        assert len(first) == 20
        assert source.assignment() == {(topic, 0), (topic, 1)}
        source.commit({(r.topic, r.partition): r.offset + 1 for r in first})

        source.rejoin()
        produce_all(kafka_bootstrap, topic, [(f"k{i}", b"second") for i in range(10)])
        second = _read(source, 10)
        assert [r.value for r in second] == [b"second"] * 10  # from the committed offsets
        assert source.assignment() == {(topic, 0), (topic, 1)}
    finally:
        source.close()


def test_a_batch_window_lets_the_broker_hold_each_fetch(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """``batch_wait_ms`` (the loop's ``max_batch_ms``) becomes the broker's fetch wait, at
    most kafka-python's 500 ms default; a backlog above ``fetch_min_bytes`` is answered at
    once, so it reads as without a window."""
    topic = make_topic(partitions=2)
    produce_all(kafka_bootstrap, topic, [(f"k{i % 7}", b"x" * 700) for i in range(2000)])
    settings = {}
    for wait_ms in (0, 100, 5000):
        source = KafkaSource(
            [topic],
            bootstrap_servers=kafka_bootstrap,
            group_id=f"window-{uuid.uuid4().hex[:8]}",
            batch_wait_ms=wait_ms,
        )
        try:
            config = source._consumer.config
            settings[wait_ms] = (config["fetch_max_wait_ms"], config["fetch_min_bytes"])
            records = _read(source, 2000)
            assert len(records) == 2000
            assert {r.value for r in records} == {b"x" * 700}
        finally:
            source.close()
    assert settings == {
        0: (500, 1),  # kafka-python's defaults
        100: (100, BATCH_FETCH_MIN_BYTES),
        5000: (MAX_FETCH_WAIT_MS, BATCH_FETCH_MIN_BYTES),
    }


def test_hold_fetches_sets_the_wait_of_the_fetches_sent_next(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """The loop asks for an immediate fetch when a batch is late (``Loop.poll_batch``):
    ``hold_fetches`` changes the wait kafka-python puts in the fetch requests it builds
    from then on, never beyond the window, and reading goes on either way. Without a
    window kafka-python's default is left alone."""
    topic = make_topic(partitions=2)
    produce_all(kafka_bootstrap, topic, [(f"k{i % 7}", b"x" * 700) for i in range(400)])
    held = KafkaSource(
        [topic],
        bootstrap_servers=kafka_bootstrap,
        group_id=f"hold-{uuid.uuid4().hex[:8]}",
        batch_wait_ms=100,
    )
    plain = KafkaSource(
        [topic], bootstrap_servers=kafka_bootstrap, group_id=f"plain-{uuid.uuid4().hex[:8]}"
    )
    try:
        fetcher = held._consumer._fetcher
        assert fetcher.config["fetch_max_wait_ms"] == 100
        waits = []
        records: list[Record] = []
        for wait_ms in (0, 1000, 40, 100):
            held.hold_fetches(wait_ms)
            waits.append(fetcher.config["fetch_max_wait_ms"])
            records.extend(_read(held, 100 * len(waits) - len(records)))
        assert waits == [0, 100, 40, 100]  # at most the window
        assert len(records) == 400 and len({(r.partition, r.offset) for r in records}) == 400
        plain.hold_fetches(0)
        assert plain._consumer._fetcher.config["fetch_max_wait_ms"] == 500
    finally:
        held.close()
        plain.close()


def test_an_assignment_made_without_a_topics_metadata_is_completed_by_a_rejoin(
    kafka_bootstrap: str, make_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A topic left out of an assignment (kafka-python's range assignor skips a topic
    it has no metadata for) while the client's metadata snapshot already holds it is
    never assigned by the client itself: later refreshes match that snapshot, so
    nothing triggers a rejoin. The sidecar's check (``pipeline.runtime.assignment_check``)
    sees the gap from the source's partitions and metadata cache, and a rejoin hands
    back what was held and gets the whole share."""
    preds, labels = make_topic(), make_topic()
    produce_all(kafka_bootstrap, labels, [("k", b"label")])
    original = RangePartitionAssignor.assign.__func__  # type: ignore[attr-defined]
    left_out = []

    def leave_labels_out_once(cls: type, cluster: Any, members: Any) -> Any:
        # Once, and only while the client does have the metadata: a join made before
        # it arrived is redone by the client itself when it arrives.
        if not left_out and cluster.partitions_for_topic(labels):
            left_out.append(labels)
            real = cluster.partitions_for_topic
            cluster = SimpleNamespace(
                partitions_for_topic=lambda t: None if t == labels else real(t)
            )
        return original(cls, cluster, members)

    monkeypatch.setattr(RangePartitionAssignor, "assign", classmethod(leave_labels_out_once))
    source = KafkaSource(
        [preds, labels],
        bootstrap_servers=kafka_bootstrap,
        group_id=f"incomplete-{uuid.uuid4().hex[:8]}",
    )
    try:
        deadline = time.monotonic() + 12  # past the client's 10 s metadata refresh
        while time.monotonic() < deadline:
            assert source.poll(max_records=10, timeout_ms=500) == []
        assert left_out and source.assignment() == {(preds, 0)}
        assert missing_partitions(source.assignment(), source.partition_counts()) == {(labels, 0)}
        source.rebalance_events()

        source.rejoin()
        assert source.rebalance_events().revoked == {(preds, 0)}
        records = _read(source, 1)
        assert [(r.topic, r.value) for r in records] == [(labels, b"label")]
        assert source.assignment() == {(preds, 0), (labels, 0)}
        assert missing_partitions(source.assignment(), source.partition_counts()) == set()
    finally:
        source.close()


def test_a_partition_assigned_back_is_read_again_from_its_committed_offset(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """At an eager rebalance kafka-python 3 reports every partition revoked but keeps
    the fetch position of one assigned back to the same member. The loop drops a
    revoked partition's records and restores its state at the committed offset, so the
    source must read it again from there: here nothing is committed, and the partition
    that member ``a`` keeps when ``b`` joins is read again from its first record."""
    topic = make_topic(partitions=2)
    produce_all(kafka_bootstrap, topic, [(f"k{i}", f"v{i}".encode()) for i in range(40)])
    group = f"assigned-back-{uuid.uuid4().hex[:8]}"
    a = KafkaSource([topic], bootstrap_servers=kafka_bootstrap, group_id=group)
    b: KafkaSource | None = None
    try:
        first = _read(a, 40)
        assert len(first) == 40
        assert a.rebalance_events().assigned == {(topic, 0), (topic, 1)}

        joined = threading.Event()

        def join_b() -> None:
            nonlocal b
            b = KafkaSource([topic], bootstrap_servers=kafka_bootstrap, group_id=group)
            deadline = time.monotonic() + 60
            while not b.assignment() and time.monotonic() < deadline:
                b.poll(max_records=1, timeout_ms=200)
            joined.set()

        thread = threading.Thread(target=join_b, daemon=True)
        thread.start()
        again: list[Record] = []
        deadline = time.monotonic() + 60
        while not (joined.is_set() and len(a.assignment()) == 1) and time.monotonic() < deadline:
            again.extend(a.poll(max_records=100, timeout_ms=200))
        thread.join(timeout=5)
        assert joined.is_set() and len(a.assignment()) == 1
        events = a.rebalance_events()
        assert events.revoked == {(topic, 0), (topic, 1)} and events.assigned == a.assignment()
        ((_, kept),) = a.assignment()
        again.extend(_read(a, sum(1 for r in first if r.partition == kept) - len(again), 10))
        assert sorted(r.offset for r in again) == sorted(
            r.offset for r in first if r.partition == kept
        )
        assert {r.partition for r in again} == {kept}
    finally:
        a.close()
        if b is not None:
            b.close()


@pytest.mark.parametrize("committed", [0, 7])
def test_rejoin_reads_again_what_was_read_but_not_committed(
    kafka_bootstrap: str, make_topic: Callable[..., str], committed: int
) -> None:
    """The loop may rejoin with records fetched past its committed offset (a batch it
    dropped): after the rejoin the partition starts over at the committed offset (or
    the beginning), never at the client's old fetch position."""
    topic = make_topic(partitions=1)
    produce_all(kafka_bootstrap, topic, [("k", str(i).encode()) for i in range(30)])
    source = KafkaSource(
        [topic], bootstrap_servers=kafka_bootstrap, group_id=f"rejoin-{uuid.uuid4().hex[:8]}"
    )
    try:
        assert len(_read(source, 30)) == 30
        if committed:
            source.commit({(topic, 0): committed})
        source.rejoin()
        again = _read(source, 30 - committed)
        assert [r.offset for r in again] == list(range(committed, 30))
        assert source.rebalance_events().assigned == {(topic, 0)}
    finally:
        source.close()
