from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.deferred import Deferred, loaded
from pipeline.state.changelog import POSITION_KEY, decode_changelog, encode_entry, encode_position

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
states = st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4)


class TestChangelog:
    @given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.none() | states), max_size=30))
    def test_fold_keeps_the_latest_value_per_key(
        self, writes: list[tuple[str, dict | None]]
    ) -> None:
        positions = {"t": 5}
        records = [encode_entry(0, key, state, positions) for key, state in writes]
        expected: dict[str, dict] = {}
        for key, state in writes:
            if state is None:
                expected.pop(key, None)
            else:
                expected[key] = state
        snapshot = decode_changelog(records)
        assert snapshot.entries == expected
        assert snapshot.skipped == 0

    @given(
        st.lists(
            st.tuples(st.sampled_from(["detector:a", "detector:b", "model:c"]), st.none() | states),
            max_size=30,
        )
    )
    def test_deferred_detector_entries_hold_what_a_full_decode_gives(
        self, writes: list[tuple[str, dict | None]]
    ) -> None:
        """A sidecar's restore keeps detector entries encoded until it rebuilds them:
        loaded, they are the entries a full decode gives; the others are decoded."""
        records = [encode_entry(0, key, state, {"t": 1}) for key, state in writes]
        full = decode_changelog(records)
        deferred = decode_changelog(records, defer_detectors=True)
        assert {k: loaded(v) for k, v in deferred.entries.items()} == full.entries
        for key, state in deferred.entries.items():
            assert isinstance(state, Deferred) == key.startswith("detector:")
        assert (deferred.skipped, deferred.positions) == (full.skipped, full.positions)

    def test_a_deferred_detector_entry_is_held_compressed(self) -> None:
        """A partition's detector records are what a restore holds at its peak: held
        compressed (a window of decimals takes well under its record's bytes)."""
        state = {"detector": {"window": [round(0.001 * k, 3) for k in range(2000)]}}
        record = encode_entry(0, "detector:a", state, {"t": 1})
        (deferred,) = decode_changelog([record], defer_detectors=True).entries.values()
        assert isinstance(deferred, Deferred)
        assert len(deferred.raw) < len(record[1] or b"") / 2
        assert deferred.load() == state

    def test_records_are_folded_as_a_reader_yields_them(self) -> None:
        """A sidecar's reader yields records as fetched: the fold takes any iterable,
        and gives what it gives for the same records in a list."""
        records = [
            encode_entry(0, "detector:a", {"x": [1.5, 2.5]}, {"t": 1}),
            encode_entry(0, "model:b", {"y": 1}, {"t": 1}),
            encode_position(0, {"t": 2}),
        ]
        streamed = decode_changelog(iter(records), defer_detectors=True)
        listed = decode_changelog(records, defer_detectors=True)
        assert {k: loaded(v) for k, v in streamed.entries.items()} == {
            k: loaded(v) for k, v in listed.entries.items()
        }
        assert streamed.positions == listed.positions == {"t": 2}

    def test_positions_come_from_the_last_checkpoint(self) -> None:
        records = [
            encode_entry(1, "k", {"x": 1}, {"preds": 10}),
            encode_position(1, {"preds": 10}),
            encode_entry(1, "k", {"x": 2}, {"preds": 25, "features": 3}),
            encode_position(1, {"preds": 25, "features": 3}),
        ]
        snapshot = decode_changelog(records)
        assert snapshot.positions == {"preds": 25, "features": 3}
        assert snapshot.entries == {"k": {"x": 2}}
        assert POSITION_KEY not in snapshot.entries

    def test_garbage_is_skipped_not_trusted(self) -> None:
        records = [
            (b"k", b"not json"),
            (b"k2", orjson.dumps({"schema": "something-else", "state": {}})),
            (None, b"{}"),
            (b"k3", orjson.dumps({"schema": "driftline.state.v1", "state": [1, 2]})),
            encode_entry(0, "ok", {"v": 1}, {}),
        ]
        snapshot = decode_changelog(records)
        assert snapshot.entries == {"ok": {"v": 1}}
        assert snapshot.skipped == 4


class TestJournal:
    @given(
        st.lists(
            st.tuples(
                st.lists(
                    st.floats(allow_nan=False, allow_infinity=False)
                    | st.integers(-(2**53), 2**53)
                    | st.text(max_size=4),
                    max_size=6,
                )
                | st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1),
                st.integers(0, 2**60),
                st.booleans(),
            ),
            max_size=8,
        )
    )
    def test_deltas_read_back_as_written(self, rows: list[tuple[list[object], int, bool]]) -> None:
        from pipeline.core.journal import KeyDelta, Report
        from pipeline.state.changelog import encode_journal, journal_key

        records = []
        deltas = []
        for key_id, (values, last_seen, window) in enumerate(rows):
            key = f'detector:["m","1","production","s{key_id}","x",""]'
            records.append(encode_entry(0, key, {"detector": {}}, {"t": 1}, key_id=key_id))
            fields: dict[str, object] = {
                "last_seen": last_seen,
                "seq": key_id + 1,
                "window_events": len(values),
            }
            if window:
                fields |= {"window_start": last_seen, "window_first": ["t", 3], "open": True}
            deltas.append(KeyDelta(key_id, values, fields))
        report = Report(7, entries={"meta": {"seq": 3}}, deltas=deltas)
        records.append((journal_key(7).encode(), encode_journal(0, report, {"t": 9})))
        snapshot = decode_changelog(records)
        assert snapshot.skipped == 0
        assert snapshot.positions == {"t": 9}
        assert snapshot.entries["meta"] == {"seq": 3}
        for delta in deltas:
            key = f'detector:["m","1","production","s{delta.key_id}","x",""]'
            [(journal, values, fields)] = snapshot.tail.deltas[key]
            assert journal == 7
            assert values == delta.values
            assert [type(v) for v in values] == [type(v) for v in delta.values]
            assert fields == delta.fields

    def test_a_journal_is_zlib_whatever_compresses_it(self) -> None:
        """Journals are compressed by ISA-L in zlib's format: the standard library
        reads them, so older readers and other tools do too."""
        import zlib

        import orjson

        from pipeline.core.journal import KeyDelta, Report
        from pipeline.state.changelog import JOURNAL_MAGIC, encode_journal

        fields = {"last_seen": 5, "seq": 1, "window_events": 3}
        report = Report(4, entries={"meta": {"seq": 1}}, deltas=[KeyDelta(0, [1.5, 2.5], fields)])
        value = encode_journal(2, report, {"t": 8})
        assert value.startswith(JOURNAL_MAGIC)
        envelope = orjson.loads(zlib.decompress(value[len(JOURNAL_MAGIC) :]))
        assert envelope["partition"] == 2 and envelope["entries"] == {"meta": {"seq": 1}}
