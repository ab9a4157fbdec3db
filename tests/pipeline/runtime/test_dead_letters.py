"""Dead letters are logged per reason at most once an interval, with a count."""

from __future__ import annotations

import pytest
import structlog
from structlog.testing import capture_logs

from pipeline.core.processor import dead_letter
from pipeline.core.records import Message, Record
from pipeline.logs import RateLimiter
from pipeline.runtime import dead_letters
from pipeline.runtime.dead_letters import FailFastError, check_dead_letter


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    limiter = RateLimiter(dead_letters.LOG_INTERVAL_S)
    original = limiter.allow
    monkeypatch.setattr(limiter, "allow", lambda key: original(key, now=now[0]))
    monkeypatch.setattr(dead_letters, "_limiter", limiter)
    # a logger not yet cached by an earlier test's configure_logging, so capture_logs sees it
    monkeypatch.setattr(dead_letters, "log", structlog.get_logger("driftline.runtime"))
    return now


def _letter(offset: int, reason: str) -> tuple[Record, Message]:
    record = Record("preds", 0, offset, b"junk")
    return record, dead_letter(record, reason, f"detail {offset}")


def test_a_flood_is_one_line_per_reason_and_interval_with_the_count(clock: list[float]) -> None:
    with capture_logs() as logs:
        for offset in range(1000):
            record, message = _letter(offset, "model_cap")
            assert check_dead_letter(record, message, fail_fast=False) == "model_cap"
        record, message = _letter(1000, "malformed_json")
        check_dead_letter(record, message, fail_fast=False)
        clock[0] += dead_letters.LOG_INTERVAL_S
        record, message = _letter(1001, "model_cap")
        check_dead_letter(record, message, fail_fast=False)
    assert [(e["reason"], e["offset"], e.get("repeated")) for e in logs] == [
        ("model_cap", 0, None),
        ("malformed_json", 1000, None),
        ("model_cap", 1001, 999),
    ]


def test_fail_fast_raises_even_when_the_line_is_held_back(clock: list[float]) -> None:
    record, message = _letter(0, "schema_violation")
    check_dead_letter(record, message, fail_fast=False)
    with pytest.raises(FailFastError):
        check_dead_letter(record, message, fail_fast=True)
