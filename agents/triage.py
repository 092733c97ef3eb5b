"""Triage (核实立案 + 分流交办): located events → case commands.

``triage.events`` is keyed by township, so this agent owns the correlation
state of whole townships (a changelog-backed table, one entry per township):
events about one incident meet here whatever source they came from, and a
redelivered message finds its earlier decision in the same state.
"""

from __future__ import annotations

import logging

import faust

from agents.app import Topics
from agents.clock import wall_clock
from observability import metrics, tracing
from settings import Settings
from streams.correlate import TownshipState
from streams.opening import case_command
from streams.records import LocatedEvent
from streams.triage import triage
from streams.triage_rules import TriageRules
from topics import codecs, registry

log = logging.getLogger(__name__)
EMPTY_STATE = TownshipState()


def register(app: faust.App, topics: Topics, settings: Settings, rules: TriageRules) -> None:
    states = app.Table(
        "triage-state",
        key_type=bytes,  # bytes in, bytes out: raw changelog, recovered as is
        value_type=bytes,
        partitions=settings.partitions,
        help="correlation state per township: open cases, recurrence history, seen event ids",
    )
    commands = topics(registry.CASE_COMMANDS)

    @app.agent(topics(registry.TRIAGE_EVENTS), name="triage")
    async def triage_agent(stream: faust.StreamT) -> None:
        async for message_event in stream.events():
            key = message_event.key
            located = codecs.decode(message_event.value, LocatedEvent)
            stored = states.get(key)
            state = codecs.unpack(stored, TownshipState) if stored else EMPTY_STATE
            now = wall_clock()
            # correlation windows, recurrence and retention run on event time, so a
            # backlog or a replay decides exactly as live traffic did
            event_time = min(now, located.event.occurred_at)
            decision, new_state = triage(located.event, located.location, state, rules,
                                         event_time)
            if new_state is not state:
                states[key] = codecs.pack(new_state)
            metrics.TRIAGE_DECISIONS.labels(decision.action).inc()
            if decision.classification is not None and decision.action == "open":
                metrics.CLASSIFICATIONS.labels(decision.classification.category,
                                               decision.classification.rule.split(":")[0]).inc()
            log.debug("triage %s → %s %s", decision.event_id, decision.action, decision.case_id,
                      extra={"case_id": decision.case_id})
            command = case_command(decision, located, now)
            if command is not None:
                await commands.send(key=command.case_id.encode(), value=codecs.encode(command),
                                    headers=metrics.with_ingest_time(tracing.outgoing_headers(),
                                                                     located.ingested_at))
