"""JSON Schema export of every event kind (``driftline schema``)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.events import EVENT_MODELS, SCHEMA_VERSION

__all__ = ["render_schemas", "write_schemas"]


def render_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, for every event kind."""
    out = {}
    for kind, model in EVENT_MODELS.items():
        schema = model.model_json_schema(by_alias=True, mode="serialization")
        schema["$id"] = f"https://driftline.dev/schemas/{kind}.v{SCHEMA_VERSION}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"{kind}.v{SCHEMA_VERSION}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


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
