from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.backtest.sources import (
    ParquetSource,
    count_records,
    open_source,
    parse_bound,
    parse_input,
)
from pipeline.config import Settings
from pipeline.core.decode import Decoder
from pipeline.errors import SourceError
from tests.pipeline.backtest.conftest import CONFIG_A, Stream, backtest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _drain(source: object) -> list[bytes]:
    out = []
    while True:
        batch = source.poll(333, 10)  # type: ignore[attr-defined]
        out.extend(r.value for r in batch)
        if not batch and source.exhausted:  # type: ignore[attr-defined]
            return out


class TestInputs:
    def test_parse_input_kinds(self) -> None:
        assert parse_input("a/events.jsonl.gz").kind == "jsonl"
        assert parse_input("events.parquet").kind == "parquet"
        spec = parse_input("kafka:preds", start="2026-01-01T00:00:00Z", end="500")
        assert (spec.kind, spec.topic, spec.end) == ("kafka", "preds", 500)
        assert spec.start == datetime(2026, 1, 1, tzinfo=UTC)
        assert spec.label == "kafka:preds [2026-01-01T00:00:00+00:00 .. 500)"

    @pytest.mark.parametrize("text", ["yesterday", "2026-01-01T00:00:00", "-4"])
    def test_bad_bounds(self, text: str) -> None:
        with pytest.raises(SourceError):
            parse_bound(text)

    def test_gzip_jsonl_is_read_and_counted(self, stream: Stream, tmp_path: Path) -> None:
        gz = tmp_path / "events.jsonl.gz"
        gz.write_bytes(gzip.compress(stream.events.read_bytes()))
        spec = parse_input(str(gz))
        source = open_source(spec, Settings())
        assert count_records(spec, source) == 6000
        assert _drain(source) == stream.events.read_bytes().splitlines()
        source.close()


class TestParquet:
    def test_raw_value_column(self, stream: Stream, tmp_path: Path) -> None:
        lines = stream.events.read_bytes().splitlines()
        path = tmp_path / "dump.parquet"
        pq.write_table(pa.table({"value": lines}), path, row_group_size=1000)
        source = ParquetSource(path)
        assert source.total == 6000
        assert _drain(source) == lines
        source.close()

    def test_one_column_per_field(self, tmp_path: Path) -> None:
        rows = [
            {"schema": "driftline.prediction.v1", "event_id": f"e{i}", "model_id": "m",
             "model_version": "1", "variant": "production",
             "timestamp": datetime(2026, 3, 1, 12, 0, i),  # naive: read as UTC
             "prediction": "approve", "confidence": 0.9,
             "features": {"amount": 10.0 + i, "country": "DE"},
             "probabilities": None}
            for i in range(3)
        ]  # fmt: skip
        path = tmp_path / "cols.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        source = ParquetSource(path)
        values = _drain(source)
        event = orjson.loads(values[1])
        assert event["timestamp"] == "2026-03-01T12:00:01Z"
        assert event["features"] == {"amount": 11.0, "country": "DE"}
        assert "probabilities" not in event  # nulls are omitted, not sent as null
        decoded = Decoder(1 << 20).decode(values[2])
        assert decoded.model_id == "m" and decoded.features == {"amount": 12.0, "country": "DE"}

    def test_map_columns_become_objects(self, tmp_path: Path) -> None:
        table = pa.table(
            {
                "event_id": ["a"],
                "features": pa.array(
                    [[("x", 1.5), ("y", 2.0)]], type=pa.map_(pa.string(), pa.float64())
                ),
            }
        )
        path = tmp_path / "map.parquet"
        pq.write_table(table, path)
        assert orjson.loads(_drain(ParquetSource(path))[0]) == {
            "event_id": "a",
            "features": {"x": 1.5, "y": 2.0},
        }

    def test_not_parquet(self, tmp_path: Path) -> None:
        path = tmp_path / "x.parquet"
        path.write_text("nope")
        with pytest.raises(SourceError, match="as Parquet"):
            ParquetSource(path)

    def test_backtest_of_parquet_scores_like_jsonl(
        self, stream: Stream, write_config: Callable[[str], Path], tmp_path: Path
    ) -> None:
        path = tmp_path / "events.parquet"
        pq.write_table(pa.table({"value": stream.events.read_bytes().splitlines()}), path)
        config = str(write_config(CONFIG_A))
        docs = []
        for src in (stream.events, path):
            out = tmp_path / f"{src.suffix[1:]}.json"
            assert backtest("--config", config, "--input", str(src), "--truth", str(stream.truth),
                            "--json", str(out)) == 0  # fmt: skip
            doc = json.loads(out.read_text())
            for series in doc["runs"][0]["series"]:
                for point in series["change_points"]:
                    point.pop("alert_id")  # ids name the source (file:events.parquet)
            docs.append(doc["runs"][0])
        assert docs[0] == docs[1]
