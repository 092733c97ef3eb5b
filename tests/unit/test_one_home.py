"""One home for each fact: the time zone and the wall clock are defined once and
imported everywhere else, so no copy can drift (a second zone, a naive clock)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import PROJECT_DIR

# The source tree, tests apart (a test may spell a time out in full).
SOURCES = sorted(
    path for path in PROJECT_DIR.rglob("*.py")
    if path.relative_to(PROJECT_DIR).parts[0] not in {"tests", "build"}
    and not any(part.startswith(".") for part in path.relative_to(PROJECT_DIR).parts)
)
# The running system: what reads the clock to decide or to show.
RUNNING = ("agents", "api", "cli", "observability", "simulation", "store", "topics", "streams")

ZONE = re.compile(r'ZoneInfo\(\s*["\']Asia/Shanghai["\']\s*\)|timedelta\(\s*hours\s*=\s*8\s*\)')
DEFINES_WALL_CLOCK = re.compile(r"^\s*def wall_clock\(", re.M)
READS_THE_CLOCK = re.compile(r"\bdatetime\.now\(|\bdatetime\.utcnow\(|\bdate\.today\(")


def _where(pattern: re.Pattern[str], paths: list[Path]) -> set[str]:
    return {path.relative_to(PROJECT_DIR).as_posix() for path in paths
            if pattern.search(path.read_text(encoding="utf-8"))}


def test_the_sources_are_found() -> None:
    names = {path.relative_to(PROJECT_DIR).as_posix() for path in SOURCES}
    assert {"streams/zone.py", "clock.py", "settings.py", "agents/worker.py"} <= names


def test_the_time_zone_is_defined_only_in_streams_zone() -> None:
    assert _where(ZONE, SOURCES) == {"streams/zone.py"}


def test_the_wall_clock_is_defined_only_in_clock() -> None:
    assert _where(DEFINES_WALL_CLOCK, SOURCES) == {"clock.py"}


def test_the_running_system_reads_the_clock_only_through_wall_clock() -> None:
    running = [path for path in SOURCES
               if path.relative_to(PROJECT_DIR).parts[0] in RUNNING or path.parent == PROJECT_DIR]
    assert _where(READS_THE_CLOCK, running) == {"clock.py"}


def test_the_patterns_see_a_copy() -> None:
    assert ZONE.search('TZ = ZoneInfo("Asia/Shanghai")')
    assert ZONE.search("timezone(timedelta(hours=8))")
    assert DEFINES_WALL_CLOCK.search("def wall_clock() -> datetime:")
    assert READS_THE_CLOCK.search("now = datetime.now(TZ)")
