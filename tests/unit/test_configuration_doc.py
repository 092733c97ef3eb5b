"""docs/configuration.md is the settings object, written out: a new or changed
setting fails here until the page is written again."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from cli.settings_doc import configuration_markdown
from settings import PROJECT_DIR, Settings

PAGE = PROJECT_DIR / "docs" / "configuration.md"


def test_the_configuration_page_is_what_the_settings_object_gives() -> None:
    assert PAGE.read_text(encoding="utf-8") == configuration_markdown(), (
        "docs/configuration.md differs from settings.Settings: run "
        "`python -m cli.settings_doc > docs/configuration.md`")


def test_every_setting_has_a_row_of_its_own() -> None:
    page = configuration_markdown()
    for name in Settings.model_fields:
        assert page.count(f"| `GRIDLINK_{name.upper()}` |") == 1, name


def test_a_new_setting_appears_with_its_choices_default_and_description() -> None:
    class Extended(Settings):
        flush_mode: Literal["fast", "safe"] = Field("safe", description="how | often to flush")
        spool_dir: Path = Field(Path.home() / "spool", description="where spooled files go")

    page = configuration_markdown(Extended)
    assert ("| `GRIDLINK_FLUSH_MODE` | `fast` \\| `safe` | `safe` | how \\| often to flush |"
            in page)
    assert "| `GRIDLINK_SPOOL_DIR` | path | `~/spool` | where spooled files go |" in page
    assert page != configuration_markdown()
