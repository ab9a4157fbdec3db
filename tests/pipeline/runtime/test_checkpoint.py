"""The checkpoint's order, per delivery mode, as seen by the source and the sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.core.processor import Processor
from pipeline.core.records import Record
from pipeline.io.memory import MemoryGroup, MemorySink, MemorySource, MemoryTransactionalSink
from pipeline.runtime.checkpoint import Checkpoint, Delivery
from pipeline.runtime.loop import Loop
from pipeline.runtime.stores import ChangelogStore


class Journal:
    """Wraps a source or sink; appends ``(name, method, detail)`` for every call."""

    def __init__(self, name: str, inner: Any, log: list[tuple[str, str, str]]) -> None:
        self.name, self.inner, self.log = name, inner, log

    def __getattr__(self, method: str) -> Any:
        attr = getattr(self.inner, method)
        if not callable(attr) or method in ("changelog", "poll", "rebalance_events"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            detail = args[0].kind if method == "send" else ""
            self.log.append((self.name, method, detail))
            return attr(*args, **kwargs)

        return call

    @property
    def exhausted(self) -> bool:
        return bool(self.inner.exhausted)


def _steps(log: list[tuple[str, str, str]]) -> list[str]:
    """The journal with runs of equal sends collapsed: ``sink.send:alert`` once per run."""
    out: list[str] = []
    for name, method, detail in log:
        step = f"{name}.{method}" + (
            f":{'output' if detail != 'state' else 'state'}" if detail else ""
        )
        if not out or out[-1] != step:
            out.append(step)
    return out


def _one_batch(make_records: Callable[..., list[Record]]) -> list[Record]:
    return make_records(events=400, bad_every=50)  # dead letters: outputs in every batch


def test_exactly_once_outputs_then_changelog_then_one_commit_with_the_offsets(
    make_records: Callable[..., list[Record]], make_loop: Callable[..., Loop]
) -> None:
    log: list[tuple[str, str, str]] = []
    inner = MemoryTransactionalSink()
    source = Journal("source", MemorySource(_one_batch(make_records)), log)
    sink = Journal("sink", inner, log)
    loop = make_loop(source, sink)
    loop._offsets_worker = None  # add_offsets inline, so the journal order is exact
    assert loop.run_once()
    assert _steps(log) == [
        "sink.begin",
        "source.group_metadata",
        "sink.add_offsets",
        "sink.send:output",
        "sink.send:state",
        "sink.commit",
    ]
    # The offsets were committed by the transaction, not by the source.
    assert inner.transactions == 1
    assert source.inner.committed == {("preds", 0): 400}


def test_at_least_once_outputs_durable_before_changelog_before_offsets(
    make_records: Callable[..., list[Record]], make_loop: Callable[..., Loop]
) -> None:
    log: list[tuple[str, str, str]] = []
    source = Journal("source", MemorySource(_one_batch(make_records)), log)
    sink = Journal("sink", MemorySink(), log)
    assert make_loop(source, sink).run_once()
    assert _steps(log) == [
        "sink.send:output",
        "sink.flush",
        "sink.send:state",
        "sink.flush",
        "source.commit",
    ]
    assert source.inner.committed == {("preds", 0): 400}


def test_an_aborted_checkpoint_leaves_no_output_no_state_and_no_offsets(
    make_settings: Callable[..., Any], make_records: Callable[..., list[Record]]
) -> None:
    settings = make_settings()
    records = _one_batch(make_records)
    group, sink = MemoryGroup(), MemoryTransactionalSink()
    source = MemorySource(records, group=group)
    processor = Processor(settings)
    checkpoint = Checkpoint(
        records,
        processor=processor,
        source=source,
        delivery=Delivery.exactly_once(sink),
        store=ChangelogStore(sink.changelog),
        positions={},
    )
    checkpoint.begin()  # then the batch fails before its commit:
    outputs = processor.process_batch(records)
    for messages in outputs:
        for message in messages:
            sink.send(message)
    checkpoint.abort()
    assert sink.committed == [] and sink.aborts == 1
    assert group.committed == {}
    assert checkpoint.offsets == {("preds", 0): 400}


def test_the_offsets_are_the_next_to_read_per_partition(
    make_settings: Callable[..., Any],
) -> None:
    records = [Record("a", 0, 5, b"{}"), Record("a", 1, 2, b"{}"), Record("a", 0, 9, b"{}")]
    sink = MemorySink()
    checkpoint = Checkpoint(
        records,
        processor=Processor(make_settings()),
        source=MemorySource(records),
        delivery=Delivery.at_least_once(sink),
        store=ChangelogStore(sink.changelog),
        positions={},
    )
    assert checkpoint.offsets == {("a", 0): 10, ("a", 1): 3}
