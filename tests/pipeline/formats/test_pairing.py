"""Halves waiting for each other (pipeline.formats.pairing)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.formats.pairing import PairBuffer, Side


def _buffer() -> PairBuffer:
    return PairBuffer(ttl_micros=1_000, max_pending=100)


class TestPairs:
    def test_either_order_pairs(self) -> None:
        pairs = _buffer()
        assert pairs.offer(0, "a", "response", 10, {"r": 1}) is None
        request, response = pairs.offer(0, "a", "request", 11, {"q": 1}) or ({}, {})
        assert request["q"] == 1 and response["r"] == 1
        assert pairs.counters["paired"] == 1 and pairs.pending(0) == 0

    def test_partitions_do_not_meet(self) -> None:
        pairs = _buffer()
        pairs.offer(0, "a", "request", 10, {})
        assert pairs.offer(1, "a", "response", 10, {}) is None

    def test_a_half_older_than_the_ttl_expires_and_is_counted(self) -> None:
        pairs = _buffer()
        pairs.offer(0, "lost", "request", 0, {})
        pairs.offer(0, "b", "request", 2_000, {})
        assert pairs.counters["expired_request"] == 1
        assert pairs.offer(0, "lost", "response", 2_001, {}) is None
        assert pairs.pending(0) == 2

    def test_beyond_max_pending_the_oldest_is_evicted(self) -> None:
        pairs = PairBuffer(ttl_micros=10**9, max_pending=2)
        for i, key in enumerate("abc"):
            pairs.offer(0, key, "request", i, {})
        assert pairs.counters["evicted"] == 1 and pairs.pending(0) == 2

    def test_a_repeated_half_replaces_the_first(self) -> None:
        pairs = _buffer()
        pairs.offer(0, "a", "request", 1, {"n": 1})
        pairs.offer(0, "a", "request", 2, {"n": 2})
        request, _ = pairs.offer(0, "a", "response", 3, {}) or ({}, {})
        assert request["n"] == 2 and pairs.counters["duplicate"] == 1


Half = tuple[str, Side, int]


@st.composite
def _streams(draw: st.DrawFn) -> list[Half]:
    """Pairs whose halves arrive in any order, each within the TTL of the other."""
    n = draw(st.integers(1, 30))
    halves: list[Half] = []
    for i in range(n):
        at = i * 100
        halves.append((f"k{i}", "request", at))
        halves.append((f"k{i}", "response", at + draw(st.integers(0, 300))))
    return draw(st.permutations(halves))


class TestProperties:
    @given(_streams(), st.integers(0, 60))
    def test_every_pair_completes_once_and_a_restore_changes_nothing(
        self, halves: list[Half], cut: int
    ) -> None:
        def run(stream: list[Half], restart_at: int | None) -> list[str]:
            pairs = PairBuffer(ttl_micros=10_000, max_pending=1000)
            done = []
            for i, (key, side, at) in enumerate(stream):
                if i == restart_at:
                    state = orjson.loads(orjson.dumps(pairs.snapshot(0)))
                    pairs = PairBuffer(ttl_micros=10_000, max_pending=1000)
                    pairs.restore(0, state)
                if pairs.offer(0, key, side, at, {"key": key}) is not None:
                    done.append(key)
            return done

        uninterrupted = run(halves, None)
        assert sorted(uninterrupted) == sorted({k for k, _, _ in halves})
        assert run(halves, cut if 0 < cut < len(halves) else None) == uninterrupted
