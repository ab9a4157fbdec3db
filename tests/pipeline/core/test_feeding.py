from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import detectors
from pipeline.config import MonitorSpec, Settings
from pipeline.core.feeding import COLUMN_MIN, feed_column, feed_rows
from pipeline.core.monitor import KeyState, MonitorKey, Origin, Update
from pipeline.core.monitor_set import resolve
from pipeline.core.processor import Processor
from pipeline.core.quarantine import Quarantine
from pipeline.core.records import Record
from pipeline.generate import DriftSpec
from pipeline.model_spec import SeverityMap
from tests.pipeline.core.helpers import flat, run


def apply_updates(state: KeyState, updates: list[Update], stats: dict[str, int]) -> None:
    """Feed ``updates`` through :func:`feed_column`, setting each one's finding."""
    found = feed_column(
        state,
        [u.value for u in updates],
        lambda k: (updates[k].at, updates[k].origin, updates[k].context),
        stats,
    )
    for position, finding in found:
        updates[position].finding = finding


_SHIFT_PARAMS: dict[str, dict[str, Any]] = {
    "page_hinkley": {"threshold": 5.0, "min_instances": 30},
    "cusum": {"h": 4.0, "warmup": 20},
    "ks_window": {"window_size": 30, "reference_size": 60, "alpha": 0.01},
    "adwin": {"delta": 0.05},
    "ewma": {"L": 2.5, "warmup": 20},
}
"""Settings under which each detector sees the shift of :func:`_shifted_updates`."""


def _shift_spec(detector: str) -> MonitorSpec:
    return MonitorSpec(signal="confidence", detector=detector, params=_SHIFT_PARAMS[detector])


def _shifted_updates(seed: int, half: int) -> list[Update]:
    """``half`` values of N(0, 1), then ``half`` of N(1.5, 1), one event each."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, 1, half), rng.normal(1.5, 1, half)]).tolist()
    return [Update(v, i, Origin("t", 0, i)) for i, v in enumerate(values)]


def _feed_in_chunks(
    states: list[KeyState],
    updates: list[Update],
    sizes: list[int],
    row_of: Callable[[Update], list[Any]],
    observer: Any,
    stats: dict[str, int],
    quarantine: Quarantine,
) -> list[tuple[int, int, Any]]:
    """``updates`` through :func:`feed_rows` in routes of ``sizes`` events (cycled),
    each update's row ``row_of(update)``: the findings as (update index, key, finding)."""
    got: list[tuple[int, int, Any]] = []
    start = 0
    cycle = itertools.cycle(sizes)
    while start < len(updates):
        chunk = updates[start : start + next(cycle)]
        rows = [row_of(u) for u in chunk]
        where = lambda k, chunk=chunk: (chunk[k].at, chunk[k].origin, None)  # noqa: E731
        found = feed_rows(states, rows, where, stats, observer, quarantine)
        got.extend((start + r, j, finding) for r, j, finding in found)
        start += len(chunk)
    return got


