"""A state record never exceeds the broker's message limit: detectors at their
largest, split and read back exactly; stale or altered parts are never misread."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import detectors
from pipeline.core.deferred import loaded
from pipeline.core.journal import Report
from pipeline.io.memory import MemorySink
from pipeline.runtime.stores import ChangelogStore
from pipeline.state.changelog import decode_changelog, encode_entry
from pipeline.state.chunks import RECORD_LIMIT, Assembler, split_record

LARGE = 60_000
"""Sizes far beyond any default (a 60,000-value window and reference)."""


def _largest() -> dict[str, detectors.DriftDetector]:
    """Every kind of detector with large windows, fed until they are full."""
    rng = np.random.default_rng(5)
    numbers = rng.normal(size=2 * LARGE + 10).tolist()
    words = [f"class-{i % 5_000}" for i in range(2 * LARGE + 10)]
    built = {
        "ks_window": detectors.create(
            "ks_window", window_size=LARGE, reference_size=LARGE, alpha=1e-12
        ),
        "ks_window_sliding": detectors.create(
            "ks_window", window_size=LARGE, reference_size=LARGE, mode="sliding", alpha=1e-12
        ),
        "rolling_threshold": detectors.create(
            "rolling_threshold", window_size=LARGE, reference_size=LARGE
        ),
        "categorical_drift": detectors.create(
            "categorical_drift", window_size=LARGE, reference_size=LARGE
        ),
        "entropy": detectors.create("entropy", window_size=LARGE, reference_size=LARGE),
    }
    for name, detector in built.items():
        values = words if name in ("categorical_drift", "entropy") else numbers
        detector.update_many(values)
    return built


@pytest.fixture(scope="module")
def largest() -> dict[str, detectors.DriftDetector]:
    return _largest()


class TestLargestDetectors:
    def test_every_record_fits_and_reads_back(
        self, largest: dict[str, detectors.DriftDetector]
    ) -> None:
        sink = MemorySink()
        store = ChangelogStore(sink.changelog)
        records = {
            f'detector:["m","1","production","s","{name}",""]': {"detector": d.to_state()}
            for name, d in largest.items()
        }
        sizes = [len(orjson.dumps(r)) for r in records.values()]
        assert max(sizes) > RECORD_LIMIT  # the test is about records too large
        store.save_report(sink, 0, Report(0, records=dict(records)), {"t": 1})
        sink.flush()
        log = sink.changelog(0)
        assert all(len(k or b"") + len(v or b"") <= RECORD_LIMIT for k, v in log)
        snapshot = store.load(0)
        assert snapshot.skipped == 0
        entries = {key: loaded(state) for key, state in snapshot.entries.items()}
        assert entries == records
        for name, detector in largest.items():
            key = f'detector:["m","1","production","s","{name}",""]'
            restored = type(detector).from_state(entries[key]["detector"])
            assert restored.to_state() == detector.to_state()

    def test_a_smaller_value_deletes_the_parts_it_no_longer_needs(self) -> None:
        sink = MemorySink()
        store = ChangelogStore(sink.changelog)
        big = {"blob": "x" * (3 * RECORD_LIMIT)}
        store.save_report(sink, 0, Report(0, records={"k": big}), {})
        store.save_report(sink, 0, Report(0, records={"k": {"blob": "small"}}), {})
        sink.flush()
        log = sink.changelog(0)
        written = {k for k, v in log if k and k.startswith(b"__part__:") and v is not None}
        deleted = {k for k, v in log if k and k.startswith(b"__part__:") and v is None}
        assert len(written) == 4 and deleted == written
        reloaded = ChangelogStore(sink.changelog)
        assert reloaded.load(0).entries == {"k": {"blob": "small"}}
        assert reloaded.parts[0] == {}


class TestSplitting:
    @given(st.binary(min_size=0, max_size=5_000), st.integers(60, 400), st.integers(0, 5))
    def test_split_then_assemble_is_the_identity(self, value: bytes, limit: int, old: int) -> None:
        records, parts = split_record("key", value, old, limit=limit)
        assert all(len(k) + len(v or b"") <= max(limit, 160) for k, v in records if v is not None)
        assembler = Assembler()
        out = None
        for raw_key, raw_value in records:
            if not assembler.take_part(raw_key.decode(), raw_value):
                out, whole = assembler.value(raw_key.decode(), raw_value)
                assert whole
        assert out == value
        deleted = [k for k, v in records if v is None]
        assert len(deleted) == max(0, old - parts)

    def test_a_head_whose_parts_changed_is_refused(self) -> None:
        value = encode_entry(0, "k", {"blob": "y" * 3_000}, {})[1]
        assert value is not None
        records, _ = split_record("k", value, 0, limit=1_000)
        altered = [
            (k, v[:-1] + b"!" if k.startswith(b"__part__:1:") and v else v) for k, v in records
        ]
        snapshot = decode_changelog(altered)
        assert snapshot.entries == {} and snapshot.skipped == 1
