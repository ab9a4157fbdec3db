from __future__ import annotations

from pathlib import Path

from pipeline.cli import main
from pipeline.generate import DriftSpec, GeneratorConfig, generate

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
