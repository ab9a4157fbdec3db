"""The backtest report: one self-contained HTML file (inline SVG, CSS and a little
JS; nothing is fetched when it is opened), plus optional PNGs of the plots and a
JSON summary.

The output depends only on the inputs, the configs and the truth: no wall-clock
time, host name or timing is written, so two runs give byte-identical files.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import yaml

from pipeline.backtest.plot import Scene, timeline, to_svg
from pipeline.backtest.run import Backtest, BacktestRun
from pipeline.backtest.scoring import KeyScore, Totals, as_mapping
from pipeline.backtest.trace import Series, TraceKey
from pipeline.core.monitor_set import monitor_set

__all__ = ["plot_scenes", "render_html", "summary_json", "write_pngs", "write_report"]

_SECRET = re.compile(r"pass|secret|token|sasl|credential|key", re.IGNORECASE)

CSS = """
:root { --fg:#0f172a; --muted:#475569; --line:#e2e8f0; --hit:#16a34a; --fa:#ea580c; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 20px 0 6px; }
.meta { color: var(--muted); margin: 2px 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: right; white-space: nowrap; }
th { background: #f1f5f9; font-weight: 600; white-space: normal; vertical-align: bottom; }
.scroll { overflow-x: auto; }
td.l, th.l { text-align: left; } tr.total td { font-weight: 600; border-top: 2px solid #cbd5e1; }
td.best { font-weight: 700; color: var(--hit); }
.yes { color: var(--hit); font-weight: 600; } .no { color: var(--fa); font-weight: 600; }
figure { margin: 12px 0 20px; } figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; }
.readout { font: 12px ui-monospace, monospace; color: var(--muted); min-height: 1.4em; }
pre { background: #f8fafc; border: 1px solid var(--line); padding: 10px; overflow-x: auto; font-size: 12px; }
.note { color: var(--muted); font-size: 12px; }
"""

# Hover read-out and a render check: after layout, each plot's polylines are
# measured and the page records how many plots drew something (the browser test
# reads data-plots-ready / data-rendered from the DOM).
JS = """
(function () {
  var figs = document.querySelectorAll('figure.timeline');
  var ready = 0;
  figs.forEach(function (fig) {
    var svg = fig.querySelector('svg');
    var out = fig.querySelector('.readout');
    var pts = JSON.parse(fig.getAttribute('data-points') || '[]');
    var len = 0;
    svg.querySelectorAll('polyline').forEach(function (p) { len += p.getTotalLength(); });
    var box = svg.getBBox();
    if (len > 0 && box.width > 0) { ready += 1; fig.setAttribute('data-rendered', '1'); }
    fig.setAttribute('data-path-length', String(Math.round(len)));
    var ns = 'http://www.w3.org/2000/svg';
    var cross = document.createElementNS(ns, 'line');
    cross.setAttribute('y1', '50'); cross.setAttribute('y2', '326');
    cross.setAttribute('stroke', '#0f172a'); cross.setAttribute('stroke-width', '0.6');
    cross.setAttribute('visibility', 'hidden'); cross.setAttribute('class', 'crosshair');
    svg.appendChild(cross);
    function fmt(v) { return v === null ? '-' : (Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(4)); }
    svg.addEventListener('mousemove', function (ev) {
      if (!pts.length) { return; }
      var r = svg.getBoundingClientRect();
      var x = (ev.clientX - r.left) * svg.viewBox.baseVal.width / r.width;
      var lo = 0, hi = pts.length - 1;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (pts[mid][0] < x) { lo = mid + 1; } else { hi = mid; } }
      if (lo > 0 && Math.abs(pts[lo - 1][0] - x) < Math.abs(pts[lo][0] - x)) { lo -= 1; }
      var p = pts[lo];
      cross.setAttribute('x1', p[0]); cross.setAttribute('x2', p[0]);
      cross.setAttribute('visibility', 'visible');
      out.textContent = '#' + p[1] + '  ' + p[5] + '  value ' + fmt(p[2]) + '  statistic ' +
        fmt(p[3]) + '  threshold ' + fmt(p[4]);
    });
    svg.addEventListener('mouseleave', function () { cross.setAttribute('visibility', 'hidden'); });
  });
  document.documentElement.setAttribute('data-plots', String(figs.length));
  document.documentElement.setAttribute('data-plots-ready', String(ready));
})();
"""


# ------------------------------------------------------------------ formatting
def _n(v: int | None) -> str:
    return "&ndash;" if v is None else f"{v:,}"


def _f(v: float | None, digits: int = 2) -> str:
    return "&ndash;" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _events(v: float | None) -> str:
    return "&ndash;" if v is None else (f"{v:,.0f}" if v == int(v) else f"{v:,.1f}")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 60:
        return f"{sign}{s:.1f} s"
    if s < 3600:
        return f"{sign}{int(s // 60)} min {int(s % 60)} s"
    if s < 86400:
        return f"{sign}{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{sign}{int(s // 86400)} d {int(s % 86400 // 3600)} h"


def _mebfa(value: float | None, stable: int, has_truth: bool) -> str:
    if not has_truth:
        return "&ndash;"
    if value is None:
        return f"none in {stable:,}"
    return f"{value:,.0f}"


def _redact(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            k: ("***" if _SECRET.search(str(k)) and not isinstance(v, dict) else _redact(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_redact(v) for v in data]
    return data


def _config_yaml(run: BacktestRun) -> str:
    data = run.config.settings.model_dump(mode="json", by_alias=True)
    data["kafka"] = _redact(data.get("kafka", {}))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _unique_slugs(texts: Sequence[str]) -> list[str]:
    """``_slug`` of each text, numbered (``-2``, ``-3``) where two texts slug alike
    (``feature:a b`` and ``feature:a/b``), so no plot file or figure id is overwritten."""
    used: set[str] = set()
    out = []
    for text in texts:
        base = candidate = _slug(text)
        n = 1
        while candidate in used:
            n += 1
            candidate = f"{base}-{n}"
        used.add(candidate)
        out.append(candidate)
    return out


def _key_label(key: TraceKey) -> str:
    return " · ".join(part for part in key if part)


def _signal_label(key: TraceKey) -> str:
    return key[1] + (f" [{key[3]}]" if key[3] else "")


def _params(run: BacktestRun, key: TraceKey) -> str:
    model, signal, detector, _scope = key
    spec = run.config.settings.spec_for(model)
    if spec is None:
        return ""
    for m in monitor_set(spec, f"models.{model}", run.config.settings.policy.target_arl0):
        pattern = m.signal
        matches = pattern == signal or (pattern.endswith("*") and signal.startswith(pattern[:-1]))
        if matches and m.detector == detector:
            return ", ".join(f"{k}={v}" for k, v in sorted(m.params.items()))
    return ""


# ---------------------------------------------------------------------- tables
def _summary_rows(run: BacktestRun) -> Iterable[str]:
    for s in run.scores:
        model, _signal, detector, _scope = s.key
        yield (
            "<tr>"
            f'<td class="l">{escape(model)}</td><td class="l">{escape(_signal_label(s.key))}</td>'
            f'<td class="l" title="{escape(_params(run, s.key))}">{escape(detector)}</td>'
            f"<td>{_n(s.observations)}</td><td>{_n(len(s.detections))}</td>"
            f"<td>{_n(len(s.scored_changes)) if s.has_truth else '&ndash;'}</td>"
            f"<td>{_n(s.hits) if s.has_truth else '&ndash;'}</td>"
            f"<td>{_n(s.missed) if s.has_truth else '&ndash;'}</td>"
            f"<td>{_n(len(s.false_alarms)) if s.has_truth else '&ndash;'}</td>"
            f"<td>{_n(len(s.repeats)) if s.has_truth else '&ndash;'}</td>"
            f"<td>{_f(s.precision)}</td><td>{_f(s.recall)}</td><td>{_f(s.f1)}</td>"
            f"<td>{_events(s.median_delay_events)}</td>"
            f"<td>{fmt_duration(s.median_delay_seconds)}</td>"
            f"<td>{_mebfa(s.events_between_false_alarms, s.stable_events, s.has_truth)}</td>"
            "</tr>"
        )


def _totals_row(t: Totals, has_truth: bool, alerts: int) -> str:
    if not has_truth:
        return (
            f'<tr class="total"><td class="l" colspan="4">all</td><td>{_n(alerts)}</td>'
            + "<td>&ndash;</td>" * 11
            + "</tr>"
        )
    return (
        f'<tr class="total"><td class="l" colspan="4">all</td><td>{_n(t.detections)}</td>'
        f"<td>{_n(t.changes)}</td><td>{_n(t.hits)}</td><td>{_n(t.missed)}</td>"
        f"<td>{_n(t.false_alarms)}</td><td>{_n(t.repeats)}</td>"
        f"<td>{_f(t.precision)}</td><td>{_f(t.recall)}</td>"
        f"<td>{_f(t.f1)}</td><td></td><td></td>"
        f"<td>{_mebfa(t.events_between_false_alarms, t.stable_events, True)}</td></tr>"
    )


SUMMARY_HEAD = (
    '<tr><th class="l">model</th><th class="l">signal</th><th class="l">detector</th>'
    "<th>observations</th><th>alerts</th><th>changes</th><th>detected</th><th>missed</th>"
    '<th title="alerts outside every detection window">false alarms</th>'
    '<th title="further alerts inside a window already detected">repeats</th>'
    "<th>precision</th><th>recall</th><th>F1</th>"
    '<th title="median, in observations of the series">delay (events)</th>'
    '<th title="median, in event time">delay (time)</th>'
    '<th title="mean stable events between false alarms">events / false alarm</th></tr>'
)


def _changes_table(run: BacktestRun) -> str:
    rows = []
    for s in run.scores:
        for c in s.changes:
            if not c.reached:
                status = '<span class="note">after the end of the input</span>'
            elif c.detection is not None:
                status = '<span class="yes">detected</span>'
            else:
                status = '<span class="no">missed</span>'
            alert = c.detection.alert.alert_id[:16] if c.detection is not None else ""
            rows.append(
                "<tr>"
                f'<td class="l">{escape(s.key[0])}</td>'
                f'<td class="l">{escape(_signal_label(s.key))}</td>'
                f'<td class="l">{escape(s.key[2])}</td>'
                f'<td class="l">{escape(c.change.label())}</td>'
                f'<td class="l">{escape(c.change.kind)}</td>'
                f"<td>{_n(c.index) if c.reached else '&ndash;'}</td>"
                f'<td class="l">{status}</td><td>{_n(c.delay_events)}</td>'
                f"<td>{fmt_duration(c.delay_seconds)}</td>"
                f'<td class="l"><code>{escape(alert)}</code></td></tr>'
            )
    if not rows:
        return ""
    return (
        '<h3>True change points</h3><div class="scroll"><table class="changes"><tr>'
        '<th class="l">model</th><th class="l">signal</th><th class="l">detector</th>'
        '<th class="l">change at</th><th class="l">kind</th><th>observation #</th>'
        '<th class="l">outcome</th><th>delay (events)</th><th>delay (time)</th>'
        '<th class="l">alert</th></tr>' + "".join(rows) + "</table></div>"
    )


def _compare_table(bt: Backtest) -> str:
    keys = sorted({s.key for run in bt.runs for s in run.scores})
    has_truth = bt.truth is not None
    cols = ["detected", "false alarms", "delay (events)", "delay (time)", "F1", "events / FA"]
    head = (
        '<tr><th class="l" rowspan="2">model</th><th class="l" rowspan="2">signal</th>'
        '<th class="l" rowspan="2">detector</th>'
        + "".join(
            f'<th colspan="{len(cols)}" class="l">{escape(run.config.label)}</th>'
            for run in bt.runs
        )
        + "</tr><tr>"
        + "".join(f"<th>{c}</th>" for _ in bt.runs for c in cols)
        + "</tr>"
    )
    rows = []
    for key in keys:
        per_run = [next((s for s in run.scores if s.key == key), None) for run in bt.runs]
        f1s = [s.f1 for s in per_run if s is not None and s.f1 is not None]
        best = max(f1s) if len(f1s) > 1 and len(set(f1s)) > 1 else None
        cells = []
        for run, s in zip(bt.runs, per_run, strict=True):
            if s is None:
                cells.append(f'<td colspan="{len(cols)}" class="l note">not monitored</td>')
                continue
            params = escape(_params(run, key))
            found = f"{s.hits}/{len(s.scored_changes)}" if has_truth else "&ndash;"
            fas = (
                _n(len(s.false_alarms)) + (f" (+{len(s.repeats)} repeat)" if s.repeats else "")
                if has_truth
                else f"{len(s.detections)} alerts"
            )
            f1_class = ' class="best"' if best is not None and s.f1 == best else ""
            cells.append(
                f'<td title="{params}">{found}</td><td>{fas}</td>'
                f"<td>{_events(s.median_delay_events)}</td>"
                f"<td>{fmt_duration(s.median_delay_seconds)}</td>"
                f"<td{f1_class}>{_f(s.f1)}</td>"
                f"<td>{_mebfa(s.events_between_false_alarms, s.stable_events, has_truth)}</td>"
            )
        rows.append(
            f'<tr><td class="l">{escape(key[0])}</td><td class="l">{escape(_signal_label(key))}</td>'
            f'<td class="l">{escape(key[2])}</td>' + "".join(cells) + "</tr>"
        )
    total_cells = []
    for run in bt.runs:
        t = run.totals
        total_cells.append(
            f"<td>{t.hits}/{t.changes}</td><td>{_n(t.false_alarms)}</td><td></td><td></td>"
            f"<td>{_f(t.f1)}</td><td>{_mebfa(t.events_between_false_alarms, t.stable_events, True)}</td>"
            if has_truth
            else f"<td>&ndash;</td><td>{len(run.alerts)} alerts</td>" + "<td></td>" * 4
        )
    rows.append(
        '<tr class="total"><td class="l" colspan="3">all</td>' + "".join(total_cells) + "</tr>"
    )
    params_note = "".join(
        f"<li><b>{escape(run.config.label)}</b>: "
        + "; ".join(
            f"{escape(_key_label(s.key))} ({escape(_params(run, s.key)) or 'defaults'})"
            for s in run.scores
        )
        + "</li>"
        for run in bt.runs
    )
    return (
        '<h2>Comparison</h2><p class="meta">Same input, same truth and margin; the best F1 '
        'per row is highlighted.</p><div class="scroll"><table class="compare">'
        + head
        + "".join(rows)
        + f'</table></div><ul class="note">{params_note}</ul>'
    )


# ----------------------------------------------------------------------- plots
def plot_scenes(run: BacktestRun) -> list[tuple[TraceKey, Scene]]:
    cached: list[tuple[TraceKey, Scene]] | None = run.cache.get("scenes")
    if cached is None:
        cached = run.cache["scenes"] = [
            (s.key, timeline(run.tracer.series.get(s.key) or Series(s.key), s)) for s in run.scores
        ]
    return cached


def _figure(fig_id: str, key: TraceKey, scene: Scene, score: KeyScore) -> str:
    points = json.dumps(scene.hover, separators=(",", ":"))
    return (
        f'<figure class="timeline" id="{fig_id}" data-key="{escape(_key_label(key))}" '
        f"data-points='{escape(points, quote=True)}'>"
        + to_svg(scene)
        + '<div class="readout"></div><figcaption>Top: the watched value per bucket of '
        "observations (line: mean, band: min&ndash;max). Bottom: the detector statistic (line: last "
        "value in the bucket, band: min&ndash;max) and its threshold. Shaded: each true change's "
        "detection window.</figcaption></figure>"
    )


# ---------------------------------------------------------------------- report
def _run_section(bt: Backtest, index: int, run: BacktestRun) -> str:
    stats = run.outcome.stats
    dl = ", ".join(f"{reason}: {n:,}" for reason, n in sorted(run.dead_letters.items()))
    has_truth = bt.truth is not None
    parts = [
        f'<section class="run" id="run-{index}"><h2>Config: {escape(run.config.label)}</h2>',
        f'<p class="meta">{stats.events:,} events replayed · {len(run.alerts):,} alerts · '
        f"{len(run.rollbacks):,} rollback commands (dry run) · {stats.dead_letters:,} dead letters"
        + (f" ({escape(dl)})" if dl else "")
        + "</p>",
        '<h3>Scores</h3><div class="scroll"><table class="summary">',
        SUMMARY_HEAD,
        *_summary_rows(run),
        _totals_row(run.totals, has_truth, len(run.alerts)),
        "</table></div>",
    ]
    if not run.scores:
        parts.append('<p class="note">No detector saw a value: check the models and signals.</p>')
    parts.append(_changes_table(run))
    if run.totals.unmonitored:
        items = "".join(
            f"<li>{escape(c.model_id)} · {escape(c.signal)} at {escape(c.label())}</li>"
            for c in run.totals.unmonitored
        )
        parts.append('<h3>Changes no detector watches</h3><ul class="note">' + items + "</ul>")
    parts.append("<h3>Timelines</h3>")
    scores = {s.key: s for s in run.scores}
    scenes = plot_scenes(run)
    slugs = _unique_slugs(["-".join(key) for key, _scene in scenes])
    for slug, (key, scene) in zip(slugs, scenes, strict=True):
        parts.append(_figure(f"plot-{index}-{slug}", key, scene, scores[key]))
    parts.append(
        '<h3>Config used</h3><p class="note">Effective settings (file plus DRIFTLINE_* '
        "overrides; secrets redacted; rollbacks forced to dry run).</p><pre>"
        + escape(_config_yaml(run))
        + "</pre></section>"
    )
    return "".join(parts)


def render_html(bt: Backtest) -> str:
    inputs = ", ".join(escape(i.label) for i in bt.inputs)
    if bt.truth is not None:
        truth = (
            f"{escape(bt.truth_label or 'given')} ({len(bt.truth)} change points) · "
            f"detection margin: {escape(bt.margin.describe())} after each change"
        )
    else:
        truth = "none given: alerts are listed but not scored"
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>driftline backtest</title><style>",
        CSS,
        "</style></head><body><header><h1>driftline backtest</h1>",
        f'<p class="meta">Input: {inputs}</p>',
        f'<p class="meta">Ground truth: {truth}</p>',
        f'<p class="meta">Configs: {", ".join(escape(r.config.label) for r in bt.runs)}</p>',
        "</header>",
    ]
    if len(bt.runs) > 1:
        parts.append(_compare_table(bt))
    for i, run in enumerate(bt.runs):
        parts.append(_run_section(bt, i, run))
    parts.append(
        '<footer class="note"><p>Replayed through the sidecar\'s runtime and core with event '
        "time only; the same input, configs and truth give the same report.</p></footer>"
    )
    parts.append("<script>" + JS + "</script></body></html>\n")
    return "".join(parts)


def write_report(bt: Backtest, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(bt), encoding="utf-8")


def write_pngs(bt: Backtest, directory: Path) -> list[Path]:
    """One PNG per plot: ``<config>__<model>__<signal>__<detector>.png``."""
    from pipeline.backtest.png import write_png

    written = []
    stems = _config_stems(bt.runs)
    for stem, run in zip(stems, bt.runs, strict=True):
        scenes = plot_scenes(run)
        names = _unique_slugs(
            ["__".join([stem, *(part for part in key if part)]) for key, _ in scenes]
        )
        for name, (_key, scene) in zip(names, scenes, strict=True):
            path = directory / (name + ".png")
            write_png(scene, path)
            written.append(path)
    return written


def _config_stems(runs: Sequence[BacktestRun]) -> list[str]:
    stems = [Path(r.config.label).stem for r in runs]
    if len(set(stems)) < len(stems):
        stems = [f"{i}-{s}" for i, s in enumerate(stems)]
    return stems


def summary_json(bt: Backtest) -> bytes:
    """The scores as JSON (``--json``): for scripts and CI gates."""
    doc = {
        "inputs": [i.label for i in bt.inputs],
        "truth": bt.truth_label,
        "margin": bt.margin.describe(),
        "runs": [
            {
                "config": run.config.label,
                "events": run.outcome.stats.events,
                "alerts": len(run.alerts),
                "dead_letters": dict(sorted(run.dead_letters.items())),
                "rollback_commands": len(run.rollbacks),
                "totals": None
                if bt.truth is None
                else {
                    "changes": run.totals.changes,
                    "detected": run.totals.hits,
                    "missed": run.totals.missed,
                    "false_alarms": run.totals.false_alarms,
                    "repeats": run.totals.repeats,
                    "precision": run.totals.precision,
                    "recall": run.totals.recall,
                    "f1": run.totals.f1,
                    "events_between_false_alarms": run.totals.events_between_false_alarms,
                },
                "series": [as_mapping(s, bt.margin) for s in run.scores],
            }
            for run in bt.runs
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=False).encode() + b"\n"
