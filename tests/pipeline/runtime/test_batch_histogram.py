"""BatchHistogram exposes what prometheus_client's Histogram would for the same values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipeline.core.records import Record
from pipeline.runtime.batch_histogram import BatchHistogram
from pipeline.runtime.metrics import lags_seconds

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The text format's lines, without ``_created`` (a timestamp, left out here)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


# values on the bounds themselves too: a bucket counts what is <= its bound
_VALUES = st.lists(
    st.one_of(st.sampled_from([0.0, *BUCKETS, 61.0]), st.floats(0, 100, allow_nan=False)),
    max_size=40,
)


@given(batches=st.lists(_VALUES, max_size=5))
def test_batches_expose_what_histogram_exposes_per_value(batches: list[list[float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchHistogram("lag_seconds", "Lag.", BUCKETS, registry=ours)
    single = Histogram("lag_seconds", "Lag.", buckets=BUCKETS, registry=theirs)
    for batch in batches:
        batched.observe_many(np.array(batch, dtype=np.float64))
        for value in batch:
            single.observe(value)
    mine, reference = _exposition(ours), _exposition(theirs)
    # the sums may differ in the last digits (one sum per batch, not per value)
    assert [line for line in mine if "_sum" not in line] == [
        line for line in reference if "_sum" not in line
    ]
    (total,) = [float(line.split()[-1]) for line in mine if line.startswith("lag_seconds_sum")]
    assert total == pytest.approx(sum(map(sum, batches)), rel=1e-12)


def test_buckets_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="lag_seconds: buckets"):
        BatchHistogram("lag_seconds", "Lag.", (1.0, 1.0))


def test_lags_skip_records_without_a_timestamp_and_never_go_negative() -> None:
    records = [
        Record("t", 0, 0, b"", timestamp_ms=None),
        Record("t", 0, 1, b"", timestamp_ms=0),
        Record("t", 0, 2, b"", timestamp_ms=-1),
        Record("t", 0, 3, b"", timestamp_ms=9_000),
        Record("t", 0, 4, b"", timestamp_ms=12_000),  # ahead of the clock
    ]
    assert lags_seconds(records, 10.0).tolist() == [1.0, 0.0]
    assert lags_seconds([], 10.0).tolist() == []
