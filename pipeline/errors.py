"""One root for every error driftline raises on purpose."""

from __future__ import annotations

__all__ = ["ConfigError", "DecodeError", "DriftlineError", "SinkError", "SourceError"]


class DriftlineError(Exception):
    """Root of driftline's own exceptions."""


class ConfigError(DriftlineError):
    """The configuration is invalid; the message names the offending key."""


class DecodeError(DriftlineError):
    """A record could not become an event; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SourceError(DriftlineError):
    """Reading input failed."""


class SinkError(DriftlineError):
    """Writing output failed."""
