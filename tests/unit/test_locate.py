"""Placing events: each way ``locate`` knows, each way it gives up, and the contract's grids."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import UnroutableEvent
from streams.locate import EARTH_RADIUS_M, haversine_m, locate, nearest_grid
from streams.parse import PARSERS, parse_camera_alert
from streams.records import Event, Level, Location, Source
from streams.reference import City, Grid, grid_cell, load_city

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "contract" / "samples"
CITY = load_city(ROOT / "reference" / "demo_city")
MAX_M = 500.0
AT = datetime(2026, 11, 26, 10, 0, tzinfo=timezone(timedelta(hours=8)))

GRID_1 = "371502004001001"  # centroid 115.985, 36.456
GRID_2 = "371502004001002"  # centroid 115.9915, 36.456
CAMERA_3 = "37150200011320000003"  # on GRID_2, at 115.990665, 36.456558
FAR = (117.5, 35.0)  # well outside the demo city


def _event(source: Source = Source.POLICE, **fields: Any) -> Event:
    return Event(
        event_id=f"{source.value}:t",
        source=source,
        source_id="t",
        occurred_at=AT,
        reported_at=AT,
        **fields,
    )


def _unroutable(event: Event, city: City = CITY) -> UnroutableEvent:
    with pytest.raises(UnroutableEvent) as caught:
        locate(event, city, max_distance_m=MAX_M)
    return caught.value


# --- each way of placing an event ---------------------------------------------------------


def test_grid_code_wins_over_everything_else() -> None:
    event = _event(
        grid_code=GRID_1, device_id=CAMERA_3, lon=115.9915, lat=36.456, region_code="371503"
    )
    assert locate(event, CITY, max_distance_m=MAX_M) == Location(
        method="grid_code",
        region_code=GRID_1,
        level=Level.GRID,
        grid_code=GRID_1,
        lon=115.9915,
        lat=36.456,
    )


def test_grid_code_without_coordinates_takes_the_centroid() -> None:
    location = locate(_event(grid_code=GRID_2), CITY, max_distance_m=MAX_M)
    assert (location.method, location.lon, location.lat, location.distance_m) == (
        "grid_code",
        115.9915,
        36.456,
        None,
    )


def test_camera_registry() -> None:
    location = locate(_event(Source.CAMERA, device_id=CAMERA_3), CITY, max_distance_m=MAX_M)
    assert location == Location(
        method="camera_registry",
        region_code=GRID_2,
        level=Level.GRID,
        grid_code=GRID_2,
        lon=115.990665,
        lat=36.456558,
    )


def test_camera_registry_wins_over_coordinates() -> None:
    event = _event(Source.CAMERA, device_id=CAMERA_3, lon=115.985, lat=36.456)  # GRID_1's centroid
    location = locate(event, CITY, max_distance_m=MAX_M)
    assert (location.method, location.grid_code, location.lon) == (
        "camera_registry",
        GRID_2,
        115.985,
    )


def test_nearest_grid() -> None:
    location = locate(
        _event(lon=115.9852, lat=36.4561, region_code="371502"), CITY, max_distance_m=MAX_M
    )
    assert (location.method, location.grid_code, location.level) == (
        "nearest_grid",
        GRID_1,
        Level.GRID,
    )
    assert location.distance_m == pytest.approx(haversine_m(115.9852, 36.4561, 115.985, 36.456))
    assert 15 < location.distance_m < 30


def test_nearest_grid_respects_max_distance() -> None:
    point = {"lon": 115.985, "lat": 36.4605}  # ≈ 500 m north of GRID_1, ≈ 111 m south of grid 003
    near = locate(_event(**point), CITY, max_distance_m=200)
    assert near.grid_code == "371502004001003"
    with pytest.raises(UnroutableEvent) as caught:
        locate(_event(**point), CITY, max_distance_m=100)
    assert caught.value.code == "no_location"


def test_region_code_for_a_county() -> None:
    location = locate(_event(region_code="371503"), CITY, max_distance_m=MAX_M)
    assert location == Location(method="region_code", region_code="371503", level=Level.COUNTY)


@pytest.mark.parametrize(
    ("code", "level"),
    [("371502004", Level.TOWNSHIP), ("371502004003", Level.COMMUNITY), ("371500", Level.CITY)],
)
def test_region_code_at_its_level(code: str, level: Level) -> None:
    location = locate(_event(region_code=code), CITY, max_distance_m=MAX_M)
    assert (location.method, location.region_code, location.level, location.grid_code) == (
        "region_code",
        code,
        level,
        None,
    )


def test_region_code_when_coordinates_are_too_far() -> None:
    location = locate(
        _event(lon=FAR[0], lat=FAR[1], region_code="371502004"), CITY, max_distance_m=MAX_M
    )
    assert (location.method, location.region_code, location.lon) == (
        "region_code",
        "371502004",
        FAR[0],
    )


def test_unknown_grid_code_falls_back_to_coordinates() -> None:
    location = locate(
        _event(Source.GRID, grid_code="371502004001099", lon=115.9913, lat=36.4562),
        CITY,
        max_distance_m=MAX_M,
    )
    assert (location.method, location.grid_code) == ("nearest_grid", GRID_2)


def test_unknown_grid_code_falls_back_to_the_camera_registry() -> None:
    location = locate(
        _event(Source.CAMERA, grid_code="371502004001099", device_id=CAMERA_3),
        CITY,
        max_distance_m=MAX_M,
    )
    assert (location.method, location.grid_code) == ("camera_registry", GRID_2)


def test_unknown_grid_code_falls_back_to_the_region_code() -> None:
    location = locate(
        _event(grid_code="371502004001099", region_code="371502"), CITY, max_distance_m=MAX_M
    )
    assert (location.method, location.region_code, location.level) == (
        "region_code",
        "371502",
        Level.COUNTY,
    )


def test_unknown_device_with_coordinates_uses_them() -> None:
    event = _event(Source.CAMERA, device_id="37150200011320099999", lon=115.9913, lat=36.4562)
    assert locate(event, CITY, max_distance_m=MAX_M).method == "nearest_grid"


def test_zero_coordinates_count_as_none() -> None:
    assert (
        _unroutable(_event(Source.CAMERA, device_id="37150200011320099999", lon=0.0, lat=0.0)).code
        == "unknown_device"
    )


# --- giving up ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "field", "word"),
    [
        ({"grid_code": "371502004001099"}, "unknown_grid", "grid_code", "'371502004001099'"),
        (
            {"grid_code": "371502004001099", "lon": FAR[0], "lat": FAR[1]},
            "unknown_grid",
            "grid_code",
            "max 500 m",
        ),
        (
            {"grid_code": "371502004001099", "region_code": "371599"},
            "unknown_grid",
            "grid_code",
            "not a grid",
        ),
        ({"device_id": "37150200011320099999"}, "unknown_device", "device_id", "camera registry"),
        ({"region_code": "371599"}, "unknown_region", "region_code", "'371599'"),
        ({}, "no_location", "location", "no coordinates"),
        (
            {"lon": FAR[0], "lat": FAR[1]},
            "no_location",
            "location",
            "m from the nearest grid centroid",
        ),
        (
            {"device_id": "37150200011320099999", "lon": FAR[0], "lat": FAR[1]},
            "no_location",
            "location",
            "camera registry",
        ),
        ({"lon": 115.985}, "no_location", "location", "no coordinates"),
    ],
)
def test_unroutable(fields: dict[str, Any], code: str, field: str, word: str) -> None:
    source = Source.CAMERA if "device_id" in fields else Source.POLICE
    error = _unroutable(_event(source, **fields))
    assert (error.code, error.field) == (code, field)
    assert word in error.reason, error.reason


def test_unknown_grid_code_is_not_rescued_by_its_prefix() -> None:
    assert _unroutable(_event(Source.GRID, grid_code="371502004001999")).code == "unknown_grid"


def test_negative_max_distance_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        locate(_event(region_code="371502"), CITY, max_distance_m=-1)


# --- the contract's expected grids --------------------------------------------------------

EXPECTED = json.loads((SAMPLES / "expected.json").read_text("utf-8"))
STEMS = {Source.GRID: "grid-reports", Source.CAMERA: "camera-alerts", Source.POLICE: "police-110"}


def _sample_events() -> dict[str, Event]:
    events = {}
    for source, stem in STEMS.items():
        for line in (SAMPLES / f"{stem}.valid.jsonl").read_text("utf-8").splitlines():
            event = PARSERS[source](line.encode())
            events[event.source_id] = event
    xml = parse_camera_alert((SAMPLES / "camera-alert.gb28181.xml").read_bytes())
    events[xml.source_id] = xml
    return events


EVENTS = _sample_events()


@pytest.mark.parametrize(
    ("source_id", "grid"),
    [
        (sid, entry["grid"])
        for stem in EXPECTED.values()
        for sid, entry in stem.items()
        if "grid" in entry
    ],
)
def test_expected_grids(source_id: str, grid: str) -> None:
    assert locate(EVENTS[source_id], CITY, max_distance_m=MAX_M).grid_code == grid


@pytest.mark.parametrize(
    ("source_id", "method", "region_code", "level"),
    [
        (
            "CAM-37150200011320000003-20261126T101500-1",
            "camera_registry",
            "371502004001002",
            Level.GRID,
        ),
        ("37150200011320000001|2026-11-26T21:47:05|248761", "camera_registry", GRID_1, Level.GRID),
        ("110LD-371502-20261126-00342", "nearest_grid", GRID_1, Level.GRID),
        ("110LD-371502-20261126-00343", "nearest_grid", GRID_2, Level.GRID),
        ("110LD-371503-20261126-00051", "region_code", "371503", Level.COUNTY),
        ("GR-20261126-000101", "grid_code", "371503001002003", Level.GRID),
        ("GR-20261126-000104", "grid_code", "371503102203001", Level.GRID),
    ],
)
def test_expected_methods(source_id: str, method: str, region_code: str, level: Level) -> None:
    location = locate(EVENTS[source_id], CITY, max_distance_m=MAX_M)
    assert (location.method, location.region_code, location.level) == (method, region_code, level)


def test_every_sample_is_placed() -> None:
    for event in EVENTS.values():
        assert locate(event, CITY, max_distance_m=MAX_M).region_code in CITY.regions


# --- distances and the centroid index -----------------------------------------------------


def test_haversine_known_distances() -> None:
    assert haversine_m(116.0, 36.0, 116.0, 36.0) == 0
    assert haversine_m(116.0, 36.0, 116.0, 37.0) == pytest.approx(
        111_195, rel=1e-4
    )  # 1° of latitude
    assert haversine_m(0.0, 0.0, 180.0, 0.0) == pytest.approx(
        20_015_087, rel=1e-4
    )  # half the equator
    assert haversine_m(116.0, 36.0, 117.0, 36.0) == pytest.approx(
        haversine_m(117.0, 36.0, 116.0, 36.0)
    )


def _brute_force(
    city: City, lon: float, lat: float, max_distance_m: float
) -> tuple[str, float] | None:
    ranked = sorted((haversine_m(lon, lat, g.lon, g.lat), g.code) for g in city.grids.values())
    return (ranked[0][1], ranked[0][0]) if ranked and ranked[0][0] <= max_distance_m else None


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(min_value=115.6, max_value=116.5),
    lat=st.floats(min_value=36.3, max_value=37.0),
    radius=st.sampled_from([0.0, 10.0, 300.0, 500.0, 1_000.0, 2_500.0, 20_000.0, 1e7]),
)
def test_indexed_nearest_grid_equals_brute_force(lon: float, lat: float, radius: float) -> None:
    found = nearest_grid(CITY, lon, lat, max_distance_m=radius)
    expected = _brute_force(CITY, lon, lat, radius)
    assert (found[0].code, found[1]) == expected if found else expected is None


def _destination(lon: float, lat: float, bearing_deg: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` from (lon, lat) along ``bearing_deg``, on the same sphere."""
    delta, theta = metres / EARTH_RADIUS_M, math.radians(bearing_deg)
    phi1, lambda1 = math.radians(lat), math.radians(lon)
    phi2 = math.asin(
        math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    )
    lambda2 = lambda1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * math.sin(phi2),
    )
    return math.degrees(lambda2), math.degrees(phi2)


