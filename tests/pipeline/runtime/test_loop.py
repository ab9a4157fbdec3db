"""The loop over finite in-memory input: outputs, dead letters, fail-fast, ownership."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from pipeline.config import Settings
from pipeline.core.records import Record
from pipeline.generate import DriftSpec
from pipeline.io.memory import MemorySink, MemorySource, MemoryTransactionalSink
from pipeline.runtime.loop import FailFastError, Loop


class TestLoop:
    def test_alerts_are_flushed_before_offsets_are_committed(
        self,
        make_settings: Callable[..., Settings],
        make_records: Callable[..., list[Record]],
        make_loop: Callable[..., Loop],
    ) -> None:
        records = make_records(
            events=4000, drifts=[DriftSpec(signal="feature:amount", at=2000, magnitude=2.0)]
        )
        source, sink = MemorySource(records), MemorySink()

        commits: list[tuple[int, int]] = []
        original_commit = source.commit

        def commit(offsets: dict[tuple[str, int], int]) -> None:
            commits.append((len(sink.pending), len(sink.flushed)))
            original_commit(offsets)

        source.commit = commit  # type: ignore[method-assign]
        stats = make_loop(source, sink, settings=make_settings()).run()
        assert stats.events == 4000
        assert stats.alerts >= 1
        assert commits and all(pending == 0 for pending, _ in commits)
        assert source.committed == {("preds", 0): 4000}
        alert = orjson.loads(sink.of_kind("alert")[0].value)
        assert alert["signal"] == "feature:amount"
        assert alert["source"]["offset"] >= 2000

    def test_bad_records_become_dead_letters_and_the_stream_goes_on(
        self,
        make_settings: Callable[..., Settings],
        make_records: Callable[..., list[Record]],
        make_loop: Callable[..., Loop],
    ) -> None:
        records = make_records(events=300, bad_every=50)
        sink = MemorySink()
        stats = make_loop(MemorySource(records), sink, settings=make_settings()).run()
        letters = sink.of_kind("dead_letter")
        assert stats.dead_letters == len(letters) == 6
        assert [dict(m.headers)["dl_offset"] for m in letters] == [
            str(o).encode() for o in range(49, 300, 50)
        ]
        assert {m.value for m in letters} == {records[o].value for o in range(49, 300, 50)}

    def test_fail_fast_stops_before_committing_the_bad_record(
        self,
        make_settings: Callable[..., Settings],
        make_records: Callable[..., list[Record]],
        make_loop: Callable[..., Loop],
    ) -> None:
        settings = make_settings(runtime={"fail_fast": True, "max_batch_events": 10})
        source = MemorySource(make_records(events=100, bad_every=25))
        with pytest.raises(FailFastError, match="@24"):
            make_loop(source, MemorySink(), settings=settings).run()
        assert source.committed == {("preds", 0): 20}

    def test_fail_fast_aborts_the_transaction(
        self,
        make_settings: Callable[..., Settings],
        make_records: Callable[..., list[Record]],
        make_loop: Callable[..., Loop],
    ) -> None:
        settings = make_settings(runtime={"fail_fast": True, "max_batch_events": 10})
        source, sink = (
            MemorySource(make_records(events=100, bad_every=25)),
            MemoryTransactionalSink(),
        )
        with pytest.raises(FailFastError, match="@24"):
            make_loop(source, sink, settings=settings).run()
        assert source.committed == {("preds", 0): 20}
        assert sink.aborts == 1 and not sink.in_transaction
        assert sink.of_kind("dead_letter") == []  # record 24's batch left no trace

    def test_every_batch_saves_the_changed_state_with_its_positions(
        self,
        partitioned_records: Callable[..., list[Record]],
        make_loop: Callable[..., Loop],
    ) -> None:
        records = partitioned_records(events=2000)
        sink = MemoryTransactionalSink()
        loop = make_loop(MemorySource(records), sink)
        loop.run()
        ends = {p: max(r.offset for r in records if r.partition == p) + 1 for p in (0, 1)}
        for partition, end in ends.items():
            saved = loop.store.load(partition)
            assert saved.positions == {"preds": end}
            assert saved.entries  # detectors of this partition's models
        assert loop.positions == {p: {"preds": end} for p, end in ends.items()}

    def test_records_of_partitions_not_owned_are_not_processed(
        self,
        partitioned_records: Callable[..., list[Record]],
        make_loop: Callable[..., Loop],
    ) -> None:
        records = partitioned_records(events=2000)
        source, sink = MemorySource(records), MemorySink()
        source.revoke([("preds", 1)])
        stats = make_loop(source, sink).run()
        assert stats.events == sum(1 for r in records if r.partition == 0)
        assert set(source.committed) == {("preds", 0)}
        assert all(m.partition == 0 for m in sink.of_kind("state"))
