"""Triage (核实立案 + 分流交办): located events → case commands.

``triage.events`` is keyed by township, so this agent owns the correlation
state of whole townships (a changelog-backed table, one entry per township):
events about one incident meet here whatever source they came from, and a
redelivered message finds its earlier decision in the same state.
"""

from __future__ import annotations

import logging
from datetime import datetime

import faust

from agents.app import Topics
from agents.batches import as_current, windows
from agents.clock import wall_clock
from agents.outbox import Outbox
from observability import metrics, tracing
from settings import Settings
from streams.cases import Command
from streams.correlate import TownshipState
from streams.opening import case_command
from streams.records import LocatedEvent
from streams.triage import triage
from streams.triage_rules import TriageRules
from topics import codecs, registry

log = logging.getLogger(__name__)
EMPTY_STATE = TownshipState()
WINDOW_EVENTS = 500  # events triaged before the townships they touched are written back …
WINDOW_SECONDS = 0.5  # … or this long after the first of them. A busy township's state
# holds up to 2,000 seen event ids; at a few events a second, a 50 ms window wrote it
# back for nearly every event, and ingest → department p99 was 101–728 ms at 58/s
# (87–88 ms with 0.5 s). Commands leave as each event is decided, not with the window.


def register(app: faust.App, topics: Topics, settings: Settings, rules: TriageRules) -> None:
    states = app.Table(
        "triage-state",
        key_type=bytes,  # bytes in, bytes out: raw changelog, recovered as is
        value_type=bytes,
        partitions=settings.partitions,
        help="correlation state per township: open cases, recurrence history, seen event ids",
    )
    commands = settings.topic(registry.CASE_COMMANDS)
    outbox = Outbox(app)
    # township → (stored bytes, their decoded state): a busy township's state holds
    # thousands of seen event ids, and decoding it for every event was a third of
    # triage's time. Used only while the table still holds exactly those bytes, so a
    # recovery or another writer's change is always read from the table.
    decoded: dict[bytes, tuple[bytes, TownshipState]] = {}

    def load(key: bytes) -> TownshipState:
        stored = states.get(key)
        if not stored:
            return EMPTY_STATE
        known = decoded.get(key)
        if known is not None and known[0] == stored:
            return known[1]
        state = codecs.unpack(stored, TownshipState)
        decoded[key] = (stored, state)
        return state

    def save(key: bytes, state: TownshipState) -> None:
        packed = codecs.pack(state)
        states[key] = packed
        decoded[key] = (packed, state)

    @app.agent(topics(registry.TRIAGE_EVENTS), name="triage")
    async def triage_agent(stream: faust.StreamT) -> None:
        # Each event is decided as it arrives; a township's state is written once per
        # window, not once per event: under load a window holds hundreds of events of
        # the same few townships. Its events are acked (and their offsets committed)
        # only after the states are written.
        async for window in windows(stream, WINDOW_EVENTS, WINDOW_SECONDS):
            touched: dict[bytes, tuple[faust.EventT, TownshipState]] = {}
            async for message_event in window:
                with tracing.span_for("triage", message_event.headers):
                    key = message_event.key
                    known = touched.get(key)
                    state = known[1] if known else load(key)
                    new_state, command, ingested_at = decide(message_event, state)
                    if new_state is not state:
                        touched[key] = (message_event, new_state)
                    if command is not None:
                        await outbox.send(commands, command.case_id.encode(),
                                          codecs.encode(command),
                                          metrics.with_ingest_time(tracing.outgoing_headers(),
                                                                   ingested_at))
            for key, (last_event, state) in touched.items():
                with as_current(last_event):
                    save(key, state)

    def decide(message_event: faust.EventT, state: TownshipState
               ) -> tuple[TownshipState, Command | None, datetime]:
        """One located event against its township's state: the new state, the case
        command to send (if any) and the event's ingest time."""
        located = codecs.decode(message_event.value, LocatedEvent)
        now = wall_clock()
        # correlation windows, recurrence and retention run on event time, so a
        # backlog or a replay decides exactly as live traffic did
        event_time = min(now, located.event.occurred_at)
        decision, new_state = triage(located.event, located.location, state, rules, event_time)
        metrics.TRIAGE_DECISIONS.labels(decision.action).inc()
        if decision.classification is not None and decision.action == "open":
            metrics.CLASSIFICATIONS.labels(decision.classification.category,
                                           decision.classification.rule.split(":")[0]).inc()
        log.debug("triage %s → %s %s", decision.event_id, decision.action, decision.case_id,
                  extra={"case_id": decision.case_id})
        return new_state, case_command(decision, located, now), located.ingested_at
