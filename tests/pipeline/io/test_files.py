from __future__ import annotations

import base64
import gzip
from pathlib import Path

import orjson
import pytest

from pipeline.core.processor import dead_letter
from pipeline.core.records import Message, Record
from pipeline.errors import SinkError
from pipeline.io.files import JsonlSink, JsonlSource


class TestJsonlSource:
    def test_offsets_are_line_numbers_and_blank_lines_skip(self, tmp_path: Path) -> None:
        path = tmp_path / "in.jsonl"
        path.write_bytes(b'{"a":1}\n\n{"a":2}\r\n{"a":3}')
        source = JsonlSource(path)
        first = source.poll(2, 0)
        rest = source.poll(10, 0)
        assert [(r.offset, r.value) for r in first + rest] == [
            (0, b'{"a":1}'),
            (2, b'{"a":2}'),
            (3, b'{"a":3}'),
        ]
        assert source.exhausted
        assert first[0].topic == "file:in.jsonl"

    def test_is_assigned_its_one_partition_and_rewinds_to_the_committed_line(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "in.jsonl.gz"
        with gzip.open(path, "wb") as out:
            out.write(b"".join(b'{"a":%d}\n' % i for i in range(5)))
        source = JsonlSource(path)
        assert source.rebalance_events().assigned == {("file:in.jsonl.gz", 0)}
        assert not source.rebalance_events()
        source.poll(4, 0)
        source.commit({("file:in.jsonl.gz", 0): 2})
        assert source.rewind_to_committed([("file:in.jsonl.gz", 0)]) == {("file:in.jsonl.gz", 0): 2}
        assert [r.offset for r in source.poll(10, 0)] == [2, 3, 4]

    def test_gzip(self, tmp_path: Path) -> None:
        path = tmp_path / "in.jsonl.gz"
        with gzip.open(path, "wb") as out:
            out.write(b'{"a":1}\n')
        assert [r.value for r in JsonlSource(path).poll(10, 0)] == [b'{"a":1}']


class TestJsonlSink:
    def test_kinds_to_files_and_dead_letters_keep_bytes(self, tmp_path: Path) -> None:
        sink = JsonlSink({"alert": tmp_path / "a.jsonl", "dead_letter": tmp_path / "d.jsonl"})
        sink.send(Message("alert", b"m", b'{"x":1}'))
        raw = b'\xff{"broken'
        sink.send(dead_letter(Record("t", 2, 7, raw), "malformed_json", "bad"))
        sink.close()
        assert (tmp_path / "a.jsonl").read_bytes() == b'{"x":1}\n'
        letter = orjson.loads((tmp_path / "d.jsonl").read_bytes())
        assert letter["reason"] == "malformed_json"
        assert letter["source"] == {"topic": "t", "partition": 2, "offset": 7}
        assert base64.b64decode(letter["payload_base64"]) == raw

    def test_unknown_kind_is_an_error_not_a_drop(self, tmp_path: Path) -> None:
        sink = JsonlSink({"alert": tmp_path / "a.jsonl"})
        with pytest.raises(SinkError):
            sink.send(Message("rollback", None, b"{}"))


class TestJsonlSinkSharedFile:
    """Kinds routed to one file share its handle: whole lines, in send order."""

    @pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
    def test_two_kinds_one_file(self, tmp_path: Path, spelling: str) -> None:
        out = tmp_path / "out.jsonl"
        other: Path = out
        if spelling == "dotted":
            other = tmp_path / "." / "sub" / ".." / "out.jsonl"
            (tmp_path / "sub").mkdir()
        elif spelling == "symlink":
            out.touch()
            other = tmp_path / "link.jsonl"
            other.symlink_to(out)
        sink = JsonlSink({"alert": out, "rollback": other})
        sent = [
            Message("alert", b"m", b'{"n":1,"text":"' + b"a" * 300 + b'"}'),
            Message("rollback", b"m", b'{"n":2}'),
            Message("alert", b"m", b'{"n":3}'),
        ]
        for message in sent:
            sink.send(message)
        sink.close()
        assert [orjson.loads(line)["n"] for line in out.read_bytes().splitlines()] == [1, 2, 3]

    def test_an_unopenable_path_is_a_sink_error_naming_it(self, tmp_path: Path) -> None:
        (tmp_path / "a-dir.jsonl").mkdir()
        with pytest.raises(SinkError, match=r"a-dir\.jsonl"):
            JsonlSink({"alert": tmp_path / "ok.jsonl", "rollback": tmp_path / "a-dir.jsonl"})
