"""Holding new requests' predictions over routing (``pipeline.core.held_joins``) gives
what adding each in place gives: the same outputs, state reports, counters and end
state, whatever the interleaving of predictions, labels, redeliveries, variants,
bounds, expiries and unknown models."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core.engine import Engine
from pipeline.core.labels import JoinBuffer
from pipeline.core.monitor import Origin
from pipeline.events import InputEvent
from tests.pipeline.core.helpers import label, prediction, settings

ERROR_MONITORS = [
    {"signal": "error", "detector": "adwin", "params": {"delta": 0.01}},
    {"signal": "error", "detector": "ddm", "segment_by": "region", "name": "by_region"},
]


@st.composite
def _ops(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A stream whose share of labels, spread of models and pace vary per example:
    long runs of predictions (what is held) as well as labels often."""
    kinds = "p" * draw(st.sampled_from([1, 3, 8, 30])) + "l"
    models = draw(st.sampled_from([["a"], ["a", "b", "c"], ["a", "b", "c", "u1", "u2", "u3"]]))
    steps = draw(st.sampled_from([(0, 3), (-3, 30), (0, 120)]))
    op = st.tuples(
        st.sampled_from(kinds),
        st.sampled_from(models),
        st.integers(0, draw(st.sampled_from([5, 40, 400]))),  # requests come back, or not
        st.sampled_from(["production", "production", "production", "shadow"]),
        st.integers(*steps),  # seconds after the previous event (some go back)
        st.sampled_from(["approve", "review", 0.5, 2.0, True]),
        st.sampled_from([0, 0, 1]),  # partition
    )
    return draw(st.lists(op, min_size=60, max_size=300))


def _engine(max_pending: int, budget: int, hold: bool, idle: str = "900s") -> Engine:
    spec: dict[str, Any] = {
        "default_monitors": False,
        "monitors": ERROR_MONITORS,
        "labels": {"ttl": "40s", "max_pending": max_pending},
        "shadow": {"min_pairs": 3},
    }
    engine = Engine(
        settings(
            models={"a": spec, "b": spec, "c": spec | {"shadow": None}},
            default_model=spec,
            unknown_models="monitor",
            limits={
                "max_pending_labels": budget,
                "max_unknown_models": 2,
                "unknown_model_idle": "60s",
                "idle_expiry": idle,
            },
        )
    )
    engine.hold_joins = hold
    return engine


def _events(ops: list[tuple[Any, ...]]) -> list[tuple[InputEvent, Origin]]:
    out: list[tuple[InputEvent, Origin]] = []
    t = 0.0
    for n, (kind, model, request, variant, step, value, partition) in enumerate(ops):
        t = max(0.0, t + step)
        rid = f"r{request}"
        if kind == "l":
            event: InputEvent = label(rid, value, t, model=model)
            out.append((event, Origin("labels", partition, n)))
            continue
        event = prediction(
            model,
            t,
            event_id=f"e{n}",
            request_id=rid,
            variant=variant,
            prediction=value,
            features={"region": ["eu", "us"][request % 2]},
        )
        out.append((event, Origin("predictions", partition, n)))
    return out


def _run(engine: Engine, events: list[tuple[InputEvent, Origin]], cuts: list[int]) -> list[bytes]:
    """Everything observable, batch by batch: outputs, state reports, counters."""
    seen: list[bytes] = []
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        outputs = engine.process(events[start:end])
        seen.append(repr(outputs).encode())
        for number in sorted(engine.partitions):
            state = engine.changed_state(number)
            seen.append(orjson.dumps(state, option=orjson.OPT_SORT_KEYS))
        seen.append(repr(sorted(engine.stats.items())).encode())
    for number, part in sorted(engine.partitions.items()):
        seen.append(repr(sorted(part.pending.sizes.items())).encode())
        for model_id, model in sorted(part.models.items()):
            joins = model.joins
            pages = joins.pages if isinstance(joins, JoinBuffer) else []
            seen.append(repr((number, model_id, len(joins), pages, model.counters)).encode())
    return seen


