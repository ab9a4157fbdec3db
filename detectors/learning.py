"""A fresh detector's quiet period, held as values until the detector is needed.

A detector with a ``quiet_period`` promises that over its first ``quiet_period``
observations after a reset it sets neither ``drift_detected`` nor
``warning_detected``, its ``statistic`` stays NaN, its ``p_value`` None and its
``threshold`` that of a fresh detector: nothing it reports depends on them. So they
can wait in a packed array and be fed through the batch path when the detector is
needed; by the batch contract the detector is then exactly what feeding them one
by one would have made.

That is what a streaming engine with thousands of models, each seeing a few
events, pays for otherwise: a copy of the detector per key and a Python update per
value, for detectors that are only learning their reference. :class:`Learning`
costs an object and an append per value until the period ends (it *ripens*), and
then hands its key the real detector (``holder``).

>>> from detectors import KSWindow
>>> plan = LearningPlan(KSWindow(window_size=20, reference_size=50))
>>> key = Learning(plan)
>>> key.update_many([0.1 * i for i in range(30)])
[]
>>> key.real is None, key.statistic
(True, nan)
>>> eager = KSWindow(window_size=20, reference_size=50)
>>> _ = eager.update_many([0.1 * i for i in range(30)])
>>> key.to_state() == eager.to_state()
True
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np

from detectors._ks_support import float_array
from detectors._parse import category_key
from detectors.base import DetectorState, DriftDetector, InputKind, StateError, check_finite

__all__ = ["MAX_CODES", "Learning", "LearningPlan"]

MAX_CODES: Final = 1 << 16
"""Categories a plan numbers at most; a key whose next category would need another
ripens instead (always exact), so that high-cardinality values cannot grow the
table without bound."""


class LearningPlan:
    """What every :class:`Learning` of one prototype shares: the prototype (never
    fed), its quiet period, and for categorical detectors the numbering of the
    categories seen, so that a buffered category costs 4 bytes, not a string."""

    __slots__ = ("admit", "codes", "floats", "keyed", "names", "numbered", "prototype", "quiet")

    def __init__(self, prototype: DriftDetector[Any]) -> None:
        quiet = prototype.quiet_period
        if quiet <= 0:
            raise ValueError(f"{prototype.name} promises no quiet period")
        self.prototype = prototype
        self.quiet: int = quiet
        self.admit = prototype.admit
        self.numbered = prototype.input_kind == "categorical"
        self.floats = prototype.admit is check_finite
        """Its values are admitted as finite floats, so a column of plain numbers
        can be taken in bulk."""
        self.keyed = self.numbered and prototype.admit is category_key
        """Its categories are admitted by ``category_key`` (a string is its own key)."""
        self.codes: dict[Any, int] = {}
        self.names: list[Any] = []

    def code(self, category: Any) -> int | None:
        """``category``'s code, numbering it if new (None when the table is full)."""
        code = self.codes.get(category)
        if code is None:
            names = self.names
            if len(names) >= MAX_CODES:
                return None
            code = self.codes[category] = len(names)
            names.append(category)
        return code

    def buffer(self) -> array[Any]:
        """An empty buffer: float64 values, or category codes."""
        return array("I") if self.numbered else array("d")


