"""Routing: the docs/domain.md §3 table, conditional and 属地 supports, police-only codes,
self-resolved reports, fallback, entry levels; the routing/triage rule loader."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.classify import classify
from streams.errors import RulesError
from streams.records import Level, Location, Routing, Source
from streams.route import entry_level, route
from streams.triage_rules import DOMAIN_DEPARTMENTS, load_triage_rules
from tests.builders import cls, ev, rules_with

RULES_DIR = Path(__file__).parents[2] / "rules"
RULES = load_triage_rules(RULES_DIR)

GRID = Location(
    method="grid_code",
    region_code="371502004001002",
    level=Level.GRID,
    grid_code="371502004001002",
    lon=115.9915,
    lat=36.456,
)
COUNTY = Location(method="region_code", region_code="371503", level=Level.COUNTY)
TOWNSHIP_ONLY = Location(method="region_code", region_code="371502004", level=Level.TOWNSHIP)




TABLE = [
    # category, lead, supports (exact, in order)
    ("01.01", "sifa", ("township",)),
    ("01.02", "sifa", ("township",)),
    ("01.04", "zhujian", ("sifa", "township")),
    ("01.05", "renshe", ("zhujian", "sifa")),
    ("01.06", "zrzy", ("zhujian", "township", "xinfang")),
    ("01.09", "weijian", ("sifa", "gongan")),
    ("01.11", "township", ("sifa",)),
    ("01.13", "zhongzhi", ("xinfang", "sifa")),
    ("01.14", "tyjr", ("xinfang", "sifa")),
    ("01.15", "minzong", ("xinfang", "sifa")),
    ("01.16", "jiaoyu", ("xinfang", "sifa")),
    ("01.99", "zhongzhi", ("xinfang", "sifa")),
    ("02.02", "xinfang", ("township",)),
    ("03.01", "gongan", ("township", "sifa")),
    ("03.05", "gongan", ("xinfang", "township", "zhongzhi")),
    ("03.06", "gongan", ("township",)),
    ("04.01", "weijian", ("gongan", "minzheng", "township")),
    ("04.04", "tuanwei", ("jiaoyu", "gongan", "minzheng")),
    ("05.01", "chengguan", ("township",)),
    ("05.03", "chengguan", ("township",)),
    ("05.05", "chengguan", ("township", "jiaotong")),
    ("05.07", "chengguan", ("township", "zhujian")),
    ("05.09", "chengguan", ("township", "sthj")),
    ("06.01", "gongyong", ("chengguan",)),
    ("06.02", "gongyong", ("chengguan", "yingji", "gongan")),
    ("07.01", "xiaofang", ("yingji", "gongan", "weijian")),
    ("07.04", "yingji", ("zrzy", "shuiwu")),
    ("07.06", "zhujian", ("yingji", "township")),
    ("08.01", "sthj", ("chengguan",)),
    ("09.02", "zrzy", ("township", "chengguan")),
    ("10.01", "minzheng", ("township",)),
    ("10.05", "scjg", ()),
    ("11.00", "zhongzhi", ()),
]


@pytest.mark.parametrize(("category", "lead", "supports"), TABLE)
def test_routing_table(category: str, lead: str, supports: tuple[str, ...]) -> None:
    routing = route(cls(category), ev(text="x"), GRID, RULES)
    assert (routing.lead, routing.supports, routing.dispatch) == (lead, supports, True)


@pytest.mark.parametrize(
    ("category", "text", "flags", "added"),
    [
        ("01.02", "两家打架了", (), "gongan"),
        ("01.01", "丈夫家暴", (), "gongan"),
        ("01.02", "邻居争吵", ("涉暴",), "gongan"),
        ("02.01", "准备去上访，已经聚集", (), "gongan"),
        ("01.07", "灌溉用水的水权纠纷", (), "shuiwu"),
        ("08.01", "广场舞音响太吵", (), "gongan"),
    ],
)
def test_conditional_supports(category: str, text: str, flags: tuple[str, ...], added: str) -> None:
    quiet = route(cls(category), ev(text="一般情况"), GRID, RULES)
    loud = route(cls(category), ev(text=text, risk_flags=flags), GRID, RULES)
    assert added not in quiet.supports and added in loud.supports
    assert loud.lead == quiet.lead


def test_five_or_more_persons_involve_the_township() -> None:
    routing = route(cls("01.05"), ev(persons=6, text="讨薪"), GRID, RULES)
    assert "township" in routing.supports and routing.entry_level is Level.TOWNSHIP


def test_township_support_dropped_and_township_lead_falls_back_without_a_township() -> None:
    assert "township" not in route(cls("05.03"), ev(Source.POLICE), COUNTY, RULES).supports
    routing = route(cls("01.11"), ev(Source.POLICE), COUNTY, RULES)
    assert routing.lead == "zhongzhi" and routing.rule.endswith("fallback:no_township")
    assert route(cls("01.11"), ev(Source.POLICE), TOWNSHIP_ONLY, RULES).lead == "township"


def test_unknown_category_row_goes_to_zhongzhi() -> None:
    partial = msgspec.structs.replace(
        RULES, routes={k: v for k, v in RULES.routes.items() if k != "05.03"}
    )
    routing = route(cls("05.03"), ev(text="x"), GRID, partial)
    assert (routing.lead, routing.rule, routing.dispatch) == ("zhongzhi", "fallback", True)


def test_self_resolved_grid_report_is_closed_at_grid() -> None:  # sample 105
    event = ev(
        self_resolved=True, persons=2, text="经网格员调解双方达成一致", source_labels=("婚姻家庭",)
    )
    routing = route(classify(event, RULES), event, GRID, RULES)
    assert routing.dispatch is False and routing.disposition == "closed_at_grid"
    assert routing.entry_level is Level.GRID and routing.supports == ()


def test_police_only_codes_are_recorded_not_dispatched() -> None:
    event = ev(Source.POLICE, source_code="120300", text="电动车被盗")
    routing = route(classify(event, RULES), event, GRID, RULES)
    assert (routing.dispatch, routing.disposition) == (False, "police_only")
    assert routing.rule == "police_only:bjlx:1xxxxx"
    traffic = ev(Source.POLICE, source_code="300100", text="追尾")
    assert route(classify(traffic, RULES), traffic, GRID, RULES).dispatch is False


def test_domestic_violence_call_gets_a_follow_up_case_for_sifa() -> None:
    event = ev(Source.POLICE, source_code="200600", text="丈夫家暴，民警已到场")
    routing = route(classify(event, RULES), event, GRID, RULES)
    assert (routing.lead, routing.dispatch, routing.disposition) == ("sifa", True, "follow_up")
    assert routing.rule == "follow_up:bjlx:200600"


def test_referred_dispute_code_is_dispatched() -> None:
    event = ev(Source.POLICE, source_code="200200", text="邻里纠纷，楼上漏水")
    routing = route(classify(event, RULES), event, GRID, RULES)
    assert (routing.lead, routing.dispatch) == ("sifa", True)


@pytest.mark.parametrize(
    ("source", "location", "fields", "category", "level"),
    [
        (Source.GRID, GRID, {}, "01.02", Level.GRID),
        (Source.CAMERA, GRID, {}, "05.01", Level.COMMUNITY),
        (Source.POLICE, GRID, {}, "05.09", Level.TOWNSHIP),
        (Source.POLICE, COUNTY, {}, "06.01", Level.COUNTY),  # only a 6-digit code
        (Source.GRID, GRID, {"text": "有人持刀"}, "01.02", Level.COMMUNITY),  # weapons: one up
        (Source.GRID, GRID, {}, "04.01", Level.COMMUNITY),  # severe mental illness: one up
        (Source.POLICE, GRID, {"text": "精神病人肇事肇祸"}, "04.01", Level.COUNTY),
        (Source.GRID, GRID, {"persons": 12}, "01.05", Level.TOWNSHIP),  # 5+: township
        (Source.CAMERA, GRID, {"text": "约40人聚集"}, "03.05", Level.TOWNSHIP),
        (Source.POLICE, COUNTY, {"text": "持刀"}, "03.07", Level.CITY),
    ],
)
def test_entry_level(
    source: Source, location: Location, fields: dict[str, object], category: str, level: Level
) -> None:
    assert entry_level(ev(source, **fields), location, cls(category), RULES) is level
    if category != "03.07":
        assert route(cls(category), ev(source, **fields), location, RULES).entry_level is level


LOCATIONS = st.sampled_from([GRID, COUNTY, TOWNSHIP_ONLY])


@settings(max_examples=400, deadline=None)
@given(
    category=st.sampled_from(sorted(RULES.categories)),
    source=st.sampled_from(list(Source)),
    location=LOCATIONS,
    text=st.text(alphabet="打架聚集横幅持刀精神病水权广场舞人十三约40的", max_size=20),
    persons=st.one_of(st.none(), st.integers(0, 100)),
    self_resolved=st.booleans(),
    code=st.one_of(st.none(), st.sampled_from(["120300", "200600", "200200", "600600", "999999"])),
)
def test_every_dispatched_routing_has_exactly_one_known_lead(
    category: str,
    source: Source,
    location: Location,
    text: str,
    persons: int | None,
    self_resolved: bool,
    code: str | None,
) -> None:
    event = ev(source, text=text, persons=persons, self_resolved=self_resolved, source_code=code)
    routing = route(cls(category), event, location, RULES)
    assert isinstance(routing, Routing)
    assert routing.lead in DOMAIN_DEPARTMENTS and isinstance(routing.lead, str)
    if routing.dispatch:
        assert routing.lead not in routing.supports
        assert len(set(routing.supports)) == len(routing.supports)
        assert set(routing.supports) <= DOMAIN_DEPARTMENTS
        if location.level < Level.TOWNSHIP:
            assert "township" not in routing.supports and routing.lead != "township"
    assert Level.CITY <= routing.entry_level <= Level.GRID
    assert routing.entry_level <= location.level  # never below what the location knows


# --------------------------------------------------------------------------- loader


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        (
            "routing.toml",
            'categories = ["01.04"]',
            'categories = ["01.44"]',
            "unknown category '01.44'",
        ),
        ("routing.toml", 'lead = "renshe"', 'lead = "renshi"', "unknown department 'renshi'"),
        (
            "routing.toml",
            'supports = ["zhujian", "sifa"]',
            'supports = ["zhujian", "sifaa"]',
            "route #3 (01.05).supports",
        ),
        (
            "routing.toml",
            'categories = ["01.08"]',
            'categories = ["01.08", "01.02"]',
            "01.02 already routed",
        ),
        (
            "routing.toml",
            'lead = "sthj"\nsupports = ["sifa"]',
            'lead = "sthj"\nsupports = ["sthj"]',
            "must not repeat a department or name the lead",
        ),
        ("routing.toml", "when = { violence = [", "when = { violent = [", "unknown signal"),
        ("routing.toml", 'camera = "community"', 'camera = "neighbourhood"', "entry.camera"),
        (
            "triage.toml",
            '"07.01" = "P1"   # fire',
            '"07.01" = "P0"   # fire',
            "priority.category.07.01",
        ),
        ("triage.toml", "at_least = 5", "at_least = 30", "priority.persons"),
        ("triage.toml", "P3 = 86400", "P3 = -1", "correlation.window_seconds.P3"),
        (
            "triage.toml",
            "confidence_threshold = 0.6",
            "confidence_threshold = 0.1",
            "verification.fallback_confidence",
        ),
        ("triage.toml", '["07.01", "05.09"]', '["07.01", "05.99"]', "correlation.compatible[3]"),
        (
            "triage.toml",
            'level_up_signals = ["weapons"',
            'level_up_signals = ["weapon"',
            "escalation.level_up_signals",
        ),
        (
            "codes.toml",
            "police_only = true, follow_up = true }",
            "follow_up = true }",
            "police.bjlx.200600: follow_up needs police_only",
        ),
    ],
)
def test_loader_names_file_and_entry(
    tmp_path: Path, name: str, old: str, new: str, expected: str
) -> None:
    with pytest.raises(RulesError) as err:
        load_triage_rules(rules_with(tmp_path, name, old, new))
    assert name in str(err.value) and expected in str(err.value)


def test_loader_checks_departments_against_the_given_list() -> None:
    with pytest.raises(RulesError, match="unknown department 'tyjr'"):
        load_triage_rules(RULES_DIR, departments=DOMAIN_DEPARTMENTS - {"tyjr"})
