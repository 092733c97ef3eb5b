"""Triage (核实立案 + 分流交办, steps 2–3 of the closed loop) as one pure function.

``triage`` takes one validated, located event, the correlation state of its
township and the rules, and returns a :class:`TriageDecision` and the new
state. The agents turn the decision into case commands:

- ``open``: a new case ``case_id`` with ``routing``. ``routing.dispatch`` False
  means record only — closed at grid level (自办, ``closed_at_grid``) or kept
  by the police; ``needs_verification`` puts a dispatched case in the
  operators' 核实 queue before its assignments go out — except a P1, whose
  routing is then ``provisional``: the fallback lead (and 应急 where life is at
  risk) at once, while the operators verify it;
- ``join``: the event joins open case ``case_id`` (same incident, or a linked
  110 call); the case takes the more urgent priority;
- ``repeat``: a repeated camera alarm, folded into ``case_id``;
- ``duplicate``: a redelivered message; ``case_id`` is where it went before.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from streams.classify import classify, needs_verification
from streams.correlate import (
    Match,
    TownshipState,
    correlate,
    new_case_id,
    record,
    recurrences,
    state_key,
)
from streams.priority import is_hot_spot, prioritise, signals_found
from streams.records import Classification, Event, Location, Priority, PriorityDecision, Routing
from streams.route import provisional, route
from streams.triage_rules import TriageRules

_ACTIONS = {"new": "open", "join": "join", "linked": "join", "repeat": "repeat"}


class TriageDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What triage decided for one event."""

    action: str  # "open" | "join" | "repeat" | "duplicate"
    event_id: str
    case_id: str
    state_key: str  # township code whose state holds the case
    classification: Classification | None = None  # None for a duplicate
    priority: PriorityDecision | None = None  # the event's priority (None for a duplicate)
    routing: Routing | None = None  # for "open" only
    needs_verification: bool = False  # 核实 before dispatch (low classification confidence)
    closed_at_grid: bool = False  # settled on the spot (已化解): recorded, not dispatched
    hot_spot: bool = False  # same grid and category recurring (热点)
    recurrences: int = 0  # earlier cases of the same grid and category in the window
    reason: str = ""  # why it joined: "same_grid", "distance:72m", "gljjdbh:…", "alarm:…"

    @property
    def lead(self) -> str | None:
        """The lead department of a dispatched new case, else None."""
        if self.routing is None or not self.routing.dispatch:
            return None
        return self.routing.lead


def triage(
    event: Event, location: Location, state: TownshipState, rules: TriageRules, now: datetime
) -> tuple[TriageDecision, TownshipState]:
    """:func:`decide_triage`, and the township's state after it (:func:`remember`)."""
    decision = decide_triage(event, location, state, rules, now)
    return decision, remember(state, decision, event, location, rules, now)


def decide_triage(
    event: Event, location: Location, state: TownshipState, rules: TriageRules, now: datetime
) -> TriageDecision:
    """Classify, prioritise, correlate and route one event (pure; ``now`` is injected)."""
    key = state_key(location)
    seen = state.seen.get(event.event_id)
    if seen is not None:
        return TriageDecision(
            action="duplicate",
            event_id=event.event_id,
            case_id=seen[1],
            state_key=key,
            reason="seen",
        )
    classification = classify(event, rules)
    earlier = recurrences(state, location, classification.category, rules, now)
    signals = signals_found(event, rules)
    priority = prioritise(event, classification, rules, recurrences=earlier, signals=signals)
    routing = route(classification, event, location, rules, signals=signals)
    closed = routing.disposition == "closed_at_grid"
    match = (
        Match(kind="new")
        if closed
        else correlate(event, location, classification, priority, state, rules, now)
    )
    action = _ACTIONS[match.kind]
    case_id = match.case_id if match.case_id is not None else new_case_id(event, location)
    opened = action == "open"
    verify = opened and routing.dispatch and needs_verification(classification, rules)
    if verify and priority.priority is Priority.P1:  # no emergency waits for 核实
        routing = provisional(routing, event, rules)
    return TriageDecision(
        action=action,
        event_id=event.event_id,
        case_id=case_id,
        state_key=key,
        classification=classification,
        priority=priority,
        routing=routing if opened else None,
        needs_verification=verify,
        closed_at_grid=closed,
        hot_spot=location.grid_code is not None and is_hot_spot(earlier, rules),
        recurrences=earlier,
        reason=match.reason,
    )


def remember(
    state: TownshipState,
    decision: TriageDecision,
    event: Event,
    location: Location,
    rules: TriageRules,
    now: datetime,
) -> TownshipState:
    """What the township remembers of a decided event (:func:`streams.correlate.record`)."""
    if decision.action == "duplicate":
        return state
    assert decision.classification is not None and decision.priority is not None
    kind = {"open": "new", "join": "join", "repeat": "repeat"}[decision.action]
    return record(
        state,
        event,
        location,
        decision.classification,
        decision.priority,
        Match(kind=kind, case_id=None if kind == "new" else decision.case_id),
        rules,
        now,
        case_id=decision.case_id,
        joinable=decision.routing is not None and decision.routing.dispatch,
    )
