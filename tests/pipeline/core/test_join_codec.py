"""The label join's version 2 pages: equal to the dict-based join they replaced, op for
op and across snapshots; version 1 state (a committed fixture) restores and goes on
exactly as the version 1 code did."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core.join_codec import decode_pages
from pipeline.core.labels import COUNTERS, JoinBuffer, Joined, error_of
from pipeline.core.processor import Processor
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import records, settings

FIXTURE = Path(__file__).parent / "fixtures" / "join_v1.json"


class Reference:
    """The version 1 join (one dict per request), kept here as the oracle."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _unjoined(self, entry: dict[str, Any], counters: dict[str, int]) -> None:
        if entry["label"] is not None and not entry["predictions"]:
            counters["orphan"] += 1
        elif entry["label"] is None and entry["predictions"]:
            counters["unlabeled"] += 1

    def expire(self, horizon: int, counters: dict[str, int]) -> None:
        while self.entries and next(iter(self.entries.values()))["at"] < horizon:
            self._unjoined(self.entries.popitem(last=False)[1], counters)

    def _entry(self, rid: str, at: int, max_pending: int, counters: dict[str, int]) -> dict:
        entry = self.entries.get(rid)
        if entry is None:
            while len(self.entries) >= max_pending:
                counters["evicted"] += 1
                self._unjoined(self.entries.popitem(last=False)[1], counters)
            entry = self.entries[rid] = {
                "at": at, "predictions": {}, "label": None, "errors": {}, "paired": False,
            }  # fmt: skip
        return entry

    def _join(self, entry: dict, variant: str, ttl: int, counters: dict[str, int]) -> Joined | None:
        version, value, at, segment = entry["predictions"][variant]
        label, label_at = entry["label"]
        if abs(label_at - at) > ttl:
            counters["late"] += 1
            return None
        error = error_of(value, label, None)
        if error is None:
            counters["incomparable"] = counters.get("incomparable", 0) + 1
            return None
        entry["errors"][variant] = error
        counters["joined"] += 1
        return Joined(variant, version, error, dict(segment or ()), label_at - at)

    def add_prediction(self, rid, variant, version, value, at, segment, ttl, max_pending, counters):
        entry = self._entry(rid, at, max_pending, counters)
        if variant in entry["predictions"]:
            return entry, []
        entry["predictions"][variant] = (version, value, at, segment)
        if entry["label"] is None:
            return entry, []
        joined = self._join(entry, variant, ttl, counters)
        return entry, [joined] if joined else []

    def add_label(self, rid, value, at, ttl, max_pending, counters):
        entry = self._entry(rid, at, max_pending, counters)
        if entry["label"] is not None:
            counters["duplicate_labels"] += 1
            return entry, []
        entry["label"] = (value, at)
        joined = [self._join(entry, v, ttl, counters) for v in entry["predictions"]]
        return entry, [j for j in joined if j]

    @staticmethod
    def pair(entry: dict, candidate: str) -> tuple | None:
        errors = entry["errors"]
        if entry["paired"] or "production" not in errors or candidate not in errors:
            return None
        entry["paired"] = True
        versions = entry["predictions"]
        return (
            errors["production"], errors[candidate], versions[candidate][0],
            versions["production"][0],
        )  # fmt: skip


VALUES = st.sampled_from([1.0, 2.5, -3.0, "a", "b", "1", True, False])
OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("p"), st.integers(0, 11), st.sampled_from(["production", "shadow", "canary"]),
            st.sampled_from(["1", "2"]), VALUES, st.integers(-5, 30),
            st.sampled_from([None, (("country", "DE"),), (("country", None),)]),
        ),
        st.tuples(st.just("l"), st.integers(0, 11), VALUES, st.integers(-5, 30)),
        st.tuples(st.just("x"), st.integers(-10, 40)),
        st.tuples(st.just("snapshot")),
    ),
    max_size=120,
)  # fmt: skip


def _snapshot(buffer: JoinBuffer) -> JoinBuffer:
    pages = [(p, orjson.loads(orjson.dumps(buffer.page_state(p)))) for p in buffer.pages]
    return JoinBuffer(decode_pages(pages, buffer.store.next))


