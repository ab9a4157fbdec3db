"""An assignment that covers a partition number of some co-partitioned inputs and not
of the others is seen, and rejoined over after a grace, a bounded number of times."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import Settings
from pipeline.core.records import Record
from pipeline.runtime import sidecar as sidecar_module
from pipeline.runtime.assignment_check import IncompleteAssignment, missing_partitions
from pipeline.runtime.kafka_trouble import KafkaTrouble
from pipeline.runtime.metrics import Metrics
from pipeline.runtime.sidecar import ASSIGNMENT_CHECK_S, SidecarHooks


def range_share(counts: dict[str, int], members: int, member: int) -> set[tuple[str, int]]:
    """What Kafka's range assignor gives ``member`` of ``members`` (all subscribed to all)."""
    share = set()
    for topic, n in counts.items():
        per, extra = divmod(n, members)
        start = per * member + min(member, extra)
        length = per + (1 if member < extra else 0)
        share |= {(topic, p) for p in range(start, start + length)}
    return share


@given(
    width=st.integers(1, 12),
    narrow=st.integers(1, 12),
    members=st.integers(1, 8),
    data=st.data(),
)
def test_a_range_assignment_is_never_incomplete(
    width: int, narrow: int, members: int, data: st.DataObject
) -> None:
    counts = {"preds": width, "labels": width, "features": width, "kserve": narrow}
    member = data.draw(st.integers(0, members - 1))
    assert missing_partitions(range_share(counts, members, member), counts) == set()


def test_a_topic_left_out_of_the_assignment_is_missing() -> None:
    counts = {"preds": 3, "labels": 3, "kserve": 1}
    owned = {("preds", 0), ("preds", 1), ("kserve", 0)}
    assert missing_partitions(owned, counts) == {("labels", 0), ("labels", 1)}


def test_topics_without_metadata_or_nothing_owned_are_not_judged() -> None:
    assert missing_partitions(set(), {"preds": 2, "labels": 2}) == set()
    assert missing_partitions({("preds", 0)}, {"preds": 1, "labels": 0}) == set()
    assert missing_partitions({("preds", 0)}, {}) == set()


def test_rejoins_after_the_grace_then_every_retry_at_most_max_times() -> None:
    check = IncompleteAssignment(grace_s=15, retry_s=30, max_rejoins=2)
    gap = {("labels", 0)}
    times = [0, 10, 16, 20, 40, 47, 80, 200]
    asked = [t for t in times if check.should_rejoin(gap, t)]
    assert asked == [16, 47]


def test_a_complete_assignment_starts_the_count_again() -> None:
    check = IncompleteAssignment(grace_s=15, retry_s=30, max_rejoins=1)
    gap = {("labels", 0)}
    assert not check.should_rejoin(gap, 0)
    assert check.should_rejoin(gap, 15)
    assert not check.should_rejoin(gap, 100)  # used up
    assert not check.should_rejoin(set(), 101)
    assert not check.should_rejoin(gap, 102)  # a new stretch: its own grace
    assert check.should_rejoin(gap, 117)


class FakeSource:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.rejoins = 0

    def partition_counts(self) -> dict[str, int]:
        return self.counts

    def rejoin(self) -> None:
        self.rejoins += 1


class FakeLoop:
    def __init__(self, owned: set[tuple[str, int]]) -> None:
        self.owned = owned


def test_the_sidecar_rejoins_between_batches_only(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    clock = {"now": 1000.0}
    monkeypatch.setattr(sidecar_module.time, "monotonic", lambda: clock["now"])
    source = FakeSource({"preds": 1, "labels": 1})
    settings = make_settings(runtime={"liveness_timeout_s": 600})
    hooks = SidecarHooks(settings, Metrics(), source, KafkaTrouble(settings), threading.Event())  # type: ignore[arg-type]
    monkeypatch.setattr(hooks, "_export_gauges", lambda loop: None)
    loop: Any = FakeLoop({("preds", 0)})
    busy = [Record("preds", 0, 7, b"{}", key=b"model-0")]
    for _ in range(20):  # a batch in every cycle: nothing is handed back mid-batch
        clock["now"] += ASSIGNMENT_CHECK_S
        hooks.cycle(loop, busy)
    assert source.rejoins == 0
    for _ in range(4):  # idle: the gap has lasted past the grace long ago
        clock["now"] += ASSIGNMENT_CHECK_S
        hooks.cycle(loop, [])
    assert source.rejoins == 1
    loop.owned = {("preds", 0), ("labels", 0)}
    for _ in range(20):
        clock["now"] += ASSIGNMENT_CHECK_S
        hooks.cycle(loop, [])
    assert source.rejoins == 1
