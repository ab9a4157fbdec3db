from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.monitor import MonitorKey
from pipeline.core.state_keys import join_page_key, model_key, parse


class TestGrammar:
    @given(kind=st.sampled_from(["model", "policy", "shadow", "golden", "checkpoints"]),
           model_id=st.text(max_size=20))  # fmt: skip
    def test_a_model_key_parses_back(self, kind: str, model_id: str) -> None:
        assert parse(model_key(kind, model_id)) == (kind, [model_id])

    @given(model_id=st.text(max_size=20), page=st.integers(0, 2**40))
    def test_a_join_page_key_parses_back(self, model_id: str, page: int) -> None:
        assert parse(join_page_key(model_id, page)) == ("join", [model_id, page])

    @given(parts=st.tuples(*[st.text(max_size=8)] * 6))
    def test_a_detector_key_parses_back(self, parts: tuple[str, ...]) -> None:
        key = MonitorKey(*parts)
        assert MonitorKey.from_state_key(key.state_key()) == key
        assert parse(key.state_key()) == ("detector", list(parts))

    def test_the_layout_is_stable(self) -> None:
        # These strings are changelog keys already written by running sidecars.
        assert model_key("model", "fraud") == 'model:["fraud"]'
        assert join_page_key("fraud", 7) == 'join:["fraud",7]'
        key = MonitorKey("fraud", "1", "production", "feature:amount", "ks_window")
        assert (
            key.state_key() == 'detector:["fraud","1","production","feature:amount","ks_window",""]'
        )

    @pytest.mark.parametrize("text", ["model:", "model:{}", "model:[]", "nonsense"])
    def test_malformed_keys_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse(text)
