"""Imports flow one way: entry points → adapters → the pure core (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

FORBIDDEN_IN_CORE = {"faust", "mode", "aiokafka", "kafka", "sqlalchemy", "fastapi", "starlette",
                     "uvicorn", "prometheus_client", "opentelemetry", "settings", "topics",
                     "agents", "api", "store", "observability", "cli", "simulation", "clock"}

# package → the project packages it may import (besides itself and streams)
ALLOWED = {
    "streams": set(),
    "topics": {"settings", "clock"},
    "observability": {"settings", "clock"},
    "store": {"settings", "clock", "topics", "observability"},
    "agents": {"settings", "clock", "topics", "store", "observability"},
    "api": {"settings", "clock", "topics", "store", "observability"},
    "simulation": {"settings", "clock", "topics"},
    "benchmarks": {"settings", "clock", "topics", "store", "observability", "agents", "api",
                   "simulation"},
    "cli": {"settings", "clock", "topics", "store", "observability", "agents", "api", "simulation",
            "benchmarks"},
}
PROJECT_PACKAGES = set(ALLOWED) | {"settings", "clock"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((PROJECT_DIR / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("streams"), ids=lambda p: p.name)
def test_core_imports_no_framework_and_no_outer_layer(path: Path):
    bad = _imports(path) & FORBIDDEN_IN_CORE
    assert not bad, f"{path.relative_to(PROJECT_DIR)} imports {sorted(bad)}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layers_import_only_downwards(package: str):
    for path in _modules(package):
        used = _imports(path) & PROJECT_PACKAGES - {package, "streams"}
        bad = used - ALLOWED[package]
        assert not bad, f"{path.relative_to(PROJECT_DIR)} imports {sorted(bad)} (upwards)"


def test_the_api_imports_no_sql():
    """An entry point holds no adapter: the SQL read models are the store's
    (store.queries, store.statistics, store.gauges), and the API takes its session type
    from store.db; a router only translates records into responses."""
    offenders = [str(path.relative_to(PROJECT_DIR)) for path in _modules("api")
                 if "sqlalchemy" in _imports(path)]
    assert not offenders, f"{offenders} import sqlalchemy"


def test_core_never_reads_the_clock():
    for path in _modules("streams"):
        text = path.read_text(encoding="utf-8")
        for call in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today("):
            assert call not in text, f"{path.relative_to(PROJECT_DIR)} calls {call}"


def test_benchmarks_are_imported_only_lazily_by_the_cli():
    """``gridlink bench`` imports them when it runs: nothing else pays for loading them."""
    for path in _modules("cli"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {alias.name.split(".")[0] for node in tree.body
               if isinstance(node, ast.Import) for alias in node.names}
        top |= {node.module.split(".")[0] for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module}
        assert "benchmarks" not in top, f"{path.relative_to(PROJECT_DIR)} imports benchmarks"


def test_the_api_holds_no_kafka_client():
    """An entry point translates; the Kafka clients live with the topics (the command
    gateway's channel in ``topics.gateway``, the board's feed in ``topics.feed``)."""
    for path in _modules("api"):
        bad = _imports(path) & {"aiokafka", "kafka"}
        assert not bad, f"{path.relative_to(PROJECT_DIR)} imports {sorted(bad)}"
