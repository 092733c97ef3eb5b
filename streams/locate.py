"""Place an event in the city's jurisdictions (定位): which grid, or which region.

``locate(event, city, max_distance_m=…)`` tries, in order:

1. ``grid_code`` — the grid the message names, if the city has it;
2. ``camera_registry`` — the grid of the reporting camera (雪亮 registry, device → grid);
3. ``nearest_grid`` — the grid whose centroid is nearest to the message's
   coordinates, if within ``max_distance_m`` (great-circle distance);
4. ``region_code`` — the region the 110 ``xzqhbh`` names, if the city has it:
   the case then enters at that county, township or community.

A grid code the city does not know (a new grid, or a typo) is not trusted, but
not fatal either: the other ways are tried, and only when none places the event
is it ``UnroutableEvent(code="unknown_grid")``. Other failures:
``unknown_device`` (a camera alert whose device is not registered and which
carries neither a grid code nor coordinates), ``unknown_region`` (an ``xzqhbh``
the city does not know and nothing else places the event), ``no_location``
(nothing to go on, or coordinates farther than ``max_distance_m`` from every grid).

Coordinates ``(0, 0)`` — what devices without a position fix send — count as none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import chain

from streams.errors import UnroutableEvent
from streams.records import Event, Level, Location
from streams.reference import GRID_CELL_DEG, City, Grid

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), for great-circle distances."""

Point = tuple[float, float]  # (lon, lat) in degrees


def locate(event: Event, city: City, *, max_distance_m: float) -> Location:
    """Where ``event`` is and how we know; raises ``UnroutableEvent`` when nothing places it.

    ``Location.lon``/``lat`` is the best point known: the event's own
    coordinates, else the camera's, else the grid's centroid.
    """
    if not max_distance_m >= 0:
        raise ValueError(f"max_distance_m must be >= 0, got {max_distance_m!r}")
    point = _point(event.lon, event.lat)
    grid = city.grids.get(event.grid_code) if event.grid_code else None
    if grid is not None:
        return _at_grid("grid_code", grid, point)
    camera = city.cameras.get(event.device_id) if event.device_id else None
    if camera is not None:
        return _at_grid(
            "camera_registry", city.grids[camera.grid_code], point or _point(camera.lon, camera.lat)
        )
    if point is not None:
        nearest = nearest_grid(city, *point, max_distance_m=max_distance_m)
        if nearest is not None:
            found, distance = nearest
            return _at_grid("nearest_grid", found, point, distance)
    region = city.regions.get(event.region_code) if event.region_code else None
    if region is not None:
        lon, lat = point or (None, None)
        return Location(
            method="region_code", region_code=region.code, level=region.level, lon=lon, lat=lat
        )
    raise _unplaced(event, city, point, max_distance_m)


def nearest_grid(
    city: City, lon: float, lat: float, *, max_distance_m: float
) -> tuple[Grid, float] | None:
    """The grid whose centroid is nearest to (lon, lat) and its distance in metres, if any
    lies within ``max_distance_m``; ties go to the smaller grid code."""
    best: tuple[float, str, Grid] | None = None
    for grid in _candidates(city, lon, lat, max_distance_m):
        distance = haversine_m(lon, lat, grid.lon, grid.lat)
        if distance <= max_distance_m and (best is None or (distance, grid.code) < best[:2]):
            best = (distance, grid.code, grid)
    return (best[2], best[0]) if best is not None else None


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _candidates(city: City, lon: float, lat: float, radius_m: float) -> Iterable[Grid]:
    """Grids in the index cells a circle of ``radius_m`` around the point can touch
    (with a 1 % margin); every grid when that is simpler. Longitudes are not wrapped
    at ±180°, which no Chinese city straddles."""
    delta = radius_m / EARTH_RADIUS_M  # angular radius, radians
    spread = math.sin(delta) / abs(math.cos(math.radians(lat))) if delta < math.pi / 2 else 1.0
    if spread >= 1.0:  # the circle reaches a pole: every longitude
        return city.grids.values()
    dlat = math.degrees(delta) * 1.01
    dlon = math.degrees(math.asin(spread)) * 1.01
    rows = range(
        math.floor((lat - dlat) / GRID_CELL_DEG), math.floor((lat + dlat) / GRID_CELL_DEG) + 1
    )
    cols = range(
        math.floor((lon - dlon) / GRID_CELL_DEG), math.floor((lon + dlon) / GRID_CELL_DEG) + 1
    )
    if len(rows) * len(cols) > len(city.grid_cells):
        return city.grids.values()
    cells = city.grid_cells
    return chain.from_iterable(cells.get((row, col), ()) for row in rows for col in cols)


def _point(lon: float | None, lat: float | None) -> Point | None:
    if lon is None or lat is None or (lon == 0 and lat == 0):
        return None
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    return lon, lat


def _at_grid(
    method: str, grid: Grid, point: Point | None, distance_m: float | None = None
) -> Location:
    lon, lat = point or (grid.lon, grid.lat)
    return Location(
        method=method,
        region_code=grid.code,
        level=Level.GRID,
        grid_code=grid.code,
        lon=lon,
        lat=lat,
        distance_m=distance_m,
    )


def _unplaced(
    event: Event, city: City, point: Point | None, max_distance_m: float
) -> UnroutableEvent:
    """The most specific reason nothing placed the event."""
    if point is None:
        coordinates = "no coordinates"
    else:
        far = nearest_grid(city, *point, max_distance_m=math.inf)
        away = (
            f"{far[1]:.0f} m from the nearest grid centroid" if far else "with no grids to compare"
        )
        coordinates = f"coordinates ({point[0]}, {point[1]}) {away} (max {max_distance_m:g} m)"
    if event.grid_code:
        return UnroutableEvent(
            f"grid_code {event.grid_code!r} is not a grid of this city, and nothing else places "
            f"the event ({coordinates})",
            code="unknown_grid",
            field="grid_code",
        )
    if event.region_code:
        return UnroutableEvent(
            f"xzqhbh {event.region_code!r} is not a region of this city, and nothing else places "
            f"the event ({coordinates})",
            code="unknown_region",
            field="region_code",
        )
    if event.device_id and point is None:
        return UnroutableEvent(
            f"device_id {event.device_id!r} is not in the camera registry, and the alert has "
            "no grid_code or coordinates",
            code="unknown_device",
            field="device_id",
        )
    camera = (
        f"device_id {event.device_id!r} is not in the camera registry, " if event.device_id else ""
    )
    return UnroutableEvent(
        f"{camera}no grid code, registered camera or region code places the event, "
        f"and it has {coordinates}",
        code="no_location",
        field="location",
    )
