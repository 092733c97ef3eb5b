"""Loading a city's reference data, and every inconsistency it refuses with file and line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from streams.errors import RulesError
from streams.records import Level
from streams.reference import City, Grid, grid_cell, load_city

ROOT = Path(__file__).resolve().parents[2]
DEMO_CITY = ROOT / "reference" / "demo_city"
CONTRACT_CITY = Path(__file__).resolve().parent.parent / "data" / "contract" / "reference"

# a tiny valid city; each test breaks one thing in it
REGIONS = """code,level,name,parent
371500,city,聊城市,
371502,county,东昌府区,371500
371502004,township,新区街道,371502
371502004001,community,化机小区社区,371502004
371502004001001,grid,第1网格,371502004001
"""
GRIDS = """code,name,community,lon,lat
371502004001001,第1网格,371502004001,115.985,36.456
371502004001002,第2网格,371502004001,115.9915,36.456
"""
CAMERAS = """device_id,grid_code,name,lon,lat
37150200011320000001,371502004001001,治安点位1,115.984899,36.454127
37150200081320000002,371502004001002,城管点位2,,
"""
DEPARTMENTS = """code,name_zh,name_en
chengguan,城管/综合执法,urban management
gongyong,公用事业,"utilities (water, gas, power, heat)"
"""


def _city_dir(tmp_path: Path, **files: str) -> Path:
    contents = {"regions": REGIONS, "grids": GRIDS, "cameras": CAMERAS, "departments": DEPARTMENTS}
    contents.update(files)
    for name, text in contents.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    return tmp_path


def _refused(directory: Path) -> RulesError:
    with pytest.raises(RulesError) as caught:
        load_city(directory)
    return caught.value


# --- loading ------------------------------------------------------------------------------


def test_demo_city_loads_with_indexes() -> None:
    city = load_city(DEMO_CITY)
    assert (len(city.regions), len(city.grids), len(city.cameras), len(city.departments)) == (
        148,
        108,
        216,
        22,
    )
    assert city.regions["371500"].level is Level.CITY and city.regions["371500"].parent is None
    assert city.regions["371503"].level is Level.COUNTY
    assert city.regions["371502004"].name == "新区街道"
    assert city.regions["371502004001001"].parent == "371502004001"
    grid = city.grids["371502004001002"]
    assert (grid.community, grid.lon, grid.lat) == ("371502004001", 115.9915, 36.456)
    camera = city.cameras["37150200011320000003"]
    assert (camera.grid_code, camera.lon, camera.lat) == ("371502004001002", 115.990665, 36.456558)
    assert city.departments["gongyong"].name_en == "utilities (water, gas, power, heat)"
    assert set(city.departments) >= {"zhongzhi", "township", "sifa", "xiaofang"}


def test_demo_city_matches_the_contract_reference() -> None:
    assert load_city(DEMO_CITY) == load_city(CONTRACT_CITY)


def test_every_grid_is_in_its_index_cell() -> None:
    city = load_city(DEMO_CITY)
    indexed = [
        grid
        for cell, grids in city.grid_cells.items()
        for grid in grids
        if grid_cell(grid.lon, grid.lat) == cell
    ]
    assert sorted(g.code for g in indexed) == sorted(city.grids)


def test_city_is_immutable() -> None:
    city = load_city(DEMO_CITY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        city.grids = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        city.grids["371502004009009"] = Grid(code="x", name="x", community="x", lon=0, lat=0)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        city.grids["371502004001001"].lon = 0  # type: ignore[misc]


def test_tiny_city_loads(tmp_path: Path) -> None:
    city = load_city(_city_dir(tmp_path))
    assert isinstance(city, City)
    assert city.cameras["37150200081320000002"].lon is None
    assert city.regions["371502004001"].level is Level.COMMUNITY


def test_bom_blank_lines_extra_columns_and_spaces_are_tolerated(tmp_path: Path) -> None:
    grids = (
        "\ufeffcode, name ,community,lon,lat,area_km2\n\n"
        "371502004001001, 第1网格 ,371502004001,115.985,36.456,0.4\n"
        "371502004001002,第2网格,371502004001,115.9915,36.456,\n\n"
    )
    city = load_city(_city_dir(tmp_path, grids=grids))
    assert city.grids["371502004001001"].name == "第1网格"


# --- refusals -----------------------------------------------------------------------------


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


CASES = {
    "duplicate region": (
        {"regions": REGIONS + "371502,county,东昌府区,371500\n"},
        "duplicate",
        "regions.csv, line 7",
        "first on line 3",
    ),
    "region parent missing": (
        {"regions": _replace(REGIONS, "371502004,township,新区街道,371502\n", "")},
        "unknown_parent",
        "regions.csv, line 4",
        "'371502004'",
    ),
    "region parent disagrees with code": (
        {"regions": REGIONS + "371503,county,茌平区,371502\n"},
        "parent_mismatch",
        "regions.csv, line 7",
        "'371500'",
    ),
    "city with a parent": (
        {"regions": _replace(REGIONS, "371500,city,聊城市,", "371500,city,聊城市,370000")},
        "parent_mismatch",
        "regions.csv, line 2",
        "a city",
    ),
    "region level disagrees with code": (
        {"regions": _replace(REGIONS, "371502004,township", "371502004,community")},
        "level_mismatch",
        "regions.csv, line 4",
        "township",
    ),
    "unknown level name": (
        {"regions": _replace(REGIONS, "371502,county", "371502,district")},
        "bad_value",
        "regions.csv, line 3",
        "'district'",
    ),
    "malformed region code": (
        {"regions": REGIONS + "3715021,township,x,371502\n"},
        "bad_value",
        "regions.csv, line 7",
        "'3715021'",
    ),
    "empty region name": (
        {"regions": _replace(REGIONS, "东昌府区", "")},
        "bad_value",
        "regions.csv, line 3",
        "name",
    ),
    "grid community missing from regions": (
        {"grids": GRIDS + "371502004002001,北关1,371502004002,115.998,36.467\n"},
        "unknown_community",
        "grids.csv, line 4",
        "'371502004002'",
    ),
    "grid community is not a community": (
        {"grids": GRIDS + "371502004001003,第3网格,371502004001001,115.985,36.4615\n"},
        "bad_value",
        "grids.csv, line 4",
        "12-digit",
    ),
    "grid outside its community": (
        {
            "regions": REGIONS + "371502004002,community,北关社区,371502004\n",
            "grids": GRIDS + "371502004001003,第3网格,371502004002,115.985,36.4615\n",
        },
        "grid_outside_community",
        "grids.csv, line 4",
        "'371502004002'",
    ),
    "duplicate grid": (
        {"grids": GRIDS + "371502004001001,again,371502004001,115.985,36.456\n"},
        "duplicate",
        "grids.csv, line 4",
        "first on line 2",
    ),
    "grid code of 14 digits": (
        {"grids": GRIDS + "37150200400100,x,371502004001,115.985,36.456\n"},
        "bad_value",
        "grids.csv, line 4",
        "15 digits",
    ),
    "grid lon not a number": (
        {"grids": _replace(GRIDS, "115.9915", "115,9915")},
        "bad_row",
        "grids.csv, line 3",
        "6 fields",
    ),
    "grid lat malformed": (
        {"grids": _replace(GRIDS, "115.9915,36.456", "115.9915,36.4.56")},
        "bad_value",
        "grids.csv, line 3",
        "'36.4.56'",
    ),
    "grid lat out of range": (
        {"grids": _replace(GRIDS, "115.9915,36.456", "115.9915,96.456")},
        "bad_value",
        "grids.csv, line 3",
        "[-90, 90]",
    ),
    "grid lon nan": (
        {"grids": _replace(GRIDS, "115.9915,36.456", "nan,36.456")},
        "bad_value",
        "grids.csv, line 3",
        "'nan'",
    ),
    "grid centroid missing": (
        {"grids": _replace(GRIDS, "115.9915,36.456", ",")},
        "bad_value",
        "grids.csv, line 3",
        "lon",
    ),
    "camera on an unknown grid": (
        {"cameras": CAMERAS + "37150200011320000003,371502004001009,x,115.99,36.45\n"},
        "unknown_grid",
        "cameras.csv, line 4",
        "'371502004001009'",
    ),
    "camera device id malformed": (
        {"cameras": CAMERAS + "3715020001132000000X,371502004001001,x,115.99,36.45\n"},
        "bad_value",
        "cameras.csv, line 4",
        "20-digit",
    ),
    "duplicate camera": (
        {"cameras": CAMERAS + "37150200011320000001,371502004001002,x,115.99,36.45\n"},
        "duplicate",
        "cameras.csv, line 4",
        "first on line 2",
    ),
    "camera with only a longitude": (
        {"cameras": _replace(CAMERAS, "城管点位2,,", "城管点位2,115.99,")},
        "bad_value",
        "cameras.csv, line 3",
        "lat",
    ),
    "duplicate department": (
        {"departments": DEPARTMENTS + "chengguan,城管,urban management\n"},
        "duplicate",
        "departments.csv, line 4",
        "'chengguan'",
    ),
    "department code not pinyin": (
        {"departments": DEPARTMENTS + "城管,城管,x\n"},
        "bad_value",
        "departments.csv, line 4",
        "pinyin",
    ),
    "missing column": (
        {"grids": _replace(GRIDS, "code,name,community,lon,lat", "code,name,community,lon")},
        "missing_column",
        "grids.csv, line 1",
        "lat",
    ),
    "empty file": (
        {"departments": ""},
        "missing_column",
        "departments.csv, line 1",
        "code",
    ),
    "row with too many fields": (
        {"departments": DEPARTMENTS + "x,y,z,w\n"},
        "bad_row",
        "departments.csv, line 4",
        "4 fields",
    ),
    "line number after a quoted multi-line field": (
        {"departments": DEPARTMENTS + 'sifa,司法所,"justice\noffice"\nsifa,again,x\n'},
        "duplicate",
        "departments.csv, line 6",
        "first on line 4",
    ),
}


@pytest.mark.parametrize(("files", "code", "where", "word"), CASES.values(), ids=list(CASES))
def test_inconsistencies_are_refused_with_file_and_line(
    tmp_path: Path, files: dict[str, str], code: str, where: str, word: str
) -> None:
    error = _refused(_city_dir(tmp_path, **files))
    assert error.code == code, error.reason
    assert error.reason.startswith(where + ": "), error.reason
    assert word in error.reason, error.reason


def test_missing_file(tmp_path: Path) -> None:
    directory = _city_dir(tmp_path)
    (directory / "cameras.csv").unlink()
    error = _refused(directory)
    assert (error.code, error.field) == ("missing_file", "cameras.csv")
    assert "cameras.csv" in error.reason


def test_file_not_utf8(tmp_path: Path) -> None:
    directory = _city_dir(tmp_path)
    (directory / "regions.csv").write_bytes(REGIONS.encode("gbk"))
    error = _refused(directory)
    assert error.code == "bad_encoding" and error.reason.startswith("regions.csv")


def test_error_names_the_column(tmp_path: Path) -> None:
    error = _refused(_city_dir(tmp_path, grids=_replace(GRIDS, "115.9915,36.456", "115.9915,x")))
    assert error.field == "lat"
