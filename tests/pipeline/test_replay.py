from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from pipeline.backtest.trace import Tracer
from pipeline.cli import main
from pipeline.config import parse_settings
from pipeline.core.records import Message, Record
from pipeline.generate import DriftSpec, GeneratorConfig, generate
from pipeline.io.memory import MemorySink, MemorySource
from pipeline.replay import ReplaySink, force_dry_run, run_replay
from pipeline.state.file_store import FileStateStore

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "driftline.yaml"


def _write_events(path: Path) -> None:
    config = GeneratorConfig(
        events=6000, models=2, seed=5, bad_every=500,
        drifts=(DriftSpec(signal="feature:amount", at=3000, magnitude=2.0, model="model-1"),),
    )  # fmt: skip
    path.write_bytes(b"".join(v + b"\n" for _m, v in generate(config)))


def test_replay_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    _write_events(events)
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / f"alerts-{run}.jsonl"
        assert (
            main(["replay", "--config", str(CONFIG), "--input", str(events), "--output", str(out)])
            == 0
        )
        outputs.append(
            (out.read_bytes(), (tmp_path / f"alerts-{run}.dead-letters.jsonl").read_bytes())
        )
    assert outputs[0] == outputs[1]
    alerts, letters = outputs[0]
    assert b'"signal":"feature:amount"' in alerts
    assert b'"model_id":"model-1"' in alerts
    assert b'"model_id":"model-0"' not in alerts
    assert len(letters.splitlines()) == 12


