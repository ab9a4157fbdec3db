"""Committed progress per partition: pending since, failed attempts at one offset, stalls."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.records import Record
from pipeline.runtime.progress import Progress


def _records(partition: int, *offsets: int) -> list[Record]:
    return [Record("t", partition, o, b"{}") for o in offsets]


def test_a_committed_batch_clears_pending_and_attempts() -> None:
    progress = Progress()
    progress.polled(_records(0, 10, 11), now=100.0)
    assert progress.stalled(now=170.0, limit_s=60) == [("t", 0)]
    progress.committed({("t", 0): 12})
    state = progress.partitions[("t", 0)]
    assert (state.committed, state.pending_since, state.attempts) == (12, None, 0)
    assert progress.stalled(now=1000.0, limit_s=60) == []


def test_failures_at_the_same_offset_accumulate_and_a_new_offset_resets_them() -> None:
    progress = Progress()
    batch = _records(0, 10, 11)
    for attempt in range(1, 4):
        progress.polled(batch, now=float(attempt))
        progress.failed(batch)
        progress.rewound({("t", 0): 10})
        assert progress.attempts(batch) == attempt
    # pending since the first poll, not the latest retry
    assert progress.partitions[("t", 0)].pending_since == 1.0
    assert progress.retries[("t", 0)] == 3
    progress.rewound({("t", 0): 12})  # someone else committed past it
    assert progress.attempts(batch) == 0
    assert progress.retries[("t", 0)] == 3  # cumulative


def test_released_partitions_are_forgotten() -> None:
    progress = Progress()
    progress.polled(_records(1, 5), now=0.0)
    progress.released([("t", 1)])
    assert progress.stalled(now=100.0, limit_s=1) == []


@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["poll", "fail", "commit"]))))
def test_a_partition_is_stalled_only_while_it_holds_uncommitted_records(
    steps: list[tuple[int, str]],
) -> None:
    progress = Progress()
    holding: set[int] = set()
    for now, (partition, step) in enumerate(steps):
        batch = _records(partition, now)
        if step == "poll":
            progress.polled(batch, float(now))
            holding.add(partition)
        elif step == "fail":
            progress.failed(batch)
        else:
            progress.committed({("t", partition): now + 1})
            holding.discard(partition)
    assert {p for _t, p in progress.stalled(now=1e9, limit_s=1)} == holding
