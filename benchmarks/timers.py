"""Durable timers at scale: memory, index rebuild and firing lateness, without Kafka.

For each size N (``--sizes``, default 100,000 and 1,000,000; each in a fresh
interpreter so resident memory is measured cleanly), the benchmark

1. makes open cases with the real engine: varied inbound messages (the contract
   samples, see ``benchmarks/triage.py``) go through parse, locate and triage
   into ``OpenCase`` commands, which ``streams.cases.decide``/``apply`` open;
   some are then claimed or put in progress, so states differ. Only cases with a
   running SLA clock are kept. To reach N quickly, those few thousand distinct
   states are **cloned** with distinct case ids and every instant shifted
   (``msgspec.structs.replace``) so that their next wake-ups land where the
   lateness test wants them. Each is stored as ``topics.codecs.pack(state)`` in a
   dict of bytes → bytes, what a writer's memory store holds for its cases;
2. measures resident memory (VmRSS) before and after filling the dict, and the
   packed bytes per case;
3. times the index rebuild — the loop of ``Timers.rebuild`` in ``agents/timers.py``
   (unpack every state's clocks, ``Timers.track`` → ``next_wakeup`` →
   ``DeadlineIndex.index_case``, yielding every ``REBUILD_CHUNK`` cases), and the
   longest slice it holds the event loop between two yields;
4. runs the timer task's ``Timers.tick`` (``agents.timers``: arm what falls due
   within ``ARM_AHEAD`` — pop, unpack, encode ``FireDeadline`` — and send what is
   due, here to an in-memory outbox) on one asyncio loop, while a background coroutine does
   the writer's per-command work (decode, unpack, ``decide``, ``apply``, pack, ``Timers.track``,
   encode events and reply) at ``--load-interval-ms`` (default one command every
   0.5 ms) and a probe measures loop lag. The wake-ups of ``--in-window`` cases
   (default: all N) are spread uniformly over ``--window`` seconds, and
   ``--burst`` of them fall due at one instant in the middle; the rest are due
   hours later and only sit in the heaps. Lateness of a fire = the clock when the
   fire is sent minus its due time. The clock is the wall clock shifted by a
   constant, so the window starts a second after the loop does (the states'
   instants are fixed when they are made).

Usage, from the repository root::

    .venv/bin/python benchmarks/timers.py                          # 100k and 1M
    .venv/bin/python benchmarks/timers.py --sizes 200000 --in-window 50000 --json t.json
    .venv/bin/python benchmarks/timers.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import msgspec
from msgspec.structs import replace

from agents.timers import REBUILD_CHUNK, TIMER_TICK_SECONDS, Timers
from benchmarks.triage import EMPTY_STATE, RULES_DIR, located_events, world
from streams.calendar import WorkCalendar, load_calendar
from streams.cases import (
    CaseClocks,
    CasePolicy,
    CaseState,
    alert_messages,
    apply,
    command_decoder,
    decide,
    department_messages,
    load_case_policy,
    next_wakeup,
)
from streams.cases import commands as cmd
from streams.cases.replies import CaseReply
from streams.cases.state import AssignmentStatus
from streams.correlate import TownshipState
from streams.errors import TransitionRejected
from streams.opening import case_command
from streams.triage import triage
from topics import codecs

PARTITIONS = 4  # the default GRIDLINK_PARTITIONS of cases.commands
BASE = datetime.fromisoformat("2026-11-26T10:00:00+08:00")  # start of the firing window
LEAD_IN_SECONDS = 1.0  # the loop starts this long before the window


# -- making the cases -----------------------------------------------------------------------


class Engine:
    """The case engine with the shipped rules, a counter for command ids, and the log of
    every case it ran (``logs``: case id → its events)."""

    def __init__(self) -> None:
        self.policy: CasePolicy = load_case_policy(RULES_DIR)
        self.calendar: WorkCalendar = load_calendar(RULES_DIR)
        self.n = 0
        self.logs: dict[str, list] = {}

    def run(self, state: CaseState | None, command: cmd.Command,
            now: datetime) -> tuple[CaseState | None, list]:
        events = decide(state, command, self.policy, self.calendar, now)
        for event in events:
            state = apply(state, event)
        self.logs.setdefault(command.case_id, []).extend(events)
        return state, events

    def run_open(self, state: CaseState, command: cmd.Command, now: datetime) -> CaseState:
        """:meth:`run` for a command that leaves the case open (a claim, progress)."""
        after, _ = self.run(state, command, now)
        if after is None:
            raise RuntimeError(f"{type(command).__name__} ended case {state.case_id}")
        return after

    def command(self, kind: type[cmd.Command], case_id: str, at: datetime, **fields) -> cmd.Command:
        self.n += 1
        return kind(case_id=case_id, command_id=f"bench-{self.n}", actor="bench", at=at, **fields)


def open_case_commands(count: int, *, seed: int) -> list[cmd.OpenCase]:
    """``OpenCase`` commands as the triage agent makes them from varied inbound messages."""
    _, rules = world()
    events = int(count * 1.5) + 50  # about 85 % of messages open a case
    while True:
        states: dict[str, TownshipState] = {}
        out: list[cmd.OpenCase] = []
        for located in located_events(events, seed=seed):
            key = located.partition_key
            decision, states[key] = triage(located.event, located.location,
                                           states.get(key, EMPTY_STATE), rules,
                                           located.event.occurred_at)
            command = case_command(decision, located, located.ingested_at)
            if isinstance(command, cmd.OpenCase) and not command.closed_at_grid:
                out.append(command)
        if len(out) >= count:
            break
        events *= 2
    return out[:count]


def advance(engine: Engine, state: CaseState, rng: random.Random) -> CaseState:
    """Maybe move a dispatched case on: every assignment claimed, maybe the lead at work."""
    roll = rng.random()
    if roll < 0.5:
        return state
    at = state.opened_at + timedelta(minutes=rng.randint(3, 25))
    for assignment in state.assignments:
        if assignment.status is AssignmentStatus.DISPATCHED:
            claim = engine.command(cmd.Claim, state.case_id, at, assignment_id=assignment.id,
                                   department=assignment.department)
            try:
                state = engine.run_open(state, claim, at)
            except TransitionRejected:
                return state
    lead = state.lead
    if roll > 0.8 and lead is not None:
        progress = engine.command(cmd.Progress, state.case_id, at + timedelta(minutes=30),
                                  assignment_id=lead.id, department=lead.department,
                                  note="正在现场处置")
        with contextlib.suppress(TransitionRejected):
            state = engine.run_open(state, progress, at + timedelta(minutes=30))
    return state


def distinct_states(engine: Engine, count: int, *, seed: int) -> list[CaseState]:
    """``count`` distinct open cases with a running clock, driven through the engine."""
    rng = random.Random(seed)
    out: list[CaseState] = []
    for command in open_case_commands(int(count * 1.3) + 10, seed=seed):
        state, _ = engine.run(None, command, command.at)
        assert state is not None
        state = advance(engine, state, rng)
        if next_wakeup(state) is not None:
            out.append(state)
        if len(out) == count:
            break
    return out


def shifted(state: CaseState, delta: timedelta, case_id: str) -> CaseState:
    """A copy of ``state`` under ``case_id`` with every instant moved by ``delta``."""
    def move(at: datetime | None) -> datetime | None:
        return None if at is None else at + delta

    clocks = tuple(
        replace(c, start=c.start + delta, due=c.due + delta, warn=move(c.warn),
                over=move(c.over), paused=move(c.paused))
        for c in state.clocks
    )
    assignments = tuple(
        replace(a, dispatched_at=a.dispatched_at + delta, return_by=a.return_by + delta)
        for a in state.assignments
    )
    return replace(state, case_id=case_id, opened_at=state.opened_at + delta,
                   suspended_at=move(state.suspended_at), assignments=assignments, clocks=clocks)


def shifted_event(event: Any, delta: timedelta, case_id: str) -> Any:
    """A copy of a case event under ``case_id`` with every instant in it moved by ``delta``
    (folding such copies gives :func:`shifted` states)."""
    return replace(_moved(event, delta), case_id=case_id)


def _moved(value: Any, delta: timedelta) -> Any:
    if isinstance(value, datetime):
        return value + delta
    if isinstance(value, tuple):
        return tuple(_moved(item, delta) for item in value)
    if isinstance(value, msgspec.Struct):
        changes = {name: _moved(getattr(value, name), delta)
                   for name in value.__struct_fields__}
        return replace(value, **{name: new for name, new in changes.items()
                                 if new is not getattr(value, name)})
    return value


def wakeup_plan(n: int, *, in_window: int, window_s: float, burst: int,
                rng: random.Random) -> list[datetime]:
    """Next wake-up of each of ``n`` cases: ``burst`` at mid-window, the rest of
    ``in_window`` spread over the window, the others hours after it."""
    burst_at = BASE + timedelta(seconds=window_s / 2)
    plan = [burst_at] * burst
    plan += [BASE + timedelta(seconds=rng.uniform(0, window_s)) for _ in range(in_window - burst)]
    plan += [BASE + timedelta(seconds=window_s + rng.uniform(3600, 72 * 3600))
             for _ in range(n - in_window)]
    rng.shuffle(plan)
    return plan


def partition_of(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS


# -- measuring ------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size now (VmRSS), or the peak where /proc is missing."""
    gc.collect()
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"count": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"count": len(ordered), "p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


