"""Shared test fixtures: paths of the project's own copy of the contract."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
CONTRACT_DIR = TESTS_DIR / "data" / "contract"
SAMPLES_DIR = CONTRACT_DIR / "samples"
PROJECT_DIR = TESTS_DIR.parent


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def contract_reference_dir() -> Path:
    return CONTRACT_DIR / "reference"