@settings(max_examples=300, deadline=None)
@given(
    grid=st.sampled_from(sorted(CITY.grids)),
    bearing=st.sampled_from([0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0])
    | st.floats(0, 360),
    radius=st.sampled_from([5.0, 50.0, 120.0, 280.0]),
    fraction=st.floats(min_value=0.95, max_value=0.9999),
)
def test_a_centroid_just_inside_the_radius_is_found(
    grid: str, bearing: float, radius: float, fraction: float
) -> None:
    """Points at the edge of the search circle, where a too-small cell window would miss."""
    lon, lat = _destination(CITY.grids[grid].lon, CITY.grids[grid].lat, bearing, radius * fraction)
    found = nearest_grid(CITY, lon, lat, max_distance_m=radius)
    assert found is not None and found[0].code == grid


def _city_with(grid: Grid) -> City:
    """``grid`` plus 400 far-away grids in distinct cells, so that look-ups use the cell index."""
    fillers = [
        Grid(
            code=f"filler{i:03d}",
            name="",
            community="",
            lon=-60 + (i % 20) * 0.05,
            lat=-40 + (i // 20) * 0.05,
        )
        for i in range(400)
    ]
    cells: dict[tuple[int, int], list[Grid]] = {}
    for each in [grid, *fillers]:
        cells.setdefault(grid_cell(each.lon, each.lat), []).append(each)
    return City(
        regions={},
        grids={g.code: g for g in [grid, *fillers]},
        cameras={},
        departments={},
        grid_cells={cell: tuple(members) for cell, members in cells.items()},
    )


@settings(max_examples=500, deadline=None)
@given(
    cell=st.tuples(st.integers(7_300, 13_500), st.integers(1_800, 5_300)),  # China, in 0.01° cells
    offset=st.tuples(
        st.sampled_from([1e-9, 0.005, 0.01 - 1e-9]), st.sampled_from([1e-9, 0.005, 0.01 - 1e-9])
    ),
    bearing=st.floats(0, 360),
    radius=st.sampled_from([10.0, 300.0, 1_000.0, 5_000.0]),
    fraction=st.floats(min_value=0.9, max_value=0.9999),
)
def test_cell_index_never_misses_a_centroid_inside_the_radius(
    cell: tuple[int, int],
    offset: tuple[float, float],
    bearing: float,
    radius: float,
    fraction: float,
) -> None:
    grid = Grid(
        code="g",
        name="",
        community="",
        lon=cell[0] / 100 + offset[0],
        lat=cell[1] / 100 + offset[1],
    )
    lon, lat = _destination(grid.lon, grid.lat, bearing, radius * fraction)
    found = nearest_grid(_city_with(grid), lon, lat, max_distance_m=radius)
    assert found is not None and found[0] is grid


@settings(max_examples=200, deadline=None)
@given(
    grid=st.sampled_from(sorted(CITY.grids)),
    bearing=st.floats(min_value=0, max_value=359),
    metres=st.floats(min_value=0, max_value=280),
)
def test_a_point_near_a_centroid_finds_that_grid(grid: str, bearing: float, metres: float) -> None:
    centre = CITY.grids[grid]
    lat = centre.lat + metres * math.cos(math.radians(bearing)) / 111_195
    lon = centre.lon + metres * math.sin(math.radians(bearing)) / (
        111_195 * math.cos(math.radians(centre.lat))
    )
    found = nearest_grid(CITY, lon, lat, max_distance_m=300)
    assert found is not None and found[0].code == grid  # demo centroids are ≥ 577 m apart