async def rebuild(cases: dict[bytes, bytes], recovered: dict[bytes, int],
                  active: set[int]) -> tuple[Timers, float]:
    """The loop of ``Timers.rebuild`` over a memory store, partition by partition; returns
    the index and the longest slice (s)."""
    timers = Timers()
    longest, slice_started = 0.0, time.perf_counter()
    for partition in sorted(active):
        keys = [key for key, p in recovered.items() if p == partition]
        for start in range(0, len(keys), REBUILD_CHUNK):
            for key in keys[start:start + REBUILD_CHUNK]:
                timers.track(partition, key.decode(), codecs.unpack(cases[key], CaseClocks))
            longest = max(longest, time.perf_counter() - slice_started)
            await asyncio.sleep(0)
            slice_started = time.perf_counter()
    return timers, max(longest, time.perf_counter() - slice_started)


class Outbox:
    """Stands in for the ``cases.commands`` producer: keeps what was sent."""

    def __init__(self) -> None:
        self.sent = 0
        self.bytes = 0

    async def send_burst(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.sent += len(records)
        self.bytes += sum(len(key) + len(value) for key, value in records)


class Background:
    """The writer's per-command work (no Kafka), paced at one command per interval."""

    def __init__(self, engine: Engine, opens: Sequence[cmd.OpenCase], cases: dict[bytes, bytes],
                 timers: Timers, clock: Callable[[], datetime], interval_s: float) -> None:
        self.engine, self.opens, self.cases, self.timers = engine, opens, cases, timers
        self.clock, self.interval_s = clock, interval_s
        self.queue: list[bytes] = []
        self.done = 0
        self.busy_s = 0.0
        self.n = 0

    def _next_command(self) -> bytes:
        if not self.queue:  # a new case: open it, then its claims follow
            self.n += 1
            template = self.opens[self.n % len(self.opens)]
            case_id = f"{template.case_id[:-8]}b{self.n:07x}"
            self.queue.append(codecs.encode(replace(template, case_id=case_id,
                                                    command_id=f"open:bg{self.n}")))
        return self.queue.pop(0)

    def handle(self, raw: bytes) -> None:
        """What the writer does for one command, with the sends encoded only."""
        command = command_decoder.decode(raw)
        key = command.case_id.encode()
        stored = self.cases.get(key)
        state = codecs.unpack(stored, CaseState) if stored else None
        now = self.clock()
        try:
            events = decide(state, command, self.engine.policy, self.engine.calendar, now)
        except TransitionRejected as rejected:
            codecs.encode(CaseReply(case_id=command.case_id, command_id=command.command_id,
                                    accepted=False, reason=rejected.reason))
            self.timers.track(partition_of(key), command.case_id, state)
            return
        for event in events:
            state = apply(state, event)
        if events and state is not None:
            self.cases[key] = codecs.pack(state)
            for event in events:
                codecs.encode(event)
            for _, payload in department_messages(state, events):
                codecs.encode(payload)
            for payload in alert_messages(state, events):
                codecs.encode(payload)
            if isinstance(command, cmd.OpenCase):  # the departments will claim it next
                for a in state.assignments:
                    if a.status is AssignmentStatus.DISPATCHED:
                        self.queue.append(codecs.encode(self.engine.command(
                            cmd.Claim, state.case_id, now, assignment_id=a.id,
                            department=a.department)))
        self.timers.track(partition_of(key), command.case_id, state)
        codecs.encode(CaseReply(case_id=command.case_id, command_id=command.command_id,
                                accepted=True, seqs=tuple(e.seq for e in events),
                                status=state.status if state else None))

    async def run(self, stop: asyncio.Event) -> None:
        started = time.perf_counter()
        while not stop.is_set():
            owed = int((time.perf_counter() - started) / self.interval_s) - self.done
            if owed <= 0:
                await asyncio.sleep(self.interval_s)
                continue
            t = time.perf_counter()
            self.handle(self._next_command())
            self.busy_s += time.perf_counter() - t
            self.done += 1
            await asyncio.sleep(0)  # the agent yields between messages


async def lag_probe(stop: asyncio.Event, lags: list[float], period_s: float = 0.01) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(period_s)
        lags.append(time.perf_counter() - t - period_s)


async def fire_window(timers: Timers, cases: dict[bytes, bytes], *, expected_cases: int,
                      window_s: float, burst_at: datetime, engine: Engine,
                      opens: Sequence[cmd.OpenCase], load_interval_s: float | None) -> dict:
    """``fire_due_deadlines`` against the index, under load, until the window has fired."""
    offset = (BASE - timedelta(seconds=LEAD_IN_SECONDS)) - datetime.now(BASE.tzinfo)

    def clock() -> datetime:  # the wall clock, shifted so the window starts in a second
        return datetime.now(BASE.tzinfo) + offset

    outbox = Outbox()
    stop = asyncio.Event()
    lags: list[float] = []
    late_spread: list[float] = []
    late_burst: list[float] = []
    popped = 0
    burst_ts = burst_at.timestamp()
    background = None
    tasks = [asyncio.create_task(lag_probe(stop, lags))]
    if load_interval_s:
        background = Background(engine, opens, cases, timers, clock, load_interval_s)
        tasks.append(asyncio.create_task(background.run(stop)))
    give_up = BASE + timedelta(seconds=window_s + 120)
    started = time.perf_counter()

    async def send(fires: list[tuple[float, bytes, bytes]]) -> None:
        await outbox.send_burst([(key, record) for _, key, record in fires])
        sent_at = clock().timestamp()
        for due_ts, _, _ in fires:
            (late_burst if due_ts == burst_ts else late_spread).append(sent_at - due_ts)

    def case_of(case_id: str) -> CaseState | None:
        raw = cases.get(case_id.encode())
        return codecs.unpack(raw, CaseState) if raw else None

    # the timer task of agents/timers.py, with the clock and the producer above, until
    # every case of the window is armed and every armed fire sent
    while (popped < expected_cases or len(timers.armed)) and clock() < give_up:
        popped += await timers.tick(clock, case_of, send)
        await asyncio.sleep(timers.sleep_seconds(clock()))

    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*tasks)
    every = late_spread + late_burst
    return {
        "cases_popped": popped,
        "cases_expected": expected_cases,
        "fires": len(every),
        "run_s": elapsed,
        "lateness_ms": {k: v * 1000 if k != "count" else v
                        for k, v in percentiles(every).items()},
        "lateness_spread_ms": {k: v * 1000 if k != "count" else v
                               for k, v in percentiles(late_spread).items()},
        "lateness_burst_ms": {k: v * 1000 if k != "count" else v
                              for k, v in percentiles(late_burst).items()},
        "loop_lag_ms": {k: v * 1000 if k != "count" else v for k, v in percentiles(lags).items()},
        "background_per_s": background.done / elapsed if background else 0.0,
        "background_us_per_command": (background.busy_s / background.done * 1e6
                                      if background and background.done else 0.0),
        "outbox_sent": outbox.sent,
    }