@hsettings(max_examples=300, deadline=None)
@given(
    ops=_ops(),
    cuts=st.lists(st.integers(0, 300), max_size=4),
    max_pending=st.integers(2, 300),
    budget=st.integers(2, 600),
)
def test_holding_equals_adding_in_place(
    ops: list[tuple[Any, ...]], cuts: list[int], max_pending: int, budget: int
) -> None:
    events = _events(ops)
    held = _run(_engine(max_pending, budget, hold=True), events, cuts)
    in_place = _run(_engine(max_pending, budget, hold=False), events, cuts)
    assert held == in_place


def test_a_batch_of_new_requests_is_held_and_stored_at_once() -> None:
    """The case the holding is for: one page per batch, the pending count right."""
    engine = _engine(max_pending=1000, budget=10_000, hold=True)
    first = [(prediction("a", 0.0, request_id="r-first"), Origin("predictions", 0, 0))]
    engine.process(first)  # the join and its variant are made in place
    batch = [
        (prediction("a", 1.0 + n, request_id=f"r{n}"), Origin("predictions", 0, n + 1))
        for n in range(300)
    ]
    engine.process(batch)
    part = engine.partitions[0]
    joins = part.models["a"].joins
    assert isinstance(joins, JoinBuffer)
    assert len(joins) == 301 and part.pending.total == 301
    assert joins.pages == [0, 1]
    assert not engine._held  # nothing left held after the batch


def _sizes_after(
    hold: bool, *batches: list[tuple[str, str, float]], idle: str = "900s", **bounds: int
) -> tuple[dict[str, int], dict[str, int], Any]:
    """Pending counts, join sizes and the state report after the batches of
    predictions ``(model, request, seconds)``."""
    engine = _engine(bounds.get("max_pending", 1000), bounds.get("budget", 10_000), hold, idle)
    for events in batches:
        items = [
            (prediction(model, t, request_id=rid), Origin("predictions", 0, n))
            for n, (model, rid, t) in enumerate(events)
        ]
        engine.process(items)
    part = engine.partitions[0]
    state = engine.changed_state(0)
    return dict(part.pending.sizes), {m: len(s.joins) for m, s in part.models.items()}, state


def test_the_budget_counts_what_is_held() -> None:
    """The fourth request is over a budget of three only with the two held before it."""
    events = [("a", f"r{n}", float(n)) for n in range(4)]
    held = _sizes_after(True, events, budget=3)
    assert held == _sizes_after(False, events, budget=3)
    assert held[0] == {"a": 3}


def test_a_dropped_unknown_model_takes_its_held_requests_with_it() -> None:
    """u1, holding r2, is the least recently seen unknown model when u3 comes past
    the cap: it is dropped with everything it held, as if r2 had been stored (no
    idle sweep comes between: they are 3 h apart at an idle expiry of a week)."""
    first = [("u1", "r1", 0.0), ("u2", "r1", 1.0)]
    second = [("u1", "r2", 2.0), ("u2", "r2", 3.0), ("u3", "r1", 100.0)]
    held = _sizes_after(True, first, second, idle="604800s")
    assert held == _sizes_after(False, first, second, idle="604800s")
    assert set(held[1]) == {"u2", "u3"} and "u1" not in held[0]


def test_an_idle_sweep_drops_a_model_with_what_it_held() -> None:
    """u1 holds r2 when idle expiry (900 s, the watermark moving 450 s an event at
    most) drops it; a's predictions in between are held too."""
    first = [("u1", "r1", 0.0), ("a", "r0", 0.0)]
    second = [("u1", "r2", 1.0), *(("a", f"r{n}", 450.0 * n) for n in range(1, 5))]
    held = _sizes_after(True, first, second)
    assert held == _sizes_after(False, first, second)
    assert "u1" not in held[1] and held[0] == {"a": 5}
