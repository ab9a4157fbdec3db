"""The Grafana dashboard is well-formed (which metrics it may query is checked against a
running sidecar in tests/integration/test_dashboard_metrics.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.deploy.conftest import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "driftline.json"


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


class TestDashboard:
    def test_structure(self) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        assert dashboard["uid"] and dashboard["title"] == "driftline"
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert {"datasource", "namespace", "pod", "model", "signal"} <= set(variables)
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids))
            for target in panel["targets"]:
                expr = target["expr"]
                assert expr.count("(") == expr.count(")"), expr
                assert expr.count("{") == expr.count("}"), expr
                if "rate(" in expr or "increase(" in expr:
                    assert "driftline_" in expr

    def test_statistic_vs_threshold_repeats_per_signal(self) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        (panel,) = [p for p in panels(dashboard) if p.get("repeat") == "signal"]
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert "driftline_detector_statistic" in exprs and "driftline_detector_threshold" in exprs