class TestEqualsTheDictJoin:
    @hsettings(max_examples=300, deadline=None)
    @given(ops=OPS, max_pending=st.integers(1, 8), ttl=st.integers(1, 12))
    def test_op_for_op_and_across_snapshots(
        self, ops: list[tuple], max_pending: int, ttl: int
    ) -> None:
        reference, buffer = Reference(), JoinBuffer()
        expected: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        got: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        clock = 0
        for batch, op in enumerate(ops):
            if op[0] == "p":
                _, r, variant, version, value, dt, segment = op
                clock += dt
                entry, joined = reference.add_prediction(
                    f"r{r}", variant, version, value, clock, segment, ttl, max_pending, expected
                )
                touched = buffer.add_prediction(
                    f"r{r}", variant, version, value, clock, segment, batch=batch // 3, ttl=ttl,
                    max_pending=max_pending, classification=None, counters=got,
                )  # fmt: skip
                assert touched is not None
                assert touched.joined == joined
                assert buffer.pair(touched.slot, "shadow", None) == reference.pair(entry, "shadow")
            elif op[0] == "l":
                _, r, value, dt = op
                clock += dt
                entry, joined = reference.add_label(
                    f"r{r}", value, clock, ttl, max_pending, expected
                )
                touched = buffer.add_label(
                    f"r{r}", value, clock, batch=batch // 3, ttl=ttl, max_pending=max_pending,
                    classification=None, counters=got,
                )  # fmt: skip
                assert touched.joined == joined
                assert buffer.pair(touched.slot, "shadow", None) == reference.pair(entry, "shadow")
            elif op[0] == "x":
                reference.expire(op[1] + clock, expected)
                buffer.expire(op[1] + clock, got)
            else:
                before = [buffer.page_state(p) for p in buffer.pages]
                buffer = _snapshot(buffer)
                assert [buffer.page_state(p) for p in buffer.pages] == before
            assert got == expected
            assert len(buffer) == len(reference.entries)


def _fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def _continue(entries: dict[str, Any]) -> tuple[Processor, list[list[dict[str, Any]]]]:
    data = _fixture()
    stream = dict(data["stream"])
    stream["drifts"] = tuple(DriftSpec(**d) for d in stream["drifts"])
    recs = records(GeneratorConfig(**stream))
    processor = Processor(settings(**data["config"]))
    processor.restore(0, entries)
    out = []
    for k in range(data["cut"], len(recs), 500):
        for messages in processor.process_batch(recs[k : k + 500]):
            out.append([orjson.loads(m.value) for m in messages])
    return processor, out


class TestVersion1State:
    """``fixtures/join_v1.json``: state written by the version 1 code mid-stream, and
    the messages that code produced for the rest of the stream."""

    def test_version_1_pages_restore_and_go_on_as_before(self) -> None:
        data = _fixture()
        processor, out = _continue(data["entries"])
        assert out == data["outputs_after_cut"]
        counters = {k: v for k, v in processor.stats.items() if k.startswith("labels:")}
        assert counters == data["label_counters"]

    def test_they_are_rewritten_as_version_2_pages(self) -> None:
        data = _fixture()
        processor = Processor(settings(**data["config"]))
        processor.restore(0, data["entries"])
        changed = processor.changed_state(0)
        old = [k for k in data["entries"] if k.startswith("join:")]
        new = [k for k, v in changed.items() if k.startswith("join:") and v is not None]
        assert new and all(changed[k]["version"] == 2 for k in new)
        assert all(changed[k] is None for k in old if k not in new)
        assert sum(changed[k]["rows"] for k in new) == sum(
            len(data["entries"][k]["entries"]) for k in old
        )

    def test_the_per_request_layout_before_pages_restores_too(self) -> None:
        data = _fixture()
        entries = {k: v for k, v in data["entries"].items() if not k.startswith("join:")}
        for key, page in data["entries"].items():
            if key.startswith("join:"):
                model = orjson.loads(key.removeprefix("join:"))[0]
                for request in page["entries"]:
                    entries["join:" + orjson.dumps([model, request["request_id"]]).decode()] = (
                        request
                    )
        _processor, out = _continue(entries)
        assert out == data["outputs_after_cut"]