class Learning(DriftDetector[Any]):
    """A key's detector during its quiet period: the values it was fed, admitted as
    the detector's ``update`` admits them (refusing the same ones with the same
    error), and nothing else. Reaching the quiet period builds the real detector
    (a copy of the prototype fed the values through ``update_many``), gives it to
    ``holder`` (any object with a ``detector`` attribute: the engine's key), and
    passes everything after that to it.

    Not registered: its snapshot is the real detector's, so a restore gets a real
    detector back, in the same state."""

    column_path = True  # a column that fits is an ``extend``

    def __init__(self, plan: LearningPlan, holder: Any = None) -> None:
        self.plan = plan
        self.values: array[Any] | None = plan.buffer()
        self.real: DriftDetector[Any] | None = None
        """The detector once ripe (``values`` is then None)."""
        self.base: DriftDetector[Any] | None = None
        """A copy of the prototype fed the first ``taken`` values (those before the
        last snapshot); ``values`` holds the rest."""
        self.taken = 0
        self.holder = holder
        self.drift_detected = False
        self.warning_detected = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.plan.prototype.name

    @property
    def input_kind(self) -> InputKind:  # type: ignore[override]
        return self.plan.prototype.input_kind

    @property
    def room(self) -> int:
        """Values it takes before it ripens (0 once ripe)."""
        values = self.values
        return 0 if values is None else self.plan.quiet - self.taken - len(values)

    # -- the per-event path ---------------------------------------------------
    def update(self, x: Any) -> Learning:
        values = self.values
        if values is None:
            return self._forward(x)
        plan = self.plan
        kind = type(x)
        if kind is float and plan.floats and x - x == 0.0:
            value = x  # a finite float: what ``check_finite`` admits it as
        elif kind is str and plan.keyed and (code := plan.codes.get(x)) is not None:
            value = code  # a category numbered already (its own key)
        else:
            value = plan.admit(x)  # raises as the detector's update would
            if plan.numbered:
                value = plan.code(value)
                if value is None:  # the table is full: the detector takes it
                    self._ripen()
                    return self._forward(x)
        values.append(value)
        if len(values) + self.taken == plan.quiet:
            self._ripen()
        return self

    def update_many(self, values: Iterable[Any]) -> list[int]:
        """The values that fit in the quiet period are taken whole or not at all (a
        refused one raises before any is taken); at the end of the period the
        detector ripens and is fed the rest."""
        if self.values is None:
            return self._forward_many(values)
        column = values if isinstance(values, list) else list(values)
        room = self.room
        taken = self._take_floats(column[:room]) if self.plan.floats else -1
        if taken < 0:
            admit = self.plan.admit
            head = [admit(x) for x in column[:room]]  # all of them, before taking any
            taken = self._take(head)
        else:
            head = column[:room]
        if taken < len(head) or len(column) >= room:  # full, or no code left
            self._ripen()
            rest = column[taken:]
            return [taken + h for h in self._forward_many(rest)] if rest else []
        return []

    def _take_floats(self, head: list[Any]) -> int:
        """Plain finite numbers in bulk (numpy converts bool, int and float exactly
        as ``float`` does); -1 when ``head`` holds anything else, which the
        per-value admit then takes or refuses."""
        arr = float_array(head)
        if arr is None or not np.isfinite(arr).all():
            return -1
        values = self.values
        assert values is not None
        values.frombytes(arr.tobytes())
        return len(head)

    def _take(self, admitted: list[Any]) -> int:
        """Append admitted values; how many were taken (fewer only when the plan
        cannot number another category)."""
        values = self.values
        assert values is not None
        plan = self.plan
        if not plan.numbered:
            values.extend(admitted)
            return len(admitted)
        code_of = plan.code
        for i, value in enumerate(admitted):
            code = code_of(value)
            if code is None:
                return i
            values.append(code)
        return len(admitted)

    def _forward(self, x: Any) -> Learning:
        real = self.real
        assert real is not None
        real.update(x)
        self.drift_detected = real.drift_detected
        self.warning_detected = real.warning_detected
        return self

    def _forward_many(self, values: Iterable[Any]) -> list[int]:
        real = self.real
        assert real is not None
        hits = real.update_many(values)
        self.drift_detected = real.drift_detected
        self.warning_detected = real.warning_detected
        return hits

    def _ripen(self) -> None:
        self.real = real = self._caught_up()
        self.values = self.base = None
        self.drift_detected = real.drift_detected
        self.warning_detected = real.warning_detected
        if self.holder is not None:
            self.holder.detector = real

    def _caught_up(self) -> DriftDetector[Any]:
        """``base`` fed the values held (the batch path: by contract what feeding
        them one by one makes), made at the first snapshot: a later one feeds it
        only the values since, not all of them again."""
        plan = self.plan
        base = self.base
        if base is None:
            base = self.base = plan.prototype.fresh_copy()
        values = self.values
        if values:
            if plan.numbered:
                names = plan.names
                base.update_many([names[code] for code in values])
            else:
                base.update_many(values.tolist())
            self.taken += len(values)
            self.values = plan.buffer()
        return base

    def reset(self) -> None:
        self.values = self.plan.buffer()
        self.real = self.base = None
        self.taken = 0
        self.drift_detected = False
        self.warning_detected = False

    def fresh_copy(self) -> Learning:
        return Learning(self.plan)

    def clone(self) -> Learning:
        return Learning(self.plan)

    # -- evidence: what the detector reports while quiet -----------------------
    @property
    def statistic(self) -> float:
        return math.nan if self.real is None else self.real.statistic

    @property
    def threshold(self) -> float:
        real = self.real
        return (self.plan.prototype if real is None else real).threshold

    @property
    def p_value(self) -> float | None:
        return None if self.real is None else self.real.p_value

    # -- snapshots: the real detector's ----------------------------------------
    def to_state(self) -> DetectorState:
        """The real detector's snapshot: ``base`` caught up (it stays quiet: a
        checkpoint does not end the deferral)."""
        return (self.real or self._caught_up()).to_state()

    def _get_params(self) -> dict[str, Any]:
        return self.plan.prototype._get_params()

    def _get_state(self) -> dict[str, Any]:
        return dict(self.to_state()["state"])

    def _set_state(self, state: Mapping[str, Any]) -> None:
        raise StateError("a Learning restores as the detector it stands for")
