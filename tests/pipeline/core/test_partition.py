from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import SeverityMap
from pipeline.core.engine import Engine
from pipeline.core.monitor import KeyState, MonitorKey, Origin
from pipeline.core.monitor_set import Monitor
from pipeline.core.partition import ModelState, Partition, fanout_groups
from tests.pipeline.core.helpers import prediction, settings, training


def _monitor(signal: str, segment_by: str | None = None) -> Monitor:
    return Monitor(
        signal=signal,
        detector="adwin",
        params={},
        severity=SeverityMap(),
        segment_by=segment_by,
        max_segments=2,
        max_signals=2,
        id="adwin",
    )


class TestFanoutGroups:
    def test_a_wildcard_monitor_counts_its_signals(self) -> None:
        key = MonitorKey("m", "run-1", "training", "grad_norm:layer1", "adwin")
        assert fanout_groups(key, _monitor("grad_norm:*")) == (
            ("w", "m", "run-1", "training", "grad_norm:*", "adwin"),
        )

    def test_a_segmented_monitor_counts_its_segments_per_signal(self) -> None:
        key = MonitorKey("m", "1", "production", "confidence", "adwin", "country=DE")
        other = key._replace(segment="country=__other__")
        monitor = _monitor("confidence", segment_by="country")
        assert fanout_groups(key, monitor) == fanout_groups(other, monitor)
        assert fanout_groups(key, monitor) == (
            ("s", "m", "1", "production", "confidence", "adwin"),
        )

    def test_restored_counts_equal_the_live_ones(self) -> None:
        engine = Engine(
            settings(
                default_model={
                    "monitors": [
                        {"signal": "confidence", "detector": "adwin", "segment_by": "country",
                         "max_segments": 2},
                        {"signal": "grad_norm:*", "detector": "cusum", "max_signals": 2},
                    ]
                }
            )
        )  # fmt: skip
        events = [
            prediction("m", i, confidence=0.5, features={"country": c})
            for i, c in enumerate(["DE", "FR", "US", "IT", "DE"])
        ] + [training("m", step=s, t=10 + s, grad_norms={f"l{s}": 1.0}) for s in range(4)]
        engine.process([(e, Origin("p", 0, i)) for i, e in enumerate(events)])
        live = engine.partitions[0]
        assert sorted(live.fanout.values()) == [2, 3]  # 2 signals; DE, FR and __other__
        restored = Engine(engine.settings)
        restored.restore(0, engine.state_entries(0))
        assert restored.partitions[0].fanout == live.fanout
        assert list(restored.partitions[0].keys[False]) == list(live.keys[False])


class TestExpiry:
    def test_expire_stops_at_the_first_key_seen_since_the_horizon(self) -> None:
        engine = Engine(
            settings(default_model={"monitors": [{"signal": "confidence", "detector": "adwin"}]})
        )
        events = [prediction(m, t, confidence=0.5) for m, t in [("a", 0), ("b", 10), ("c", 20)]]
        engine.process([(e, Origin("p", 0, i)) for i, e in enumerate(events)])
        part: Partition = engine.partitions[0]
        stats: Counter[str] = Counter()
        part.expire(horizon=part.models["b"].last_seen, stats=stats)
        assert [k.model_id for k in part.keys[False]] == ["b", "c"]
        assert sorted(part.models) == ["b", "c"]
        assert stats == {"expired_keys": 1, "expired_models": 1}

    @given(
        seen=st.lists(st.integers(0, 50), min_size=1, max_size=30),
        order=st.randoms(use_true_random=False),
        horizons=st.lists(st.integers(0, 60), min_size=1, max_size=4),
    )
    def test_known_keys_expire_as_an_lru_walk_in_seq_order_would(
        self, seen: list[int], order: object, horizons: list[int]
    ) -> None:
        """Known models' keys are not moved on a touch; expiry must still drop what
        walking them least recently touched first (``seq``) would."""
        monitor = _monitor("confidence")
        part, model = Partition(0), ModelState("m", known=True)
        part.models["m"] = model
        seqs = list(range(1, len(seen) + 1))
        order.shuffle(seqs)  # type: ignore[attr-defined]
        for n, (last_seen, seq) in enumerate(zip(seen, seqs, strict=True)):
            key = MonitorKey("m", "1", "production", f"s{n}", "adwin")
            part.add_key(KeyState(key, monitor, monitor.build(), True, (), last_seen, seq), model)
        walk = sorted(part.keys[True].values(), key=lambda s: s.seq)
        for horizon in sorted(horizons):
            expected = [s.key for s in walk]
            while walk and walk[0].last_seen < horizon:
                walk.pop(0)
            dropped = expected[: len(expected) - len(walk)]
            stats: Counter[str] = Counter()
            part.expire(horizon, stats)
            assert sorted(part.keys[True]) == sorted(s.key for s in walk)
            assert stats["expired_keys"] == len(dropped)
            assert part.dirty_keys >= set(dropped)
            assert all(part.known_seen_floor <= s.last_seen for s in walk)
