"""What a monitor watches: a signal name -> the value an event carries for it.

Signal names (see DESIGN.md): ``feature:NAME``, ``prediction``, ``confidence``,
``probabilities``, ``output_text``, ``token_logprobs``, ``embedding``, ``error``,
``training.METRIC``, ``grad_norm:LAYER``. An event that does not carry the
signal yields ``None`` and the monitor skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pipeline.events import FeatureEvent, InputEvent, PredictionEvent, TrainingEvent

__all__ = ["Extractor", "extractor_for"]

Extractor = Callable[[InputEvent], Any]


def _feature(name: str) -> Extractor:
    def extract(event: InputEvent) -> Any:
        if isinstance(event, FeatureEvent | PredictionEvent) and event.features is not None:
            return event.features.get(name)
        return None

    return extract


def _prediction_field(field: str) -> Extractor:
    def extract(event: InputEvent) -> Any:
        if isinstance(event, PredictionEvent):
            return getattr(event, field)
        return None

    return extract


def _embedding(event: InputEvent) -> Any:
    if isinstance(event, FeatureEvent | PredictionEvent):
        return event.embedding
    return None


def _training_metric(name: str) -> Extractor:
    def extract(event: InputEvent) -> Any:
        return event.metrics.get(name) if isinstance(event, TrainingEvent) else None

    return extract


def _grad_norm(layer: str) -> Extractor:
    def extract(event: InputEvent) -> Any:
        if isinstance(event, TrainingEvent) and event.grad_norms is not None:
            return event.grad_norms.get(layer)
        return None

    return extract


def _never(event: InputEvent) -> Any:
    return None


@lru_cache(maxsize=4096)
def extractor_for(signal: str) -> Extractor:
    """The function that reads ``signal`` from an event."""
    if signal.startswith("feature:"):
        return _feature(signal.removeprefix("feature:"))
    if signal.startswith("training."):
        return _training_metric(signal.removeprefix("training."))
    if signal.startswith("grad_norm:"):
        return _grad_norm(signal.removeprefix("grad_norm:"))
    if signal == "embedding":
        return _embedding
    if signal in ("prediction", "confidence", "probabilities", "output_text", "token_logprobs"):
        return _prediction_field(signal)
    if signal == "error":
        return _never  # derived from joined labels, not read off one event
    raise ValueError(f"unknown signal {signal!r}")
