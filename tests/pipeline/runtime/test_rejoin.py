"""A member that was never assigned anything rejoins its group a bounded number of
times before the never_assigned exit; one that got partitions never does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.runtime import sidecar as sidecar_module
from pipeline.runtime.kafka_trouble import KafkaTrouble
from pipeline.runtime.metrics import Metrics
from pipeline.runtime.sidecar import MAX_REJOINS, REJOIN_AFTER_S, SidecarHooks


class RejoinCounter:
    def __init__(self) -> None:
        self.rejoins = 0

    def rejoin(self) -> None:
        self.rejoins += 1


def hooks_at(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, source: Any
) -> tuple[SidecarHooks, dict[str, float]]:
    clock = {"now": 1000.0}
    monkeypatch.setattr(sidecar_module.time, "monotonic", lambda: clock["now"])
    hooks = SidecarHooks(settings, Metrics(), source, KafkaTrouble(settings), threading.Event())
    return hooks, clock


def test_never_assigned_rejoins_every_interval_at_most_max_times(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(runtime={"liveness_timeout_s": 600})
    source = RejoinCounter()
    hooks, clock = hooks_at(monkeypatch, settings, source)
    hooks._warn_if_unassigned(set())  # starts the clock
    for step in range(1, 2 * MAX_REJOINS + 2):
        clock["now"] += REJOIN_AFTER_S + 1
        hooks._warn_if_unassigned(set())
        assert source.rejoins == min(step, MAX_REJOINS)


def test_a_member_that_was_assigned_never_rejoins(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(runtime={"liveness_timeout_s": 600})
    source = RejoinCounter()
    hooks, clock = hooks_at(monkeypatch, settings, source)
    hooks._warn_if_unassigned({("preds", 0)})
    hooks._warn_if_unassigned(set())  # revoked, e.g. a second member took it
    clock["now"] += 10 * REJOIN_AFTER_S
    hooks._warn_if_unassigned(set())
    assert source.rejoins == 0


def test_time_while_the_broker_is_unreachable_does_not_count(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(runtime={"liveness_timeout_s": 600})
    source = RejoinCounter()
    hooks, clock = hooks_at(monkeypatch, settings, source)
    hooks.unreachable_s = lambda: 5.0
    for _ in range(5):
        clock["now"] += REJOIN_AFTER_S + 1
        hooks._warn_if_unassigned(set())
    assert source.rejoins == 0
