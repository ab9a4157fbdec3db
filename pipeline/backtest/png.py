"""Render a plot scene to PNG without a browser or an imaging library.

Why not a headless-browser screenshot: the export must work on any machine that
runs backtests (no Chromium there), be fast (no process per plot) and be
byte-identical across runs and machines (browser font rendering is not). So the
same scene the SVG comes from is rasterised here with numpy — rectangles,
envelopes, lines (dashes, widths), markers — and text in a built-in 5x7 bitmap
font (upper case; enough for titles and tick labels), then written with zlib.
"""

from __future__ import annotations

import struct
import zlib
from itertools import pairwise
from pathlib import Path

import numpy as np

from pipeline.backtest.plot import Band, Line, Marker, Polyline, Rect, Scene, Text

__all__ = ["encode_png", "render_png", "write_png"]

_GLYPH_ROWS = """
A .###. #...# #...# ##### #...# #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ####. #...# #...# #...# #...# #...# ####.
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# #...# ##..# #.#.# #..## #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ####. ....# ....# .###. ....# ....# ####.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 ..##. .#... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ...#. .##..
. ..... ..... ..... ..... ..... .##.. .##..
, ..... ..... ..... ..... .##.. ..#.. .#...
: ..... .##.. .##.. ..... .##.. .##.. .....
; ..... .##.. .##.. ..... .##.. ..#.. .#...
- ..... ..... ..... .###. ..... ..... .....
+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....
/ ....# ....# ...#. ..#.. .#... #.... #....
( ...#. ..#.. .#... .#... .#... ..#.. ...#.
) .#... ..#.. ...#. ...#. ...#. ..#.. .#...
% ##..# ##..# ...#. ..#.. .#... #..## #..##
= ..... ..... ##### ..... ##### ..... .....
_ ..... ..... ..... ..... ..... ..... #####
[ .###. .#... .#... .#... .#... .#... .###.
] .###. ...#. ...#. ...#. ...#. ...#. .###.
' ..#.. ..#.. .#... ..... ..... ..... .....
" .#.#. .#.#. ..... ..... ..... ..... .....
# .#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.
> .#... ..#.. ...#. ....# ...#. ..#.. .#...
< ...#. ..#.. .#... #.... .#... ..#.. ...#.
* ..... ..#.. #.#.# .###. #.#.# ..#.. .....
! ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..
? .###. #...# ....# ...#. ..#.. ..... ..#..
~ ..... ..... .#... #.#.# ...#. ..... .....
· ..... ..... ..... .##.. .##.. ..... .....
"""

_FONT: dict[str, np.ndarray] = {}
for _line in _GLYPH_ROWS.strip().splitlines():
    _char, *_rows = _line.split(" ")
    _FONT[_char] = np.array([[cell == "#" for cell in row] for row in _rows], dtype=bool)
_FONT[" "] = np.zeros((7, 5), dtype=bool)
_ALIASES = {
    "\u2014": "-",
    "\u2013": "-",
    "\u2265": ">",
    "\u2264": "<",
    "\u00d7": "*",
    "\u2026": ".",
}


def _rgb(color: str) -> tuple[int, int, int]:
    h = color.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


