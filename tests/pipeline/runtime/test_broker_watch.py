"""The broker watch: a warning after a few seconds without a connection, repeated, with the
cause; an info line when the connection is back."""

from __future__ import annotations

import pytest
import structlog

from pipeline.io.diagnose import Diagnosis
from pipeline.runtime import broker_watch
from pipeline.runtime.broker_watch import BrokerWatch


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A logger not yet cached by an earlier test's configure_logging, so capture_logs
    sees it."""
    monkeypatch.setattr(broker_watch, "log", structlog.get_logger("driftline.kafka"))


REFUSED = Diagnosis("unreachable", "kafka.bootstrap_servers", "cannot connect to h:9: refused")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _watch(state: dict[str, bool | None], clock: Clock) -> BrokerWatch:
    return BrokerWatch(
        lambda: state["connected"],
        lambda: REFUSED,
        warn_after_s=5,
        repeat_s=30,
        clock=clock,
    )


def test_an_outage_is_warned_after_a_few_seconds_then_every_period_then_cleared() -> None:
    clock, state = Clock(), {"connected": True}
    watch = _watch(state, clock)
    with structlog.testing.capture_logs() as logs:
        watch.tick()
        state["connected"] = False
        for second in range(1, 96):  # a 95 s outage, one look per second
            clock.now = float(second)
            watch.tick()
        state["connected"] = True
        clock.now = 96.0
        watch.tick()
    warnings = [e for e in logs if e["event"] == "kafka_unreachable"]
    # first after 5 s (down since t=1), then every 30 s
    assert [w["seconds"] for w in warnings] == [5.0, 35.0, 65.0]
    assert all(w["log_level"] == "warning" and w["cause"] == "unreachable" for w in warnings)
    assert "refused" in warnings[0]["detail"]
    (back,) = [e for e in logs if e["event"] == "kafka_reachable"]
    assert back["after_s"] == 95.0
    assert watch.unreachable_s() == 0.0


def test_a_blip_shorter_than_the_delay_says_nothing() -> None:
    clock, state = Clock(), {"connected": False}
    watch = _watch(state, clock)
    with structlog.testing.capture_logs() as logs:
        for second in range(4):
            clock.now = float(second)
            watch.tick()
        assert watch.unreachable_s() == 3.0
        state["connected"] = True
        watch.tick()
    assert logs == []


def test_a_client_that_does_not_say_is_never_reported() -> None:
    clock, state = Clock(), {"connected": None}
    watch = _watch(state, clock)
    with structlog.testing.capture_logs() as logs:
        for second in range(100):
            clock.now = float(second)
            watch.tick()
    assert logs == [] and watch.unreachable_s() == 0.0
