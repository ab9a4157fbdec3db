"""What a monitor watches: a signal name -> the value(s) an event carries for it.

Signal names (see DESIGN.md): ``feature:NAME``, ``prediction``, ``confidence``,
``probabilities``, ``output_text``, ``token_logprobs``, ``embedding``, ``error``,
``training.METRIC``, ``grad_norm:LAYER``; ``feature:*`` and ``grad_norm:*`` stand
for every feature / layer an event carries. ``training.divergence`` is derived:
``val_loss - train_loss`` of one training event (validation loss rising while the
training loss stays flat makes it grow). An event that does not carry the signal
yields nothing and the monitor skips it. ``error`` is never read off one event:
the label join produces it (pipeline.core.labels).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pipeline.events import FeatureEvent, InputEvent, PredictionEvent, TrainingEvent

__all__ = ["DIVERGENCE", "Extractor", "extractor_for", "values_of"]

Extractor = Callable[[InputEvent], list[tuple[str, Any]]]
"""event -> [(concrete signal, value)], empty when the event lacks the signal."""

DIVERGENCE = "training.divergence"


def _feature(signal: str, name: str) -> Extractor:
    def extract(event: InputEvent) -> list[tuple[str, Any]]:
        if isinstance(event, FeatureEvent | PredictionEvent) and event.features is not None:
            value = event.features.get(name)
            if value is not None:
                return [(signal, value)]
        return []

    return extract


def _all_features(event: InputEvent) -> list[tuple[str, Any]]:
    if isinstance(event, FeatureEvent | PredictionEvent) and event.features:
        return [(f"feature:{k}", v) for k, v in sorted(event.features.items()) if v is not None]
    return []


def _prediction_field(field: str) -> Extractor:
    def extract(event: InputEvent) -> list[tuple[str, Any]]:
        if isinstance(event, PredictionEvent):
            value = getattr(event, field)
            if value is not None:
                return [(field, value)]
        return []

    return extract


def _embedding(event: InputEvent) -> list[tuple[str, Any]]:
    if isinstance(event, FeatureEvent | PredictionEvent) and event.embedding is not None:
        return [("embedding", event.embedding)]
    return []


def _training_metric(signal: str, name: str) -> Extractor:
    def extract(event: InputEvent) -> list[tuple[str, Any]]:
        if isinstance(event, TrainingEvent):
            value = event.metrics.get(name)
            if value is not None:
                return [(signal, value)]
        return []

    return extract


def _divergence(event: InputEvent) -> list[tuple[str, Any]]:
    if isinstance(event, TrainingEvent):
        val, train = event.metrics.get("val_loss"), event.metrics.get("train_loss")
        if val is not None and train is not None:
            return [(DIVERGENCE, val - train)]
    return []


def _grad_norm(signal: str, layer: str) -> Extractor:
    def extract(event: InputEvent) -> list[tuple[str, Any]]:
        if isinstance(event, TrainingEvent) and event.grad_norms is not None:
            value = event.grad_norms.get(layer)
            if value is not None:
                return [(signal, value)]
        return []

    return extract


def _all_grad_norms(event: InputEvent) -> list[tuple[str, Any]]:
    if isinstance(event, TrainingEvent) and event.grad_norms:
        return [(f"grad_norm:{k}", v) for k, v in sorted(event.grad_norms.items())]
    return []


def _never(event: InputEvent) -> list[tuple[str, Any]]:
    return []


@lru_cache(maxsize=4096)
def extractor_for(signal: str) -> Extractor:
    """The function that reads ``signal`` from an event."""
    if signal == "feature:*":
        return _all_features
    if signal.startswith("feature:"):
        return _feature(signal, signal.removeprefix("feature:"))
    if signal == DIVERGENCE:
        return _divergence
    if signal.startswith("training."):
        return _training_metric(signal, signal.removeprefix("training."))
    if signal == "grad_norm:*":
        return _all_grad_norms
    if signal.startswith("grad_norm:"):
        return _grad_norm(signal, signal.removeprefix("grad_norm:"))
    if signal == "embedding":
        return _embedding
    if signal in ("prediction", "confidence", "probabilities", "output_text", "token_logprobs"):
        return _prediction_field(signal)
    if signal == "error":
        return _never  # derived from joined labels, not read off one event
    raise ValueError(f"unknown signal {signal!r}")


def values_of(signal: str, event: InputEvent) -> list[tuple[str, Any]]:
    """``(concrete signal, value)`` pairs ``event`` carries for ``signal``."""
    return extractor_for(signal)(event)
