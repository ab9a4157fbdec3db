from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.state.file_store import FileStateStore, Snapshot, StateFileError


class TestSnapshot:
    def test_apply_folds_changes_and_deletions(self) -> None:
        snap = Snapshot()
        snap.apply(0, {"a": {"x": 1}, "b": {"y": 2}}, {"t": 10})
        snap.apply(0, {"a": None, "c": {"z": 3}}, {"t": 25, "u": 4})
        assert snap.partitions == {0: {"b": {"y": 2}, "c": {"z": 3}}}
        assert snap.positions == {0: {"t": 25, "u": 4}}

    def test_json_round_trip_keeps_integer_partitions(self) -> None:
        snap = Snapshot(
            partitions={3: {"detector:[1]": {"s": [1.5, None]}}, 0: {}},
            positions={3: {"topic": 7}},
        )
        again = Snapshot.from_json(snap.to_json())
        assert again == snap
        assert snap.to_json() == again.to_json()  # stable bytes (sorted keys)

    @pytest.mark.parametrize(
        "raw",
        [b"not json", b"[]", b'{"schema": "other"}',
         b'{"schema": "driftline.state-file.v1", "partitions": {"x": {}}}'],
    )  # fmt: skip
    def test_malformed_input_is_refused(self, raw: bytes) -> None:
        with pytest.raises(StateFileError):
            Snapshot.from_json(raw)


class TestFileStateStore:
    def test_missing_file_loads_empty(self, tmp_path: Path) -> None:
        assert FileStateStore(tmp_path / "none.json").load() == Snapshot()

    def test_save_then_load(self, tmp_path: Path) -> None:
        store = FileStateStore(tmp_path / "sub" / "state.json")
        snap = Snapshot({0: {"k": {"v": 1}}}, {0: {"t": 5}})
        store.save(snap)
        assert store.load() == snap
        assert os.listdir(tmp_path / "sub") == ["state.json"]  # no temp file left

    def test_failed_write_keeps_the_previous_snapshot(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = FileStateStore(tmp_path / "state.json")
        old = Snapshot({0: {"k": {"v": 1}}}, {})
        store.save(old)

        def broken_replace(src: str, dst: str) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(StateFileError, match="No space left"):
            store.save(Snapshot({0: {"k": {"v": 2}}}, {}))
        monkeypatch.undo()
        assert store.load() == old
        assert os.listdir(tmp_path) == ["state.json"]