def _first_wakeup(template: CaseState) -> datetime:
    """A template's next wake-up: each is an open case with a running clock."""
    wake = next_wakeup(template)
    if wake is None:
        raise RuntimeError(f"template {template.case_id} has no running clock")
    return wake


def measure_one(n: int, *, distinct: int, in_window: int, window_s: float, burst: int,
                load_interval_ms: float, seed: int) -> dict:
    """Every figure for one size N (call in a fresh process for clean RSS figures)."""
    rng = random.Random(seed)
    engine = Engine()
    t = time.perf_counter()
    templates = distinct_states(engine, distinct, seed=seed)
    opens = open_case_commands(200, seed=seed + 1000)  # for the background load
    made_s = time.perf_counter() - t
    first = [_first_wakeup(s) for s in templates]

    plan = wakeup_plan(n, in_window=in_window, window_s=window_s, burst=burst, rng=rng)
    gc.collect()
    rss_empty = rss_bytes()
    t = time.perf_counter()
    cases: dict[bytes, bytes] = {}
    for i, wake in enumerate(plan):
        k = i % len(templates)
        template = templates[k]
        case_id = f"{template.case_id[:-8]}{i:08x}"
        cases[case_id.encode()] = codecs.pack(shifted(template, wake - first[k], case_id))
    fill_s = time.perf_counter() - t
    rss_filled = rss_bytes()
    packed = sum(len(v) for v in cases.values())

    recovered = {key: partition_of(key) for key in cases}
    rss_before_index = rss_bytes()
    t = time.perf_counter()
    timers, longest_slice = asyncio.run(rebuild(cases, recovered, set(range(PARTITIONS))))
    rebuild_s = time.perf_counter() - t
    rss_indexed = rss_bytes()
    if len(timers.index) != n:
        raise SystemExit(f"the index holds {len(timers.index)} entries, expected {n}")
    del recovered

    firing = asyncio.run(fire_window(
        timers, cases, expected_cases=in_window, window_s=window_s,
        burst_at=BASE + timedelta(seconds=window_s / 2), engine=engine, opens=opens,
        load_interval_s=load_interval_ms / 1000 if load_interval_ms > 0 else None))
    return {
        "n": n,
        "distinct_states": len(templates),
        "cloned": n - min(n, len(templates)),
        "templates_made_s": made_s,
        "fill_s": fill_s,
        "packed_bytes_per_case": packed / n,
        "rss_empty_mib": rss_empty / 2**20,
        "rss_filled_mib": rss_filled / 2**20,
        "rss_per_case_bytes": (rss_filled - rss_empty) / n,
        "index_rss_per_case_bytes": (rss_indexed - rss_before_index) / n,
        "rss_indexed_mib": rss_indexed / 2**20,
        "rebuild_s": rebuild_s,
        "rebuild_cases_per_s": n / rebuild_s,
        "rebuild_longest_slice_ms": longest_slice * 1000,
        "rebuild_chunk": REBUILD_CHUNK,
        "in_window": in_window,
        "window_s": window_s,
        "burst": burst,
        "load_interval_ms": load_interval_ms,
        "timer_tick_s": TIMER_TICK_SECONDS,
        "firing": firing,
    }


