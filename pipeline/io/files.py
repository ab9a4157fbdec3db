"""JSON Lines files as a source (one event per line, optionally gzip) and a sink."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, cast

import orjson

from pipeline.core.records import Message, Record
from pipeline.errors import SinkError, SourceError
from pipeline.io.base import Standalone, TopicPartition
from pipeline.io.paths import same_file_key

__all__ = ["JsonlSink", "JsonlSource", "dead_letter_json"]


def _open_read(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


class JsonlSource(Standalone):
    """Reads a JSONL file as partition 0 of topic ``file:<name>``; offset = line number
    (0-based), so dead letters and alert ids point at the exact line."""

    def __init__(self, path: str | Path, topic: str | None = None) -> None:
        self.path = Path(path)
        self.topic = topic or f"file:{self.path.name}"
        try:
            self._file = _open_read(self.path)
        except OSError as exc:
            raise SourceError(f"cannot open {self.path}: {exc.strerror}") from None
        self._line = 0
        self._done = False
        self.committed: dict[TopicPartition, int] = {}
        self._assign_all([(self.topic, 0)])

    @property
    def exhausted(self) -> bool:
        return self._done

    def rewind_to_committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Reopen the file and skip to the committed line."""
        if (self.topic, 0) not in set(partitions):
            return {}
        line = self.committed.get((self.topic, 0), 0)
        self._file.close()
        try:
            self._file = _open_read(self.path)
        except OSError as exc:
            raise SourceError(f"cannot open {self.path}: {exc.strerror}") from None
        for _ in range(line):
            if not self._file.readline():
                break
        self._line = line
        self._done = False
        return {(self.topic, 0): line}

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        batch: list[Record] = []
        while len(batch) < max_records:
            raw = self._file.readline()
            if not raw:
                self._done = True
                break
            offset = self._line
            self._line += 1
            value = raw.rstrip(b"\r\n")
            if value.strip():
                batch.append(Record(self.topic, 0, offset, value))
        return batch

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def close(self) -> None:
        self._file.close()


def dead_letter_json(message: Message) -> bytes:
    """A dead letter as one JSON object (files have no headers)."""
    headers = {k: v.decode("utf-8", "replace") for k, v in message.headers}
    return orjson.dumps(
        {
            "schema": "driftline.dead-letter.v1",
            "reason": headers.get("dl_reason", ""),
            "detail": headers.get("dl_detail", ""),
            "source": {
                "topic": headers.get("dl_topic", ""),
                "partition": int(headers.get("dl_partition", "0")),
                "offset": int(headers.get("dl_offset", "0")),
            },
            "failed_at": headers.get("dl_failed_at"),
            "payload_base64": base64.b64encode(message.value or b"").decode("ascii"),
        }
    )


class JsonlSink:
    """Writes each message kind to its JSONL file; a kind without a path is an error,
    so nothing is dropped silently.

    Kinds given the same file (alerts and rollback commands in one output) share one
    handle, so their lines stay whole and in the order they were sent.
    """

    def __init__(self, paths: Mapping[str, str | Path]) -> None:
        self._files: dict[str, IO[bytes]] = {}
        self._handles: list[IO[bytes]] = []
        by_file: dict[tuple[int, int] | str, IO[bytes]] = {}
        try:
            for kind, path in paths.items():
                p = Path(path)
                p.parent.mkdir(parents=True, exist_ok=True)
                key = same_file_key(p)
                out = by_file.get(key)
                if out is None:
                    out = p.open("wb")
                    self._handles.append(out)
                    # the file exists now: later paths to it (links, ./x) find its inode
                    by_file[key] = by_file[same_file_key(p)] = out
                self._files[kind] = out
        except OSError as exc:
            self.close()
            raise SinkError(f"cannot open {path}: {exc.strerror}") from None

    def send(self, message: Message) -> None:
        out = self._files.get(message.kind)
        if out is None:
            raise SinkError(f"no output file configured for {message.kind} messages")
        if message.kind == "dead_letter":
            line = dead_letter_json(message)
        elif message.value is None:
            raise SinkError(f"a {message.kind} tombstone has no JSONL form")
        else:
            line = message.value
        out.write(line + b"\n")

    def flush(self) -> None:
        for out in self._handles:
            out.flush()

    def close(self) -> None:
        for out in self._handles:
            out.close()
