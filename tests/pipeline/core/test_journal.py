"""Journals (deltas + compaction) restore exactly what a run that never stopped holds.

The processor's state is reported as journals after every batch, encoded as the
changelog store writes them, optionally compacted the way Kafka compacts a topic,
read back and restored into a fresh processor: its full state must equal the live
one's, and it must go on to produce byte-identical outputs.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core import journal
from pipeline.core.journal import JournalBook, due_values, json_exact
from pipeline.core.processor import Processor
from pipeline.core.records import Message
from pipeline.io.memory import MemorySink
from pipeline.runtime.stores import ChangelogStore
from tests.pipeline.core.helpers import (
    FULL_CONFIG,
    batches,
    full_reference,
    full_stream,
    settings,
)

Log = list[tuple[bytes | None, bytes | None]]


def compacted(log: Log) -> Log:
    """What log compaction may leave: the latest record of each key, in order
    (tombstones kept: the cleaner removes them only later)."""
    last = {key: i for i, (key, _value) in enumerate(log)}
    return [record for i, record in enumerate(log) if last[record[0]] == i]


def _journaled_run(cut: int, cuts: list[int]) -> tuple[Processor, MemorySink]:
    processor = Processor(settings(**FULL_CONFIG))
    sink = MemorySink()
    store = ChangelogStore(sink.changelog)
    for batch in batches(full_stream()[:cut], cuts):
        processor.process_batch(list(batch))
        for partition in (0, 1):
            store.save_report(sink, partition, processor.report_state(partition), {})
        sink.flush()
    return processor, sink


def _restored(log_of: Any) -> Processor:
    processor = Processor(settings(**FULL_CONFIG))
    for partition in (0, 1):
        snapshot = ChangelogStore(log_of).load(partition)
        assert snapshot.skipped == 0
        processor.restore(partition, snapshot.entries, snapshot.tail)
    return processor


def _detectors(processor: Processor, partition: int) -> dict[str, Any]:
    entries = processor.engine.state_entries(partition)
    return {k: v for k, v in entries.items() if k.startswith("detector:")}


def _continue(processor: Processor, cut: int) -> tuple[tuple[Message, ...], ...]:
    return tuple(tuple(processor.process(r)) for r in full_stream()[cut:])


@pytest.fixture(params=["default", "tight"])
def bounds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``tight``: compaction after 4 values and at most 3 live journals, so that every
    path (compaction, forced rewrites, dropped journals) runs within a short stream."""
    if request.param == "tight":
        monkeypatch.setattr(journal, "DELTA_MIN_VALUES", 4)
        monkeypatch.setattr(journal, "BASE_BYTES_PER_VALUE", 10**9)
        monkeypatch.setattr(journal, "JOURNAL_SPAN", 3)
    return str(request.param)


class TestJournalRestore:
    # the fixture only sets module constants: the same for every example
    @hsettings(
        max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        cut=st.integers(1, 2600),
        cuts=st.lists(st.integers(0, 2700), min_size=1, max_size=12),
        compact=st.booleans(),
    )
    def test_restore_equals_the_run_that_never_stopped(
        self, bounds: str, cut: int, cuts: list[int], compact: bool
    ) -> None:
        live, sink = _journaled_run(cut, cuts)

        def log_of(partition: int) -> Log:
            log = sink.changelog(partition)
            return compacted(log) if compact else log

        second = _restored(log_of)
        for partition in live.engine.partitions:
            assert second.engine.state_entries(partition) == live.engine.state_entries(partition)
        assert _continue(second, cut) == full_reference()[cut:]

    @pytest.mark.parametrize("cuts", [(300, 1200), (1500, 1510)])
    def test_a_restored_processor_journals_on_from_the_log(
        self, bounds: str, cuts: tuple[int, int]
    ) -> None:
        """Restored at ``cuts[0]``, it appends to the same log; restored again at
        ``cuts[1]``, it still equals the run that never stopped."""
        first, second = cuts
        live, _sink = _journaled_run(second, list(range(0, second, 40)))
        _, log = _journaled_run(first, list(range(0, first, 40)))
        resumed = _restored(log.changelog)
        store = ChangelogStore(log.changelog)
        for batch in batches(full_stream()[first:second], list(range(0, second - first, 40))):
            resumed.process_batch(list(batch))
            for partition in (0, 1):
                store.save_report(log, partition, resumed.report_state(partition), {})
            log.flush()
        again = _restored(lambda p: compacted(log.changelog(p)))
        for partition in live.engine.partitions:
            # (a restored model starts a new label-join page: compare the detectors)
            assert _detectors(again, partition) == _detectors(live, partition)
        assert _continue(again, second) == full_reference()[second:]

    def test_a_key_logged_in_full_is_written_as_deltas_until_due(self) -> None:
        live, _ = _journaled_run(2000, list(range(0, 2000, 50)))
        for batch in batches(full_stream()[2000:2200], [50, 100, 150]):
            live.process_batch(list(batch))
            part = live.engine.partitions[0]
            expected = {
                key.state_key()
                for key in part.changed_keys()
                if (state := part.key_state(key)) is not None
                and state.key_id is not None
                and state.fed is not None
                and state.pending + len(state.fed) < due_values(state.base_bytes)
            }
            report = live.report_state(0)
            assert expected, "the batch touches logged keys"
            assert not expected & set(report.records)
            assert len(report.deltas) == len(expected)

    def test_journals_nothing_depends_on_are_deleted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(journal, "DELTA_MIN_VALUES", 4)
        monkeypatch.setattr(journal, "BASE_BYTES_PER_VALUE", 10**9)
        monkeypatch.setattr(journal, "JOURNAL_SPAN", 3)
        _live, sink = _journaled_run(2600, list(range(0, 2600, 20)))
        log = sink.changelog(0)
        written = {k for k, v in log if k and k.startswith(b"__journal__:") and v is not None}
        deleted = {k for k, v in log if k and k.startswith(b"__journal__:") and v is None}
        alive = written - deleted
        assert len(alive) <= journal.JOURNAL_SPAN
        assert len(deleted) > 0


class TestCompactionRule:
    def test_due_values_grow_with_the_snapshot(self) -> None:
        assert due_values(10) == journal.DELTA_MIN_VALUES
        assert due_values(40_000) == 40_000 // journal.BASE_BYTES_PER_VALUE

    def test_overdue_names_the_oldest_journals_dependants(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(journal, "JOURNAL_SPAN", 2)
        book = JournalBook()
        for number, name in enumerate(["a", "b", "c"], 1):
            book.open(number)
            book.depend(name, number, latest=True)
        assert book.overdue(4) == {"a", "b"}
        book.settle("a")
        assert book.drop_settled(4) == [1]


class TestJsonExact:
    def test_plain_values_are_exact(self) -> None:
        assert json_exact([1.5, 2, "a", True, None, [0.25, 1.0], {"k": "v"}])

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), (1, 2), b"x", {1: "a"}])
    def test_values_json_would_change_are_not(self, value: object) -> None:
        assert not json_exact([1.0, value])
