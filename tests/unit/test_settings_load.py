"""Settings are loaded in one place: a bad environment variable is named, not traced."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import main
from settings import InvalidSettings, Settings, load_settings


def test_valid_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLINK_API_PORT", "8123")
    assert load_settings() == Settings(api_port=8123)


def test_every_bad_setting_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLINK_API_PORT", "70000")
    monkeypatch.setenv("GRIDLINK_KAFKA_BOOTSTRAP", "no-port")
    with pytest.raises(InvalidSettings) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("invalid settings: ")
    assert "GRIDLINK_API_PORT: " in message and "GRIDLINK_KAFKA_BOOTSTRAP: " in message


@pytest.mark.parametrize("command", [["replay"], ["simulate", "--dry-run"], ["users", "list"]])
def test_each_command_reports_bad_settings_in_one_line(
        monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.setenv("GRIDLINK_API_PORT", "70000")
    result = CliRunner().invoke(main, command)
    assert result.exit_code != 0
    assert "invalid settings: GRIDLINK_API_PORT: " in result.output, result.output
    assert "Traceback" not in result.output
