"""Timeline plots as a list of drawing primitives (a *scene*).

One layout, two renderers: ``to_svg`` for the HTML report and
``pipeline.backtest.png.render_png`` for the PNG export, so the picture in the
report and the exported file are the same plot. Coordinates are logical pixels,
y pointing down; everything is rounded so the output is byte-stable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from pipeline.backtest.scoring import KeyScore
from pipeline.backtest.trace import Bucket, Series

__all__ = [
    "COLORS",
    "Band",
    "Line",
    "Marker",
    "Polyline",
    "Rect",
    "Scene",
    "Text",
    "nice_ticks",
    "timeline",
    "to_svg",
]

COLORS = {
    "bg": "#ffffff",
    "panel": "#f8fafc",
    "grid": "#e2e8f0",
    "axis": "#64748b",
    "text": "#0f172a",
    "muted": "#475569",
    "value": "#2563eb",
    "value_band": "#bfdbfe",
    "stat": "#7c3aed",
    "stat_band": "#ddd6fe",
    "threshold": "#dc2626",
    "change": "#111827",
    "window": "#fef3c7",
    "hit": "#16a34a",
    "false_alarm": "#ea580c",
    "repeat": "#ca8a04",
    "warning": "#94a3b8",
    "suppressed": "#334155",
}


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str | None = None


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    color: str
    width: float = 1.0
    dash: tuple[int, int] | None = None


@dataclass(frozen=True)
class Polyline:
    points: tuple[tuple[float, float], ...]
    color: str
    width: float = 1.5
    role: str = ""
    dash: tuple[int, int] | None = None


@dataclass(frozen=True)
class Band:
    """A filled envelope: for each x, the span from ``lo`` to ``hi`` (y pixels)."""

    xs: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    fill: str


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    shape: str  # "down" | "up" | "circle"
    color: str
    size: float = 5.0
    title: str = ""


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: float = 11.0
    color: str = COLORS["text"]
    anchor: str = "start"  # "start" | "middle" | "end"
    bold: bool = False


Item = Rect | Line | Polyline | Band | Marker | Text


@dataclass
class Scene:
    width: int
    height: int
    items: list[Item] = field(default_factory=list)
    hover: list[list[Any]] = field(default_factory=list)
    """Per plotted bucket: [x, first index, value mean, statistic, threshold, time]."""
    title: str = ""

    def add(self, item: Item) -> None:
        self.items.append(item)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round-numbered ticks covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    k = 0
    while (t := first + k * step) <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        k += 1
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return f"{v:.2g}"
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _fmt_time(t: datetime, span_s: float) -> str:
    if span_s > 3 * 86400:
        return t.strftime("%m-%d %H:%M")
    if span_s > 120:
        return t.strftime("%H:%M")
    return t.strftime("%H:%M:%S")


def _r(x: float) -> float:
    return round(x, 1)


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


class _Scale:
    def __init__(self, d0: float, d1: float, r0: float, r1: float) -> None:
        self.d0, self.d1, self.r0, self.r1 = d0, d1, r0, r1

    def __call__(self, v: float) -> float:
        if self.d1 == self.d0:
            return (self.r0 + self.r1) / 2
        return self.r0 + (v - self.d0) * (self.r1 - self.r0) / (self.d1 - self.d0)


def _domain(values: Sequence[float], *, include: Sequence[float] = ()) -> tuple[float, float]:
    vals = _finite([*values, *include])
    if not vals:
        return (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        return (lo - pad, hi + pad)
    pad = (hi - lo) * 0.06
    return (lo - pad, hi + pad)


def _segments(xs: list[float], ys: list[float]) -> list[tuple[tuple[float, float], ...]]:
    """Split at NaNs into drawable polylines."""
    out: list[tuple[tuple[float, float], ...]] = []
    cur: list[tuple[float, float]] = []
    for x, y in zip(xs, ys, strict=True):
        if math.isfinite(y):
            cur.append((_r(x), _r(y)))
        elif cur:
            out.append(tuple(cur))
            cur = []
    if cur:
        out.append(tuple(cur))
    return out


def _bands(xs: list[float], lo: list[float], hi: list[float], fill: str) -> list[Band]:
    out: list[Band] = []
    cur: list[tuple[float, float, float]] = []

    def close() -> None:
        out.append(
            Band(
                xs=tuple(p[0] for p in cur),
                lo=tuple(p[1] for p in cur),
                hi=tuple(p[2] for p in cur),
                fill=fill,
            )
        )

    for x, a, b in zip(xs, lo, hi, strict=True):
        if math.isfinite(a) and math.isfinite(b):
            cur.append((_r(x), _r(a), _r(b)))
        elif cur:
            close()
            cur = []
    if cur:
        close()
    return out


def timeline(series: Series, score: KeyScore, *, width: int = 960, height: int = 400) -> Scene:
    """Watched value (top) and detector statistic with threshold (bottom) over the
    series' observations, with true change points, their windows and alerts."""
    scene = Scene(width, height, title=" · ".join(part for part in series.key if part))
    c = COLORS
    left, right = 74, width - 16
    top1, bot1 = 50, 176
    top2, bot2 = 200, 326
    scene.add(Rect(0, 0, width, height, c["bg"]))
    scene.add(Text(left, 18, scene.title, size=13, bold=True))
    found = score.hits
    scored = len(score.scored_changes)
    sub = f"{series.n:,} observations · {_plural(len(score.detections), 'alert')}"
    if score.has_truth:
        sub += f" · {found}/{scored} changes detected · "
        sub += _plural(len(score.false_alarms), "false alarm")
    scene.add(Text(left, 34, sub, size=11, color=c["muted"]))
    for pt, pb in ((top1, bot1), (top2, bot2)):
        scene.add(Rect(left, pt, right - left, pb - pt, c["panel"], stroke=c["grid"]))

    buckets: list[Bucket] = series.buckets()
    n = max(series.n, 1)
    sx = _Scale(0, max(n - 1, 1), left, right)

    def xi(index: float) -> float:
        return _r(sx(min(max(index, 0), n - 1)))

    xs = [sx(b.start + (b.count - 1) / 2) for b in buckets]
    # x ticks (observation index) and event-time labels
    for tick in nice_ticks(0, n - 1, 8):
        x = _r(sx(tick))
        scene.add(Line(x, top2, x, bot2, c["grid"]))
        scene.add(Line(x, top1, x, bot1, c["grid"]))
        scene.add(Text(x, bot2 + 14, _fmt_tick(tick), size=10, color=c["muted"], anchor="middle"))
    if buckets and series.first_at is not None and series.last_at is not None:
        span = (series.last_at - series.first_at).total_seconds()
        step = max(1, len(buckets) // 5)
        for b in buckets[::step]:
            x = _r(sx(b.start))
            scene.add(Text(x, bot2 + 27, _fmt_time(b.first_at, span), size=9,
                           color=c["muted"], anchor="middle"))  # fmt: skip
    scene.add(Text(right, bot2 + 40, "observation # / event time (UTC)", size=10,
                   color=c["muted"], anchor="end"))  # fmt: skip

    # change windows (shaded), change lines
    for outcome in score.changes:
        if not outcome.reached:
            continue
        x0, x1 = xi(outcome.index), xi(max(outcome.index, outcome.window_end - 1))
        for pt, pb in ((top1, bot1), (top2, bot2)):
            scene.add(Rect(x0, pt + 1, max(1.0, x1 - x0), pb - pt - 2, c["window"]))

    # value panel
    vlo, vhi = _domain([b.value_min for b in buckets], include=[b.value_max for b in buckets])
    sv = _Scale(vlo, vhi, bot1 - 6, top1 + 6)
    if series.numeric_values:
        for tick in nice_ticks(vlo, vhi, 4):
            y = _r(sv(tick))
            scene.add(Line(left, y, right, y, c["grid"]))
            scene.add(
                Text(left - 6, y + 4, _fmt_tick(tick), size=10, color=c["muted"], anchor="end")
            )
        for band in _bands(xs, [sv(b.value_max) for b in buckets],
                           [sv(b.value_min) for b in buckets], c["value_band"]):  # fmt: skip
            scene.add(band)
        for seg in _segments(xs, [sv(b.value_mean) for b in buckets]):
            scene.add(Polyline(seg, c["value"], 1.5, role="value"))
    else:
        scene.add(Text((left + right) / 2, (top1 + bot1) / 2, "value is not numeric: statistic only",
                       size=11, color=c["muted"], anchor="middle"))  # fmt: skip
    scene.add(Text(right, top1 - 5, "watched value (mean, min-max)", size=10, color=c["value"],
                   anchor="end"))  # fmt: skip

    # statistic panel
    stats = [b.stat_max for b in buckets] + [b.stat_min for b in buckets]
    thresholds = [b.threshold for b in buckets]
    slo, shi = _domain(stats, include=[*thresholds, 0.0])
    ss = _Scale(slo, shi, bot2 - 6, top2 + 6)
    if _finite(stats):
        for tick in nice_ticks(slo, shi, 4):
            y = _r(ss(tick))
            scene.add(Line(left, y, right, y, c["grid"]))
            scene.add(
                Text(left - 6, y + 4, _fmt_tick(tick), size=10, color=c["muted"], anchor="end")
            )
        for band in _bands(xs, [ss(b.stat_max) for b in buckets],
                           [ss(b.stat_min) for b in buckets], c["stat_band"]):  # fmt: skip
            scene.add(band)
        for seg in _segments(xs, [ss(b.stat_last) for b in buckets]):
            scene.add(Polyline(seg, c["stat"], 1.5, role="statistic"))
    else:
        scene.add(Text((left + right) / 2, (top2 + bot2) / 2, "the detector reports no statistic",
                       size=11, color=c["muted"], anchor="middle"))  # fmt: skip
    thr_x, thr_y = [], []
    for x, t in zip(xs, thresholds, strict=True):
        thr_x.append(x)
        thr_y.append(ss(t) if math.isfinite(t) else math.nan)
    for seg in _segments(thr_x, thr_y):
        if len(seg) == 1:
            seg = ((left, seg[0][1]), (right, seg[0][1]))
        scene.add(Polyline(_flat_runs(seg), c["threshold"], 2.0, role="threshold", dash=(6, 4)))
    scene.add(Text(right - 90, top2 - 5, "detector statistic", size=10, color=c["stat"],
                   anchor="end"))  # fmt: skip
    scene.add(Text(right, top2 - 5, "- - threshold", size=10, color=c["threshold"], anchor="end"))

    # change lines over the shading
    for outcome in score.changes:
        if not outcome.reached:
            continue
        x = xi(outcome.index)
        scene.add(Line(x, top1, x, bot2, c["change"], 1.5, dash=(3, 3)))
        scene.add(Marker(x, top1 - 4, "circle", c["change"], 4,
                         title=f"true change at {outcome.change.label()}"))  # fmt: skip

    # warnings (deduplicated per pixel column), then alerts
    alerted = {det.index for det in score.detections}
    seen_cols: set[tuple[int, bool]] = set()
    suppressed = False
    for firing in sorted(series.firings.values(), key=lambda f: f.index):
        if firing.drift and firing.index in alerted:
            continue
        col = int(xi(firing.index))
        if (col, firing.drift) in seen_cols:
            continue
        seen_cols.add((col, firing.drift))
        if firing.drift:  # the detector fired but the policy held the alert back
            suppressed = True
            scene.add(Marker(col, top2 + 6, "down", c["suppressed"], 4,
                             title="detector drift without an alert (policy: cooldown, "
                             "hysteresis or deduplication)"))  # fmt: skip
        else:
            scene.add(Marker(col, bot2 - 4, "up", c["warning"], 4, title="warning"))
    hits = {id(o.detection) for o in score.changes if o.detection is not None}
    repeats = {id(d) for d in score.repeats}
    for det in score.detections:
        if det.index is None:
            continue
        if id(det) in hits or not score.has_truth:
            color, label = c["hit"], ("detected change" if score.has_truth else "alert")
        elif id(det) in repeats:
            color, label = c["repeat"], "repeat"
        else:
            color, label = c["false_alarm"], "false alarm"
        x = xi(det.index)
        scene.add(Line(x, top1, x, bot2, color, 1.0))
        scene.add(Marker(x, top1 + 6, "down", color, 6,
                         title=f"{label}: alert {det.alert.alert_id[:12]} at #{det.index}"))  # fmt: skip

    # legend
    ly = height - 14
    legend = [
        (c["change"], "true change (window shaded)"),
        (c["hit"], "alert: detected change" if score.has_truth else "alert"),
    ]
    if score.has_truth:
        legend.append((c["false_alarm"], "alert: false alarm"))
        legend.append((c["repeat"], "alert: repeat"))
    legend.append((c["warning"], "warning"))
    if suppressed:
        legend.append((c["suppressed"], "drift held back by the policy"))
    lx = float(left)
    for color, text in legend:
        scene.add(Rect(lx, ly - 8, 10, 10, color))
        scene.add(Text(lx + 14, ly + 1, text, size=10, color=c["muted"]))
        lx += 22 + 6.2 * len(text)

    for b, x in zip(buckets, xs, strict=True):
        scene.hover.append(
            [
                _r(x),
                b.start,
                _num(b.value_mean),
                _num(b.stat_last),
                _num(b.threshold),
                b.first_at.isoformat().replace("+00:00", "Z"),
            ]
        )
    return scene


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _flat_runs(points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Drop the inner points of horizontal runs (a constant threshold is 2 points)."""
    out: list[tuple[float, float]] = []
    for k, p in enumerate(points):
        if 0 < k < len(points) - 1 and points[k - 1][1] == p[1] == points[k + 1][1]:
            continue
        out.append(p)
    return tuple(out)


def _num(v: float) -> float | None:
    return float(f"{v:.6g}") if math.isfinite(v) else None


# ------------------------------------------------------------------------- SVG
def _attr(v: float) -> str:
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def to_svg(scene: Scene, *, element_id: str = "") -> str:
    """The scene as an inline ``<svg>`` element."""
    out = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {scene.width} '
        f'{scene.height}" width="{scene.width}" height="{scene.height}" role="img" '
        f'aria-label="{escape(scene.title)}"' + (f' id="{element_id}"' if element_id else "") + ">"
    ]
    for item in scene.items:
        if isinstance(item, Rect):
            stroke = f' stroke="{item.stroke}"' if item.stroke else ""
            out.append(
                f'<rect x="{_attr(item.x)}" y="{_attr(item.y)}" width="{_attr(item.w)}" '
                f'height="{_attr(item.h)}" fill="{item.fill}"{stroke}/>'
            )
        elif isinstance(item, Line):
            dash = f' stroke-dasharray="{item.dash[0]} {item.dash[1]}"' if item.dash else ""
            out.append(
                f'<line x1="{_attr(item.x1)}" y1="{_attr(item.y1)}" x2="{_attr(item.x2)}" '
                f'y2="{_attr(item.y2)}" stroke="{item.color}" stroke-width="{_attr(item.width)}"'
                f"{dash}/>"
            )
        elif isinstance(item, Polyline):
            pts = " ".join(f"{_attr(x)},{_attr(y)}" for x, y in item.points)
            role = f' data-role="{item.role}"' if item.role else ""
            dash = f' stroke-dasharray="{item.dash[0]} {item.dash[1]}"' if item.dash else ""
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="{item.color}" '
                f'stroke-width="{_attr(item.width)}" stroke-linejoin="round"{dash}{role}/>'
            )
        elif isinstance(item, Band):
            upper = " ".join(
                f"{_attr(x)},{_attr(y)}" for x, y in zip(item.xs, item.lo, strict=True)
            )
            lower = " ".join(
                f"{_attr(x)},{_attr(y)}"
                for x, y in zip(reversed(item.xs), reversed(item.hi), strict=True)
            )
            out.append(f'<polygon points="{upper} {lower}" fill="{item.fill}" stroke="none"/>')
        elif isinstance(item, Marker):
            title = f"<title>{escape(item.title)}</title>" if item.title else ""
            s = item.size
            if item.shape == "circle":
                shape = f'<circle cx="{_attr(item.x)}" cy="{_attr(item.y)}" r="{_attr(s * 0.8)}"'
            else:
                sign = 1 if item.shape == "down" else -1
                pts = (
                    f"{_attr(item.x - s)},{_attr(item.y - sign * s)} "
                    f"{_attr(item.x + s)},{_attr(item.y - sign * s)} "
                    f"{_attr(item.x)},{_attr(item.y + sign * s)}"
                )
                shape = f'<polygon points="{pts}"'
            out.append(
                f'<g class="marker">{shape} fill="{item.color}">{title}</{shape.split()[0][1:]}></g>'
            )
        elif isinstance(item, Text):
            weight = ' font-weight="600"' if item.bold else ""
            out.append(
                f'<text x="{_attr(item.x)}" y="{_attr(item.y)}" font-size="{_attr(item.size)}" '
                f'fill="{item.color}" text-anchor="{item.anchor}"{weight}>{escape(item.text)}</text>'
            )
    out.append("</svg>")
    return "".join(out)
