"""The live board (实时态势大屏): open cases on the city's grids, department queues,
P1 banners and red cards, updated as the case log moves.

- ``GET /board`` — the page (``api/static/board.html``: no external assets; grids
  drawn as SVG from their centroids); it asks a browser without a session to sign
  in first (a wall screen signs in as a read-only ``display`` user).
- ``GET /board/snapshot`` — open cases per grid (with their running deadlines,
  for the SLA countdowns) and each department's open and overdue assignments, from
  the SQL projection.
- ``GET /board/events`` — server-sent events: ``case`` (a case opened),
  ``status`` (a case event, with the status when the event decides it and the
  deadlines it starts, moves or stops) and
  ``alert`` (``command.alerts``: serious cases, red cards, supervision, escalation).

The snapshot and the stream answer the session cookie (``EventSource`` sends it) or
an API key in ``X-API-Key``; no secret ever travels in a URL. An operator or a
display sees its jurisdiction, a department desk the cases its department serves
(within its jurisdiction, if it has one), an administrator everything.

One :class:`BoardFeed` per API process follows ``cases.events`` and
``command.alerts`` from their end (:class:`topics.feed.LiveFeed`) and fans small
JSON updates out to the connected boards. A board that falls too far behind is
disconnected; ``EventSource`` reconnects and the page reloads the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from api.auth import CurrentUser, Role, User, session_user
from api.deps import Db, scope_of
from api.errors import EngineUnavailable, problem_responses
from clock import wall_clock
from settings import Settings
from store import queries, reads
from store.service import Store
from streams.cases import CaseEvent, CaseState, apply
from streams.cases.events import AssignmentDispatched, CaseOpened, PriorityChanged
from streams.records import Level
from streams.records import Role as AssignmentRole
from streams.sla import Clock
from topics.feed import Alert, LiveFeed

READY_TIMEOUT_SECONDS = 30.0  # how long a new board waits for the feed to reach the topics' end
HEARTBEAT_SECONDS = 15.0  # an SSE comment this often keeps proxies from closing the stream
SUBSCRIBER_BACKLOG = 1_000  # updates queued for one board before it is disconnected
REGION_CACHE = 20_000  # case id → region, for scoping updates that do not carry it
SNAPSHOT_CASES = 2_000  # open cases in one snapshot, most urgent first

#: statuses an event decides on its own (others depend on the case: ``status`` is null)
EVENT_STATUS = {
    "case_registered": "registered",
    "case_rejected": "rejected",
    "case_handled": "handled",
    "check_started": "checking",
    "case_closed": "closed",
    "rework_ordered": "rework",
    "case_evaluated": "evaluated",
    "case_merged": "merged",
    "case_reopened": "reopened",
}
ALERT_FIELDS = ("kind", "case_id", "seq", "at", "priority", "category", "category_name",
                "title", "region", "level", "department", "step", "due", "reason",
                "to_level", "from_level", "by_level")


# -- updates ------------------------------------------------------------------------------


def clock_dues(clocks: tuple[Clock, ...]) -> dict[str, dict[str, str] | None]:
    """Deadline id → its step and red-card instant (``due``), for the board's SLA
    countdowns; ``None`` for a paused clock (挂起: it counts nothing down)."""
    return {c.id: None if c.paused is not None else {"step": str(c.step), "due": c.due.isoformat()}
            for c in clocks}


def case_update(event: CaseEvent) -> tuple[str, dict[str, Any]]:
    """The board's view of one ``cases.events`` record: ``("case", …)`` for a case
    opened, ``("status", …)`` otherwise."""
    tag = event.__struct_config__.tag
    if isinstance(event, CaseOpened):
        state = apply(None, event)
        return "case", {
            "case_id": state.case_id, "seq": event.seq, "at": event.at.isoformat(),
            "status": str(state.status), "priority": int(state.priority),
            "category": state.category, "category_name": state.category_name,
            "title": state.title, "grid": state.grid, "region": state.region,
            "department": event.routing.lead, "supports": list(event.routing.supports),
            "lon": state.lon, "lat": state.lat, "clocks": clock_dues(state.clocks)}
    update: dict[str, Any] = {"case_id": event.case_id, "seq": event.seq,
                              "at": event.at.isoformat(), "event": tag,
                              "status": EVENT_STATUS.get(str(tag))}
    if isinstance(event, AssignmentDispatched):
        update["department"] = event.assignment.department
        update["assignment"] = event.assignment.id
        update["unit_region"] = event.assignment.region
        if event.assignment.role is AssignmentRole.LEAD:
            update["status"] = "dispatched"
    elif isinstance(event, PriorityChanged):
        update["priority"] = int(event.new)
    elif department := getattr(event, "department", ""):  # claimed, returned, handled, cards …
        update["department"] = department
        if assignment_id := getattr(event, "assignment_id", ""):
            update["assignment"] = assignment_id
    if event.clocks:  # deadlines started or moved, and the ones stopped
        update["clocks"] = clock_dues(event.clocks)
    if event.cleared:
        update["cleared"] = list(event.cleared)
    return "status", update


def alert_update(alert: Alert) -> tuple[str, dict[str, Any]]:
    """The board's view of one ``command.alerts`` record (a P1 case, a red card…)."""
    payload = alert.fields
    return "alert", {k: payload[k] for k in ALERT_FIELDS if payload.get(k) not in (None, "")}


