"""A city's reference data (基础数据): regions, grids, cameras and departments.

``load_city(directory)`` reads four CSV files (UTF-8, a BOM tolerated; a header
row; extra columns ignored) into a frozen ``City``:

==================  ===========================================================
file                columns
==================  ===========================================================
``regions.csv``     code, level (city/county/township/community/grid), name, parent
``grids.csv``       code, name, community, lon, lat (the grid's centroid)
``cameras.csv``     device_id, grid_code, name, lon, lat (雪亮 camera registry)
``departments.csv`` code, name_zh, name_en
==================  ===========================================================

Everything is checked at load, and the first inconsistency raises
``RulesError`` whose reason names the file and line (``grids.csv, line 7: …``),
whose ``field`` names the column and whose ``code`` says what is wrong:
``missing_file``, ``unreadable``, ``bad_encoding``, ``missing_column``,
``bad_row``, ``bad_value``, ``duplicate``, ``level_mismatch``,
``parent_mismatch``, ``unknown_parent``, ``unknown_community``,
``grid_outside_community``, ``unknown_grid``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from streams.errors import RulesError
from streams.jurisdiction import level_of, parent_of
from streams.records import Level

GRID_CELL_DEG = 0.01
"""Side of the cells of the grid-centroid index, in degrees (≈ 1.1 km of latitude)."""

LEVEL_NAMES: Mapping[str, Level] = MappingProxyType({level.name.lower(): level for level in Level})

_JURISDICTION_CODE = re.compile(r"[0-9]{6}|[0-9]{9}|[0-9]{12}|[0-9]{15}")
_GRID_CODE = re.compile(r"[0-9]{15}")
_COMMUNITY_CODE = re.compile(r"[0-9]{12}")
_DEVICE_ID = re.compile(r"[0-9]{20}")
_DEPARTMENT_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,3}(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Region:
    """A jurisdiction (行政区划 / 网格) at one of the five levels."""

    code: str
    level: Level
    name: str
    parent: str | None  # None for the city


@dataclass(frozen=True, slots=True)
class Grid:
    """A grid (网格), with the centroid used to place events by coordinates."""

    code: str
    name: str
    community: str  # 12-digit community (社区/村) code, the first 12 digits of ``code``
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class Camera:
    """A camera of the 雪亮 registry: which grid its picture is in."""

    device_id: str  # GB/T 28181 20-digit code
    grid_code: str
    name: str
    lon: float | None
    lat: float | None


@dataclass(frozen=True, slots=True)
class Department:
    code: str  # pinyin code, e.g. chengguan
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class City:
    """The reference data of one city, indexed; immutable once loaded."""

    regions: Mapping[str, Region]
    grids: Mapping[str, Grid]
    cameras: Mapping[str, Camera]
    departments: Mapping[str, Department]
    grid_cells: Mapping[tuple[int, int], tuple[Grid, ...]] = field(repr=False)
    """Grid centroids by ``grid_cell(lon, lat)``, for nearest-grid look-ups."""


def grid_cell(lon: float, lat: float) -> tuple[int, int]:
    """The (row, column) of the index cell holding a point."""
    return math.floor(lat / GRID_CELL_DEG), math.floor(lon / GRID_CELL_DEG)


def load_city(directory: Path) -> City:
    """Read and check ``regions.csv``, ``grids.csv``, ``cameras.csv`` and ``departments.csv``."""
    regions = _load_regions(_read(directory, "regions.csv", ("code", "level", "name", "parent")))
    grids = _load_grids(
        _read(directory, "grids.csv", ("code", "name", "community", "lon", "lat")), regions
    )
    cameras = _load_cameras(
        _read(directory, "cameras.csv", ("device_id", "grid_code", "name", "lon", "lat")), grids
    )
    departments = _load_departments(
        _read(directory, "departments.csv", ("code", "name_zh", "name_en"))
    )
    return City(
        regions=MappingProxyType(regions),
        grids=MappingProxyType(grids),
        cameras=MappingProxyType(cameras),
        departments=MappingProxyType(departments),
        grid_cells=MappingProxyType(_index_cells(grids.values())),
    )


# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    file: str
    line: int
    values: Mapping[str, str]

    def error(self, reason: str, *, code: str, column: str | None = None) -> RulesError:
        return RulesError(f"{self.file}, line {self.line}: {reason}", code=code, field=column)

    def text(self, column: str, *, required: bool = True) -> str:
        value = self.values[column]
        if required and not value:
            raise self.error(f"{column} is empty", code="bad_value", column=column)
        return value

    def code(self, column: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self.values[column]
        if pattern.fullmatch(value) is None:
            raise self.error(
                f"{column} {value!r} must be {expected}", code="bad_value", column=column
            )
        return value

    def degrees(self, column: str, limit: float) -> float:
        value = self.values[column]
        if _DECIMAL.fullmatch(value) is None or not -limit <= float(value) <= limit:
            raise self.error(
                f"{column} {value!r} must be decimal degrees in [-{limit:g}, {limit:g}]",
                code="bad_value",
                column=column,
            )
        return float(value)


def _read(directory: Path, name: str, columns: Sequence[str]) -> list[_Row]:
    """The data rows of one CSV file, each with its line number; blank lines skipped."""
    path = directory / name
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(_rows(handle, name, columns))
    except FileNotFoundError:
        raise RulesError(
            f"{name}: file not found in reference directory {directory}",
            code="missing_file",
            field=name,
        ) from None
    except UnicodeDecodeError as exc:
        raise RulesError(
            f"{name}: not UTF-8 text ({exc.reason})", code="bad_encoding", field=name
        ) from None
    except OSError as exc:
        raise RulesError(f"{name}: cannot be read ({exc})", code="unreadable", field=name) from None


def _rows(handle: TextIO, name: str, columns: Sequence[str]) -> Iterator[_Row]:
    reader = csv.reader(handle)
    line = 1  # the line the next record starts on
    try:
        header = [cell.strip() for cell in next(reader, [])]
        missing = [column for column in columns if column not in header]
        if missing:
            raise RulesError(
                f"{name}, line 1: missing column(s) {', '.join(missing)} "
                f"(expected {', '.join(columns)})",
                code="missing_column",
                field=missing[0],
            )
        line = reader.line_num + 1
        for record in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                raise RulesError(
                    f"{name}, line {start}: {len(record)} fields, the header has {len(header)}",
                    code="bad_row",
                )
            values = {key: cell.strip() for key, cell in zip(header, record, strict=True)}
            yield _Row(name, start, values)
    except csv.Error as exc:
        raise RulesError(f"{name}, line {line}: {exc}", code="bad_row") from None


def _check_unique(row: _Row, key: str, seen: dict[str, int], column: str = "code") -> None:
    if key in seen:
        raise row.error(
            f"duplicate {column} {key!r} (first on line {seen[key]})",
            code="duplicate",
            column=column,
        )
    seen[key] = row.line


# --- the four files -----------------------------------------------------------------------


def _load_regions(rows: list[_Row]) -> dict[str, Region]:
    regions: dict[str, Region] = {}
    lines: dict[str, int] = {}
    for row in rows:
        code = row.code("code", _JURISDICTION_CODE, "6, 9, 12 or 15 digits")
        _check_unique(row, code, lines)
        level = LEVEL_NAMES.get(row.text("level").lower())
        if level is None:
            raise row.error(
                f"level {row.values['level']!r} must be one of {', '.join(LEVEL_NAMES)}",
                code="bad_value",
                column="level",
            )
        own = level_of(code)
        if own != level:
            raise row.error(
                f"level {level.name.lower()} disagrees with code {code!r}, "
                f"which is a {own.name.lower()} code",
                code="level_mismatch",
                column="level",
            )
        parent, expected = row.values["parent"] or None, parent_of(code)
        if parent != expected:
            raise row.error(
                f"parent {parent or '(empty)'!r} disagrees with code {code!r}, "
                f"whose parent is {expected or '(none, a city)'!r}",
                code="parent_mismatch",
                column="parent",
            )
        regions[code] = Region(code=code, level=level, name=row.text("name"), parent=parent)
    for row in rows:
        parent = row.values["parent"]
        if parent and parent not in regions:
            raise row.error(
                f"parent {parent!r} is not in regions.csv", code="unknown_parent", column="parent"
            )
    return regions


def _load_grids(rows: list[_Row], regions: Mapping[str, Region]) -> dict[str, Grid]:
    grids: dict[str, Grid] = {}
    lines: dict[str, int] = {}
    for row in rows:
        code = row.code("code", _GRID_CODE, "15 digits (12-digit community + 3-digit sequence)")
        _check_unique(row, code, lines)
        community = row.code("community", _COMMUNITY_CODE, "a 12-digit community code")
        known = regions.get(community)
        if known is None or known.level != Level.COMMUNITY:
            raise row.error(
                f"community {community!r} is not a community in regions.csv",
                code="unknown_community",
                column="community",
            )
        if not code.startswith(community):
            raise row.error(
                f"grid {code!r} does not start with its community code {community!r}",
                code="grid_outside_community",
                column="code",
            )
        grids[code] = Grid(
            code=code,
            name=row.text("name"),
            community=community,
            lon=row.degrees("lon", 180),
            lat=row.degrees("lat", 90),
        )
    return grids


def _load_cameras(rows: list[_Row], grids: Mapping[str, Grid]) -> dict[str, Camera]:
    cameras: dict[str, Camera] = {}
    lines: dict[str, int] = {}
    for row in rows:
        device_id = row.code("device_id", _DEVICE_ID, "a 20-digit GB/T 28181 device code")
        _check_unique(row, device_id, lines, "device_id")
        grid_code = row.code("grid_code", _GRID_CODE, "a 15-digit grid code")
        if grid_code not in grids:
            raise row.error(
                f"camera {device_id} is on grid {grid_code!r}, which is not in grids.csv",
                code="unknown_grid",
                column="grid_code",
            )
        placed = row.values["lon"] or row.values["lat"]  # coordinates are optional, both or none
        cameras[device_id] = Camera(
            device_id=device_id,
            grid_code=grid_code,
            name=row.text("name", required=False),
            lon=row.degrees("lon", 180) if placed else None,
            lat=row.degrees("lat", 90) if placed else None,
        )
    return cameras


def _load_departments(rows: list[_Row]) -> dict[str, Department]:
    departments: dict[str, Department] = {}
    lines: dict[str, int] = {}
    for row in rows:
        code = row.code("code", _DEPARTMENT_CODE, "a lower-case pinyin code such as chengguan")
        _check_unique(row, code, lines)
        departments[code] = Department(
            code=code, name_zh=row.text("name_zh"), name_en=row.text("name_en", required=False)
        )
    return departments


def _index_cells(grids: Iterable[Grid]) -> dict[tuple[int, int], tuple[Grid, ...]]:
    cells: dict[tuple[int, int], list[Grid]] = {}
    for grid in sorted(grids, key=lambda g: g.code):
        cells.setdefault(grid_cell(grid.lon, grid.lat), []).append(grid)
    return {cell: tuple(members) for cell, members in cells.items()}
