"""A message the sink refuses on every attempt is given up after REJECTED_ATTEMPTS: the
partition commits past it instead of retrying the same offset forever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog

from pipeline.core.records import Message, Record
from pipeline.io.errors import MessageRejected
from pipeline.io.memory import MemorySink, MemorySource, MemoryTransactionalSink
from pipeline.runtime import loop as loop_module
from pipeline.runtime.loop import Loop, LoopHooks
from pipeline.runtime.rejections import REJECTED_ATTEMPTS, GivenUp, Rejections, identity
from pipeline.state.changelog import POSITION_KEY
from tests.pipeline.runtime.conftest import alert_ids


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A logger not yet cached by an earlier test's configure_logging, so capture_logs
    sees it."""
    monkeypatch.setattr(loop_module, "log", structlog.get_logger("driftline.runtime"))


class Refusing:
    """Wraps a sink; refuses every message ``refuse`` picks, as a broker refuses a record
    that is too large (at send, like kafka-python's own size check)."""

    def __init__(self, inner: Any, refuse: Callable[[Message], bool]) -> None:
        self.inner = inner
        self.refuse = refuse
        self.refusals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, message: Message) -> None:
        if self.refuse(message):
            self.refusals += 1
            raise MessageRejected("producing failed", message, "MessageSizeTooLargeError: big")
        self.inner.send(message)


class Recorder(LoopHooks):
    def __init__(self) -> None:
        self.given: list[GivenUp] = []

    def aborted(self, error: BaseException) -> None:
        pass

    def gave_up(self, given: GivenUp) -> None:
        self.given.append(given)


def _ends(records: list[Record]) -> dict[tuple[str, int], int]:
    return {(r.topic, r.partition): r.offset + 1 for r in records}


def test_a_refused_dead_letter_is_left_out_after_the_limit_and_the_partition_moves_on(
    make_records: Callable[..., list[Record]], make_loop: Callable[..., Loop]
) -> None:
    records = make_records(events=1200, bad_every=500)  # two bad records
    expected_alerts = MemoryTransactionalSink()
    make_loop(MemorySource(records), expected_alerts).run()
    inner = MemoryTransactionalSink()
    sink = Refusing(
        inner,
        lambda m: m.kind == "dead_letter" and dict(m.headers).get("dl_offset") == b"499",
    )
    source, hooks = MemorySource(records), Recorder()
    loop = make_loop(source, sink, hooks=hooks)
    with structlog.testing.capture_logs() as logs:
        loop.run(recover=True)
    assert sink.refusals == REJECTED_ATTEMPTS and inner.aborts == REJECTED_ATTEMPTS
    assert source.committed == _ends(records)  # committed past it
    (given,) = hooks.given
    assert (given.kind, given.attempts) == ("dead_letter", REJECTED_ATTEMPTS)
    assert given.reason.startswith("MessageSizeTooLargeError")
    (error,) = [e for e in logs if e["event"] == "output_given_up"]
    assert error["log_level"] == "error" and error["offset"] == 499
    # the other dead letter and every alert are there, once
    assert [dict(m.headers)["dl_offset"] for m in inner.of_kind("dead_letter")] == [b"999"]
    assert alert_ids(inner.committed) == alert_ids(expected_alerts.committed)
    assert loop.progress.retries[("preds", 0)] == REJECTED_ATTEMPTS
    assert loop.progress.partitions[("preds", 0)].attempts == 0


def test_a_refused_state_entry_becomes_a_tombstone(
    make_records: Callable[..., list[Record]], make_loop: Callable[..., Loop]
) -> None:
    records = make_records(events=600)
    inner = MemorySink()
    victim: list[bytes] = []

    def refuse(m: Message) -> bool:
        if m.kind != "state" or m.value is None or m.key == POSITION_KEY.encode():
            return False
        if not victim:
            victim.append(m.key or b"")
        return m.key == victim[0]

    sink = Refusing(inner, refuse)
    source, hooks = MemorySource(records), Recorder()
    make_loop(source, sink, hooks=hooks).run(recover=True)
    assert source.committed == _ends(records)
    assert [g.kind for g in hooks.given] == ["state"]
    written = [value for key, value in inner.changelog(0) if key == victim[0]]
    assert written and all(value is None for value in written)


def test_refusals_are_counted_per_identity_and_bounded() -> None:
    rejections = Rejections(limit=3, capacity=2)
    record = Record("t", 0, 7, b"x")
    message = Message("dead_letter", b"k", b"v")
    key = identity(record, message)
    assert key == identity(Record("t", 0, 7, b"x"), Message("dead_letter", b"k", b"v"))
    assert key != identity(Record("t", 0, 8, b"x"), message)
    assert rejections.refused(key, "dead_letter", "E") is None
    assert rejections.refused(key, "dead_letter", "E") is None
    assert rejections.refused(key, "dead_letter", "E") == GivenUp("dead_letter", "E", 3)
    assert rejections.given_up(key)
    for offset in range(10):  # old entries are forgotten
        other = identity(Record("t", 0, 100 + offset, b"x"), message)
        for _ in range(3):
            rejections.refused(other, "dead_letter", "E")
    assert not rejections.given_up(key)
    # a state entry is the same identity whatever its content
    a = identity(None, Message("state", b"s", b"1", partition=0))
    assert a == identity(None, Message("state", b"s", b"2", partition=0))