@dataclass(eq=False)
class Subscriber:
    """One connected board: its queue and whose jurisdiction it shows."""

    user: User
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_BACKLOG))

    def sees(self, region: str | None, units: set[tuple[str, str]]) -> bool:
        """Whether the update of a case in ``region`` served by ``units`` (department,
        unit's jurisdiction) is for this board: a department desk follows the cases
        its department serves within its jurisdiction."""
        if self.user.role is Role.ADMINISTRATOR:
            return True
        if self.user.role is Role.DEPARTMENT:
            return any(self.user.sees_unit(department, unit) for department, unit in units)
        return region is not None and self.user.covers_region(region)


class BoardFeed:
    """Follows ``cases.events`` and ``command.alerts`` from their end and fans out."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.live = LiveFeed(settings)
        self.ready = self.live.ready  # set while the feed reads from the topics' end
        self._subscribers: set[Subscriber] = set()
        self._regions: OrderedDict[str, str] = OrderedDict()
        self._units: OrderedDict[str, set[tuple[str, str]]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.live.follow(self._publish), name="board feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for subscriber in list(self._subscribers):
            self._disconnect(subscriber)

    def subscribe(self, user: User) -> Subscriber:
        subscriber = Subscriber(user)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def _publish(self, item: CaseEvent | Alert) -> None:
        if not self._subscribers:
            return
        update = alert_update(item) if isinstance(item, Alert) else case_update(item)
        _, body = update
        region = await self._region_of(body)
        units = await self._units_of(body)
        for subscriber in list(self._subscribers):
            if subscriber.sees(region, units):
                try:
                    subscriber.queue.put_nowait(update)
                except asyncio.QueueFull:  # too far behind: it reconnects and reloads
                    self._disconnect(subscriber)

    def _disconnect(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(None)

    async def _region_of(self, body: dict[str, Any]) -> str | None:
        case_id = body.get("case_id")
        region: str | None = body.get("region")
        if case_id is None:
            return region
        if region is None:
            region = self._regions.get(case_id)
        if region is None and any(s.user.role is not Role.ADMINISTRATOR
                                  for s in self._subscribers):
            region = await asyncio.to_thread(self._stored_region, case_id)
        if region is not None:
            self._regions[case_id] = region
            self._regions.move_to_end(case_id)
            if len(self._regions) > REGION_CACHE:
                self._regions.popitem(last=False)
        return region

    async def _units_of(self, body: dict[str, Any]) -> set[tuple[str, str]]:
        """Who serves the case (department, unit's jurisdiction): only read while a
        department desk is connected; a dispatch adds its unit as it happens."""
        case_id = body.get("case_id")
        if case_id is None or not any(s.user.role is Role.DEPARTMENT for s in self._subscribers):
            return set()
        units = self._units.get(case_id)
        if units is None:
            units = await asyncio.to_thread(self._stored_units, case_id)
        if body.get("unit_region") and body.get("department"):
            units.add((body["department"], body["unit_region"]))
        self._units[case_id] = units
        self._units.move_to_end(case_id)
        if len(self._units) > REGION_CACHE:
            self._units.popitem(last=False)
        return units

    def _stored_units(self, case_id: str) -> set[tuple[str, str]]:
        with self.store.sessions() as session:
            return reads.case_units(session, case_id)

    def _stored_region(self, case_id: str) -> str | None:
        with self.store.sessions() as session:
            return queries.case_region(session, case_id)


# -- routes -------------------------------------------------------------------------------

router = APIRouter(tags=["live board"])
RESPONSES = problem_responses(401, 403)


BoardUser = CurrentUser  # its session cookie (a browser, a wall screen) or an API key


class GridCases(BaseModel):
    code: str = Field(examples=["371502004001002"])
    name: str = Field(examples=["化机小区社区第2网格"])
    lon: float | None
    lat: float | None
    open_cases: list[dict[str, Any]] = Field(
        default_factory=list, description="case_id, title, priority, category, category_name, "
        "status, department, overdue, opened_at, clocks (deadline id → step and due, for the "
        "SLA countdowns) and assignments (assignment id → department)")


class DepartmentLoad(BaseModel):
    code: str = Field(examples=["chengguan"])
    name_zh: str = Field(examples=["城管/综合执法"])
    name_en: str = Field(examples=["urban management"])
    open: int = Field(description="assignments dispatched, accepted or in progress")
    overdue: int = Field(description="of those, past their accept or resolve deadline")


class BoardSnapshot(BaseModel):
    generated_at: datetime
    counties: list[dict[str, str]] = Field(description="code and name of each county shown")
    grids: list[GridCases]
    other_cases: list[dict[str, Any]] = Field(description="open cases not located to a grid")
    departments: list[DepartmentLoad]


_state_decoder = msgspec.json.Decoder(CaseState)


def _case_item(case: Any) -> dict[str, Any]:
    try:
        state: CaseState | None = _state_decoder.decode(case.state)
    except msgspec.DecodeError:
        state = None
    return {"case_id": case.case_id, "title": case.title, "priority": case.priority,
            "category": case.category, "category_name": case.category_name,
            "status": case.status, "department": case.lead_department,
            "region": case.region_code, "overdue": case.overdue, "opened_at": case.opened_at,
            "clocks": clock_dues(state.clocks) if state is not None else {},
            "assignments": {a.id: a.department for a in state.assignments}
            if state is not None else {}}


@router.get("/board", response_class=HTMLResponse, include_in_schema=False)
def board_page(request: Request) -> Response:
    """The live board page; signing in first (a wall screen as a display user)."""
    if session_user(request) is None:
        return RedirectResponse("/login?next=/board", status_code=303)
    page = resources.files("api").joinpath("static/board.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/board/snapshot", responses=RESPONSES)
def board_snapshot(user: BoardUser, db: Db) -> BoardSnapshot:
    """Open cases per grid and each department's open and overdue assignments.

    The board loads this, then follows `GET /board/events?key=…`: server-sent events
    (`text/event-stream`) named `ready`, `case` (a case opened: case_id, grid, region,
    priority, category, title, department), `status` (case_id, event, status when the
    event decides it, department, assignment, and `clocks`/`cleared`: the deadlines it
    starts, moves or stops) and `alert` (from `command.alerts`: kind, case_id, priority,
    title, region, department, step, due), each one JSON object."""
    scope = scope_of(user)
    grids = {g.code: GridCases(code=g.code, name=g.name, lon=g.lon, lat=g.lat)
             for g in reads.regions(db, levels=[Level.GRID], within=scope.place)}
    others: list[dict[str, Any]] = []
    for case in queries.board_open_cases(db, scope=scope, limit=SNAPSHOT_CASES):
        cell = grids.get(case.grid_code or "")
        (cell.open_cases if cell is not None else others).append(_case_item(case))
    counties = [{"code": r.code, "name": r.name}
                for r in reads.regions(db, levels=[Level.COUNTY])
                if any(code.startswith(r.code) for code in grids)]
    departments = [DepartmentLoad(code=d.code, name_zh=d.name_zh, name_en=d.name_en,
                                  open=n_open, overdue=n_overdue)
                   for d, n_open, n_overdue in queries.board_department_load(
                       db, scope=scope, now=wall_clock())]
    return BoardSnapshot(generated_at=wall_clock(), counties=counties, grids=list(grids.values()),
                         other_cases=others, departments=departments)


def _sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


# Left out of the OpenAPI document on purpose: an endless text/event-stream is nothing
# OpenAPI 3.0 can describe, and schema-driven clients and fuzzers would hang reading it.
@router.get("/board/events", include_in_schema=False)
async def board_events(request: Request, user: BoardUser) -> StreamingResponse:
    """Server-sent events for the board (``text/event-stream``): ``ready``, then
    ``case``, ``status`` and ``alert`` events, each one JSON object."""
    feed: BoardFeed = request.app.state.board
    try:
        await asyncio.wait_for(feed.ready.wait(), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        raise EngineUnavailable("the board cannot read cases.events and command.alerts "
                                "yet") from None
    subscriber = feed.subscribe(user)

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n" + _sse("ready", {"user": user.actor})
            while True:
                try:
                    update = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if update is None:
                    return
                yield _sse(*update)
        finally:
            feed.unsubscribe(subscriber)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


__all__ = ["BoardFeed", "alert_update", "case_update", "router"]
