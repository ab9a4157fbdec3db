"""I/O behind one seam: sources deliver ``Record`` batches, sinks take ``Message``s.

This is the only package that imports a Kafka client, and its errors leave it typed
(``pipeline.io.errors``). The memory implementations drive the loop without a
broker (tests); the JSONL ones serve replay.
"""

from __future__ import annotations

from pipeline.io.base import RebalanceEvents, Sink, Source, TransactionalSink
from pipeline.io.errors import FencedError, SinkError, SourceError
from pipeline.io.files import JsonlSink, JsonlSource
from pipeline.io.memory import MemoryGroup, MemorySink, MemorySource, MemoryTransactionalSink

__all__ = [
    "FencedError",
    "JsonlSink",
    "JsonlSource",
    "MemoryGroup",
    "MemorySink",
    "MemorySource",
    "MemoryTransactionalSink",
    "RebalanceEvents",
    "Sink",
    "SinkError",
    "Source",
    "SourceError",
    "TransactionalSink",
]