# -- output ---------------------------------------------------------------------------------


def report(results: Sequence[dict]) -> None:
    first = results[0]
    print(f"open cases: {first['distinct_states']:,} distinct states made by the engine "
          f"(parse → locate → triage → OpenCase → decide/apply, some claimed or in progress) "
          f"in {first['templates_made_s']:.1f} s; the rest are clones of them with distinct "
          "case ids and shifted instants (msgspec.structs.replace)")
    print(f"firing: {first['in_window']:,}-case window over {first['window_s']:g} s with a "
          f"burst of {first['burst']:,} at one instant; background load one case command every "
          f"{first['load_interval_ms']:g} ms; TIMER_TICK_SECONDS={first['timer_tick_s']}, "
          f"REBUILD_CHUNK={first['rebuild_chunk']:,}")
    print()
    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("cloned from distinct states", lambda r: f"{r['cloned']:,} of {r['n']:,}"),
        ("packed state, bytes/case", lambda r: f"{r['packed_bytes_per_case']:,.0f}"),
        ("RSS of the store, bytes/case", lambda r: f"{r['rss_per_case_bytes']:,.0f}"),
        ("RSS of the store, MiB", lambda r: f"{(r['rss_filled_mib'] - r['rss_empty_mib']):,.0f}"),
        ("RSS of the index, bytes/case", lambda r: f"{r['index_rss_per_case_bytes']:,.0f}"),
        ("RSS of the process at the end, MiB", lambda r: f"{r['rss_indexed_mib']:,.0f}"),
        ("index rebuild, s", lambda r: f"{r['rebuild_s']:.2f}"),
        ("index rebuild, cases/s", lambda r: f"{r['rebuild_cases_per_s']:,.0f}"),
        ("rebuild: longest slice between yields, ms",
         lambda r: f"{r['rebuild_longest_slice_ms']:,.0f}"),
        ("fires (deadlines) / cases popped",
         lambda r: f"{r['firing']['fires']:,} / {r['firing']['cases_popped']:,}"),
        ("firing run, s", lambda r: f"{r['firing']['run_s']:.1f}"),
        ("lateness p50 / p99 / max, ms (all)", lambda r: _pct(r["firing"]["lateness_ms"])),
        ("  spread over the window", lambda r: _pct(r["firing"]["lateness_spread_ms"])),
        ("  the burst", lambda r: _pct(r["firing"]["lateness_burst_ms"])),
        ("loop lag p50 / p99 / max, ms", lambda r: _pct(r["firing"]["loop_lag_ms"])),
        ("background commands/s (µs each)",
         lambda r: f"{r['firing']['background_per_s']:,.0f} "
                   f"({r['firing']['background_us_per_command']:,.0f})"),
    ]
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'N open cases':<{width}}" + "".join(f"{r['n']:>30,}" for r in results))
    for name, cell in rows:
        print(f"{name:<{width}}" + "".join(f"{cell(r):>30}" for r in results))


