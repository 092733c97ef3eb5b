"""Triage end to end on the contract samples (expected.json), built by hand as
the parser and locator would produce them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from streams.correlate import TownshipState, state_key
from streams.records import Event, Level, Location, Priority, Source
from streams.triage import TriageDecision, triage
from streams.triage_rules import load_triage_rules

ROOT = Path(__file__).parents[2]
RULES = load_triage_rules(ROOT / "rules")
EXPECTED = json.loads((ROOT / "tests/data/contract/samples/expected.json").read_text("utf-8"))
CST = timezone(timedelta(hours=8))


def at(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def grid_at(
    code: str, lon: float | None = None, lat: float | None = None, method: str = "grid_code"
) -> Location:
    return Location(
        method=method, region_code=code, level=Level.GRID, grid_code=code, lon=lon, lat=lat
    )


def grid_report(rid: str, when: str, grid: str, description: str, **fields: Any) -> Event:
    return Event(
        event_id=f"grid:{rid}",
        source=Source.GRID,
        source_id=rid,
        occurred_at=at(when),
        reported_at=at(when),
        text=description,
        grid_code=grid,
        **fields,
    )


def camera(aid: str, when: str, device: str, description: str, **fields: Any) -> Event:
    return Event(
        event_id=f"camera:{aid}",
        source=Source.CAMERA,
        source_id=aid,
        occurred_at=at(when),
        reported_at=at(when),
        text=description,
        device_id=device,
        **fields,
    )


def call(rid: str, bjsj: str, referred: str, bjnr: str, **fields: Any) -> Event:
    return Event(
        event_id=f"police:{rid}",
        source=Source.POLICE,
        source_id=rid,
        occurred_at=at(bjsj),
        reported_at=at(referred),
        text=bjnr,
        **fields,
    )


# Every valid sample, as streams.parse + streams.locate turn it into (Event, Location).
SAMPLES: dict[str, tuple[Event, Location]] = {
    "GR-20261126-000101": (
        grid_report(
            "GR-20261126-000101",
            "2026-11-26T09:41:22+08:00",
            "371503001002003",
            "702室卫生间漏水至602室，双方多次争吵，602住户称将报警。",
            title="楼上漏水引发邻里纠纷",
            reporter="WGY-0371",
            source_labels=("矛盾劝解", "邻里纠纷"),
            persons=2,
            risk_flags=("可能激化",),
            lon=116.2685,
            lat=36.5915,
            address="北关社区7号楼2单元",
        ),
        grid_at("371503001002003", 116.2685, 36.5915),
    ),
    "GR-20261126-000102": (
        grid_report(
            "GR-20261126-000102",
            "2026-11-26T10:02:00+08:00",
            "371502004001002",
            "化机小区3号楼前垃圾桶满溢，垃圾散落路面，无人清运。",
            reporter="WGY-0112",
            lon=115.9915,
            lat=36.456,
        ),
        grid_at("371502004001002", 115.9915, 36.456),
    ),
    "GR-20261126-000103": (
        grid_report(
            "GR-20261126-000103",
            "2026-11-26T10:15:00+08:00",
            "371581001003004",
            "红旗社区临街商铺后厨冒出浓烟，疑似起火，已有居民拨打119。",
            reporter="WGY-0988",
            source_labels=("突发事件报告",),
            severity_hint="P1",
        ),
        grid_at("371581001003004"),
    ),
    "GR-20261126-000104": (
        grid_report(
            "GR-20261126-000104",
            "2026-11-26T10:30:00+08:00",
            "371503102203001",
            "某建筑工地三十余名农民工聚集在项目部门口讨要拖欠工资，情绪激动。",
            reporter="WGY-1203",
            source_labels=("矛盾劝解", "劳资纠纷"),
            persons=35,
            risk_flags=("涉稳",),
        ),
        grid_at("371503102203001"),
    ),
    "GR-20261126-000105": (
        grid_report(
            "GR-20261126-000105",
            "2026-11-26T11:00:00+08:00",
            "371502004001001",
            "张大爷与儿子因赡养问题争吵，经网格员调解双方达成一致。",
            reporter="WGY-0112",
            source_labels=("矛盾劝解", "婚姻家庭"),
            persons=2,
            self_resolved=True,
        ),
        grid_at("371502004001001"),
    ),
    "CAM-37150200011320000003-20261126T101500-1": (
        camera(
            "CAM-37150200011320000003-20261126T101500-1",
            "2026-11-26T10:15:00+08:00",
            "37150200011320000003",
            "人员聚集，约40人",
            source_code="crowd_gathering",
            alarm_method=5,
            alarm_type=10,
            source_priority=2,
            ai_confidence=0.92,
            media=("https://video.example/snap/1.jpg",),
        ),
        grid_at("371502004001002", 115.990665, 36.456558, "camera_registry"),
    ),
    "CAM-37150200081320000004-20261126T102000-7": (
        camera(
            "CAM-37150200081320000004-20261126T102000-7",
            "2026-11-26T10:20:00",
            "37150200081320000004",
            "占道经营",
            source_code="street_vending",
            alarm_method=5,
            source_priority=4,
            ai_confidence=0.81,
        ),
        grid_at("371502004001002", 115.992029, 36.455178, "camera_registry"),
    ),
    "CAM-37158100011320000167-20261126T101600-2": (
        camera(
            "CAM-37158100011320000167-20261126T101600-2",
            "2026-11-26T10:16:00+08:00",
            "37158100011320000167",
            "烟雾",
            source_code="smoke",
            alarm_method=5,
            source_priority=1,
            ai_confidence=0.88,
        ),
        grid_at("371581001003004", 115.737236, 36.864861, "camera_registry"),
    ),
    "37150200011320000001|2026-11-26T21:47:05|248761": (
        camera(
            "37150200011320000001|2026-11-26T21:47:05|248761",
            "2026-11-26T21:47:05",
            "37150200011320000001",
            "入侵检测：人员翻越围栏(河道护栏)",
            alarm_method=5,
            alarm_type=6,
            source_priority=2,
            lon=115.9849,
            lat=36.4541,
        ),
        grid_at("371502004001001", 115.9849, 36.4541, "camera_registry"),
    ),
    "110LD-371502-20261126-00342": (
        call(
            "110LD-371502-20261126-00342",
            "2026-11-26T23:12:48+08:00",
            "2026-11-26T23:16:40+08:00",
            "楼下烧烤摊深夜噪音大、油烟重，影响休息，要求处理。",
            source_code="600600",
            source_priority=4,
            region_code="371502",
            call_no="3715022026112600342",
            reporter="138****6610",
            lon=115.9852,
            lat=36.4561,
            address="新区街道化机小区4栋楼下",
        ),
        grid_at("371502004001001", 115.9852, 36.4561, "nearest_grid"),
    ),
    "110LD-371502-20261126-00343": (
        call(
            "110LD-371502-20261126-00343",
            "2026-11-26T10:16:30+08:00",
            "2026-11-26T10:18:00+08:00",
            "广场上聚集了很多人，有人拉横幅，情绪激动。",
            source_code="700300",
            source_priority=2,
            region_code="371502004",
            call_no="3715022026112600343",
            lon=115.9913,
            lat=36.4562,
            address="化机小区南门广场",
        ),
        grid_at("371502004001002", 115.9913, 36.4562, "nearest_grid"),
    ),
    "110LD-371503-20261126-00051": (
        call(
            "110LD-371503-20261126-00051",
            "2026-11-26T07:05:00+08:00",
            "2026-11-26T07:09:00+08:00",
            "小区停水两天了，物业不管。",
            source_code="601300",
            source_priority=3,
            region_code="371503",
            call_no="3715032026112600051",
            address="振兴街道北关社区5号楼",
        ),
        Location(method="region_code", region_code="371503", level=Level.COUNTY),
    ),
}

EXPECTED_FLAT = {sid: spec for group in EXPECTED.values() for sid, spec in group.items()}
JOINS = {
    "CAM-37158100011320000167-20261126T101600-2": "GR-20261126-000103",
    "110LD-371502-20261126-00343": "CAM-37150200011320000003-20261126T101500-1",
}


def run_all(order: list[str]) -> dict[str, TriageDecision]:
    """Triage the samples in ``order`` through per-township states, as the agents would."""
    states: dict[str, TownshipState] = {}
    decisions: dict[str, TriageDecision] = {}
    for sid in order:
        event, location = SAMPLES[sid]
        key = state_key(location)
        decision, states[key] = triage(
            event,
            location,
            states.get(key, TownshipState()),
            RULES,
            event.reported_at + timedelta(seconds=2),
        )
        assert decision.state_key == key
        decisions[sid] = decision
    return decisions


BY_TIME = sorted(SAMPLES, key=lambda sid: SAMPLES[sid][0].reported_at)
DECISIONS = run_all(BY_TIME)


def test_every_valid_sample_is_covered() -> None:
    assert set(SAMPLES) == set(EXPECTED_FLAT)


@pytest.mark.parametrize("sid", sorted(EXPECTED_FLAT))
def test_sample_category_lead_priority(sid: str) -> None:
    spec, decision = EXPECTED_FLAT[sid], DECISIONS[sid]
    assert decision.classification is not None and decision.priority is not None
    assert decision.classification.category == spec["category"]
    assert decision.priority.priority is Priority.parse(spec["priority"])
    if sid in JOINS:
        assert decision.action == "join" and decision.routing is None
        assert spec["lead"] == DECISIONS[JOINS[sid]].lead  # the joined case's lead
    else:
        assert decision.action == "open"
        assert decision.lead == spec["lead"]
    if "grid" in spec:
        assert SAMPLES[sid][1].grid_code == spec["grid"]


@pytest.mark.parametrize(("sid", "into"), sorted(JOINS.items()))
def test_the_two_merges(sid: str, into: str) -> None:
    assert DECISIONS[sid].action == "join"
    assert DECISIONS[sid].case_id == DECISIONS[into].case_id
    assert DECISIONS[into].action == "open"


def test_nothing_else_merges() -> None:
    opened = [sid for sid, d in DECISIONS.items() if d.action == "open"]
    assert len(opened) == len(SAMPLES) - len(JOINS)
    assert len({DECISIONS[sid].case_id for sid in opened}) == len(opened)


def test_self_resolved_report_is_closed_at_grid() -> None:
    decision = DECISIONS["GR-20261126-000105"]
    assert decision.closed_at_grid and decision.action == "open"
    assert decision.routing is not None and decision.routing.dispatch is False
    assert decision.routing.entry_level is Level.GRID and decision.lead is None
    assert not any(d.closed_at_grid for sid, d in DECISIONS.items() if sid != "GR-20261126-000105")


def test_entry_levels_of_the_samples() -> None:
    def level(sid: str) -> Level:
        routing = DECISIONS[sid].routing
        assert routing is not None
        return routing.entry_level

    assert level("GR-20261126-000101") is Level.GRID
    assert level("GR-20261126-000104") is Level.TOWNSHIP  # 35 persons: township involved
    assert level("CAM-37150200011320000003-20261126T101500-1") is Level.TOWNSHIP  # ~40 persons
    assert level("CAM-37150200081320000004-20261126T102000-7") is Level.COMMUNITY
    assert level("110LD-371502-20261126-00342") is Level.TOWNSHIP
    assert level("110LD-371503-20261126-00051") is Level.COUNTY  # only a 6-digit code


def test_supports_of_the_samples() -> None:
    def supports(sid: str) -> tuple[str, ...]:
        routing = DECISIONS[sid].routing
        assert routing is not None
        return routing.supports

    assert supports("GR-20261126-000104") == ("zhujian", "sifa", "gongan", "township")
    assert supports("110LD-371502-20261126-00342") == ("township", "sthj")
    assert supports("110LD-371503-20261126-00051") == ("chengguan",)
    assert "gongan" not in supports("GR-20261126-000101")  # 争吵 is not violence


def test_nothing_needs_verification_and_reasons_are_recorded() -> None:
    for sid, decision in DECISIONS.items():
        assert not decision.needs_verification, sid
        assert decision.priority is not None and decision.priority.reasons, sid
        assert decision.classification is not None and decision.classification.rule, sid
    assert DECISIONS["110LD-371502-20261126-00342"].classification.rule == (  # type: ignore[union-attr]
        "bjlx:600600>keyword:烧烤"
    )


def test_redelivery_is_a_duplicate_of_the_same_case() -> None:
    states: dict[str, TownshipState] = {}
    first: dict[str, TriageDecision] = {}
    for sid in BY_TIME + BY_TIME:
        event, location = SAMPLES[sid]
        key = state_key(location)
        state = states.get(key, TownshipState())
        decision, states[key] = triage(event, location, state, RULES, event.reported_at)
        if sid in first:
            assert decision.action == "duplicate" and states[key] == state
            assert decision.case_id == first[sid].case_id
        else:
            first[sid] = decision


def test_a_crash_before_the_state_was_saved_reopens_the_same_case_id() -> None:
    again = run_all(BY_TIME)
    assert {sid: d.case_id for sid, d in again.items()} == {
        sid: d.case_id for sid, d in DECISIONS.items()
    }


def test_third_report_of_a_grid_and_category_is_a_hot_spot() -> None:
    event, location = SAMPLES["GR-20261126-000102"]
    state = TownshipState()
    priorities = []
    for day in range(3):
        when = event.occurred_at + timedelta(days=day * 3)
        repeat = Event(
            **{
                **{f: getattr(event, f) for f in event.__struct_fields__},
                "event_id": f"grid:GR-{day}",
                "occurred_at": when,
                "reported_at": when,
            }
        )
        decision, state = triage(repeat, location, state, RULES, when)
        assert decision.action == "open"  # days apart: new cases, not joins
        priorities.append((decision.priority.priority, decision.hot_spot))  # type: ignore[union-attr]
    assert priorities == [(Priority.P3, False), (Priority.P3, False), (Priority.P2, True)]


def test_police_only_call_is_recorded_not_dispatched_nor_joinable() -> None:
    event = Event(
        event_id="police:X1",
        source=Source.POLICE,
        source_id="X1",
        occurred_at=at("2026-11-26T12:00:00+08:00"),
        reported_at=at("2026-11-26T12:01:00+08:00"),
        text="电动车被盗",
        source_code="120300",
        region_code="371502004",
    )
    location = grid_at("371502004001002", 115.9915, 36.456)
    decision, state = triage(event, location, TownshipState(), RULES, event.reported_at)
    assert decision.action == "open" and decision.lead is None
    assert decision.routing is not None and decision.routing.disposition == "police_only"
    assert state.open_cases == ()
