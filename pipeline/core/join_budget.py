"""A partition-wide bound on the label join's pending requests (``limits.max_pending_labels``).

``labels.max_pending`` bounds one model's join; a partition holding thousands of
models needs a bound of its own, or its memory follows models x ``max_pending``.
When a new request would take a partition's pending requests past the budget, the
model holding the most of them (ties: the smallest model id) gives up its oldest,
counted like ``max_pending``'s evictions (``evicted``, and ``evicted_budget`` for
this bound's share). Under a steady overload the models converge to equal shares,
and a model below its share loses nothing (max-min fairness): a quiet model is not
starved by a busy one.

The victim depends only on the models' pending counts and ids, never on the order
models were touched in a batch or on which other partitions a process holds, so the
budget is per partition and a restore, which recounts the restored pages, takes the
decisions the uninterrupted run took. A restore whose pages hold more than the
budget (it was lowered, or the state was written without one) leaves each model
what that same rule would leave (:func:`trimmed_sizes`), applied as each model's
pages are decoded: the restore never holds much more than the budget.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

__all__ = ["PendingCounts", "trimmed_sizes"]


class PendingCounts:
    """Pending requests per model of a partition (models holding none are absent),
    their total, and the model holding the most (a heap of ``(-count, model id)``
    whose stale entries are skipped when read and dropped when they pile up; built
    the first time it is read, so a partition that never reaches the budget keeps
    none: with thousands of models nearly every prediction changes a count)."""

    __slots__ = ("_heap", "sizes", "total")

    def __init__(self) -> None:
        self.total = 0
        self.sizes: dict[str, int] = {}
        self._heap: list[tuple[int, str]] | None = None

    def note(self, model_id: str, size: int) -> None:
        """``model_id`` now holds ``size`` pending requests."""
        old = self.sizes.get(model_id, 0)
        if size == old:
            return
        self.total += size - old
        if size:
            self.sizes[model_id] = size
            if self._heap is not None:
                heapq.heappush(self._heap, (-size, model_id))
                if len(self._heap) > 2 * len(self.sizes) + 64:
                    self._heap = None  # rebuilt from the sizes when next read
        else:
            del self.sizes[model_id]

    def largest(self) -> str:
        """The model holding the most pending requests (ties: the smallest id)."""
        if self._heap is None:
            self._heap = [(-n, m) for m, n in self.sizes.items()]
            heapq.heapify(self._heap)
        heap, sizes = self._heap, self.sizes
        while True:
            negative, model_id = heap[0]
            if sizes.get(model_id) == -negative:
                return model_id
            heapq.heappop(heap)


def trimmed_sizes(sizes: Mapping[str, int], budget: int) -> dict[str, int]:
    """What each model keeps when the model holding the most (ties: the smallest id)
    gives up one request at a time until at most ``budget`` are left: every model
    above a level ``L`` comes down to ``L + 1`` or ``L``, the smallest ids first to
    ``L`` (they were first in the ties)."""
    if sum(sizes.values()) <= budget:
        return dict(sizes)
    # the largest L with sum(min(size, L)) <= budget, by bisection over [0, max]
    low, high = 0, max(sizes.values())
    while low < high:
        mid = (low + high + 1) // 2
        if sum(min(n, mid) for n in sizes.values()) <= budget:
            low = mid
        else:
            high = mid - 1
    level = low
    above = sorted(m for m, n in sizes.items() if n > level)
    keep_higher = budget - sum(min(n, level) for n in sizes.values())
    out = {m: min(n, level) for m, n in sizes.items()}
    for model_id in above[len(above) - keep_higher :]:
        out[model_id] = level + 1
    return out