class TestColumnwise:
    @staticmethod
    def _state(spec: MonitorSpec) -> KeyState:
        monitor = resolve(spec, "test")
        key = MonitorKey("m", "1", "production", monitor.signal, monitor.id)
        return KeyState(key, monitor, monitor.build(), True, ())

    @hsettings(max_examples=25, deadline=None)
    @given(
        detector=st.sampled_from(["page_hinkley", "cusum", "ks_window", "adwin", "ewma"]),
        seed=st.integers(0, 10_000),
        cuts=st.lists(st.integers(0, 600), max_size=6),
    )
    def test_batches_equal_one_by_one(self, detector: str, seed: int, cuts: list[int]) -> None:
        spec = _shift_spec(detector)
        updates = _shifted_updates(seed, 300)
        one, batched = self._state(spec), self._state(spec)
        stats: dict[str, int] = {}
        for u in updates:
            apply_updates(one, [u], stats)
        expected = [(i, u.finding) for i, u in enumerate(updates) if u.finding is not None]
        for u in updates:
            u.finding = None
        bounds = sorted({0, len(updates), *cuts})
        for a, b in itertools.pairwise(bounds):
            apply_updates(batched, updates[a:b], stats)
        got = [(i, u.finding) for i, u in enumerate(updates) if u.finding is not None]
        assert got == expected
        assert batched.to_state() == one.to_state()
        assert any(b - a >= COLUMN_MIN for a, b in itertools.pairwise(bounds))

    @hsettings(max_examples=25, deadline=None)
    @given(
        detector=st.sampled_from(["ks_window", "rolling_threshold"]),
        seed=st.integers(0, 10_000),
        cuts=st.lists(st.integers(0, 200), max_size=6),
    )
    def test_a_quiet_key_in_columns_equals_an_eager_key_one_by_one(
        self, detector: str, seed: int, cuts: list[int]
    ) -> None:
        """A key that starts quiet (``Monitor.start``: a ``Learning``) fed in columns,
        some of which end its quiet period and fire at once, finds and ends as an
        eager key fed one by one: a column that ends the period is put back from its
        snapshot when it fires."""
        params = {
            "ks_window": {"window_size": 10, "reference_size": 64, "alpha": 0.05, "stride": 1},
            "rolling_threshold": {"window_size": 2, "reference_size": 64, "k": 2.0, "patience": 1},
        }[detector]
        monitor = resolve(MonitorSpec(signal="confidence", detector=detector, params=params), "t")
        key = MonitorKey("m", "1", "production", monitor.signal, monitor.id)
        quiet, eager = (
            KeyState(key, monitor, monitor.start(), True, ()),
            KeyState(key, monitor, monitor.build(), True, ()),
        )
        assert type(quiet.detector).__name__ == "Learning"
        updates = _shifted_updates(seed, 64)
        stats: dict[str, int] = {}
        for u in updates:
            apply_updates(eager, [u], stats)
        expected = [(i, u.finding) for i, u in enumerate(updates) if u.finding is not None]
        assert expected, "the shift right after the quiet period must fire"
        for u in updates:
            u.finding = None
        for a, b in itertools.pairwise(sorted({0, len(updates), *cuts})):
            apply_updates(quiet, updates[a:b], stats)
        assert [(i, u.finding) for i, u in enumerate(updates) if u.finding is not None] == expected
        assert quiet.to_state() == eager.to_state()

    @hsettings(max_examples=10, deadline=None)
    @given(
        detector=st.sampled_from(["page_hinkley", "ks_window", "ewma"]),
        seed=st.integers(0, 10_000),
        sizes=st.lists(st.integers(1, COLUMN_MIN - 1), min_size=1, max_size=8),
    )
    def test_rows_are_short_columns(self, detector: str, seed: int, sizes: list[int]) -> None:
        """The row path (a route holding a few events: value j of each row to key j,
        row after row) and the column path of each key make the same findings and
        leave the same state."""
        specs = [_shift_spec(detector), _shift_spec("page_hinkley")]
        updates = _shifted_updates(seed, 200)
        by_row = [self._state(spec) for spec in specs]
        by_column = [self._state(spec) for spec in specs]
        stats: dict[str, int] = {}
        quarantine = Quarantine(Counter())
        got = _feed_in_chunks(
            by_row, updates, sizes, lambda u: [u.value, -u.value], None, stats, quarantine
        )
        expected = []
        for j, state in enumerate(by_column):
            for i, u in enumerate(updates):
                column = [Update(u.value if j == 0 else -u.value, u.at, u.origin)]
                apply_updates(state, column, stats)
                if column[0].finding is not None:
                    expected.append((i, j, column[0].finding))
        assert sorted(got, key=lambda f: (f[0], f[1])) == sorted(
            expected, key=lambda f: (f[0], f[1])
        )
        assert any(j == 0 for _i, j, _f in expected), "the shift is detected"
        assert [s.to_state() for s in by_row] == [s.to_state() for s in by_column]
        assert not quarantine.drain()

    @hsettings(max_examples=10, deadline=None)
    @given(
        seed=st.integers(0, 10_000),
        sizes=st.lists(st.integers(1, COLUMN_MIN - 1), min_size=1, max_size=8),
        observed=st.booleans(),
    )
    def test_rows_with_warnings_and_an_observer_are_short_columns(
        self, seed: int, sizes: list[int], observed: bool
    ) -> None:
        """The row path's other branch: a monitor that maps its detector's warnings
        to alerts (HDDM-A on an error rate moving between 10 % and 50 %), with or
        without an observer that sees every update, as a backtest installs it. Same
        findings, same state and the same observations, per key, as one-value
        columns."""
        specs = [
            MonitorSpec(
                signal="error",
                detector="hddm_a",
                severity=SeverityMap(drift="critical", warning="warning"),
                resolve_after=20,  # so that warnings come on keys no incident holds open
            ),
            _shift_spec("page_hinkley"),
        ]
        rng = np.random.default_rng(seed)
        rates = [0.1, 0.3, 0.1, 0.5, 0.2]
        flips = np.concatenate([rng.random(150) < rate for rate in rates])
        updates = [Update(float(f), i, Origin("t", 0, i)) for i, f in enumerate(flips)]
        by_row = [self._state(spec) for spec in specs]
        by_column = [self._state(spec) for spec in specs]
        seen: dict[str, list[tuple[Any, Any]]] = {"row": [], "column": []}

        def observer(path: str) -> Any:
            if not observed:
                return None
            return lambda key, value, _detector, at, _origin: seen[path].append(
                (key.signal, value, at)
            )

        stats: dict[str, int] = {}
        quarantine = Quarantine(Counter())
        got = _feed_in_chunks(
            by_row, updates, sizes, lambda u: [u.value, u.value], observer("row"), stats, quarantine
        )
        expected = []
        for j, state in enumerate(by_column):
            for i, u in enumerate(updates):
                where = lambda _k, u=u: (u.at, u.origin, None)  # noqa: E731
                for _position, finding in feed_column(
                    state, [u.value], where, stats, observer("column")
                ):
                    expected.append((i, j, finding))
        assert sorted(got, key=lambda f: (f[0], f[1])) == sorted(
            expected, key=lambda f: (f[0], f[1])
        )
        assert any(f.severity == "warning" for _i, j, f in expected if j == 0), "a warning"
        assert [s.to_state() for s in by_row] == [s.to_state() for s in by_column]
        for signal in ("error", "confidence"):
            assert [o for o in seen["row"] if o[0] == signal] == [
                o for o in seen["column"] if o[0] == signal
            ]
        assert len(seen["row"]) == (2 * len(updates) if observed else 0)

    def test_a_key_that_fails_in_a_row_is_reset_and_the_row_goes_on(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        first, second = (self._state(_shift_spec("page_hinkley")) for _ in range(2))

        def broken(_x: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(first.detector, "update", broken)
        stats: dict[str, int] = {}
        quarantine = Quarantine(Counter())
        where = lambda _k: (0, Origin("t", 0, 0), None)  # noqa: E731
        rows = [[1.0, 2.0], [3.0, 4.0]]
        assert feed_rows([first, second], rows, where, stats, None, quarantine) == []
        assert [n.key for n in quarantine.drain()] == [str(first.key)]
        assert first.detector.update is not broken  # a fresh detector
        assert first.window_events == 1  # the second row went to the fresh detector
        assert second.window_events == 2

    def test_a_refused_value_in_a_batch_falls_back_to_one_by_one(self) -> None:
        spec = MonitorSpec(signal="confidence", detector="cusum", params={"warmup": 5})
        state = self._state(spec)
        values: list[Any] = [0.5 + 0.01 * (i % 3) for i in range(20)]
        values[7] = "high"
        stats: dict[str, int] = {}
        apply_updates(state, [Update(v, i, Origin("t", 0, i)) for i, v in enumerate(values)], stats)
        assert stats == {"signal_type_mismatch:confidence": 1}
        assert state.window_events == 19
        assert isinstance(state.detector, detectors.get("cusum"))

    @pytest.mark.parametrize(("detector", "calls"), [("page_hinkley", 1), ("ddm", 0)])
    def test_column_path_decides_whether_update_many_is_called(
        self, detector: str, calls: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = MonitorSpec(signal="error", detector=detector)
        state = self._state(spec)
        cls = type(state.detector)
        seen = _spy_update_many(monkeypatch, cls)
        values = [i % 2 for i in range(3 * COLUMN_MIN)]
        apply_updates(state, [Update(v, i, Origin("t", 0, i)) for i, v in enumerate(values)], {})
        assert len(seen) == calls
        assert state.window_events == len(values)

    @pytest.mark.parametrize("extra", [-1, 0])
    def test_a_column_shorter_than_the_detectors_column_min_goes_one_by_one(
        self, extra: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A KS window's ``update_many`` takes a short column value by value anyway:
        such a column skips the column path and the snapshot it starts with."""
        spec = MonitorSpec(
            signal="confidence",
            detector="ks_window",
            params={"window_size": 30, "reference_size": 60},
        )
        state = self._state(spec)
        cls = type(state.detector)
        assert cls.column_min > COLUMN_MIN
        seen = _spy_update_many(monkeypatch, cls)
        values = [0.01 * (i % 17) for i in range(cls.column_min + extra)]
        apply_updates(state, [Update(v, i, Origin("t", 0, i)) for i, v in enumerate(values)], {})
        assert seen == ([] if extra < 0 else [len(values)])
        assert state.window_events == len(values)

    def test_a_processor_batch_reports_findings_at_their_records(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        drift = DriftSpec(signal="feature:amount", at=2000, magnitude=2.0)
        recs = make_records(events=4000, drifts=[drift])
        batched = run(Processor(make_settings()), recs, batch=4000)
        single = [Processor(make_settings())]
        one_by_one = [single[0].process(r) for r in recs]
        assert batched == one_by_one
        assert flat(batched, "alert")


def _spy_update_many(monkeypatch: pytest.MonkeyPatch, cls: Any) -> list[int]:
    """The length of every column ``cls.update_many`` is given (it still runs)."""
    seen: list[int] = []
    real = cls.update_many

    def spy(self: Any, values: Any) -> list[int]:
        seen.append(len(values))
        return real(self, values)

    monkeypatch.setattr(cls, "update_many", spy)
    return seen
