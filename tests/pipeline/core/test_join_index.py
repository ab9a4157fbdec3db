from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core.join_index import HashIndex


def _hashes(n: int, bits: int) -> np.ndarray:
    # few bits: many keys share a home cell, so probing and shifting are exercised
    rng = np.random.default_rng(n + bits)
    drawn = rng.integers(0, 2**bits - 1, size=4 * n + 8, dtype=np.uint64, endpoint=True)
    _, first = np.unique(drawn, return_index=True)
    distinct = drawn[np.sort(first)][:n]
    assert len(distinct) == n
    return distinct


class TestHashIndex:
    @hsettings(max_examples=60, deadline=None)
    @given(
        bits=st.integers(7, 64),
        ops=st.lists(st.tuples(st.booleans(), st.integers(0, 39)), max_size=300),
    )
    def test_agrees_with_a_dict(self, bits: int, ops: list[tuple[bool, int]]) -> None:
        hashes = _hashes(40, bits)
        index = HashIndex()
        expected: dict[int, int] = {}
        for add, slot in ops:
            h = int(hashes[slot])
            if add and h not in expected:
                if not index.insert(h, slot, hashes):
                    slots = np.array([*sorted(expected.values()), slot], dtype=np.int64)
                    index.build(hashes[slots], slots, 2 * (index.mask + 1))
                expected[h] = slot
            elif not add and h in expected:
                index.delete(h, expected.pop(h), hashes)
            for key in hashes.tolist():
                assert index.find(int(key), hashes) == expected.get(int(key), -1)
        assert index.count == len(expected)

    @given(n=st.integers(0, 500), bits=st.integers(8, 64))
    def test_a_built_index_finds_every_key(self, n: int, bits: int) -> None:
        hashes = _hashes(n, max(bits, (n + 1).bit_length() + 1))
        slots = np.arange(n, dtype=np.int64)
        index = HashIndex()
        index.build(hashes, slots, 16)
        assert [index.find(int(h), hashes) for h in hashes] == list(range(n))
        assert index.find(2**64 - 1, hashes) == -1 or 2**64 - 1 in hashes.tolist()
        # and it goes on working incrementally: delete all in a scrambled order
        for slot in np.random.default_rng(n).permutation(n).tolist():
            index.delete(int(hashes[slot]), slot, hashes)
            assert index.find(int(hashes[slot]), hashes) == -1
        assert index.count == 0 and not any(index.cells)
