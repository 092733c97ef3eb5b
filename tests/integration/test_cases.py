"""The case engine on the real broker: commands in, the case log out, timers firing."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from agents.clock import wall_clock
from settings import SHIPPED_RULES_DIR
from streams.cases import (
    AssignmentDispatched,
    Check,
    Claim,
    Close,
    Evaluate,
    Handle,
    ReportOnSite,
    Satisfaction,
    SupportDone,
    event_decoder,
)
from tests.integration.samples import valid_messages
from topics import codecs, registry

P1_ACCEPT_SECONDS = 3


def _rules_with_p1_accept(directory: Path, seconds: float) -> Path:
    """A copy of the shipped rules with a P1 accept budget of ``seconds``."""
    rules = directory / "rules"
    shutil.copytree(SHIPPED_RULES_DIR, rules)
    sla = rules / "sla.toml"
    text = sla.read_text(encoding="utf-8")
    assert '[priority.P1]  # 特急\naccept = "5m"' in text
    sla.write_text(text.replace('[priority.P1]  # 特急\naccept = "5m"',
                                f'[priority.P1]  # 特急\naccept = "{seconds / 60}m"'),
                   encoding="utf-8")
    return rules


@pytest.fixture
def fast_rules(tmp_path: Path) -> Path:
    return _rules_with_p1_accept(tmp_path, P1_ACCEPT_SECONDS)


def _sample(source_id: str) -> tuple[str, bytes, bytes]:
    return next(m for m in valid_messages() if m[1] == source_id.encode())


def _log(kafka, case_id: str, *, until_type: str | None = None, timeout: float = 30) -> list[dict]:
    """The case's events on cases.events (waiting for ``until_type`` if given)."""
    deadline = time.monotonic() + timeout
    events: list[dict] = []
    while time.monotonic() < deadline:
        events = [json.loads(r.value) for r in kafka.read(registry.CASE_EVENTS, timeout=2)
                  if r.key == case_id.encode()]
        if until_type is None or any(e["type"] == until_type for e in events):
            break
    return events


def _open_case(kafka, source_id: str) -> tuple[str, list[dict]]:
    topic, key, value = _sample(source_id)
    kafka.produce(topic, value, key=key)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        for record in kafka.read(registry.CASE_EVENTS, timeout=2):
            event = json.loads(record.value)
            if event["type"] == "case_opened" and event["event"]["source_id"] == source_id:
                case_id = event["case_id"]
                return case_id, _log(kafka, case_id, until_type="assignment_dispatched")
    raise AssertionError(f"no case opened for {source_id}")


def _command(kafka, command) -> dict:
    """Send a command and wait for its reply on cases.replies."""
    kafka.produce(registry.CASE_COMMANDS, codecs.encode(command), key=command.case_id.encode())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for record in kafka.read(registry.CASE_REPLIES, timeout=2):
            reply = json.loads(record.value)
            if reply["command_id"] == command.command_id:
                return reply
    raise AssertionError(f"no reply to {command.command_id}")


def _ids() -> dict:
    return {"command_id": uuid.uuid4().hex, "at": wall_clock()}


def test_a_case_walks_all_six_steps_through_commands(worker, kafka):
    case_id, events = _open_case(kafka, "GR-20261126-000102")  # overflowing bins, chengguan
    typed = [event_decoder.decode(json.dumps(e)) for e in events]
    dispatched = {e.assignment.department: e.assignment.id
                  for e in typed if isinstance(e, AssignmentDispatched)}
    lead = dispatched.pop("chengguan")

    def do(command_type, **fields):
        reply = _command(kafka, command_type(case_id=case_id, **_ids(), **fields))
        assert reply["accepted"], reply
        return reply

    do(Claim, actor="dept:chengguan", assignment_id=lead, department="chengguan")
    do(ReportOnSite, actor="dept:chengguan", assignment_id=lead, department="chengguan")
    for department, assignment in dispatched.items():
        do(Claim, actor=f"dept:{department}", assignment_id=assignment, department=department)
        do(SupportDone, actor=f"dept:{department}", assignment_id=assignment,
           department=department, note="属地配合完成")
    do(Handle, actor="dept:chengguan", assignment_id=lead, department="chengguan",
       outcome="垃圾已清运")
    do(Check, actor="op:371502")
    do(Close, actor="op:371502")
    final = do(Evaluate, actor="op:371502", result=Satisfaction.SATISFIED)
    assert final["status"] == "evaluated"

    log = _log(kafka, case_id, until_type="case_evaluated")
    types = [e["type"] for e in log]
    for step in ("case_opened", "assignment_dispatched", "assignment_claimed",
                 "assignment_handled", "case_handled", "check_started", "case_closed",
                 "case_evaluated"):
        assert step in types, step
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))

    # a command the state does not allow is answered with the reason and changes nothing
    again = _command(kafka, Claim(case_id=case_id, actor="dept:chengguan", assignment_id=lead,
                                  department="chengguan", **_ids()))
    assert not again["accepted"] and again["reason"]
    assert len(_log(kafka, case_id)) == len(log)


def _red_cards(events: list[dict], step: str) -> list[dict]:
    return [e for e in events if e["type"] == "red_card" and e["step"] == step]


def test_a_deadline_fires_within_a_second_of_falling_due(start_gridlink, kafka, fast_rules):
    kafka.create_topics()
    worker = start_gridlink("worker", env={"GRIDLINK_RULES_DIR": str(fast_rules)})
    worker.wait_for_log("Worker]: Ready", timeout=90)
    case_id, _ = _open_case(kafka, "GR-20261126-000103")  # fire: P1, accept within 3 s

    events = _log(kafka, case_id, until_type="red_card", timeout=30)
    reds = _red_cards(events, "accept")
    assert reds, worker.log()[-3000:]
    lateness = (datetime.fromisoformat(reds[0]["at"])
                - datetime.fromisoformat(reds[0]["due"])).total_seconds()
    assert 0 <= lateness <= 1.0, lateness
    assert any(e["type"] == "yellow_card" and e["step"] == "accept" for e in events)
    alerts = [json.loads(r.value) for r in kafka.read(registry.COMMAND_ALERTS, count=1,
                                                       timeout=10, settle=1)]
    assert any(a["case_id"] == case_id and a["kind"] == "red_card" for a in alerts)
