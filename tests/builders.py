"""Small builders shared by the tests: events, classifications, rule copies."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from streams.records import Classification, Event, Source

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def ev(source: Source = Source.GRID, **fields: Any) -> Event:
    """An event of ``source`` with id X at T0, plus ``fields``."""
    return Event(event_id=f"{source.value}:X", source=source, source_id="X", occurred_at=T0,
                 reported_at=T0, **fields)


def cls(category: str) -> Classification:
    return Classification(category=category, name="", confidence=0.9, rule="test")


def rules_with(directory: Path, name: str, old: str, new: str) -> Path:
    """A copy of the shipped rules in ``directory`` with ``old`` replaced by
    ``new`` (once) in the rule file ``name``."""
    target = directory / "rules"
    if not target.exists():
        shutil.copytree(RULES_DIR, target)
    text = (target / name).read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {name}: {old!r}"
    (target / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    return target
