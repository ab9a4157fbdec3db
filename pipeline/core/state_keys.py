"""The names of a partition's state entries: the keys of the state changelog.

Every entry is plain JSON under one of these keys (JSON arrays, so that no model id,
version or signal can make two keys collide):

=================================  ==========================================
``meta``                           watermark, sweep time, join marks, touch counter
``model:["m"]``                    known?, last seen, version, label counters
``detector:[m,v,var,s,mon,seg]``   one detector + its alert-window bookkeeping
``join:["m",page]``                a page of requests waiting in the label join
``policy:["m"]``                   hysteresis, cooldowns, recent alerts, incident
``shadow:["m"]``                   shadow tests per candidate version
``golden:["m"]``                   golden-set baselines
``checkpoints:["m"]``              the checkpoint registry
=================================  ==========================================

The input formats keep their own entries next to these (``pairs:<topic>``, see
:mod:`pipeline.formats`); the processor hands those to the decoder, the rest to the
engine. Version 2 writes join pages as packed columns; the version 1 pages (a JSON object
per request) and the older one-request entries, ``join:["m","request"]``, still restore
and are rewritten (:mod:`pipeline.core.join_codec`).
"""

from __future__ import annotations

import functools
from typing import Any, Final

import orjson

__all__ = [
    "COMPONENTS",
    "DETECTOR_PREFIX",
    "META",
    "READABLE_VERSIONS",
    "STATE_VERSION",
    "join_page_key",
    "model_key",
    "parse",
]

STATE_VERSION: Final = 2
"""The layout version written in ``meta`` (2: packed label-join pages)."""
READABLE_VERSIONS: Final = (1, 2)
"""Versions restore reads; it refuses any other."""
META: Final = "meta"
DETECTOR_PREFIX: Final = "detector:"
"""What every detector entry's key starts with (``MonitorKey.state_key``)."""
COMPONENTS: Final = ("policy", "shadow", "golden", "checkpoints")
"""Per-model entries written only once the model has that component."""


@functools.lru_cache(maxsize=65536)
def model_key(kind: str, model_id: str) -> str:
    """``model:["m"]``, ``policy:["m"]``...: a per-model entry."""
    return f"{kind}:" + orjson.dumps([model_id]).decode()


def join_page_key(model_id: str, page: int) -> str:
    """``join:["m",page]``: one page of the label join."""
    return "join:" + orjson.dumps([model_id, page]).decode()


def parse(state_key: str) -> tuple[str, list[Any]]:
    """A key other than ``meta`` as (kind, its JSON array)."""
    kind, _, rest = state_key.partition(":")
    parts = orjson.loads(rest)  # its JSONDecodeError is a ValueError, as json's is
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"unknown state key {state_key!r}")
    return kind, parts
