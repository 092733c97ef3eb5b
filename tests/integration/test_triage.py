"""Triage on the real broker: the contract samples through a running worker."""

from __future__ import annotations

import json

from tests.integration.samples import (
    EXPECTED,
    invalid_samples,
    produce_valid_samples,
    valid_source_ids,
)
from topics import registry
from topics.deadletter import decode_dead_letter, original_bytes


def _case_log(kafka, count: int, timeout: float = 40) -> list[dict]:
    return [json.loads(r.value) for r in kafka.read(registry.CASE_EVENTS, count=count,
                                                     timeout=timeout, settle=2)]


def _settled_case_log(kafka) -> list[dict]:
    """The case log once every valid sample is on it."""
    sources = set(valid_source_ids())
    events: list[dict] = []
    for _ in range(20):
        events = _case_log(kafka, count=len(sources), timeout=5)
        if sources <= set(_opened_and_linked(events)):
            return _case_log(kafka, count=len(events) + 1, timeout=3)
    return events


def _opened_and_linked(events: list[dict]) -> dict[str, str]:
    """source id → case id, from the case log."""
    return {
        e["event"]["source_id"]: e["case_id"]
        for e in events
        if e["type"] in ("case_opened", "event_linked")
    }


def test_valid_samples_open_the_expected_cases_and_reach_their_lead_departments(worker, kafka):
    produce_valid_samples(kafka)
    sources = valid_source_ids()
    events = _settled_case_log(kafka)
    case_of = _opened_and_linked(events)
    assert set(sources) <= set(case_of), worker.log()[-3000:]

    opened = {e["case_id"]: e for e in events if e["type"] == "case_opened"}
    for source, expected in EXPECTED.items():
        case = opened[case_of[source]]
        if case["event"]["source_id"] == source:  # the event that opened its case
            assert case["classification"]["category"] == expected["category"], source
            assert f"P{case['priority']}" == expected["priority"], source

    # the merges of expected.json
    assert case_of["CAM-37158100011320000167-20261126T101600-2"] == case_of["GR-20261126-000103"]
    assert case_of["110LD-371502-20261126-00343"] == case_of[
        "CAM-37150200011320000003-20261126T101500-1"]
    assert len(set(case_of.values())) == len(sources) - 2

    # every dispatched case reaches its lead's queue as a lead assignment
    for source, expected in EXPECTED.items():
        if expected["lead"] is None:
            continue
        messages = [json.loads(r.value) for r in kafka.read(
            registry.department_topic(expected["lead"]), count=1, timeout=20, settle=1)]
        leads = [m for m in messages if m["case_id"] == case_of[source] and m.get("role") == "lead"]
        assert leads, f"{source}: no lead assignment on dept.{expected['lead']}"
        lead = leads[0]
        assert lead["assignment_id"] and lead["department"] == expected["lead"]
        assert lead["category"] == opened[case_of[source]]["classification"]["category"]
        assert lead["category_name"] and lead["summary"] and lead["dispatched_at"]
        assert lead["priority"] in ("P1", "P2", "P3", "P4") and lead["level"]
        assert opened[case_of[source]]["event"]["event_id"] in lead["source_event_ids"]
        assert lead["deadlines"]["accept"] and lead["return_by"]
        if "grid" in expected:
            assert lead["grid"] == expected["grid"]

    # a report settled on the spot is recorded, closed at grid level, never dispatched
    settled = case_of["GR-20261126-000105"]
    assert any(e["type"] == "case_closed" and e["case_id"] == settled for e in events)
    for code in {"sifa", "township"}:
        assert all(json.loads(r.value)["case_id"] != settled
                   for r in kafka.read(registry.department_topic(code), timeout=5))

    # P1 cases reach the command center
    alerts = [json.loads(r.value) for r in kafka.read(registry.COMMAND_ALERTS, count=1,
                                                       timeout=20, settle=1)]
    p1_cases = {case_of[s] for s, x in EXPECTED.items() if x["priority"] == "P1"}
    assert p1_cases <= {a["case_id"] for a in alerts}


def test_every_invalid_sample_lands_in_the_dead_letter_topic_with_its_bytes_and_reason(
        worker, kafka):
    samples = invalid_samples()
    for topic, raw, _ in samples:
        kafka.produce(topic, raw, key=b"bad")

    letters = [decode_dead_letter(r.value) for r in kafka.read(
        registry.DEAD_LETTER, count=len(samples), timeout=40, settle=2)]

    assert len(letters) == len(samples), worker.log()[-3000:]
    by_bytes = {original_bytes(letter): letter for letter in letters}
    for topic, raw, why in samples:
        letter = by_bytes[raw]
        assert letter.source_topic == kafka.settings.topic(topic)
        assert letter.offset >= 0 and letter.partition >= 0
        assert letter.error.code and letter.error.reason, why
    # the reasons name what was wrong
    reasons = " ".join(letter.error.reason for letter in letters)
    for word in ("grid_code", "device_id", "alarm_priority", "xzqhbh", "bjlx", "Keepalive"):
        assert word in reasons, word


def test_producing_the_same_batch_twice_changes_nothing(worker, kafka):
    produce_valid_samples(kafka)
    first = _settled_case_log(kafka)
    departments_first = kafka.read("dept.gongan", count=1, timeout=10, settle=2)
    assert first

    produce_valid_samples(kafka)  # an at-least-once producer sends it all again
    # wait until the worker has consumed the second batch (its triage decisions
    # are duplicates, so nothing new may appear anywhere)
    again = _case_log(kafka, count=len(first) + 1, timeout=10)
    assert len(again) == len(first)
    assert len(kafka.read("dept.gongan", count=len(departments_first) + 1, timeout=10)) == len(
        departments_first)
