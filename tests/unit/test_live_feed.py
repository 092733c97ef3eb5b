"""The live feed's records as the board sees them (topics/feed.py, api/board.py): what
decodes, what is skipped, and what of an event or an alert reaches a board."""

from __future__ import annotations

from datetime import datetime

import pytest

from api.board import alert_update, case_update
from streams.cases.events import AssignmentClaimed, YellowCard
from streams.sla import Step
from streams.zone import TZ
from topics import codecs
from topics.feed import Alert, decode_alert, decode_event

AT = datetime(2026, 11, 26, 10, 0, tzinfo=TZ)
CASE = "C20261126-371502004-1a2b3c4d"


def test_a_case_event_decodes_as_the_writer_encoded_it():
    claimed = AssignmentClaimed(case_id=CASE, seq=5, at=AT, actor="department:chengguan",
                                assignment_id="A1", department="chengguan")
    assert decode_event(codecs.encode(claimed)) == claimed


@pytest.mark.parametrize("value", [
    b"", b"not json", b"[]", b'{"type":"no_such_event","case_id":"C1"}',
    b'{"type":"assignment_claimed","case_id":"C1"}',  # fields missing
])
def test_a_record_that_is_no_case_event_is_skipped(value: bytes):
    assert decode_event(value) is None


@pytest.mark.parametrize("value", [b"", b"{", b"[1, 2]", b'"red_card"', b"null"])
def test_an_alert_that_is_no_json_object_is_skipped(value: bytes):
    assert decode_alert(value) is None


def test_an_alert_reaches_the_board_with_its_known_fields_only():
    alert = decode_alert(b'{"kind":"red_card","case_id":"C1","department":"chengguan",'
                         b'"step":"accept","reason":"","centers":[{"level":"city"}]}')
    assert alert == Alert({"kind": "red_card", "case_id": "C1", "department": "chengguan",
                           "step": "accept", "reason": "", "centers": [{"level": "city"}]})
    assert alert_update(alert) == ("alert", {"kind": "red_card", "case_id": "C1",
                                             "department": "chengguan", "step": "accept"})


def test_an_assignment_event_names_its_department_and_assignment():
    claimed = AssignmentClaimed(case_id=CASE, seq=5, at=AT, actor="department:chengguan",
                                assignment_id="A1", department="chengguan")
    kind, update = case_update(claimed)
    assert kind == "status"
    assert update == {"case_id": CASE, "seq": 5, "at": AT.isoformat(),
                      "event": "assignment_claimed", "status": None,
                      "department": "chengguan", "assignment": "A1"}


def test_a_card_on_the_case_names_no_department():
    card = YellowCard(case_id=CASE, seq=7, at=AT, actor="system", deadline_id="case.verify",
                      step=Step.VERIFY, due=AT)
    _, update = case_update(card)
    assert "department" not in update and "assignment" not in update
    assert update["event"] == "yellow_card"
