"""ADWIN: adaptive windowing (Bifet & Gavaldà, 2007), river-compatible.

The window and cut search run in an engine class: the compiled
``detectors._adwin_core.AdwinCore`` when it is built, else the pure-Python
reference ``detectors._adwin_reference.PyAdwinCore``. This module adds the detector
protocol on top: hyperparameter and snapshot validation, ``update_many``'s input
checks, parameters and window statistics.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from detectors._adwin_reference import PyAdwinCore, canonical_counts
from detectors._parse import (
    FloatArray,
    as_float_array,
    get_bool,
    get_float,
    get_float_list,
    get_int,
)
from detectors.base import DriftDetector, register, require

NATIVE: bool
"""Whether ``ADWIN`` runs on the compiled engine."""
try:
    from detectors._adwin_core import AdwinCore as _Engine

    NATIVE = True
except ImportError:  # installed without a compiler: the reference engine
    _Engine = PyAdwinCore  # type: ignore[assignment,misc]
    NATIVE = False

__all__ = ["ADWIN", "NATIVE", "PythonADWIN"]


def _check_int(value: Any, name: str, minimum: int) -> int:
    require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool),
        name,
        f"must be an integer, got {value!r}",
    )
    require(int(value) >= minimum, name, f"must be >= {minimum}, got {value!r}")
    return int(value)


class _ADWINBase(DriftDetector[float]):
    """The detector protocol over an ADWIN engine (a base placed before this one)."""

    name: ClassVar[str] = "adwin"
    column_path: ClassVar[bool] = True
    input_kind = "numeric"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "delta"
    threshold_increases_run_length: ClassVar[bool] = False

    _delta: float
    _clock: int
    _max_buckets: int
    _min_window_length: int
    _grace_period: int

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__()
        require(
            isinstance(delta, (int, float)) and not isinstance(delta, bool) and 0 < delta < 1,
            "delta",
            f"must be a number in (0, 1), got {delta!r}",
        )
        self._delta = float(delta)
        self._clock = _check_int(clock, "clock", 1)
        self._max_buckets = _check_int(max_buckets, "max_buckets", 1)
        self._min_window_length = _check_int(min_window_length, "min_window_length", 1)
        self._grace_period = _check_int(grace_period, "grace_period", 0)
        self._configure(
            self._delta,
            self._clock,
            self._max_buckets,
            self._min_window_length,
            self._grace_period,
        )

    # -- hyperparameters (read-only: the engine holds its own copy) --------------
    @property
    def delta(self) -> float:
        return self._delta

    @property
    def clock(self) -> int:
        return self._clock

    @property
    def max_buckets(self) -> int:
        return self._max_buckets

    @property
    def min_window_length(self) -> int:
        return self._min_window_length

    @property
    def grace_period(self) -> int:
        return self._grace_period

    # -- the engine's interface (detectors/_adwin_core.pyi) ------------------------
    @abstractmethod
    def _configure(
        self,
        delta: float,
        clock: int,
        max_buckets: int,
        min_window_length: int,
        grace_period: int,
    ) -> None: ...

    @abstractmethod
    def _update_array(self, xs: FloatArray) -> list[int]: ...

    @abstractmethod
    def _export_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _import_state(self, state: Mapping[str, Any]) -> None: ...

    @property
    @abstractmethod
    def width(self) -> int: ...

    @property
    @abstractmethod
    def total(self) -> float: ...

    @property
    @abstractmethod
    def variance(self) -> float: ...

    # -- window statistics -------------------------------------------------------
    @property
    def estimation(self) -> float:
        """Mean of the window (0.0 when empty)."""
        width = self.width
        return self.total / width if width else 0.0

    @property
    def statistic(self) -> float:
        width = self.width
        return self.total / width if width else float("nan")

    # -- batch path ----------------------------------------------------------------
    def update_many(self, values: Iterable[float]) -> list[int]:
        return self._update_array(np.ascontiguousarray(as_float_array(values)))

    # -- snapshots -----------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "delta": self._delta,
            "clock": self._clock,
            "max_buckets": self._max_buckets,
            "min_window_length": self._min_window_length,
            "grace_period": self._grace_period,
        }

    def _get_state(self) -> dict[str, Any]:
        return self._export_state()

    def _set_state(self, state: Mapping[str, Any]) -> None:
        width = get_int(state, "width")
        tick = get_int(state, "tick")
        total = get_float(state, "total")
        variance = get_float(state, "variance")
        drift = get_bool(state, "drift_detected")
        raw_t, raw_v = state["bucket_totals"], state["bucket_variances"]
        if not isinstance(raw_t, list) or not isinstance(raw_v, list):
            raise TypeError("bucket_totals and bucket_variances must be lists")
        if not raw_t or len(raw_t) != len(raw_v):
            raise ValueError("bucket_totals and bucket_variances must be non-empty, same length")
        tots = [get_float_list({"level": t}, "level") for t in raw_t]
        vars_ = [get_float_list({"level": v}, "level") for v in raw_v]
        mb = self._max_buckets
        for lv, (t, v) in enumerate(zip(tots, vars_, strict=True)):
            if len(t) != len(v) or len(t) > mb + 1:
                raise ValueError(f"bucket level {lv} has inconsistent sizes")
        covered = sum(len(t) << lv for lv, t in enumerate(tots))
        if covered != width:
            raise ValueError(f"buckets cover {covered} values, width says {width}")
        if not drift:
            # undetected state: the structure is the canonical one for its count
            _, resident = canonical_counts(width, mb)
            if [len(t) for t in tots] != resident or tick != width:
                raise ValueError("bucket structure does not match the window width")
        self._import_state(
            {
                "width": width,
                "total": total,
                "variance": variance,
                "tick": tick,
                "bucket_totals": tots,
                "bucket_variances": vars_,
                "drift_detected": drift,
            }
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle through the snapshot: the compiled engine's
        # window is not in __dict__
        return (type(self).from_state, (self.to_state(),))


@register
class ADWIN(_Engine, _ADWINBase):
    r"""Adaptive windowing drift detector, firing at the same indices as river's ``ADWIN``.

    ADWIN keeps a window of recent values compressed into exponential-size buckets
    (at most ``max_buckets`` per size). Every ``clock`` updates, once the window
    holds more than ``grace_period`` values, it checks every bucket boundary that
    splits the window into two sub-windows of at least ``min_window_length``
    values; if their means differ by more than the Hoeffding/Bernstein bound
    :math:`\epsilon_{cut}` at significance ``delta``, the oldest bucket is dropped
    (repeatedly) and drift is reported. As in river, the update that follows a
    detection starts again from an empty window.

    The arithmetic is river's (its Rust ``AdaptiveWindowing``), operation for
    operation, so detections coincide with river's exactly; this is checked by
    ``tests/detectors/test_river_conformance.py``. One deliberate difference: with
    ``max_buckets=1`` a level of the bucket structure can be empty, and when a cut
    leaves such a level on top river 0.26 panics (``PanicException``); this class
    skips the empty levels and carries on.

    Parameters
    ----------
    delta
        Significance value, in (0, 1). Larger means more detections.
    clock
        Check for change every ``clock`` updates (1 = every update).
    max_buckets
        Buckets of each size kept before the two oldest are merged.
    min_window_length
        Smallest sub-window (in values) a cut may leave on either side (>= 1).
    grace_period
        No check until the window holds more than this many values.


    Notes
    -----
    Two engines, bit-identical (same operations in the same order; tested): the
    compiled ``detectors._adwin_core`` (C, built at install time; ``update`` is one
    C call, ``update_many`` one C loop) and, when it is not built, the pure-Python
    reference ``detectors._adwin_reference`` (``PythonADWIN`` always uses it).
    ``NATIVE`` says which one ``ADWIN`` runs on. Snapshots of either restore in the
    other. Hyperparameters are read-only after construction.

    Memory: O(``max_buckets`` * log2(W / ``max_buckets``)) floats for a window of
    W values (the Python engine also defers up to ``clock`` values to the next
    check, and its ``update_many`` uses O(chunk) temporary memory).
    ``statistic`` is the mean of the current window (ADWIN has no single test
    statistic); ``threshold`` is ``delta``.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import ADWIN
    >>> rng = np.random.default_rng(7)
    >>> stream = np.concatenate([rng.normal(0.0, 1.0, 1000), rng.normal(1.5, 1.0, 1000)])
    >>> adwin = ADWIN()
    >>> for i, x in enumerate(stream):
    ...     _ = adwin.update(x)
    ...     if adwin.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 1023
    >>> ADWIN().update_many(stream)
    [1023]
    """

    name: ClassVar[str] = _ADWINBase.name  # register() reads the class's own dict


class PythonADWIN(PyAdwinCore, _ADWINBase):
    """``ADWIN`` on the pure-Python reference engine, whether or not the compiled one
    is built (same parameters, detections and snapshots; not registered)."""