def _pct(p: dict) -> str:
    return f"{p['p50']:,.1f} / {p['p99']:,.1f} / {p['max']:,.1f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated numbers of open cases (default 100000,1000000)")
    parser.add_argument("--distinct", type=int, default=3000,
                        help="distinct states made by the engine before cloning (default 3000)")
    parser.add_argument("--in-window", type=int, default=None,
                        help="cases whose next wake-up falls in the window (default: all N)")
    parser.add_argument("--window", type=float, default=60.0,
                        help="seconds over which those wake-ups are spread (default 60)")
    parser.add_argument("--burst", type=int, default=20_000,
                        help="of those, how many fall due at one instant (default 20000)")
    parser.add_argument("--load-interval-ms", type=float, default=0.5,
                        help="one background case command per this many ms; 0 = none "
                             "(default 0.5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20000 cases, 300 distinct, 5 s window, burst 4000")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.distinct, args.window = "20000", min(args.distinct, 300), 5.0
        args.burst = min(args.burst, 4000)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    def params(n: int) -> dict:
        in_window = n if args.in_window is None else min(args.in_window, n)
        return {"distinct": min(args.distinct, n), "in_window": in_window,
                "window_s": args.window, "burst": min(args.burst, in_window),
                "load_interval_ms": args.load_interval_ms, "seed": args.seed}

    if args.one:  # measure one size here and write the JSON the parent asked for
        result = measure_one(sizes[0], **params(sizes[0]))
        Path(args.json).write_text(json.dumps(result), encoding="utf-8")
        return

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in sizes:
            out = Path(scratch) / f"{n}.json"
            child = [sys.executable, str(Path(__file__).resolve()), "--one", "--sizes", str(n),
                     "--json", str(out), "--distinct", str(args.distinct),
                     "--window", str(args.window), "--burst", str(args.burst),
                     "--load-interval-ms", str(args.load_interval_ms), "--seed", str(args.seed)]
            if args.in_window is not None:
                child += ["--in-window", str(args.in_window)]
            print(f"measuring N={n:,} …", flush=True)
            subprocess.run(child, check=True)
            results.append(json.loads(out.read_text(encoding="utf-8")))
    print()
    report(results)
    if args.json:
        summary = {"python": platform.python_version(), "cpus": os.cpu_count(),
                   "results": results}
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
