"""From a triage decision to the case command it asks for (立案 / 关联).

Command ids derive from the event id, so a decision replayed after a crash
asks for the same command again and the case engine ignores the repeat.
"""

from __future__ import annotations

from datetime import datetime

from streams.cases.commands import Command, LinkEvent, OpenCase
from streams.records import LocatedEvent
from streams.triage import TriageDecision

TRIAGE_ACTOR = "triage"


def case_command(decision: TriageDecision, located: LocatedEvent, now: datetime) -> Command | None:
    """``OpenCase`` for a new case, ``LinkEvent`` for an event joining one or a
    camera's repeated alarm (``repeat``: folded into the case), and nothing for a
    redelivered message."""
    if decision.action == "open":
        assert decision.classification and decision.priority and decision.routing
        return OpenCase(
            case_id=decision.case_id,
            command_id=f"open:{decision.event_id}",
            actor=TRIAGE_ACTOR,
            at=now,
            event=located.event,
            location=located.location,
            classification=decision.classification,
            priority=decision.priority,
            routing=decision.routing,
            needs_verification=decision.needs_verification,
            closed_at_grid=decision.closed_at_grid,
            recurrences=decision.recurrences,
            hot_spot=decision.hot_spot,
        )
    if decision.action in ("join", "repeat"):
        repeat = decision.action == "repeat"
        return LinkEvent(
            case_id=decision.case_id,
            command_id=f"{'repeat' if repeat else 'link'}:{decision.event_id}",
            actor=TRIAGE_ACTOR,
            at=now,
            event=located.event,
            priority=decision.priority,
            repeat=repeat,
        )
    return None