class TestCorruptPages:
    def _page(self) -> tuple[int, dict[str, Any]]:
        buffer = JoinBuffer()
        counters = dict.fromkeys(COUNTERS, 0)
        for i in range(3):
            buffer.add_prediction(
                f"r{i}", "production", "1", "a", i, None, batch=0, ttl=5, max_pending=9,
                classification=None, counters=counters,
            )  # fmt: skip
        (page,) = buffer.pages
        state = buffer.page_state(page)
        assert state is not None
        return page, state

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("hash", "not base64!", "not base64"),
            ("hash", "AAAA", "not 3 values"),
            ("version", 3, "unsupported"),
            ("values", [[1]], "not a class or flag"),
            ("rows", 0, "do not follow on"),
        ],
    )
    def test_are_refused_naming_what_is_wrong(self, field: str, value: Any, message: str) -> None:
        page, state = self._page()
        with pytest.raises(ValueError, match=message):
            decode_pages([(page, {**state, field: value})], None)

    def test_a_gap_between_pages_is_refused(self) -> None:
        page, state = self._page()
        later = {**state, "first": page + 10}
        with pytest.raises(ValueError, match="do not follow on"):
            decode_pages([(page, state), (page + 10, later)], None)


@given(
    st.lists(st.lists(st.integers(min_value=0, max_value=40), max_size=50), min_size=1, max_size=4)
)
def test_small_pages_number_their_codes_as_large_ones_do(pieces: list[list[int]]) -> None:
    """``_local`` numbers a few codes in Python and many with numpy: the same result."""
    import numpy as np

    from pipeline.core import join_codec
    from pipeline.core.join_store import Interned

    table = Interned()
    for k in range(41):
        table.code(f"v{k}")
    arrays = [np.array(p, np.int64) for p in pieces]
    saved = join_codec._SMALL
    try:
        join_codec._SMALL = 10**9
        small_table, small_codes = join_codec._local(table, arrays)
        join_codec._SMALL = -1
        large_table, large_codes = join_codec._local(table, arrays)
    finally:
        join_codec._SMALL = saved
    assert small_table == large_table
    assert [c.tolist() for c in small_codes] == [c.tolist() for c in large_codes]


class TestManyPages:
    """Pages are decoded together (one array per column, page-local codes mapped
    side by side): pages that number their classes and versions differently, a
    variant one page lacks, labels on some pages only."""

    def _buffer(self) -> JoinBuffer:
        buffer = JoinBuffer()
        counters = dict.fromkeys(COUNTERS, 0)
        kw: dict[str, Any] = {"ttl": 10**9, "max_pending": 99, "classification": None}
        add = buffer.add_prediction
        add("r0", "production", "1", "a", 1, None, batch=0, counters=counters, **kw)
        add("r1", "production", "2", "b", 2, None, batch=0, counters=counters, **kw)
        add("r2", "production", "2", "c", 3, None, batch=1, counters=counters, **kw)  # c first
        add("r3", "shadow", "1", "b", 4, None, batch=1, counters=counters, **kw)
        add("r4", "shadow", "3", 0.5, 5, None, batch=2, counters=counters, **kw)
        buffer.add_label("r3", "a", 6, batch=2, counters=counters, **kw)
        add("r5", "production", "1", True, 7, None, batch=3, counters=counters, **kw)
        assert len(buffer.pages) == 4
        return buffer

    def test_decoded_together_they_write_the_same_pages(self) -> None:
        buffer = self._buffer()
        pages = [(p, buffer.page_state(p)) for p in buffer.pages]
        restored = JoinBuffer(decode_pages([(p, s) for p, s in pages if s is not None], None))
        assert [(p, restored.page_state(p)) for p in restored.pages] == pages
        for page in reversed(pages):  # in any order
            assert page in [(p, restored.page_state(p)) for p in restored.pages]

    def test_a_bad_class_code_names_its_page(self) -> None:
        buffer = self._buffer()
        pages = [(p, buffer.page_state(p)) for p in buffer.pages]
        page, state = pages[1]
        assert state is not None
        state = {**state, "values": state["values"][:1]}  # its codes 1.. now point nowhere
        with pytest.raises(ValueError, match=f"join page {page} variant .*class code"):
            decode_pages([pages[0], (page, state)], None)  # type: ignore[list-item]
