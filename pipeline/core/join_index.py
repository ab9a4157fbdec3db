"""A hash index over a column of 64-bit request hashes: hash -> row slot.

Open addressing with linear probing in one ``int32`` array (slot + 1; 0 is empty; a
stdlib ``array``, whose items read and write as Python ints at a third of a numpy
scalar's cost, with numpy views of it for the whole-table work),
about 5-11 bytes per indexed row — a Python dict of int keys costs ~100. Probing does
not wrap: the array has a tail past its nominal size, and a probe that reaches the
end asks for a rebuild. Deletion shifts the following cells back (no tombstones), so
lookups stay short however many rows come and go. Built from a whole column at once
without a Python loop (:meth:`HashIndex.build`): restoring a model's join does not
probe row by row.

The keys are not stored here: a cell names a slot and the caller's hash column says
which hash lives there, so a probe reads the column (passed to every call, since the
column is reallocated when the table grows).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

__all__ = ["HashIndex"]

_TAIL = 32
"""Cells past the nominal size that a probe may run into before a rebuild."""


class HashIndex:
    """hash -> slot for a column of uint64 hashes (see the module docstring)."""

    __slots__ = ("cells", "count", "mask")

    def __init__(self, size: int = 16) -> None:
        self.mask = _power_of_two(size) - 1
        self.cells = _zeros(self.mask + 1 + _TAIL)
        self.count = 0

    def nbytes(self) -> int:
        return self.cells.itemsize * len(self.cells)

    def find(self, h: int, hashes: np.ndarray) -> int:
        """The slot holding ``h``; -1 when absent."""
        cells = self.cells
        i = h & self.mask
        end = len(cells)
        while i < end:
            cell = cells[i]
            if cell == 0:
                return -1
            if hashes.item(cell - 1) == h:
                return cell - 1
            i += 1
        return -1

    def insert(self, h: int, slot: int, hashes: np.ndarray) -> bool:
        """Index ``slot`` (holding ``h``); False when the table must be rebuilt first
        (too full, or the probe ran off the end)."""
        if (self.count + 1) * 4 > (self.mask + 1) * 3:
            return False
        cells = self.cells
        i = h & self.mask
        end = len(cells)
        while i < end:
            if cells[i] == 0:
                cells[i] = slot + 1
                self.count += 1
                return True
            i += 1
        return False

    def insert_many(self, hs: Sequence[int], slots: Sequence[int]) -> int:
        """:meth:`insert` of each ``(h, slot)`` in turn, up to the first that fails;
        how many were indexed (the caller rebuilds, then goes on after that one)."""
        cells = self.cells
        mask = self.mask
        room = (mask + 1) * 3
        end = len(cells)
        count = self.count
        done = 0
        for h, slot in zip(hs, slots, strict=True):
            if (count + 1) * 4 > room:
                break
            i = h & mask
            while i < end and cells[i]:
                i += 1
            if i == end:
                break
            cells[i] = slot + 1
            count += 1
            done += 1
        self.count = count
        return done

    def delete(self, h: int, slot: int, hashes: np.ndarray) -> None:
        """Remove the cell of ``slot`` (holding ``h``), shifting later cells back."""
        cells = self.cells
        mask = self.mask
        end = len(cells)
        i = h & mask
        while cells[i] != slot + 1:
            i += 1
        j = i
        while True:
            j += 1
            if j >= end:
                break
            cell = cells[j]
            if cell == 0:
                break
            home = hashes.item(cell - 1) & mask
            if home <= i:  # may move back to the hole at i without passing its home
                cells[i] = cell
                i = j
        cells[i] = 0
        self.count -= 1

    def build(self, hashes: np.ndarray, slots: np.ndarray, size: int) -> None:
        """Index ``slots`` (holding ``hashes``) from scratch, at least ``size`` cells.

        Placing keys in order of their home cell, each at the first free cell at or
        after its home, is a valid linear-probing layout: position k is
        ``max(home_k, position_{k-1} + 1)``, i.e. a running maximum."""
        self.mask = _power_of_two(max(size, (len(slots) * 4 + 2) // 3, 16)) - 1
        homes = (hashes & np.uint64(self.mask)).astype(np.int64)
        order = np.argsort(homes, kind="stable")
        ranks = np.arange(len(order), dtype=np.int64)
        positions = np.maximum.accumulate(homes[order] - ranks) + ranks if len(order) else ranks
        end = max(self.mask + 1, int(positions[-1]) + 1 if len(positions) else 0) + _TAIL
        self.cells = _zeros(end)
        np.frombuffer(self.cells, dtype=np.int32)[positions] = slots[order].astype(np.int32) + 1
        self.count = len(slots)


def _zeros(n: int) -> array[int]:
    return array("i", bytes(4 * n))


def _power_of_two(n: int) -> int:
    return 1 << max(4, (n - 1).bit_length())
