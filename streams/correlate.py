"""Correlation and de-duplication (关联研判, 网格 + 雪亮 联动), pure over a state record.

Events about one incident become one case (docs/domain.md §6). The caller keeps one
``TownshipState`` per township (keyed by :func:`state_key`, e.g. in a
changelog-backed table) and passes it in; :func:`record` returns the updated
state, pruned by ``now``. Nothing here reads a clock.

An event, in this order, is:

1. a **duplicate** — its event_id was seen (a redelivered message): ignore it;
   the case id it went to is returned so the caller can re-emit idempotently;
2. a **repeat** alarm — the same camera and alarm type alarmed within
   ``repeat_alarm_window_seconds`` of its previous alarm: folded into that case;
3. **linked** — a 110 call whose 关联接警单编号 gljjdbh names a call of an open case;
4. a **join** — an open case in the same grid or within ``radius_m``, of a
   compatible category (same category; same family for families listed in
   ``join_within_family``; or a listed compatible pair), active within the
   window of the more urgent of the two priorities (30 min P1/P2, 24 h P3/P4);
   the best is the same grid first, then the nearest, most urgent, most recent;
5. **new** — open a case with :func:`new_case_id`.

State is per township, so events just across a township border do not join;
those are rare and an operator merges them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import datetime
from itertools import islice

import msgspec

from streams.jurisdiction import ancestor_at
from streams.records import Classification, Event, Level, Location, PriorityDecision
from streams.triage_rules import CorrelationRules, TriageRules
from streams.zone import UTC_PLUS_8

SWEEP_SECONDS = 600  # record() sweeps the whole history at most this often
HISTORY_PER_KEY = 32  # newest occurrences kept per grid and category (counts saturate here)

_NONE: frozenset[str] = frozenset()


class OpenCase(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What correlation needs to know of one open case (a few dozen bytes encoded).

    ``gc=False``: hundreds are decoded per event and none can be part of a
    reference cycle (strings, numbers, a tuple of strings, a dict of ints), so
    the garbage collector need not track them. The encoding is unchanged.
    """

    case_id: str
    category: str
    priority: int  # Priority value, the most urgent among its events
    grid_code: str | None
    lon: float | None
    lat: float | None
    opened_at: int  # epoch seconds, event time of its first event
    last_event_at: int  # epoch seconds, event time of its latest event
    call_nos: tuple[str, ...] = ()  # 110 jjdbh of its calls
    alarms: dict[str, int] = {}  # "device|alarm type" → epoch seconds of the last alarm


class TownshipState(msgspec.Struct, frozen=True, gc=False):
    """Correlation state of one township (乡镇/街道), persisted by the caller.

    (Not tracked by the garbage collector, as ``OpenCase``: it holds no cycles.)
    """

    open_cases: tuple[OpenCase, ...] = ()
    history: dict[str, tuple[int, ...]] = {}  # "grid|category" → event times of new cases
    seen: dict[str, tuple[int, str]] = {}  # event_id → (epoch seconds seen, case_id), oldest first
    swept_at: int = 0  # epoch seconds of the last full prune


