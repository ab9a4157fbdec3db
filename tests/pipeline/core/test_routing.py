"""The column view of a batch's routes, the compiled reads of a watch list, and
routes kept across batches."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import MonitorSpec
from pipeline.core.engine import Engine
from pipeline.core.monitor import Origin, Slots, Watch
from pipeline.core.monitor_set import resolve
from pipeline.core.routing import Router, ShiftedRefs
from tests.pipeline.core.helpers import prediction, settings


def _watches(signals: list[str]) -> list[Watch]:
    out = []
    for signal in signals:
        detector = "categorical_drift" if signal == "prediction" else "page_hinkley"
        out.append(Watch(resolve(MonitorSpec(signal=signal, detector=detector), "m")))
    return out


class TestShiftedRefs:
    @given(st.lists(st.integers(0, 2**40), max_size=30), st.integers(0, 50))
    def test_equals_the_shifted_list(self, refs: list[int], j: int) -> None:
        shifted = ShiftedRefs(refs, j)
        expected = [r + j for r in refs]
        assert len(shifted) == len(expected)
        assert list(shifted) == expected
        assert [shifted[i] for i in range(len(refs))] == expected
        assert shifted[1:4] == expected[1:4]


class TestSlotsValues:
    EVENT = SimpleNamespace(prediction="a", confidence=0.4)

    def test_features_then_attributes(self) -> None:
        slots = Slots(_watches(["feature:x", "feature:y", "prediction", "confidence"]))
        features = {"x": 1.0, "z": 3.0}
        assert slots.values(self.EVENT, features) == [1.0, None, "a", 0.4]

    def test_any_other_order_reads_the_same(self) -> None:
        slots = Slots(_watches(["confidence", "feature:x", "prediction", "feature:y"]))
        assert slots.values(self.EVENT, {"y": 2.0}) == [0.4, None, "a", 2.0]

    @given(
        st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True),
        st.dictionaries(
            st.sampled_from("abcdefg"), st.none() | st.floats(allow_nan=False) | st.text()
        ),
    )
    def test_present_or_absent_features_read_as_get_reads_them(
        self, names: list[str], features: dict[str, Any]
    ) -> None:
        """All present (read at once) or some absent (read one by one): the values
        ``features.get`` gives, None where absent."""
        slots = Slots(_watches([f"feature:{n}" for n in names] + ["confidence"]))
        expected = [features.get(n) for n in names] + [0.4]
        assert slots.values(self.EVENT, features) == expected


def _engine() -> Engine:
    return Engine(
        settings(
            models={
                "m": {
                    "monitors": [
                        {"signal": "confidence", "detector": "page_hinkley"},
                        {"signal": "prediction", "detector": "categorical_drift"},
                    ]
                }
            }
        )
    )


def _batch(engine: Engine, start: int, n: int = 3) -> None:
    events = [prediction(t=float(t), confidence=0.5) for t in range(start, start + n)]
    engine.process([(e, Origin("events", 0, t)) for t, e in enumerate(events, start)])


class TestRoutesAcrossBatches:
    """A route outlives its batch: later batches reuse its keys without resolving
    them again, until a key of its partition is dropped or the partition replaced."""

    def test_a_later_batch_resolves_no_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        engine = _engine()
        _batch(engine, 0)
        resolved: list[str] = []
        touch = Router.touch

        def counting(self: Router, ctx: Any, watch: Watch, signal: str, scope: Any) -> Any:
            resolved.append(signal)
            return touch(self, ctx, watch, signal, scope)

        monkeypatch.setattr(Router, "touch", counting)
        _batch(engine, 3)
        assert resolved == []
        assert [s.window_events for s in engine.partitions[0].keys[True].values()] == [6, 6]

    def test_a_key_dropped_between_batches_is_made_again(self) -> None:
        engine = _engine()
        _batch(engine, 0)
        part = engine.partitions[0]
        dropped = next(s for s in part.keys[True].values() if s.key.signal == "confidence")
        part.drop_key(dropped)  # as a snapshot that cannot be written drops it
        _batch(engine, 3)
        made = next(s for s in part.keys[True].values() if s.key.signal == "confidence")
        assert made is not dropped
        assert made.window_events == 3  # the later batch fed the new key, not the old
        assert dropped.window_events == 3

    def test_a_restored_partition_gets_no_route_of_the_old_one(self) -> None:
        engine = _engine()
        _batch(engine, 0)
        old = engine.partitions[0]
        engine.restore(0, engine.state_entries(0))
        _batch(engine, 3)
        new = engine.partitions[0]
        assert new is not old
        assert all(s.window_events == 6 for s in new.keys[True].values())
        assert all(s.window_events == 3 for s in old.keys[True].values())
