"""A corrupt snapshot in the changelog does not crash-loop a restart: the key is
restored fresh, logged once, and the next checkpoint overwrites the bad record."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from pipeline.core.monitor import MonitorKey
from pipeline.core.records import Message, Record
from pipeline.io.memory import MemoryGroup, MemorySource, MemoryTransactionalSink
from pipeline.runtime import loop as loop_module
from pipeline.runtime.loop import Loop
from pipeline.state.changelog import decode_changelog, encode_entry


def _corrupt(sink: MemoryTransactionalSink, partition: int, count: int) -> list[str]:
    """Append garbage for ``count`` detector entries of ``partition``'s changelog."""
    snapshot = decode_changelog(sink.changelog(partition))
    keys = sorted(k for k in snapshot.entries if k.startswith("detector:"))[:count]
    assert len(keys) == count
    for key in keys:
        state = dict(snapshot.entries[key])
        state["detector"] = {**state["detector"], "state": {"garbage": [1, "x"]}}
        k, v = encode_entry(partition, key, state, snapshot.positions)
        sink.committed.append(Message("state", k, v, partition=partition))
    return keys


def test_a_restart_over_a_corrupt_snapshot_goes_on_and_rewrites_it(
    records: list[Record], make_loop: Callable[..., Loop], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a logger not yet cached by an earlier test's configure_logging, so capture_logs sees it
    monkeypatch.setattr(loop_module, "log", structlog.get_logger("driftline.runtime"))
    group, sink = MemoryGroup(), MemoryTransactionalSink()
    half = [r for r in records if r.offset < 1200]
    make_loop(MemorySource(half, group=group), sink).run()
    bad = _corrupt(sink, 0, 2)

    with capture_logs() as logs:
        loop = make_loop(MemorySource(records, group=group), sink)
        loop.run()  # restores partition 0 over the garbage: must not raise
    quarantined = [e for e in logs if e["event"] == "key_quarantined"]
    assert sorted(e["key"] for e in quarantined) == sorted(
        str(MonitorKey.from_state_key(k)) for k in bad
    )
    assert {e["stage"] for e in quarantined} == {"restore"}
    assert loop.processor.stats["quarantined:restore"] == 2
    assert group.committed[("preds", 0)] == 1 + max(r.offset for r in records if r.partition == 0)

    latest = decode_changelog(sink.changelog(0)).entries
    for key in bad:  # overwritten by the fresh detector's snapshot
        assert "garbage" not in orjson.dumps(latest[key]["detector"]).decode()
    with capture_logs() as logs:
        again = make_loop(MemorySource(records, group=group), sink)
        again.run()
    assert again.processor.stats["quarantined:restore"] == 0
    assert not [e for e in logs if e["event"] == "key_quarantined"]
