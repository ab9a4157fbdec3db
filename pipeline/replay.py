"""Backtests: replay recorded events through the sidecar's own runtime and core.

Event time drives everything and the wall clock is never read, so two replays of
the same input give byte-identical output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.config import Settings
from pipeline.core.processor import Processor
from pipeline.io.files import JsonlSink, JsonlSource
from pipeline.runtime.loop import RunStats, Runtime

__all__ = ["default_dead_letter_path", "replay"]


def default_dead_letter_path(output: Path) -> Path:
    return output.with_name(output.stem + ".dead-letters.jsonl")


def replay(
    settings: Settings,
    *,
    inputs: Sequence[Path],
    output: Path,
    dead_letters: Path | None = None,
) -> RunStats:
    """Replay ``inputs`` in order; alerts and rollback commands go to ``output``."""
    processor = Processor(settings)
    sink = JsonlSink(
        {
            "alert": output,
            "rollback": output,
            "dead_letter": dead_letters or default_dead_letter_path(output),
        }
    )
    total = RunStats()
    try:
        for path in inputs:
            source = JsonlSource(path)
            try:
                stats = Runtime(processor, source, sink, settings.runtime).run()
            finally:
                source.close()
            total.batches += stats.batches
            total.events += stats.events
            total.alerts += stats.alerts
            total.dead_letters += stats.dead_letters
    finally:
        sink.close()
    return total
