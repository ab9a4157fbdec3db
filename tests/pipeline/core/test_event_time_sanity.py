"""One record cannot reset a partition or lock it: future timestamps, junk model ids.

* An event stamped more than ``limits.max_future_skew`` ahead of its record's Kafka
  timestamp is dead-lettered (``timestamp_out_of_range``); without a Kafka timestamp
  the partition's watermark moves by at most that much (and half the idle expiry)
  per event. Either way one far-future event expires nothing that was seen recently,
  and idle expiry keeps working afterwards.
* At the cap on unknown models, a new unknown model takes the place of one idle for
  ``limits.unknown_model_idle``: junk ids lock a partition out for that long, not for
  the idle expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.errors import ConfigError
from tests.pipeline.core.helpers import settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CONFIG: dict[str, Any] = {
    "models": {
        "m": {
            "features": {"amount": "numeric"},
            "default_monitors": False,
            "monitors": [
                {"signal": "feature:amount", "detector": "page_hinkley"},
                {"signal": "prediction", "detector": "entropy"},
            ],
        }
    },
    "default_model": {
        "default_monitors": False,
        "monitors": [{"signal": "feature:amount", "detector": "page_hinkley"}],
    },
    "limits": {"idle_expiry": "1h", "max_unknown_models": 5},
}


def _event(model: str, at: datetime | str, i: int) -> bytes:
    stamp = at if isinstance(at, str) else at.isoformat()
    return orjson.dumps(
        {
            "schema": "driftline.prediction.v1",
            "event_id": f"{model}-{i}",
            "model_id": model,
            "model_version": "1",
            "timestamp": stamp,
            "prediction": "a" if i % 3 else "b",
            "features": {"amount": float(i % 7)},
        }
    )


class Stream:
    """Records of one partition, offsets in order, with or without Kafka timestamps."""

    def __init__(self, processor: Processor, *, broker_time: bool) -> None:
        self.processor = processor
        self.broker_time = broker_time
        self.offset = 0

    def send(self, model: str, at: datetime, stamp: datetime | str | None = None) -> list[Message]:
        ms = int(at.timestamp() * 1000) if self.broker_time else None
        value = _event(model, at if stamp is None else stamp, self.offset)
        record = Record("preds", 0, self.offset, value, model.encode(), ms)
        self.offset += 1
        return self.processor.process(record)


def _keys(processor: Processor, model: str) -> int:
    part = processor.engine.partitions[0]
    return sum(1 for lru in part.keys.values() for key in lru if key.model_id == model)


def _window(processor: Processor, signal: str) -> int:
    part = processor.engine.partitions[0]
    (state,) = [s for k, s in part.keys[True].items() if k.signal == signal]
    return state.window_events


FAR = "2099-12-31T23:59:59Z"


class TestFutureEvents:
    def test_beyond_the_skew_of_the_kafka_timestamp_is_dead_lettered(self) -> None:
        processor = Processor(settings(**CONFIG), {"preds": "prediction"})
        stream = Stream(processor, broker_time=True)
        for i in range(100):
            stream.send("m", T0 + timedelta(seconds=i))
        (message,) = stream.send("m", T0 + timedelta(seconds=100), FAR)
        headers = dict(message.headers)
        assert headers["dl_reason"] == b"timestamp_out_of_range"
        assert b"limits.max_future_skew" in headers["dl_detail"]
        assert processor.stats["dead_letter:timestamp_out_of_range"] == 1
        # within the skew (a producer's clock a little behind) is fine
        assert stream.send("m", T0 + timedelta(seconds=101), T0 + timedelta(hours=23)) == []

    @pytest.mark.parametrize("broker_time", [True, False])
    def test_one_far_future_event_expires_nothing_and_expiry_goes_on(
        self, broker_time: bool
    ) -> None:
        processor = Processor(settings(**CONFIG), {"preds": "prediction"})
        stream = Stream(processor, broker_time=broker_time)
        for i in range(200):
            stream.send("m", T0 + timedelta(seconds=i))
            if i < 50:
                stream.send("unknown-a", T0 + timedelta(seconds=i))
        assert _keys(processor, "m") == 2 and _keys(processor, "unknown-a") == 1
        before = _window(processor, "feature:amount")
        stream.send("m", T0 + timedelta(seconds=200), FAR)
        t = T0 + timedelta(seconds=201)
        stream.send("m", t)
        assert processor.stats["expired_keys"] == 0
        assert _keys(processor, "m") == 2
        assert _window(processor, "feature:amount") >= before + 1  # the same detector
        # expiry keeps working: unknown-a (last seen at 49 s) goes once an hour passed
        for minute in range(1, 90):
            stream.send("m", t + timedelta(minutes=minute))
        assert _keys(processor, "unknown-a") == 0
        assert processor.stats["expired_keys"] == 1
        assert _keys(processor, "m") == 2

    def test_without_kafka_timestamps_the_watermark_moves_by_at_most_the_step(self) -> None:
        config = {**CONFIG, "limits": {**CONFIG["limits"], "max_future_skew": "10m"}}
        processor = Processor(settings(**config), {"preds": "prediction"})
        stream = Stream(processor, broker_time=False)
        stream.send("m", T0)
        stream.send("m", T0, FAR)
        watermark = processor.engine.partitions[0].watermark
        assert watermark == int(T0.timestamp() * 1_000_000) + 600_000_000
        # a real gap is caught up over a few events
        later = T0 + timedelta(hours=2)
        for _ in range(12):
            stream.send("m", later)
        assert processor.engine.partitions[0].watermark == int(later.timestamp() * 1_000_000)

    def test_a_far_future_event_does_not_keep_its_keys_from_expiring(self) -> None:
        processor = Processor(settings(**CONFIG), {"preds": "prediction"})
        stream = Stream(processor, broker_time=False)
        stream.send("m", T0)
        stream.send("unknown-b", T0, FAR)
        part = processor.engine.partitions[0]
        assert part.watermark is not None
        assert part.models["unknown-b"].last_seen <= part.watermark
        for minute in range(1, 150):
            stream.send("m", T0 + timedelta(minutes=minute))
        assert "unknown-b" not in part.models and _keys(processor, "unknown-b") == 0

    def test_the_skew_is_validated_and_named(self) -> None:
        with pytest.raises(ConfigError, match=r"limits\.max_future_skew"):
            settings(limits={"max_future_skew": 0})
        with pytest.raises(ConfigError, match=r"limits\.unknown_model_idle"):
            settings(limits={"unknown_model_idle": "-1h"})
        assert settings().limits.max_future_skew == 86400.0
        assert settings().limits.unknown_model_idle == 3600.0


class TestUnknownModelCap:
    @pytest.mark.parametrize("broker_time", [True, False])
    def test_after_junk_ids_a_new_model_is_accepted_within_the_documented_time(
        self, broker_time: bool
    ) -> None:
        config = {**CONFIG, "limits": {"max_unknown_models": 1000}}  # idle expiry: 7 days
        processor = Processor(settings(**config), {"preds": "prediction"})
        stream = Stream(processor, broker_time=broker_time)
        for i in range(1000):
            stream.send(f"junk-{i}", T0 + timedelta(milliseconds=i))
        t = T0 + timedelta(seconds=1)
        (refused,) = stream.send("legit", t)
        assert dict(refused.headers)["dl_reason"] == b"model_cap"
        assert b"limits.unknown_model_idle" in dict(refused.headers)["dl_detail"]
        # the configured model runs meanwhile, so event time goes on
        for minute in range(1, 61):
            stream.send("m", t + timedelta(minutes=minute))
        assert stream.send("legit", t + timedelta(minutes=60, seconds=1)) == []
        assert processor.stats["evicted_models"] == 1
        assert _keys(processor, "legit") == 1
        assert processor.stats["refused:model_cap"] == 1

    def test_an_active_unknown_model_is_not_displaced(self) -> None:
        processor = Processor(settings(**CONFIG), {"preds": "prediction"})  # cap 5
        stream = Stream(processor, broker_time=True)
        for i in range(5):
            stream.send(f"u{i}", T0)
        for minute in range(1, 120):
            stream.send("u0", T0 + timedelta(minutes=minute))  # u0 stays active
            stream.send("m", T0 + timedelta(minutes=minute))
        t = T0 + timedelta(minutes=120)
        for i in range(5, 9):
            assert stream.send(f"u{i}", t) == []  # u1..u4 were idle: replaced
        (refused,) = stream.send("u9", t)  # only u0 (active) and the new ones are left
        assert dict(refused.headers)["dl_reason"] == b"model_cap"
        assert _keys(processor, "u0") == 1
