"""Jurisdiction codes and the five levels (docs/domain.md §1).

Codes nest by prefix: city ``371500`` (4 digits + ``00``), county ``371502``,
township ``371502004``, community ``371502004003``, grid ``371502004003007``.
"""

from __future__ import annotations

from functools import lru_cache

from streams.records import Level

KNOWN_CODES = 65_536  # answers kept per function: a city has a few thousand codes

_LEVEL_OF_LENGTH = {9: Level.TOWNSHIP, 12: Level.COMMUNITY, 15: Level.GRID}  # 6: city or county
_BOUNDARIES = (15, 12, 9, 6)


@lru_cache(maxsize=KNOWN_CODES)
def level_of(code: str) -> Level:
    """The level a code names; raises ``ValueError`` for a malformed code."""
    if not code.isdigit() or (len(code) != 6 and len(code) not in _LEVEL_OF_LENGTH):
        raise ValueError(f"not a jurisdiction code: {code!r} (6, 9, 12 or 15 digits)")
    if len(code) == 6:
        return Level.CITY if code.endswith("00") else Level.COUNTY
    return _LEVEL_OF_LENGTH[len(code)]


def city_of(code: str) -> str:
    return code[:4] + "00"


@lru_cache(maxsize=KNOWN_CODES)
def ancestor_at(code: str, level: Level) -> str | None:
    """The code's ancestor (or itself) at ``level``; None if the code is above it."""
    own = level_of(code)
    if level > own:
        return None
    if level == Level.CITY:
        return city_of(code)
    return code[: {Level.COUNTY: 6, Level.TOWNSHIP: 9, Level.COMMUNITY: 12, Level.GRID: 15}[level]]


def ancestor_or_none(code: str, level: Level) -> str | None:
    """Like :func:`ancestor_at`, but None for a code that is not a jurisdiction code."""
    try:
        return ancestor_at(code, level)
    except ValueError:
        return None


def parent_of(code: str) -> str | None:
    """One level up; None for a city."""
    own = level_of(code)
    if own == Level.CITY:
        return None
    return ancestor_at(code, Level(own - 1))


def is_within(code: str, ancestor: str) -> bool:
    """True when ``code`` lies in ``ancestor``'s jurisdiction (or is it)."""
    if level_of(ancestor) == Level.CITY:
        return code[:4] == ancestor[:4]
    return code.startswith(ancestor)


def common_ancestor(a: str, b: str) -> str:
    """The lowest common ancestor: the longest common prefix cut back to a level
    boundary (cross-jurisdiction cases escalate to it)."""
    n = 0
    for x, y in zip(a, b, strict=False):  # codes of different levels differ in length
        if x != y:
            break
        n += 1
    for boundary in _BOUNDARIES:
        if n >= boundary and len(a) >= boundary and len(b) >= boundary:
            return a[:boundary]
    return city_of(a)
