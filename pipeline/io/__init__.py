"""I/O behind one seam: sources deliver ``Record`` batches, sinks take ``Message``s.

This is the only package that imports a Kafka client. The memory implementations
make the core testable without a broker; the JSONL ones serve replay.
"""

from __future__ import annotations

from pipeline.io.base import Sink, Source
from pipeline.io.files import JsonlSink, JsonlSource
from pipeline.io.memory import MemorySink, MemorySource

__all__ = ["JsonlSink", "JsonlSource", "MemorySink", "MemorySource", "Sink", "Source"]
