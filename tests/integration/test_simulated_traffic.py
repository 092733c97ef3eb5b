"""Simulated traffic (``gridlink simulate``) through a running worker, checked
against the outcome file the simulator writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from topics import registry
from topics.deadletter import decode_dead_letter


def test_simulated_traffic_ends_where_the_simulator_expects(worker, kafka, gridlink_env, tmp_path):
    out = tmp_path / "sent.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "simulate", "--count", "400", "--rate", "0",
         "--seed", "7", "--malformed", "0.05", "--duplicates", "0.03", "--out", str(out),
         "--quiet"],
        env={**gridlink_env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    sent = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(sent) == 400 and not any("delivery_error" in m for m in sent)
    expected = [m["expected"] for m in sent]
    dead = [e for e in expected if e["outcome"] == "dead_letter"]
    cases = [e for e in expected if e["outcome"] == "case" and not e["repeat_of"]]
    assert dead and cases
    # a camera alarm and its repeats are one event: whichever of them triage sees
    # first (they may sit in different partitions) stands for the group
    alarm_groups: dict[str, set[str]] = {}
    for e in expected:
        if e["outcome"] == "case":
            alarm_groups.setdefault(e["repeat_of"] or e["source_id"], set()).add(e["source_id"])

    # every broken message is dead-lettered, with the error the simulator expects
    letters = [decode_dead_letter(r.value) for r in kafka.read(
        registry.DEAD_LETTER, count=len(dead), timeout=60, settle=2)]
    assert len(letters) == len(dead), worker.log()[-3000:]
    assert sorted(letter.error.code for letter in letters) == sorted(e["error"] for e in dead)

    # every valid event reaches the case log, opening a case or joining one
    def missing(seen: dict) -> list[str]:
        return [root for root, group in alarm_groups.items() if not group & set(seen)]

    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and missing(seen):
        for record in kafka.read(registry.CASE_EVENTS):
            event = json.loads(record.value)
            if event["type"] in ("case_opened", "event_linked"):
                seen[event["event"]["source_id"]] = event
        time.sleep(0.5)
    assert not missing(seen), missing(seen)[:5]

    # and the events that opened cases got the category the simulator meant
    opened = [(e, seen[e["source_id"]]) for e in cases
              if e["source_id"] in seen and seen[e["source_id"]]["type"] == "case_opened"]
    assert len(opened) >= 0.9 * len(cases)
    agree = sum(event["classification"]["category"] == e["category"] for e, event in opened)
    assert agree >= 0.95 * len(opened), f"{agree}/{len(opened)}"
    # redelivered copies opened nothing twice
    assert len({event["case_id"] for _, event in opened}) == len(opened)
