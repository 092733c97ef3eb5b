"""Fixtures of the fault suite (``pytest -m faults``): an isolated run per test on the
real broker(s), the short SLA budgets, and the fault table every test adds a row to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR
from tests.faults.harness import TABLE_HEAD, Report, fast_rules
from tests.integration.conftest import (  # noqa: F401 — fixtures of the integration suite
    gridlink_env,
    kafka,
    settings,
    start_gridlink,
)

pytestmark = pytest.mark.faults

TABLE = PROJECT_DIR / "artifacts" / "faults.md"
SESSION_TIMEOUT_SECONDS = "2"  # a killed worker's partitions move after this long


# ``gridlink_env`` below is the imported fixture, requested by name (not a redefinition)
@pytest.fixture
def fault_env(gridlink_env: dict[str, str], tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """The test's settings, with short SLA budgets, prompt failover and RocksDB stores."""
    gridlink_env.update({
        "GRIDLINK_RULES_DIR": str(fast_rules(tmp_path)),
        "GRIDLINK_SESSION_TIMEOUT_SECONDS": SESSION_TIMEOUT_SECONDS,
        "GRIDLINK_TABLE_STORE": "rocksdb",
        "GRIDLINK_PARTITIONS": "4",
    })
    return gridlink_env


@pytest.fixture(scope="session")
def fault_table() -> list[Report]:
    """The rows of the fault table; written to artifacts/faults.md at the end."""
    rows: list[Report] = []
    yield rows
    if rows:
        TABLE.parent.mkdir(exist_ok=True)
        TABLE.write_text("\n".join([TABLE_HEAD, *(r.row() for r in rows)]) + "\n",
                         encoding="utf-8")
