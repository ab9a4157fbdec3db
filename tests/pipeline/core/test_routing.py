"""The column view of a batch's routes, and the compiled reads of a watch list."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import MonitorSpec
from pipeline.core.monitor import Slots, Watch
from pipeline.core.monitor_set import resolve
from pipeline.core.routing import ShiftedRefs


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