class Match(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "duplicate" | "repeat" | "linked" | "join" | "new"
    case_id: str | None = None
    reason: str = ""  # "same_grid", "distance:72m", "gljjdbh:…", "alarm:…", "seen"


def state_key(location: Location) -> str:
    """The township code the state lives under (the county's when no township is known)."""
    return ancestor_at(location.region_code, Level.TOWNSHIP) or location.region_code


def new_case_id(event: Event, location: Location) -> str:
    """``C20261126-371502004-1a2b3c4d``: local date, township, sha1(event_id)[:8].

    Deterministic: a message redelivered after a crash reopens the same id.
    """
    local = event.occurred_at.astimezone(UTC_PLUS_8)
    day = f"{local.year:04d}{local.month:02d}{local.day:02d}"  # strftime costs twice this
    digest = hashlib.sha1(event.event_id.encode()).hexdigest()[:8]
    return f"C{day}-{state_key(location)}-{digest}"


def alarm_key(event: Event) -> str | None:
    """ "device|alarm type" of a camera alarm: the AI event, else GB/T 28181 method/type."""
    if event.device_id is None:
        return None
    if event.source_code:
        return f"{event.device_id}|{event.source_code}"
    if event.alarm_method is not None:
        return f"{event.device_id}|{event.alarm_method}/{event.alarm_type}"
    return None


def recurrences(
    state: TownshipState, location: Location, category: str, rules: TriageRules, now: datetime
) -> int:
    """Earlier cases of the same grid and category within the recurrence window."""
    if location.grid_code is None:
        return 0
    since = _epoch(now) - rules.correlation.recurrence_window_seconds
    return sum(1 for t in state.history.get(f"{location.grid_code}|{category}", ()) if t > since)


def correlate(
    event: Event,
    location: Location,
    classification: Classification,
    priority: PriorityDecision,
    state: TownshipState,
    rules: TriageRules,
    now: datetime,
) -> Match:
    """Which case, if any, this event belongs to (see the module docstring)."""
    seen = state.seen.get(event.event_id)
    if seen is not None:
        return Match(kind="duplicate", case_id=seen[1], reason="seen")
    c = rules.correlation
    t = _epoch(event.occurred_at)
    cases = state.open_cases
    key = alarm_key(event)
    if key is not None:
        repeat_window = c.repeat_alarm_window_seconds
        for case in cases:
            if case.alarms:
                last = case.alarms.get(key)
                if last is not None and abs(t - last) <= repeat_window:
                    return Match(kind="repeat", case_id=case.case_id, reason=f"alarm:{key}")
    if event.linked_call_no:
        for case in cases:
            if event.linked_call_no in case.call_nos:
                return Match(
                    kind="linked", case_id=case.case_id, reason=f"gljjdbh:{event.linked_call_no}"
                )
    category = classification.category
    # Only cases of a compatible category, in their order (so the ranking and
    # its ties are as over all cases): one set lookup in the precomputed table
    # per case; a case whose category is outside the taxonomy (rules changed
    # since it opened) is checked by the definition below.
    row = c.compatible_with.get(category)
    known = c.categories if row is not None else _NONE
    row = row or _NONE
    candidates = [x for x in cases if x.category in row or x.category not in known]
    # the join window by case priority, for this event's priority
    p = priority.priority
    windows = {q: c.window_seconds.get(min(q, p)) for q in c.window_seconds}
    grid = location.grid_code
    lon, lat = _coordinates(event, location)
    best: tuple[tuple[int, float, int, int], OpenCase, str] | None = None
    for case in candidates:
        if case.category not in known and not c.compatible_categories(case.category, category):
            continue
        window = windows.get(case.priority)
        if window is None:  # a priority outside window_seconds: looked up directly
            window = c.window_seconds[min(case.priority, p)]
        if not case.opened_at - window <= t <= case.last_event_at + window:
            continue
        if grid is not None and grid == case.grid_code:
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
            best = (rank, case, reason)
    if best is not None:
        return Match(kind="join", case_id=best[1].case_id, reason=best[2])
    return Match(kind="new")


def record(
    state: TownshipState,
    event: Event,
    location: Location | None,
    classification: Classification | None,
    priority: PriorityDecision,
    match: Match,
    rules: TriageRules,
    now: datetime,
    *,
    case_id: str | None = None,
    joinable: bool = True,
) -> TownshipState:
    """The state after this event, pruned by ``now`` (pure: ``state`` is not changed).

    Expired ids go at once; stale open cases and old history are swept every
    ``SWEEP_SECONDS`` (``correlate`` and ``recurrences`` filter by time anyway).

    For ``match.kind == "new"`` pass the new ``case_id``, its ``location`` and
    ``classification`` (an event joining a case needs neither); ``joinable=False``
    records a case that later events must not join (closed at grid, kept by
    the police) — it still counts for recurrence and de-duplication.
    """
    if match.kind == "duplicate":
        return state
    target = match.case_id if match.kind != "new" else case_id
    if target is None:
        raise ValueError("record: a new case needs its case_id")
    c = rules.correlation
    n, t = _epoch(now), _epoch(event.occurred_at)
    cases = state.open_cases
    history = state.history
    if match.kind == "new":
        if location is None or classification is None:
            raise ValueError("record: a new case needs its location and classification")
        if location.grid_code is not None:
            key = f"{location.grid_code}|{classification.category}"
            since = n - c.recurrence_window_seconds
            kept = [x for x in history.get(key, ()) if x > since][-HISTORY_PER_KEY + 1 :]
            history = {**history, key: (*kept, t)}
        if joinable:
            lon, lat = _coordinates(event, location)
            cases = (
                *cases,
                _add_event(
                    OpenCase(
                        case_id=target,
                        category=classification.category,
                        priority=int(priority.priority),
                        grid_code=location.grid_code,
                        lon=lon,
                        lat=lat,
                        opened_at=t,
                        last_event_at=t,
                    ),
                    event,
                    priority,
                    t,
                ),
            )
    else:
        cases = tuple(
            [_add_event(x, event, priority, t) if x.case_id == target else x for x in cases]
        )
    seen = _remember(state.seen, event.event_id, (n, target), c.dedup_max_ids)
    if n - state.swept_at >= SWEEP_SECONDS:
        updated = TownshipState(
            open_cases=cases, history=history, seen=seen, swept_at=state.swept_at
        )
        return prune(updated, rules, now)
    # between sweeps only ids from the old end: a stale case stays until the next
    # sweep, but correlate() never joins it (its window has passed)
    return TownshipState(
        open_cases=cases,
        history=history,
        seen=_expire(seen, c, n),
        swept_at=state.swept_at,
    )


def forget_case(state: TownshipState, case_id: str) -> TownshipState:
    """The state without ``case_id`` among the open cases.

    Called when the case ends — closed, rejected or merged into another
    (:func:`streams.township.evolve`) — and when triage picked a case that can
    take no more events (:func:`streams.handlers.handle_event`), so that the
    event is decided again without it."""
    cases = tuple(x for x in state.open_cases if x.case_id != case_id)
    return msgspec.structs.replace(state, open_cases=cases)


def prune(state: TownshipState, rules: TriageRules, now: datetime) -> TownshipState:
    """Drop what can no longer matter at ``now``: stale cases, old history, old ids."""
    c = rules.correlation
    n = _epoch(now)
    since = n - c.recurrence_window_seconds
    history = {}
    for key, times in state.history.items():
        if times and min(times) > since:  # all kept: the same tuple
            history[key] = tuple(times)
            continue
        kept = tuple([t for t in times if t > since])
        if kept:
            history[key] = kept
    seen = _unexpired(state.seen, c, n)
    if len(seen) > c.dedup_max_ids:
        seen = dict(islice(seen.items(), len(seen) - c.dedup_max_ids, None))
    return TownshipState(
        open_cases=_live_cases(state.open_cases, rules, n),
        history=history,
        seen=seen,
        swept_at=n,
    )


def _live_cases(cases: Iterable[OpenCase], rules: TriageRules, n: int) -> tuple[OpenCase, ...]:
    """Open cases an event at ``n`` or a late one (up to ``lateness_seconds``
    earlier) may still join: those whose latest event is within their horizon
    (the window of their priority; at least the repeat-alarm window for a case
    with camera alarms) plus the lateness allowance of ``n``."""
    c = rules.correlation
    lateness, repeat_window = c.lateness_seconds, c.repeat_alarm_window_seconds
    # horizon + lateness by priority, without and with camera alarms
    plain = {q: w + lateness for q, w in c.window_seconds.items()}
    alarmed = {q: max(w, repeat_window) + lateness for q, w in c.window_seconds.items()}
    return tuple(
        [x for x in cases if n - x.last_event_at <= (alarmed if x.alarms else plain)[x.priority]]
    )


def _remember(
    seen: dict[str, tuple[int, str]], event_id: str, value: tuple[int, str], cap: int
) -> dict[str, tuple[int, str]]:
    """A copy of ``seen`` with ``event_id`` added and the oldest dropped beyond ``cap``.

    Ids are kept in insertion (= time) order, so the oldest are at the front.
    (``seen.copy()``, not ``dict(seen)``: a dict with deleted entries is copied
    whole only by ``copy``; ``dict()`` inserts its entries one by one, five
    times slower at two thousand ids.)"""
    kept = seen.copy()
    for oldest in list(islice(seen, max(0, len(seen) + 1 - cap))):
        del kept[oldest]
    kept[event_id] = value
    return kept


def _expire(
    seen: dict[str, tuple[int, str]], c: CorrelationRules, n: int
) -> dict[str, tuple[int, str]]:
    """``seen`` without expired ids; O(1) when the oldest has not expired."""
    if seen and n - next(iter(seen.values()))[0] > c.dedup_retention_seconds:
        return _unexpired(seen, c, n)
    return seen


def _unexpired(
    seen: dict[str, tuple[int, str]], c: CorrelationRules, n: int
) -> dict[str, tuple[int, str]]:
    """The ids of ``seen`` (in order) with ``n - seen_at <= dedup_retention_seconds``."""
    retention = c.dedup_retention_seconds
    return {k: v for k, v in seen.items() if n - v[0] <= retention}


def _add_event(case: OpenCase, event: Event, priority: PriorityDecision, t: int) -> OpenCase:
    calls = case.call_nos
    if event.call_no and event.call_no not in calls:
        calls = (*calls, event.call_no)
    alarms = case.alarms
    key = alarm_key(event)
    if key is not None:
        alarms = {**alarms, key: max(t, alarms.get(key, t))}
    return msgspec.structs.replace(
        case,
        priority=min(case.priority, int(priority.priority)),
        opened_at=min(case.opened_at, t),
        last_event_at=max(case.last_event_at, t),
        call_nos=calls,
        alarms=alarms,
    )


def _coordinates(event: Event, location: Location) -> tuple[float | None, float | None]:
    if location.lon is not None and location.lat is not None:
        return location.lon, location.lat
    return event.lon, event.lat


def _distance_m(
    lon1: float | None, lat1: float | None, lon2: float | None, lat2: float | None
) -> float | None:
    """Great-circle distance in metres (haversine); None when a point is unknown."""
    if lon1 is None or lat1 is None or lon2 is None or lat2 is None:
        return None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC_PLUS_8)  # the sources' local time
    return int(moment.timestamp())
