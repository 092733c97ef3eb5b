"""The PostgreSQL fixture fails loudly when the server is not installed."""

from __future__ import annotations

import pytest

from tests.store import postgres


def test_missing_server_binaries_are_an_error_that_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(postgres, "BIN_GLOB", "/nonexistent/postgresql/*/bin")
    with pytest.raises(postgres.PostgresUnavailable, match="apt-get install postgresql"):
        postgres.server_bin()