class _Canvas:
    def __init__(self, width: int, height: int, scale: int) -> None:
        self.scale = scale
        self.w, self.h = width * scale, height * scale
        self.px = np.full((self.h, self.w, 3), 255, dtype=np.uint8)

    def fill_rect(self, x: float, y: float, w: float, h: float, rgb: tuple[int, int, int]) -> None:
        s = self.scale
        x0, y0 = max(0, round(x * s)), max(0, round(y * s))
        x1, y1 = min(self.w, round((x + w) * s)), min(self.h, round((y + h) * s))
        if x1 > x0 and y1 > y0:
            self.px[y0:y1, x0:x1] = rgb

    def stroke_rect(
        self, x: float, y: float, w: float, h: float, rgb: tuple[int, int, int]
    ) -> None:
        for a, b, c, d in ((x, y, x + w, y), (x, y + h, x + w, y + h), (x, y, x, y + h),
                           (x + w, y, x + w, y + h)):  # fmt: skip
            self.line(a, b, c, d, rgb, 1.0, None)

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        rgb: tuple[int, int, int],
        width: float,
        dash: tuple[int, int] | None,
    ) -> None:
        s = self.scale
        ax, ay, bx, by = x1 * s, y1 * s, x2 * s, y2 * s
        steps = int(max(abs(bx - ax), abs(by - ay))) + 1
        t = np.linspace(0.0, 1.0, steps + 1)
        xs = np.rint(ax + (bx - ax) * t).astype(np.int64)
        ys = np.rint(ay + (by - ay) * t).astype(np.int64)
        if dash is not None:
            on, off = dash[0] * s, dash[1] * s
            keep = (np.arange(len(t)) % (on + off)) < on
            xs, ys = xs[keep], ys[keep]
        self._plot(xs, ys, rgb, max(1, round(width * s)))

    def polyline(
        self,
        points: tuple[tuple[float, float], ...],
        rgb: tuple[int, int, int],
        width: float,
        dash: tuple[int, int] | None,
    ) -> None:
        """Connected segments; a dash pattern runs on across the joints."""
        s = self.scale
        if len(points) == 1:
            points = (points[0], points[0])
        xs_all, ys_all = [], []
        for (ax, ay), (bx, by) in pairwise(points):
            ax, ay, bx, by = ax * s, ay * s, bx * s, by * s
            steps = int(max(abs(bx - ax), abs(by - ay))) + 1
            t = np.linspace(0.0, 1.0, steps + 1)[:-1]
            xs_all.append(np.rint(ax + (bx - ax) * t).astype(np.int64))
            ys_all.append(np.rint(ay + (by - ay) * t).astype(np.int64))
        xs, ys = np.concatenate(xs_all), np.concatenate(ys_all)
        if dash is not None:
            on, off = dash[0] * s, dash[1] * s
            keep = (np.arange(len(xs)) % (on + off)) < on
            xs, ys = xs[keep], ys[keep]
        self._plot(xs, ys, rgb, max(1, round(width * s)))

    def _plot(self, xs: np.ndarray, ys: np.ndarray, rgb: tuple[int, int, int], pen: int) -> None:
        lo = -(pen // 2)
        for dx in range(lo, lo + pen):
            for dy in range(lo, lo + pen):
                px, py = xs + dx, ys + dy
                ok = (px >= 0) & (px < self.w) & (py >= 0) & (py < self.h)
                self.px[py[ok], px[ok]] = rgb

    def band(self, item: Band, rgb: tuple[int, int, int]) -> None:
        s = self.scale
        xs = np.asarray(item.xs) * s
        if len(xs) == 1:
            cols = np.array([round(xs[0])])
        else:
            cols = np.arange(int(np.floor(xs[0])), int(np.ceil(xs[-1])) + 1)
        top = np.interp(cols, xs, np.asarray(item.lo) * s)
        bot = np.interp(cols, xs, np.asarray(item.hi) * s)
        for col, a, b in zip(cols, top, bot, strict=True):
            if 0 <= col < self.w:
                y0, y1 = max(0, int(np.floor(min(a, b)))), min(self.h, int(np.ceil(max(a, b))) + 1)
                self.px[y0:y1, col] = rgb

    def marker(self, item: Marker, rgb: tuple[int, int, int]) -> None:
        s = self.scale
        cx, cy, r = item.x * s, item.y * s, item.size * s
        y0, y1 = max(0, int(cy - r - 1)), min(self.h, int(cy + r + 2))
        x0, x1 = max(0, int(cx - r - 1)), min(self.w, int(cx + r + 2))
        if y1 <= y0 or x1 <= x0:
            return
        yy, xx = np.mgrid[y0:y1, x0:x1]
        if item.shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= (0.8 * r) ** 2
        else:
            # triangle with its flat side at cy -/+ r and its tip at cy +/- r
            depth = (yy - (cy - r)) / (2 * r) if item.shape == "down" else ((cy + r) - yy) / (2 * r)
            mask = (depth >= 0) & (depth <= 1) & (np.abs(xx - cx) <= r * (1 - depth))
        self.px[yy[mask], xx[mask]] = rgb

    def text(self, item: Text, rgb: tuple[int, int, int]) -> None:
        s = self.scale
        k = max(1, round(item.size * s / 11))  # glyph pixel size
        chars = [_ALIASES.get(ch, ch).upper() for ch in item.text]
        advance = 6 * k
        total = advance * len(chars) - k
        x = item.x * s
        if item.anchor == "middle":
            x -= total / 2
        elif item.anchor == "end":
            x -= total
        x0 = round(x)
        y0 = round(item.y * s) - 7 * k
        for i, ch in enumerate(chars):
            glyph = _FONT.get(ch, _FONT["?"])
            big = np.kron(glyph, np.ones((k, k), dtype=bool))
            if item.bold:
                big = big | np.pad(big, ((0, 0), (1, 0)))[:, :-1]
            gx = x0 + i * advance
            ys, xs = np.nonzero(big)
            ys, xs = ys + y0, xs + gx
            ok = (xs >= 0) & (xs < self.w) & (ys >= 0) & (ys < self.h)
            self.px[ys[ok], xs[ok]] = rgb


def render_png(scene: Scene, *, scale: int = 2) -> bytes:
    """The scene rasterised at ``scale`` device pixels per logical pixel."""
    canvas = _Canvas(scene.width, scene.height, scale)
    for item in scene.items:
        if isinstance(item, Rect):
            canvas.fill_rect(item.x, item.y, item.w, item.h, _rgb(item.fill))
            if item.stroke:
                canvas.stroke_rect(item.x, item.y, item.w, item.h, _rgb(item.stroke))
        elif isinstance(item, Line):
            canvas.line(item.x1, item.y1, item.x2, item.y2, _rgb(item.color), item.width, item.dash)
        elif isinstance(item, Polyline):
            canvas.polyline(item.points, _rgb(item.color), item.width, item.dash)
        elif isinstance(item, Band):
            canvas.band(item, _rgb(item.fill))
        elif isinstance(item, Marker):
            canvas.marker(item, _rgb(item.color))
        elif isinstance(item, Text):
            canvas.text(item, _rgb(item.color))
    return encode_png(canvas.px)


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an ``(h, w, 3)`` uint8 array (filter 0, zlib level 6)."""
    h, w, _ = pixels.shape
    raw = np.zeros((h, w * 3 + 1), dtype=np.uint8)
    raw[:, 1:] = pixels.reshape(h, w * 3)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def write_png(scene: Scene, path: Path, *, scale: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_png(scene, scale=scale))
