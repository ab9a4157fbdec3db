from __future__ import annotations

from pathlib import Path

from pipeline.schemas import render_schemas, write_schemas

REPO = Path(__file__).resolve().parents[2]


def test_committed_schemas_are_current() -> None:
    stale = write_schemas(REPO / "schemas", check=True)
    assert stale == [], f"run `driftline schema --out schemas/`; stale: {stale}"


def test_one_schema_per_event_kind() -> None:
    names = set(render_schemas())
    # alerts are at version 2 (incidents); version 1 is still published on request
    assert names == {"alert.v2.json"} | {
        f"{k}.v1.json"
        for k in (
            "feature",
            "prediction",
            "label",
            "training",
            "alert",
            "rollback-command",
            "dead-letter",
        )
    }
