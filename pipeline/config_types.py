"""Building blocks of the settings (:mod:`pipeline.config`, :mod:`pipeline.model_spec`):
strict frozen models and durations written as ``30s``, ``15m``, ``2h``, ``7d``."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

__all__ = ["SEVERITY_RANK", "Duration", "Strict", "parse_duration"]

SEVERITY_RANK: dict[str, int] = {"warning": 1, "drift": 2, "critical": 3}

# ------------------------------------------------------------------- durations
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"500ms"``, ``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90, '30s', '15m', '2h', '7d')")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A positive duration in seconds; YAML may say ``30s``, ``15m``, ``2h``, ``7d``."""


class Strict(BaseModel):
    """A settings section: unknown keys are errors, values never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)
