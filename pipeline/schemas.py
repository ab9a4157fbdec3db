"""JSON Schema export of every event kind (``driftline schema``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from pipeline.events import EVENT_MODELS, PREVIOUS_MODELS, schema_version

__all__ = ["render_schemas", "write_schemas"]


def render_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, for every event kind (current version) and the
    earlier versions still published on request."""
    versions: list[tuple[str, int, type[BaseModel]]] = [
        (kind, schema_version(kind), model) for kind, model in EVENT_MODELS.items()
    ]
    for kind, previous in PREVIOUS_MODELS.items():
        versions.extend((kind, version, model) for version, model in previous.items())
    out = {}
    for kind, version, model in versions:
        schema = model.model_json_schema(by_alias=True, mode="serialization")
        schema["$id"] = f"https://driftline.dev/schemas/{kind}.v{version}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"{kind}.v{version}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return dict(sorted(out.items()))


def write_schemas(directory: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check``, only compare) the schema files; return the names that
    differ from what is on disk."""
    changed = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            changed.append(name)
            if not check:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return changed
