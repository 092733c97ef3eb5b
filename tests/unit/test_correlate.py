"""Correlation over an explicit township state: duplicates, repeat alarms,
gljjdbh links, joins by grid/radius/window/category, pruning, case ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.correlate import (
    HISTORY_PER_KEY,
    SWEEP_SECONDS,
    Match,
    OpenCase,
    TownshipState,
    _distance_m,
    correlate,
    forget_case,
    new_case_id,
    prune,
    record,
    recurrences,
    state_key,
)
from streams.records import (
    Classification,
    Event,
    Level,
    Location,
    Priority,
    PriorityDecision,
    Source,
)
from streams.triage_rules import load_triage_rules

RULES = load_triage_rules(Path(__file__).parents[2] / "rules")
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=CST)
MIN = timedelta(minutes=1)

GRID_A = "371502004001002"
GRID_B = "371502004001001"  # the neighbouring grid, ~600 m west


def loc(grid: str = GRID_A, lon: float | None = 115.9915, lat: float | None = 36.456) -> Location:
    return Location(
        method="grid_code", region_code=grid, level=Level.GRID, grid_code=grid, lon=lon, lat=lat
    )


def ev(eid: str, at: datetime = T0, source: Source = Source.GRID, **fields: Any) -> Event:
    return Event(
        event_id=f"{source.value}:{eid}",
        source=source,
        source_id=eid,
        occurred_at=at,
        reported_at=at,
        **fields,
    )


def cls(category: str) -> Classification:
    return Classification(category=category, name="", confidence=0.9, rule="test")


def pr(priority: Priority) -> PriorityDecision:
    return PriorityDecision(priority=priority)


def step(
    state: TownshipState,
    event: Event,
    location: Location,
    category: str,
    priority: Priority,
    now: datetime | None = None,
) -> tuple[Match, str, TownshipState]:
    """Correlate and record, the way triage does."""
    now = now or event.occurred_at
    match = correlate(event, location, cls(category), pr(priority), state, RULES, now)
    case_id = match.case_id or new_case_id(event, location)
    new = record(
        state, event, location, cls(category), pr(priority), match, RULES, now, case_id=case_id
    )
    return match, case_id, new


def opened(
    event: Event, location: Location, category: str, priority: Priority
) -> tuple[str, TownshipState]:
    match, case_id, state = step(TownshipState(), event, location, category, priority)
    assert match.kind == "new"
    return case_id, state


def test_duplicate_event_id_is_ignored_and_names_its_case() -> None:
    first = ev("GR-1", text="垃圾")
    case_id, state = opened(first, loc(), "05.03", Priority.P3)
    match, _, after = step(state, first, loc(), "05.03", Priority.P3, now=T0 + 5 * MIN)
    assert (match.kind, match.case_id) == ("duplicate", case_id)
    assert after.open_cases == state.open_cases and after.history == state.history


def test_repeat_alarm_of_one_camera_folds_into_its_case() -> None:
    cam: dict[str, Any] = {
        "source": Source.CAMERA,
        "device_id": "37150200081320000004",
        "source_code": "street_vending",
    }
    case_id, state = opened(ev("CAM-1", **cam), loc(), "05.01", Priority.P3)
    match, _, state = step(state, ev("CAM-2", T0 + 20 * MIN, **cam), loc(), "05.01", Priority.P3)
    assert (match.kind, match.case_id) == ("repeat", case_id)
    # the window slides with every repeat: 20 + 50 minutes after the first
    match, _, state = step(state, ev("CAM-3", T0 + 70 * MIN, **cam), loc(), "05.01", Priority.P3)
    assert match.kind == "repeat"
    # another alarm type of the same camera is not a repeat (but may join by category)
    other = {**cam, "source_code": "illegal_parking"}
    match, _, _ = step(state, ev("CAM-4", T0 + 71 * MIN, **other), loc(), "05.05", Priority.P3)
    assert match.kind == "new"


def test_repeat_alarm_after_the_window_is_not_a_repeat() -> None:
    cam: dict[str, Any] = {
        "source": Source.CAMERA,
        "device_id": "37150200011320000001",
        "alarm_method": 5,
        "alarm_type": 6,
    }
    _, state = opened(ev("GB-1", **cam), loc(), "03.06", Priority.P2)
    late = T0 + timedelta(seconds=RULES.correlation.repeat_alarm_window_seconds + 60)
    match, _, _ = step(state, ev("GB-2", late, **cam), loc(), "03.06", Priority.P2)
    assert match.kind == "new"


def test_gljjdbh_joins_the_earlier_call_even_far_away_and_later() -> None:
    call = ev("110-1", source=Source.POLICE, call_no="3715022026112600100", text="纠纷")
    case_id, state = opened(call, loc(), "01.02", Priority.P3)
    far = loc(GRID_B, lon=116.5, lat=36.9)
    again = ev(
        "110-2",
        T0 + timedelta(hours=3),
        Source.POLICE,
        call_no="3715022026112600177",
        linked_call_no="3715022026112600100",
    )
    match, _, state = step(state, again, far, "01.99", Priority.P3)
    assert (match.kind, match.case_id) == ("linked", case_id)
    assert state.open_cases[0].call_nos == ("3715022026112600100", "3715022026112600177")


@pytest.mark.parametrize(
    ("first", "second", "later", "where", "joins"),
    [
        # same family 03, same grid, within 30 min (crowd alert + 110 call)
        (("03.05", Priority.P1), ("03.05", Priority.P1), 90, loc(), True),
        (("03.05", Priority.P1), ("03.01", Priority.P2), 10 * 60, loc(), True),
        # within 300 m in the neighbouring grid
        (("07.01", Priority.P1), ("07.01", Priority.P1), 60, loc(GRID_B, 115.9890, 36.4560), True),
        # beyond 300 m in the neighbouring grid
        (("07.01", Priority.P1), ("07.01", Priority.P1), 60, loc(GRID_B, 115.9850, 36.4560), False),
        # P1/P2 window 30 min: not after 31 min
        (("03.05", Priority.P1), ("03.05", Priority.P1), 31 * 60, loc(), False),
        # a P3 case joins for 24 h …
        (("05.03", Priority.P3), ("05.03", Priority.P3), 23 * 3600, loc(), True),
        # … but a P1 event only within the short window
        (("01.02", Priority.P3), ("01.02", Priority.P1), 2 * 3600, loc(), False),
        (("05.03", Priority.P3), ("05.03", Priority.P3), 25 * 3600, loc(), False),
        # same family 05 but different incidents: a street vendor and a full bin
        (("05.03", Priority.P3), ("05.01", Priority.P3), 18 * 60, loc(), False),
        # incompatible families
        (("07.01", Priority.P1), ("03.05", Priority.P1), 60, loc(), False),
        # a listed compatible pair: wage-arrears protest and a gathering call
        (("01.05", Priority.P1), ("03.05", Priority.P1), 5 * 60, loc(), True),
        # an unspecific dispute joins a specific one
        (("01.02", Priority.P3), ("01.99", Priority.P3), 3600, loc(), True),
        (("01.02", Priority.P3), ("01.04", Priority.P3), 3600, loc(), False),
    ],
)
def test_join_rules(
    first: tuple[str, Priority],
    second: tuple[str, Priority],
    later: int,
    where: Location,
    joins: bool,
) -> None:
    case_id, state = opened(ev("A", lon=115.9915, lat=36.456), loc(), *first)
    match, _, _ = step(state, ev("B", T0 + timedelta(seconds=later)), where, *second)
    assert (match.kind == "join") is joins
    if joins:
        assert match.case_id == case_id


def test_join_prefers_the_same_grid_then_the_nearest() -> None:
    near_a, state = opened(ev("A"), loc(), "03.05", Priority.P1)
    other = ev("B", T0 + MIN)
    m, near_b, state = step(state, other, loc(GRID_B, 115.9850, 36.456), "03.05", Priority.P1)
    assert m.kind == "new"
    # an event in grid B, 100 m from case A's point but inside grid B: same grid wins
    m, _, _ = step(
        state, ev("C", T0 + 2 * MIN), loc(GRID_B, 115.9905, 36.456), "03.05", Priority.P1
    )
    assert (m.kind, m.case_id, m.reason) == ("join", near_b, "same_grid")
    # a point outside both grids' codes: nearest case
    nowhere = Location(
        method="nearest_grid",
        region_code="371502004",
        level=Level.TOWNSHIP,
        lon=115.9910,
        lat=36.456,
    )
    m, _, _ = step(state, ev("D", T0 + 2 * MIN), nowhere, "03.05", Priority.P1)
    assert (m.kind, m.case_id) == ("join", near_a) and m.reason.startswith("distance:")


def test_joined_case_takes_the_most_urgent_priority_and_slides() -> None:
    _, state = opened(ev("A"), loc(), "03.01", Priority.P3)
    _, _, state = step(state, ev("B", T0 + 10 * MIN), loc(), "03.05", Priority.P1)
    (case,) = state.open_cases
    assert case.priority == Priority.P1 and case.last_event_at - case.opened_at == 600


def test_record_is_pure() -> None:
    _, state = opened(ev("A"), loc(), "05.03", Priority.P3)
    before = msgspec.json.encode(state)
    step(state, ev("B", T0 + MIN), loc(), "05.03", Priority.P3)
    assert msgspec.json.encode(state) == before


def test_not_joinable_cases_count_for_recurrence_but_are_not_joined() -> None:
    event = ev("A", self_resolved=True)
    state = record(
        TownshipState(),
        event,
        loc(),
        cls("01.01"),
        pr(Priority.P3),
        Match(kind="new"),
        RULES,
        T0,
        case_id="C1",
        joinable=False,
    )
    assert state.open_cases == () and recurrences(state, loc(), "01.01", RULES, T0 + MIN) == 1
    match, _, _ = step(state, ev("B", T0 + MIN), loc(), "01.01", Priority.P3)
    assert match.kind == "new"


def test_recurrence_counts_new_cases_of_grid_and_category_within_30_days() -> None:
    state = TownshipState()
    for day in (0, 10, 20):
        _, _, state = step(
            state, ev(f"D{day}", T0 + timedelta(days=day)), loc(), "05.03", Priority.P3
        )
        state = forget_case(state, state.open_cases[-1].case_id)  # closed in between
    now = T0 + timedelta(days=25)
    assert recurrences(state, loc(), "05.03", RULES, now) == 3
    assert recurrences(state, loc(), "05.01", RULES, now) == 0
    assert recurrences(state, loc(GRID_B), "05.03", RULES, now) == 0
    assert recurrences(state, loc(), "05.03", RULES, T0 + timedelta(days=35)) == 2
    assert recurrences(state, loc(), "05.03", RULES, T0 + timedelta(days=45)) == 1


def test_prune_drops_stale_cases_old_history_and_expired_ids() -> None:
    _, state = opened(ev("A"), loc(), "03.05", Priority.P1)
    _, _, state = step(state, ev("B", T0 + MIN), loc(), "05.03", Priority.P3)
    kept = prune(state, RULES, T0 + timedelta(hours=2))
    assert len(kept.open_cases) == 2  # inside the P1 window plus the lateness allowance
    later = prune(state, RULES, T0 + timedelta(hours=25))
    assert [c.category for c in later.open_cases] == ["05.03"]  # P1: 30 min + 24 h lateness
    assert set(kept.seen) == {"grid:A", "grid:B"} and later.seen == {}  # ids kept 24 h
    much_later = prune(state, RULES, T0 + timedelta(days=3))
    assert much_later.open_cases == () and much_later.seen == {}
    assert len(much_later.history) == 2
    assert prune(state, RULES, T0 + timedelta(days=31)).history == {}


def test_seen_ids_are_capped() -> None:
    small = msgspec.structs.replace(
        RULES, correlation=msgspec.structs.replace(RULES.correlation, dedup_max_ids=5)
    )
    state = TownshipState()
    for i in range(12):
        event = ev(f"E{i}", T0 + i * MIN)
        state = record(
            state,
            event,
            loc(),
            cls("05.03"),
            pr(Priority.P3),
            Match(kind="new"),
            small,
            T0 + i * MIN,
            case_id=f"C{i}",
        )
    assert sorted(state.seen) == sorted(f"grid:E{i}" for i in range(7, 12))


def test_new_case_id_is_deterministic_local_dated_and_township_scoped() -> None:
    late = ev("GR-9", datetime(2026, 11, 26, 17, 30, tzinfo=UTC))  # 01:30 on the 27th local
    first, again = new_case_id(late, loc()), new_case_id(late, loc())
    assert first == again
    assert first.startswith("C20261127-371502004-") and len(first.split("-")[-1]) == 8
    assert new_case_id(ev("GR-10"), loc()) != first
    county = Location(method="region_code", region_code="371503", level=Level.COUNTY)
    assert state_key(county) == "371503" and state_key(loc()) == "371502004"
    assert new_case_id(late, county).startswith("C20261127-371503-")


def test_state_round_trips_through_msgspec() -> None:
    cam: dict[str, Any] = {
        "source": Source.CAMERA,
        "device_id": "37150200011320000003",
        "source_code": "crowd_gathering",
    }
    _, state = opened(ev("CAM", **cam), loc(), "03.05", Priority.P1)
    _, _, state = step(
        state, ev("110", T0 + MIN, Source.POLICE, call_no="371502"), loc(), "03.05", Priority.P1
    )
    data = msgspec.msgpack.encode(state)
    assert msgspec.msgpack.decode(data, type=TownshipState) == state
    assert len(data) < 400


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 30),  # event id (repeats are redeliveries)
            st.integers(0, 6 * 3600),  # seconds after T0
            st.sampled_from(["03.05", "05.03", "05.01", "07.01", "01.02"]),
            st.sampled_from([GRID_A, GRID_B]),
            st.sampled_from(list(Priority)),
        ),
        max_size=25,
    )
)
def test_properties_over_random_streams(steps: list[tuple[int, int, str, str, Priority]]) -> None:
    state = TownshipState()
    now = T0
    for eid, offset, category, grid, priority in steps:
        now = max(now, T0 + timedelta(seconds=offset))
        event = ev(f"E{eid}", T0 + timedelta(seconds=offset))
        was_seen = event.event_id in state.seen
        before = {c.case_id for c in state.open_cases}
        match, case_id, state = step(state, event, loc(grid), category, priority, now=now)
        assert (match.kind == "duplicate") is was_seen
        if match.kind in ("join", "repeat", "linked"):
            assert case_id in before
        if match.kind == "new" and priority >= Priority.P3:
            assert case_id in {c.case_id for c in state.open_cases}
        assert len({c.case_id for c in state.open_cases}) == len(state.open_cases)
        assert all(
            now - timedelta(days=30) < datetime.fromtimestamp(t, CST)
            for times in state.history.values()
            for t in times
        )


def test_ids_expire_between_full_sweeps() -> None:
    def add(state: TownshipState, eid: str, when: datetime) -> TownshipState:
        return record(
            state,
            ev(eid, when),
            loc(),
            cls("05.03"),
            pr(Priority.P3),
            Match(kind="new"),
            RULES,
            when,
            case_id=f"C-{eid}",
            joinable=False,
        )

    day = timedelta(seconds=RULES.correlation.dedup_retention_seconds)
    state = add(TownshipState(), "A", T0)
    state = add(state, "B", T0 + day - 100 * timedelta(seconds=1))  # a full sweep: A still fresh
    assert set(state.seen) == {"grid:A", "grid:B"}
    state = add(state, "C", T0 + day + MIN)  # no sweep due, but A has expired
    assert set(state.seen) == {"grid:B", "grid:C"}


def test_history_per_grid_and_category_is_bounded() -> None:
    state = TownshipState()
    for i in range(HISTORY_PER_KEY + 8):
        when = T0 + i * MIN
        state = record(
            state,
            ev(f"H{i}", when),
            loc(),
            cls("05.03"),
            pr(Priority.P3),
            Match(kind="new"),
            RULES,
            when,
            case_id=f"C{i}",
            joinable=False,
        )
    assert len(state.history[f"{GRID_A}|05.03"]) == HISTORY_PER_KEY
    assert recurrences(state, loc(), "05.03", RULES, T0 + timedelta(hours=2)) == HISTORY_PER_KEY


def test_a_late_event_still_joins_the_case_of_a_later_one() -> None:
    """Sources have their own delays: the camera alert (10:00) may arrive after
    the 110 call (10:01) and an unrelated later event (20:00) were triaged."""
    _, state = opened(ev("CALL", T0 + MIN), loc(), "03.05", Priority.P1)
    _, _, state = step(state, ev("OTHER", T0 + timedelta(hours=10)), loc(GRID_B), "05.03",
                       Priority.P3)
    match = correlate(ev("CAM", T0), loc(), cls("03.05"), pr(Priority.P1), state, RULES, T0)
    assert match.kind == "join" and match.case_id == state.open_cases[0].case_id


def _reference_join(
    event: Event,
    location: Location,
    category: str,
    priority: Priority,
    state: TownshipState,
) -> tuple[str | None, str]:
    """The join step as first written: every open case, category by the definition."""
    c = RULES.correlation

    def covers(pattern: str, code: str) -> bool:
        return code == pattern or (len(pattern) == 2 and code[:2] == pattern)

    def compatible(a: str, b: str) -> bool:
        if a == b or (a[:2] == b[:2] and a[:2] in c.join_within_family):
            return True
        return any(
            (covers(x, a) and covers(y, b)) or (covers(x, b) and covers(y, a))
            for x, y in c.compatible
        )

    t = int(event.occurred_at.timestamp())
    lon, lat = location.lon, location.lat
    best: tuple[tuple[int, float, int, int], str, str] | None = None
    for case in state.open_cases:
        if not compatible(case.category, category):
            continue
        window = c.window_seconds[min(case.priority, priority)]
        if not case.opened_at - window <= t <= case.last_event_at + window:
            continue
        if location.grid_code is not None and location.grid_code == case.grid_code:
            rank, reason = (0, 0.0, case.priority, -case.last_event_at), "same_grid"
        else:
            metres = _distance_m(lon, lat, case.lon, case.lat)
            if metres is None or metres > c.radius_m:
                continue
            rank, reason = (
                (1, metres, case.priority, -case.last_event_at),
                f"distance:{metres:.0f}m",
            )
        if best is None or rank < best[0]:
            best = (rank, case.case_id, reason)
    return (best[1], best[2]) if best is not None else (None, "")


_CASE_CATEGORIES = [
    "03.05",
    "03.01",
    "02.01",
    "01.05",
    "01.99",
    "01.02",
    "05.03",
    "05.01",
    "07.01",
    "05.09",
    "06.02",
    "05.77",
    "99.01",
]  # the last two: not in taxonomy


@settings(max_examples=200, deadline=None)
@given(
    cases=st.lists(
        st.tuples(
            st.sampled_from(_CASE_CATEGORIES),
            st.sampled_from(list(Priority)),
            st.sampled_from([GRID_A, GRID_B, None]),
            st.integers(-40, 40),  # metres east of the event, in 10 m steps
            st.integers(-2 * 86400, 3600),  # opened, seconds from T0
            st.integers(0, 2 * 86400),  # then active for
        ),
        max_size=40,
    ),
    category=st.sampled_from(_CASE_CATEGORIES),
    priority=st.sampled_from(list(Priority)),
    grid=st.sampled_from([GRID_A, GRID_B, None]),
)
def test_join_matches_a_scan_of_every_case_by_the_definition(
    cases: list[tuple[str, Priority, str | None, int, int, int]],
    category: str,
    priority: Priority,
    grid: str | None,
) -> None:
    """The join over the precomputed compatibility and the pre-filtered cases picks
    the very case (and reason) a scan of every case by the definition picks."""
    t0 = int(T0.timestamp())
    state = TownshipState(
        open_cases=tuple(
            OpenCase(
                case_id=f"C{i}",
                category=cat,
                priority=int(prio),
                grid_code=case_grid,
                lon=115.9915 + east * 10 / 89_500,  # ≈ 89.5 km per degree at 36.5° N
                lat=36.456,
                opened_at=t0 + opened,
                last_event_at=t0 + opened + active,
            )
            for i, (cat, prio, case_grid, east, opened, active) in enumerate(cases)
        )
    )
    where = Location(
        method="grid_code" if grid else "nearest_grid",
        region_code=grid or "371502004",
        level=Level.GRID if grid else Level.TOWNSHIP,
        grid_code=grid,
        lon=115.9915,
        lat=36.456,
    )
    event = ev("J")
    match = correlate(event, where, cls(category), pr(priority), state, RULES, T0)
    expected = _reference_join(event, where, category, priority, state)
    assert (match.case_id, match.reason) == expected
    assert match.kind == ("join" if expected[0] is not None else "new")


@settings(max_examples=150, deadline=None)
@given(
    cases=st.lists(
        st.tuples(
            st.sampled_from(list(Priority)),
            st.one_of(  # last event, seconds before now: anywhere, or at a limit
                st.integers(0, 3 * 86400),
                st.builds(
                    lambda limit, off: limit + off,
                    st.sampled_from([1800, 3600, 86400]).map(lambda h: h + 86400),
                    st.integers(-2, 2),
                ),
            ),
            st.booleans(),  # has camera alarms
        ),
        max_size=30,
    ),
)
def test_open_cases_are_kept_for_their_horizon_plus_lateness(
    cases: list[tuple[Priority, int, bool]],
) -> None:
    c = RULES.correlation
    n = int(T0.timestamp())
    state = TownshipState(
        open_cases=tuple(
            OpenCase(
                case_id=f"C{i}",
                category="05.03",
                priority=int(prio),
                grid_code=GRID_A,
                lon=None,
                lat=None,
                opened_at=n - ago,
                last_event_at=n - ago,
                alarms={"cam|smoke": n - ago} if alarmed else {},
            )
            for i, (prio, ago, alarmed) in enumerate(cases)
        ),
        swept_at=n - SWEEP_SECONDS,  # due for a sweep
    )

    def after_event(state: TownshipState) -> TownshipState:
        return record(state, ev("K"), loc(), cls("05.03"), pr(Priority.P3), Match(kind="new"),
                      RULES, T0, case_id="C-new", joinable=False)

    after = after_event(state)
    # between sweeps nothing is pruned: correlate() skips a stale case by its window
    assert after_event(msgspec.structs.replace(state, swept_at=n)).open_cases == state.open_cases

    def horizon(case: OpenCase) -> int:
        window = c.window_seconds[case.priority]
        return max(window, c.repeat_alarm_window_seconds) if case.alarms else window

    assert after.open_cases == tuple(
        x for x in state.open_cases if n - x.last_event_at <= horizon(x) + c.lateness_seconds
    )
