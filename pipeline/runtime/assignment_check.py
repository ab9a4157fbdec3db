"""Is this member's share of the co-partitioned inputs complete?

State is kept per partition number, and the range assignor gives a member the same
partition numbers of every input topic that has the same partition count. A
member that owns partition ``p`` of one such topic and not of another was assigned
from incomplete metadata: kafka-python's leader leaves out a topic whose metadata
has not arrived yet ("No partition metadata for topic ..."), and the records of
that topic's partitions then wait until the group rebalances for some other reason.
The client rejoins by itself only when a later metadata refresh differs from what
it assigned with; CI saw a sidecar owning four of its five inputs' partition 0 (its
leader had logged "No partition metadata" for the fifth) process nothing for five
minutes. This check sees that state from the outside and asks for a rejoin.

Topics whose partition count differs from the widest input (a one-partition serving
topic next to keyed topics of six) are not co-partitioned and are not checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from pipeline.io.base import TopicPartition

__all__ = ["IncompleteAssignment", "missing_partitions"]


def missing_partitions(
    owned: Set[TopicPartition], counts: Mapping[str, int]
) -> set[TopicPartition]:
    """Partitions of the widest topics that share a number with one owned, not owned.

    >>> counts = {"preds": 2, "labels": 2, "kserve": 1}
    >>> sorted(missing_partitions({("preds", 1)}, counts))
    [('labels', 1)]
    >>> missing_partitions({("preds", 1), ("labels", 1)}, counts)
    set()
    """
    known = {topic: n for topic, n in counts.items() if n > 0}
    if not owned or not known:
        return set()
    width = max(known.values())
    wide = [topic for topic, n in known.items() if n == width]
    numbers = {p for topic, p in owned if known.get(topic) == width}
    return {(topic, p) for topic in wide for p in numbers} - set(owned)


class IncompleteAssignment:
    """When to rejoin over an incomplete assignment: once it has lasted ``grace_s``
    (a rebalance in flight, or the client's own metadata refresh, may complete it
    first), then every ``retry_s``, at most ``max_rejoins`` times while it lasts;
    a complete assignment starts the count again. Pure: the caller passes the clock.
    """

    def __init__(self, grace_s: float = 15.0, retry_s: float = 30.0, max_rejoins: int = 3):
        self.grace_s = grace_s
        self.retry_s = retry_s
        self.max_rejoins = max_rejoins
        self._since: float | None = None
        self._last_rejoin: float | None = None
        self.rejoins = 0
        """Rejoins asked for during the current incomplete stretch."""

    def should_rejoin(self, missing: Set[TopicPartition], now: float) -> bool:
        if not missing:
            self._since = self._last_rejoin = None
            self.rejoins = 0
            return False
        if self._since is None:
            self._since = now
        if self.rejoins >= self.max_rejoins or now - self._since < self.grace_s:
            return False
        if self._last_rejoin is not None and now - self._last_rejoin < self.retry_s:
            return False
        self._last_rejoin = now
        self.rejoins += 1
        return True