def test_check_config_reports_the_key(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime:\n  max_batch_events: -3\n")
    assert main(["check-config", str(bad)]) == 2
    assert "runtime.max_batch_events" in capsys.readouterr().err


# -- the shared replay path: dry run, snapshots, the observer ---------------------


MONITORS = [
    {"signal": "feature:amount", "detector": "page_hinkley",
     "params": {"threshold": 300.0, "delta": 5.0, "min_instances": 100}},
    {"signal": "confidence", "detector": "page_hinkley",
     "params": {"threshold": 1.5, "delta": 0.02, "min_instances": 100}},
]  # fmt: skip


def _records(events: int = 6000) -> list[Record]:
    config = GeneratorConfig(
        events=events, models=2, seed=4,
        drifts=(DriftSpec(signal="feature:amount", at=2500, magnitude=2.0, model="model-1"),
                DriftSpec(signal="confidence", at=4000, magnitude=1.0)),
    )  # fmt: skip
    return [Record("preds", 0, i, v, key=m.encode()) for i, (m, v) in enumerate(generate(config))]


def _alerts(sink: MemorySink) -> list[bytes]:
    return [m.value or b"" for m in sink.of_kind("alert")]


class TestDryRun:
    def test_force_dry_run_switches_every_rollback(self) -> None:
        rollback = {"rules": [{"when": "critical"}], "dry_run": False}
        settings = parse_settings(
            {"models": {"m": {"monitors": MONITORS, "rollback": rollback}},
             "default_model": {"monitors": MONITORS, "rollback": rollback}},
            environ={},
        )  # fmt: skip
        forced = force_dry_run(settings)
        assert forced.models["m"].rollback is not None and forced.models["m"].rollback.dry_run
        assert forced.default_model is not None and forced.default_model.rollback is not None
        assert forced.default_model.rollback.dry_run
        assert settings.models["m"].rollback.dry_run is False  # type: ignore[union-attr]
        assert force_dry_run(forced) is forced

    def test_replay_sink_never_lets_a_live_rollback_out(self) -> None:
        inner = MemorySink()
        sink = ReplaySink(inner)
        command = {"command_id": "c1", "dry_run": False, "model_id": "m"}
        with capture_logs() as logs:
            sink.send(Message("rollback", b"m", orjson.dumps(command)))
        assert [e["event"] for e in logs] == ["rollback_forced_dry_run"]
        sink.send(Message("state", b"k", b"{}"))
        sink.send(Message("alert", b"m", b'{"alert_id": "a"}'))
        sink.flush()
        kinds = [m.kind for m in inner.flushed]
        assert kinds == ["rollback", "alert"]  # state records belong to the snapshot
        assert orjson.loads(inner.flushed[0].value or b"")["dry_run"] is True
        assert sink.forced_dry_run == 1


class TestRunReplay:
    def test_the_observer_changes_nothing(self) -> None:
        settings = parse_settings({"default_model": {"monitors": MONITORS}}, environ={})
        records = _records()
        plain, traced = MemorySink(), MemorySink()
        run_replay(settings, [MemorySource(records)], plain)
        tracer = Tracer()
        run_replay(settings, [MemorySource(records)], traced, observer=tracer)
        assert _alerts(plain) == _alerts(traced)
        assert len(_alerts(plain)) >= 2
        assert sum(s.n for s in tracer.series.values()) == 2 * len(records)
        fired = sum(1 for s in tracer.series.values() for f in s.firings.values() if f.drift)
        assert fired == len(_alerts(plain))

    def test_snapshot_continues_exactly(self, tmp_path: Path) -> None:
        settings = parse_settings({"default_model": {"monitors": MONITORS}}, environ={})
        records = _records()
        whole = MemorySink()
        run_replay(settings, [MemorySource(records)], whole)

        first, second = MemorySink(), MemorySink()
        outcome = run_replay(settings, [MemorySource(records[:3000])], first)
        assert outcome.snapshot.positions == {0: {"preds": 3000}}
        store = FileStateStore(tmp_path / "state.json")
        store.save(outcome.snapshot)
        again = run_replay(settings, [MemorySource(records[3000:])], second, initial=store.load())
        assert _alerts(first) + _alerts(second) == _alerts(whole)
        assert again.snapshot.positions == {0: {"preds": 6000}}
        # a snapshot taken at the end equals the one of the uninterrupted run
        full = run_replay(settings, [MemorySource(records)], MemorySink())
        assert again.snapshot.partitions == full.snapshot.partitions

    @pytest.mark.parametrize("cut", [1, 777])
    def test_many_sources_share_one_state(self, cut: int) -> None:
        settings = parse_settings({"default_model": {"monitors": MONITORS}}, environ={})
        records = _records(3000)
        one, two = MemorySink(), MemorySink()
        run_replay(settings, [MemorySource(records)], one)
        run_replay(settings, [MemorySource(records[:cut]), MemorySource(records[cut:])], two)
        assert _alerts(one) == _alerts(two)

    def test_the_starting_snapshot_is_left_as_it_was(self) -> None:
        # the replay shares the starting entries (not a deep copy): it must never
        # edit one, whatever it restores (the default set's detectors, join pages)
        settings = parse_settings(
            {"default_model": {"features": {"amount": "numeric"}, "classes": ["a", "b"]}},
            environ={},
        )
        records = _records(3000)
        start = run_replay(settings, [MemorySource(records[:1500])], MemorySink()).snapshot
        assert any(k.startswith("join:") for k in start.partitions[0])
        before = orjson.dumps(start.partitions, option=orjson.OPT_NON_STR_KEYS)
        run_replay(settings, [MemorySource(records[1500:])], MemorySink(), initial=start)
        after = orjson.dumps(start.partitions, option=orjson.OPT_NON_STR_KEYS)
        assert after == before
        assert start.positions == {0: {"preds": 1500}}

    def test_without_keeping_the_state_the_outputs_are_the_same(self) -> None:
        settings = parse_settings({"default_model": {"monitors": MONITORS}}, environ={})
        records = _records()
        kept, dropped = MemorySink(), MemorySink()
        full = run_replay(settings, [MemorySource(records)], kept)
        lean = run_replay(settings, [MemorySource(records)], dropped, keep_state=False)
        assert _alerts(kept) == _alerts(dropped) and len(_alerts(kept)) >= 2
        assert lean.snapshot.positions == full.snapshot.positions == {0: {"preds": 6000}}
        assert full.snapshot.partitions[0] and not lean.snapshot.partitions.get(0)
