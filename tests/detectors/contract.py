"""What the shared detector contract suite needs to know about each detector."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.base import DriftDetector


@dataclass(frozen=True)
class ContractCase:
    """How to exercise one registered detector in the contract suite.

    ``factory`` builds a detector with parameters small enough that ``stream``
    makes it fire; ``stream(rng, n)`` returns ``n`` observations of the detector's
    input kind containing at least one change; ``invalid`` lists keyword arguments
    that must raise ``ValueError`` together with the parameter name the message
    must contain.
    """

    factory: Callable[[], DriftDetector[Any]]
    stream: Callable[[np.random.Generator, int], Sequence[Any]]
    invalid: Sequence[tuple[dict[str, Any], str]] = field(default_factory=tuple)
