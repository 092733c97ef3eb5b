"""The case engine on the real broker: commands in, the case log out, timers firing."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from clock import wall_clock
from streams.cases import (
    AssignmentDispatched,
    Check,
    Claim,
    Close,
    Escalate,
    Evaluate,
    Handle,
    ReportOnSite,
    Reroute,
    Return,
    Satisfaction,
    SupportDone,
    event_decoder,
)
from streams.records import Routing
from tests.builders import rules_with
from tests.integration.samples import valid_messages
from topics import codecs, registry

P1_ACCEPT_SECONDS = 3


def _rules_with_p1_accept(directory: Path, seconds: float) -> Path:
    """A copy of the shipped rules with a P1 accept budget of ``seconds``."""
    return rules_with(directory, "sla.toml", '[priority.P1]  # 特急\nverify = "3m"\naccept = "5m"',
                      f'[priority.P1]  # 特急\nverify = "3m"\naccept = "{seconds / 60}m"')


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
        events = [json.loads(r.value) for r in kafka.read(registry.CASE_EVENTS)
                  if r.key == case_id.encode()]
        if until_type is None or any(e["type"] == until_type for e in events):
            break
        time.sleep(0.2)
    return events


def _open_case(kafka, source_id: str) -> tuple[str, list[dict]]:
    topic, key, value = _sample(source_id)
    kafka.produce(topic, value, key=key)

    def opens_it(record) -> bool:
        event = json.loads(record.value)
        return event["type"] == "case_opened" and event["event"]["source_id"] == source_id

    opened = kafka.wait_for(registry.CASE_EVENTS, opens_it, timeout=40)
    case_id = json.loads(opened.value)["case_id"]
    return case_id, _log(kafka, case_id, until_type="assignment_dispatched")


def _command(kafka, command) -> dict:
    """Send a command and wait for its reply on cases.replies."""
    kafka.produce(registry.CASE_COMMANDS, codecs.encode(command), key=command.case_id.encode())
    return _reply(kafka, command.command_id)


def _reply(kafka, command_id: str) -> dict:
    record = kafka.wait_for(registry.CASE_REPLIES,
                            lambda r: json.loads(r.value)["command_id"] == command_id)
    return json.loads(record.value)


def _ids() -> dict:
    return {"command_id": uuid.uuid4().hex, "at": wall_clock()}


def _assignments(events: list[dict]) -> dict[str, str]:
    """department → assignment id, from the dispatch events."""
    typed = [event_decoder.decode(json.dumps(e)) for e in events]
    return {e.assignment.department: e.assignment.id
            for e in typed if isinstance(e, AssignmentDispatched)}


def test_a_case_walks_all_six_steps_through_commands(worker, kafka):
    case_id, events = _open_case(kafka, "GR-20261126-000102")  # overflowing bins, chengguan
    dispatched = _assignments(events)
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


def test_a_deadline_due_while_no_worker_runs_fires_once_after_restart(start_gridlink, kafka,
                                                                       tmp_path):
    budget = 12
    kafka.create_topics()
    env = {"GRIDLINK_RULES_DIR": str(_rules_with_p1_accept(tmp_path, budget))}
    first = start_gridlink("worker", env=env)
    first.wait_for_log("Worker]: Ready", timeout=90)
    case_id, events = _open_case(kafka, "GR-20261126-000103")
    dispatched_at = datetime.fromisoformat(events[-1]["at"])
    assert first.stop() == 0  # graceful stop, before the accept deadline
    assert not _red_cards(_log(kafka, case_id), "accept"), "fired before the worker stopped"

    # the deadline falls due while no worker runs
    while wall_clock() < dispatched_at + timedelta(seconds=budget + 1):
        time.sleep(0.5)
    second = start_gridlink("worker", env=env)
    second.wait_for_log("Worker]: Ready", timeout=90)

    _log(kafka, case_id, until_type="red_card", timeout=40)
    time.sleep(3)  # room for a second, wrong fire
    reds = _red_cards(_log(kafka, case_id), "accept")
    assert reds, second.log()[-3000:]
    per_deadline = Counter(red["deadline_id"] for red in reds)
    assert set(per_deadline.values()) == {1}, per_deadline


def test_a_second_return_goes_to_a_ruling_at_the_common_superior_level(worker, kafka):
    case_id, events = _open_case(kafka, "GR-20261126-000102")  # township 371502004
    first = _command(kafka, Return(case_id=case_id, actor="dept:chengguan",
                                   assignment_id=_assignments(events)["chengguan"],
                                   department="chengguan", reason_code="not_ours",
                                   note="属住建管辖", **_ids()))
    assert first["accepted"], first
    rerouted = _command(kafka, Reroute(case_id=case_id, actor="op:371502004", reason="改派住建",
                                       routing=Routing(lead="zhujian"), **_ids()))
    assert rerouted["accepted"], rerouted
    log = _log(kafka, case_id, until_type="assignment_dispatched")
    zhujian = _assignments(log)["zhujian"]
    second = _command(kafka, Return(case_id=case_id, actor="dept:zhujian", assignment_id=zhujian,
                                    department="zhujian", reason_code="not_ours",
                                    suggested_region="371503001", **_ids()))
    assert second["accepted"], second

    log = _log(kafka, case_id, until_type="ruling_requested")
    rulings = [e for e in log if e["type"] == "ruling_requested"]
    assert len(rulings) == 1
    # 371502004 (the case's township) and 371503001 (another county's) meet at the city
    assert rulings[0]["region"] == "371500"
    alerts = [json.loads(r.value) for r in kafka.read(registry.COMMAND_ALERTS, count=1,
                                                       timeout=10, settle=1)]
    assert any(a["case_id"] == case_id for a in alerts)


def test_a_claim_racing_an_escalation_ends_consistent(worker, kafka):
    case_id, events = _open_case(kafka, "GR-20261126-000102")
    lead = _assignments(events)["chengguan"]
    claim = Claim(case_id=case_id, actor="dept:chengguan", assignment_id=lead,
                  department="chengguan", **_ids())
    escalate = Escalate(case_id=case_id, actor="op:371502", reason="媒体关注", **_ids())
    for command in (claim, escalate):  # sent together, no waiting in between
        kafka.producer.send(kafka.settings.topic(registry.CASE_COMMANDS),
                            key=case_id.encode(), value=codecs.encode(command))
    kafka.producer.flush()

    replies = {c.command_id: _reply(kafka, c.command_id) for c in (claim, escalate)}
    assert replies[claim.command_id]["accepted"] and replies[escalate.command_id]["accepted"]

    log = _log(kafka, case_id, until_type="escalated")
    types = [e["type"] for e in log]
    assert "assignment_claimed" in types and "escalated" in types
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))  # one writer, no gaps


def test_an_unreadable_case_command_is_dead_lettered_with_its_bytes_and_a_reason(worker, kafka):
    bad = b'{"type": "claim", "case_id": "C1"'  # cut short
    wrong_key = codecs.encode(Claim(case_id="C-A", command_id=f"k-{uuid.uuid4().hex[:6]}",
                                    actor="desk", at=wall_clock(), assignment_id="A-1",
                                    department="chengguan"))
    kafka.produce(registry.CASE_COMMANDS, bad, key=b"C1")
    kafka.produce(registry.CASE_COMMANDS, wrong_key, key=b"C-B")

    letters = {letter["key"]: letter for letter in (
        json.loads(r.value) for r in kafka.read(registry.DEAD_LETTER, count=2))}
    assert set(letters) == {"C1", "C-B"}
    assert {letter["error"]["code"] for letter in letters.values()} == {"invalid_command"}
    assert letters["C-B"]["error"]["reason"].startswith("the record key")
    assert base64.b64decode(letters["C1"]["raw_base64"]) == bad  # the bytes, unchanged
    assert {letter["source_topic"] for letter in letters.values()} == {
        kafka.settings.topic(registry.CASE_COMMANDS)}
