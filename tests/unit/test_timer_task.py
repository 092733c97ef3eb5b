"""The worker's timer round (``agents.timers.Timers``): arm ahead, send at the instant,
and never hold the event loop for long, with a clock the test turns."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from agents.timers import ARM_AHEAD, ARM_CHUNK, FIRE_CHUNK, Timers
from streams.cases import CaseState, FireDeadline, command_decoder, pending_deadlines
from tests.unit.test_cases import Case

FIRST_FIRES = 2  # a case opened by ``Case.open`` : its lead's and its support's claim warnings


def _open_cases(count: int) -> tuple[dict[str, CaseState], datetime]:
    """``count`` open cases as a writer holds them, and their first deadline
    (``FIRST_FIRES`` of each fall due at it)."""
    stored: dict[str, CaseState] = {}
    first: datetime | None = None
    for n in range(count):
        case = Case(f"C{n:05d}").open()
        stored[case.case_id] = case.s
        due = min(d.due for d in pending_deadlines(case.s))
        first = due if first is None else min(first, due)
    assert first is not None
    return stored, first


def _timers(stored: dict[str, CaseState]) -> Timers:
    timers = Timers()
    for case_id, state in stored.items():
        timers.track(0, case_id, state)
    return timers


def test_fires_are_armed_ahead_and_sent_at_their_instant_in_chunks() -> None:
    stored, due = _open_cases(3)
    timers = _timers(stored)
    now = due - ARM_AHEAD - timedelta(seconds=1)
    sent: list[list[tuple[float, bytes, bytes]]] = []

    async def send(fires: list[tuple[float, bytes, bytes]]) -> None:
        sent.append(fires)

    async def tick() -> int:
        return await timers.tick(lambda: now, stored.get, send)

    assert asyncio.run(tick()) == 0 and len(timers.armed) == 0  # not yet within ARM_AHEAD
    now = due - timedelta(seconds=5)
    assert asyncio.run(tick()) == 3 and len(timers.armed) == 3 * FIRST_FIRES and sent == []
    now = due
    asyncio.run(tick())
    assert [len(chunk) for chunk in sent] == [3 * FIRST_FIRES]
    assert timers.fired == 3 * FIRST_FIRES
    commands = [command_decoder.decode(record) for chunk in sent for _, _, record in chunk]
    assert all(isinstance(c, FireDeadline) and c.due == due for c in commands)
    assert {c.case_id for c in commands} == {"C00000", "C00001", "C00002"}
    assert all(due_ts == due.timestamp() for chunk in sent for due_ts, _, _ in chunk)
    assert all(len(chunk) <= FIRE_CHUNK for chunk in sent)


def test_arming_many_cases_lets_the_other_tasks_run_between_chunks() -> None:
    cases = 5 * ARM_CHUNK
    stored, due = _open_cases(cases)
    timers = _timers(stored)
    turns: list[int] = []  # how many other-task turns had passed at each case read

    async def send(fires: list[tuple[float, bytes, bytes]]) -> None:
        raise AssertionError("nothing is due yet")

    async def run() -> int:
        other_turns = 0
        stop = False

        async def other_task() -> None:  # the agents, each step one loop turn
            nonlocal other_turns
            while not stop:
                other_turns += 1
                await asyncio.sleep(0)

        def read(case_id: str) -> CaseState | None:
            turns.append(other_turns)
            return stored.get(case_id)

        other = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        try:
            return await timers.tick(lambda: due - timedelta(seconds=1), read, send)
        finally:
            stop = True
            await other

    assert asyncio.run(run()) == cases
    assert len(turns) == cases and len(timers.armed) == cases * FIRST_FIRES
    # the other task ran between every chunk of ARM_CHUNK reads, never within one
    chunks = [turns[i:i + ARM_CHUNK] for i in range(0, cases, ARM_CHUNK)]
    assert all(len(set(chunk)) == 1 for chunk in chunks)
    assert len({chunk[0] for chunk in chunks}) == len(chunks)
