"""The detector protocol every driftline detector follows.

Modelled on river's ``DriftDetector``: hyperparameters are keyword arguments of
``__init__`` stored under the same names, ``update`` consumes one observation and
``drift_detected`` / ``warning_detected`` say what *that* observation caused.

Two additions make detectors usable in a fault-tolerant stream processor:

* ``update_many(values)`` is the batch path. It must return exactly the indices at
  which feeding the same values one by one would have set ``drift_detected``, and
  leave the detector in the same state. Subclasses override it only to go faster.
  ``column_path`` tells the engine to feed a batch's values through it in one call.
* ``to_state()`` / ``from_state()`` give a versioned, plain-JSON snapshot
  (parameters + summary statistics). State is read back from a Kafka topic that
  anyone with write access could fill, so it is never pickled and ``from_state``
  validates what it reads.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Generic, Literal, TypedDict, TypeVar

__all__ = [
    "DetectorState",
    "DriftDetector",
    "InputKind",
    "StateError",
    "REGISTRY",
    "check_finite",
    "create",
    "get",
    "register",
    "require",
]

T = TypeVar("T")
D = TypeVar("D", bound="DriftDetector[Any]")

InputKind = Literal["numeric", "binary", "categorical", "text", "vector", "logprobs"]
"""What a detector consumes; the contract suite generates streams of this kind."""


class DetectorState(TypedDict):
    """A JSON-serialisable snapshot: which detector, which state layout, its
    hyperparameters and its summary statistics."""

    detector: str
    version: int
    params: dict[str, Any]
    state: dict[str, Any]


class StateError(ValueError):
    """A snapshot cannot be restored: wrong detector, unknown version, bad shape."""


def check_finite(x: float, name: str = "x") -> float:
    """Return ``x`` as a float, refusing NaN and infinities with a ValueError."""
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    return value


class DriftDetector(ABC, Generic[T]):
    """Base class of every detector.

    Subclasses set ``name`` (the registry key), ``input_kind``, ``state_version``,
    ``column_path`` and, where one hyperparameter is the alarm threshold, ``threshold_param`` and
    ``threshold_increases_run_length`` (True when a larger value means fewer alarms);
    ``detectors.calibrate`` uses those two.
    """

    name: ClassVar[str]
    input_kind: ClassVar[InputKind] = "numeric"
    state_version: ClassVar[int] = 1
    upgradable_versions: ClassVar[frozenset[int]] = frozenset()
    """Older snapshot versions ``from_state`` still reads (see ``_upgrade_state``)."""
    threshold_param: ClassVar[str | None] = None
    threshold_increases_run_length: ClassVar[bool] = True
    column_path: ClassVar[bool] = False
    """The engine feeds the values a batch routes to this detector through one
    ``update_many`` call, and only when that call detects drift puts the detector
    back (from its snapshot) and feeds them one by one to locate the evidence. Worth
    it where drift is rare and ``update_many`` (vectorised, or the plain loop below)
    costs less than the engine's per-value bookkeeping; otherwise values go one by
    one."""
    column_min: ClassVar[int] = 0
    """The shortest column for which ``update_many`` does better than value by value
    (0: the engine's own minimum decides): a shorter one goes one by one, without the
    snapshot the column path takes first."""

    copies_by_reset: ClassVar[bool] = False
    """``fresh_copy`` may copy the attributes and ``reset``: true only where ``reset``
    assigns anew every attribute an update changes (none is changed in place on an
    object shared with the prototype, as a baseline object reset in place would be);
    the contract suite feeds copies of one prototype different streams in turns and
    compares each with a detector built by ``__init__``."""

    drift_detected: bool
    warning_detected: bool

    def __init__(self) -> None:
        self.drift_detected = False
        self.warning_detected = False

    # -- the per-event path -------------------------------------------------
    @abstractmethod
    def update(self, x: T) -> DriftDetector[T]:
        """Consume one observation; set ``drift_detected`` / ``warning_detected``."""

    def update_many(self, values: Iterable[T]) -> list[int]:
        """Consume ``values`` in order; return the indices where drift was detected.

        Equal, by contract, to calling ``update`` on each value in turn.
        """
        detections = []
        update = self.update
        for i, x in enumerate(values):
            update(x)
            if self.drift_detected:
                detections.append(i)
        return detections

    @abstractmethod
    def reset(self) -> None:
        """Forget everything learned; keep the hyperparameters."""

    # -- evidence for alerts -----------------------------------------------
    @property
    def statistic(self) -> float:
        """The value compared with the threshold (NaN when not yet defined)."""
        return math.nan

    @property
    def threshold(self) -> float:
        """The bound the statistic is compared with (NaN when not meaningful)."""
        if self.threshold_param is None:
            return math.nan
        return float(getattr(self, self.threshold_param))

    @property
    def p_value(self) -> float | None:
        """The p-value of the last test, for detectors that run one."""
        return None

    # -- the quiet period (see detectors.learning) -------------------------------
    @property
    def quiet_period(self) -> int:
        """Observations after a reset during which this detector promises to set
        neither flag, to report a NaN ``statistic``, a None ``p_value`` and a fresh
        detector's ``threshold``, whatever they are: nothing it reports depends on
        them, so :class:`~detectors.learning.Learning` may hold them as values and
        feed them later through ``update_many``. 0 (the default) promises nothing;
        a detector that promises a period also defines ``admit``."""
        return 0

    @staticmethod
    def admit(x: Any) -> Any:
        """``x`` as ``update`` consumes it (a float, a category's key), raising the
        error ``update`` raises for it; feeding the admitted value changes the
        detector as feeding ``x`` does. A plain function (``staticmethod``): it is
        called once per value held."""
        raise NotImplementedError("this detector promises no quiet period")

    # -- parameters and snapshots ---------------------------------------------
    @abstractmethod
    def _get_params(self) -> dict[str, Any]:
        """Hyperparameters as plain JSON values, keyed by ``__init__`` argument."""

    @abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """Summary statistics as plain JSON values."""

    @abstractmethod
    def _set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``_get_state`` produced (after ``__init__`` with the params)."""

    def _upgrade_state(self, version: int, state: Mapping[str, Any]) -> Mapping[str, Any]:
        """The state of an older snapshot ``version`` (one of ``upgradable_versions``)
        in the current layout, so that snapshots written before a format change
        still restore; validation stays in ``_set_state``."""
        raise StateError(f"{self.name} cannot upgrade a version {version} snapshot")

    @classmethod
    def adopt(cls, snapshot: Mapping[str, Any], params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``snapshot`` as a detector configured with ``params`` now restores it. A
        restored detector keeps the parameters it was written with (its state means
        what they say), so by default ``snapshot`` unchanged; a detector whose state
        converts to a newer parameter's takes that parameter (``KSWindow``'s
        ``reference_knots``)."""
        return snapshot

    def to_state(self) -> DetectorState:
        return {
            "detector": self.name,
            "version": self.state_version,
            "params": self._get_params(),
            "state": self._get_state(),
        }

    @classmethod
    def from_state(cls: type[D], snapshot: Mapping[str, Any]) -> D:
        """Rebuild a detector from ``to_state()`` output, validating it first."""
        if not isinstance(snapshot, Mapping):
            raise StateError(f"{cls.__name__} snapshot must be a mapping")
        if snapshot.get("detector") != cls.name:
            raise StateError(
                f"snapshot is for detector {snapshot.get('detector')!r}, not {cls.name!r}"
            )
        version = snapshot.get("version")
        if version != cls.state_version and version not in cls.upgradable_versions:
            raise StateError(
                f"{cls.name} snapshot version {version!r} is not "
                f"supported (expected {cls.state_version})"
            )
        params, state = snapshot.get("params"), snapshot.get("state")
        if not isinstance(params, Mapping) or not isinstance(state, Mapping):
            raise StateError(f"{cls.name} snapshot needs 'params' and 'state' mappings")
        detector = cls(**params)
        try:
            if version != cls.state_version:
                state = detector._upgrade_state(int(version), state)
            detector._set_state(state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StateError(f"{cls.name} snapshot state is malformed: {exc}") from exc
        return detector

    def clone(self: D) -> D:
        """A fresh detector with the same hyperparameters."""
        return type(self)(**self._get_params())

    def fresh_copy(self: D) -> D:
        """What ``clone`` gives, for a prototype that is never fed: an engine builds
        one detector per key, thousands per model set. With ``copies_by_reset`` it
        copies this detector's attributes and calls ``reset`` instead of running
        ``__init__``'s checks and derived constants again (about half the cost of a
        key's creation for a KS window)."""
        if not self.copies_by_reset:
            return self.clone()
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.reset()
        return copy

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({params})"


REGISTRY: dict[str, type[DriftDetector[Any]]] = {}
"""Detector name -> class. Config and the contract suite look detectors up here."""


def register(cls: type[D]) -> type[D]:
    """Class decorator adding ``cls`` to ``REGISTRY`` under ``cls.name``."""
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must define a class attribute 'name'")
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise TypeError(f"detector name {name!r} is already registered")
    REGISTRY[name] = cls
    return cls


def get(name: str) -> type[DriftDetector[Any]]:
    """The detector class registered as ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown detector {name!r}; known: {known}") from None


def create(name: str, **params: Any) -> DriftDetector[Any]:
    """Build the detector registered as ``name`` with ``params``."""
    return get(name)(**params)


def require(condition: bool, param: str, message: str) -> None:
    """Raise ``ValueError`` naming ``param`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{param}: {message}")
