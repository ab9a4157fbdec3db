"""The import rules of docs/architecture.md, checked over every module's source.

Every import counts, deferred ones inside functions included: a rule that only holds at
module load would still let the pure core pull in a broker client at run time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            elif node.module:
                yield node.module


def _sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


OUTER = ("pipeline.runtime", "pipeline.replay", "pipeline.backtest", "pipeline.cli")
CONFIG = ("pipeline.config", "pipeline.model_spec", "pipeline.config_types")

RULES = [
    # (modules under, may not import, why)
    (("detectors",), ("pipeline",), "detectors are pure: no pipeline"),
    (
        ("pipeline.core", "pipeline.state", "pipeline.formats", *CONFIG),
        ("pipeline.io", *OUTER),
        "the pure core runs without a broker, a file or a clock",
    ),
    (CONFIG, ("pipeline.core",), "config is data: the core reads it, never the reverse"),
    (("pipeline.io",), OUTER, "io is a seam below the runtime"),
    (
        ("pipeline.emit",),
        ("pipeline.core", "pipeline.config", "pipeline.formats", "detectors", *OUTER),
        "the emitter a service imports stays light",
    ),
]
KAFKA_CLIENTS = ("kafka", "confluent_kafka")


def test_only_io_imports_a_kafka_client() -> None:
    broken = [
        f"{_module(path)} imports {name}"
        for path in _sources("detectors", "pipeline")
        if not _within(_module(path), ("pipeline.io",))
        for name in _imports(path)
        if _within(name, KAFKA_CLIENTS)
    ]
    assert not broken, "a Kafka client is an I/O detail of pipeline.io: " + "; ".join(broken)


@pytest.mark.parametrize(("owners", "forbidden", "why"), RULES)
def test_import_rule(owners: tuple[str, ...], forbidden: tuple[str, ...], why: str) -> None:
    broken = [
        f"{_module(path)} imports {name}"
        for path in _sources("detectors", "pipeline")
        if _within(_module(path), owners)
        for name in _imports(path)
        if _within(name, forbidden)
    ]
    assert not broken, f"{why}: " + "; ".join(broken)


def test_the_rules_see_every_module() -> None:
    modules = {_module(p) for p in _sources("detectors", "pipeline")}
    assert {"detectors.adwin", "pipeline.core.engine", "pipeline.io.kafka"} <= modules
    assert "pipeline.io.kafka" in {_module(p) for p in _sources("pipeline")}
    # imports are read as module names
    assert "pipeline.core.records" in set(_imports(ROOT / "pipeline" / "io" / "files.py"))
