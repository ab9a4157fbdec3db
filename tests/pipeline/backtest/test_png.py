from __future__ import annotations

import numpy as np

from pipeline.backtest.plot import COLORS, Band, Line, Marker, Polyline, Rect, Scene, Text
from pipeline.backtest.png import encode_png, render_png
from tests.pipeline.backtest.pngread import has_color, read_png


class TestPng:
    def test_encode_round_trips(self) -> None:
        rng = np.random.default_rng(1)
        pixels = rng.integers(0, 256, size=(13, 7, 3), dtype=np.uint8)
        assert np.array_equal(read_png(encode_png(pixels)), pixels)

    def test_scene_is_rasterised(self) -> None:
        scene = Scene(200, 100)
        scene.add(Rect(0, 0, 200, 100, "#ffffff"))
        scene.add(Band((10.0, 190.0), (20.0, 30.0), (60.0, 70.0), COLORS["value_band"]))
        scene.add(Polyline(((10.0, 50.0), (100.0, 20.0), (190.0, 80.0)), COLORS["stat"], 1.5))
        scene.add(Line(0, 90, 200, 90, COLORS["threshold"], 1.5, dash=(6, 4)))
        scene.add(Marker(100, 10, "down", COLORS["hit"], 6))
        scene.add(Text(5, 98, "DRIFT 42", size=11, color="#000000"))
        png = render_png(scene, scale=2)
        pixels = read_png(png)
        assert pixels.shape == (200, 400, 3)
        for color in (COLORS["value_band"], COLORS["stat"], COLORS["threshold"], COLORS["hit"]):
            assert has_color(pixels, color, tolerance=0, min_count=20), color
        # the dashed threshold row alternates: some pixels set, some not
        row = pixels[180]
        on = (row == np.array([0xDC, 0x26, 0x26])).all(axis=1)
        assert 0.4 < on.mean() < 0.8
        assert render_png(scene, scale=2) == png  # byte-stable
