from __future__ import annotations

from pipeline.backtest.report import _unique_slugs


class TestUniqueSlugs:
    def test_names_that_slug_alike_get_numbered_in_order(self) -> None:
        texts = ["m__feature:a b", "m__feature:a/b", "m__feature:a-b", "m__other"]
        assert _unique_slugs(texts) == [
            "m__feature-a-b",
            "m__feature-a-b-2",
            "m__feature-a-b-3",
            "m__other",
        ]

    def test_a_numbered_name_never_meets_a_real_one(self) -> None:
        slugs = _unique_slugs(["x-2", "x", "x", "x"])
        assert len(set(slugs)) == 4
