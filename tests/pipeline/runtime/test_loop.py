from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from pipeline.config import Settings
from pipeline.core.processor import Processor
from pipeline.core.records import Record
from pipeline.generate import DriftSpec
from pipeline.io.memory import MemorySink, MemorySource
from pipeline.runtime.loop import FailFastError, Runtime


class TestRuntime:
    def test_alerts_are_flushed_before_offsets_are_committed(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        settings = make_settings()
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
        stats = Runtime(Processor(settings), source, sink, settings.runtime).run()
        assert stats.events == 4000
        assert stats.alerts >= 1
        assert all(pending == 0 for pending, _ in commits)
        assert source.committed == {("preds", 0): 4000}
        alert = orjson.loads(sink.of_kind("alert")[0].value)
        assert alert["signal"] == "feature:amount"
        assert alert["source"]["offset"] >= 2000

    def test_bad_records_become_dead_letters_and_the_stream_goes_on(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        settings = make_settings()
        records = make_records(events=300, bad_every=50)
        sink = MemorySink()
        stats = Runtime(Processor(settings), MemorySource(records), sink, settings.runtime).run()
        letters = sink.of_kind("dead_letter")
        assert stats.dead_letters == len(letters) == 6
        assert [dict(m.headers)["dl_offset"] for m in letters] == [
            str(o).encode() for o in range(49, 300, 50)
        ]
        assert {m.value for m in letters} == {records[o].value for o in range(49, 300, 50)}

    def test_fail_fast_stops_before_committing_the_bad_record(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        settings = make_settings(runtime={"fail_fast": True, "max_batch_events": 10})
        source = MemorySource(make_records(events=100, bad_every=25))
        with pytest.raises(FailFastError, match="@24"):
            Runtime(Processor(settings), source, MemorySink(), settings.runtime).run()
        assert source.committed == {("preds", 0): 20}
