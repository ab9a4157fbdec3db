"""The compiled ADWIN engine (detectors/_adwin_core.c), a base class of ADWIN.

detectors._adwin_reference.PyAdwinCore is its pure-Python twin, with this interface.
"""

from collections.abc import Mapping
from typing import Any, Self

from detectors._numeric import FloatArray

class AdwinCore:
    drift_detected: bool
    warning_detected: bool
    @property
    def width(self) -> int: ...
    @property
    def total(self) -> float: ...
    @property
    def variance(self) -> float: ...
    def update(self, x: float) -> Self: ...
    def reset(self) -> None: ...
    def _configure(
        self,
        delta: float,
        clock: int,
        max_buckets: int,
        min_window_length: int,
        grace_period: int,
    ) -> None: ...
    def _update_array(self, xs: FloatArray) -> list[int]: ...
    def _export_state(self) -> dict[str, Any]: ...
    def _import_state(self, state: Mapping[str, Any]) -> None: ...
