"""The scale stage of ``gridlink bench``: a worker holding many open cases.

1. A worker with no cases gives the baseline resident memory.
2. ``open_cases`` open cases, each with a running SLA clock, are written to
   ``cases.events`` — the logs a writer that had opened them would have left
   there, each case in its township's partition. A few thousand distinct cases
   are made by the real engine (``benchmarks/timers.py``) and cloned under new
   ids (in the same townships) with every instant of their events shifted, so
   that: ``burst`` wake-ups fall due together, ``spread`` more are spread over
   the firing window, and the rest are due hours later. (The clones are not
   triage's: they stay out of the townships' correlation memory.)
3. The worker starts (intake and cases; the SQL projection is another
   process's work): it folds the log into its store, then rebuilds its deadline
   index; seconds to the rebuilt index, then resident memory per open case.
4. While the pipeline runs at ``rate`` messages a second, the wake-ups fall
   due: the lateness of each ``FireDeadline`` is its record time on
   ``cases.commands`` minus the deadline, for the spread ones and the burst.
5. ``kill -9`` of the worker, a replacement started at once: seconds to
   processing again (the next case event it appends) and to its rebuilt index.
   Afterwards every deadline of the window must have fired, and no deadline
   may have two ``yellow_card``/``red_card`` events.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import TopicPartition
from msgspec.structs import replace

from benchmarks.harness import (
    OffsetWatch,
    Run,
    Stage,
    Worker,
    corpus,
    partitions_of,
    percentiles,
    produce,
    rss_bytes,
)
from benchmarks.timers import Engine, distinct_states, shifted, shifted_event
from streams.cases import CaseState, command_decoder, event_decoder, next_wakeup, pending_deadlines
from streams.cases.commands import FireDeadline
from streams.cases.events import RedCard, YellowCard
from topics import clients, codecs, registry
from topics.placement import case_partition

WINDOW_SECONDS = 60.0  # by default, the spread wake-ups fall due over this long
RECOVERY_TRAFFIC_SECONDS = 60.0  # traffic kept for the recovery phase, at the stage's rate
BURST = 20_000  # deadlines falling due at one instant
SPREAD = 6_000  # deadlines spread over the window
DISTINCT = 2_000  # cases made by the engine; the rest are clones
AGENTS = "intake,cases"
REBUILT = re.compile(r"deadline index rebuilt: (\d+) cases in \d+ partitions, ([\d.]+) s")


@dataclass
class Seeded:
    """What was written: bytes, and the deadlines planned to fall due in the window."""

    log_bytes: int = 0
    burst: set[tuple[str, str, str]] = field(default_factory=set)  # (case, deadline, kind)
    spread: set[tuple[str, str, str]] = field(default_factory=set)
    due: dict[tuple[str, str, str], datetime] = field(default_factory=dict)  # of the spread
    burst_at: datetime | None = None


def _due_at(state: CaseState, at: datetime) -> list[tuple[str, str, str]]:
    return [(state.case_id, d.deadline_id, d.kind) for d in pending_deadlines(state)
            if d.due == at]


async def _seed(run: Run, stage: Stage, n: int, *, start: datetime, window: float, spread: int,
                burst: int, say: Callable[[str], None]) -> Seeded:
    """Write the logs of ``n`` open cases to ``cases.events``: whole cases fall due at
    the burst instant until ``burst`` deadlines do, ``spread`` more deadlines over the
    window, the other cases 2–72 h after it."""
    rng = random.Random(run.seed)
    engine = Engine()
    states = distinct_states(engine, min(DISTINCT, n), seed=run.seed)
    topic = stage.topic(registry.CASE_EVENTS)
    partitions = stage.settings.partitions
    producer = clients.aio_producer(stage.settings, linger_ms=20,
                                    max_batch_size=512 * 1024, acks=1)
    await producer.start()
    seeded = Seeded()
    burst_at = seeded.burst_at = start + timedelta(seconds=window / 2)
    started = time.monotonic()
    try:
        pending = []
        for i in range(n):
            model = states[i % len(states)]
            wakeup = next_wakeup(model)
            assert wakeup is not None
            if len(seeded.burst) < burst:
                due, planned = burst_at, seeded.burst
            elif len(seeded.spread) < spread:
                due = start + timedelta(seconds=rng.uniform(0, window))
                planned = seeded.spread
            else:
                due = start + timedelta(seconds=window + rng.uniform(7200, 72 * 3600))
                planned = None
            case_id = f"{model.case_id[:-8]}{i:08x}"
            if planned is not None:
                keys = _due_at(shifted(model, due - wakeup, case_id), due)
                planned.update(keys)
                if planned is seeded.spread:
                    seeded.due.update(dict.fromkeys(keys, due))
            partition = case_partition(case_id, partitions)
            for event in engine.logs[model.case_id]:
                value = codecs.encode(replace(shifted_event(event, due - wakeup, case_id),
                                              actor="bench:seed"))
                seeded.log_bytes += len(value)
                pending.append(await producer.send(topic, key=case_id.encode(), value=value,
                                                   partition=partition))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
            if (i + 1) % 100_000 == 0:
                say(f"  seeded {i + 1:,} open cases ({time.monotonic() - started:.0f} s)")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return seeded


async def _wait_for(worker: Worker, pattern: re.Pattern[str], *, count: int = 1,
                    timeout: float = 900.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        matches = list(pattern.finditer(worker.log()))
        if len(matches) >= count:
            return matches[count - 1]
        worker.check()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no {pattern.pattern!r} within {timeout:.0f} s:\n{worker.log()[-3000:]}")


async def _records(stage: Stage, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its end offsets now."""
    consumer = clients.aio_consumer(stage.settings, group_id=None,
                                    enable_auto_commit=False, max_poll_records=10_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += records
        return out
    finally:
        await consumer.stop()


async def _fires(run: Run, stage: Stage, seeded: Seeded, *, killed_at: float
                 ) -> dict[str, Any]:
    """Lateness of each deadline's first fire (record time on ``cases.commands`` minus
    the instant it fell due) before the kill; what was sent again; what never fired,
    by the first worker or its replacement."""
    first: dict[tuple[str, str, str], float] = {}  # before the kill: its lateness
    fired: set[tuple[str, str, str]] = set()  # by either worker
    sent: Counter[str] = Counter()
    for record in await _records(stage, stage.topic(registry.CASE_COMMANDS)):
        if b"fire_deadline" not in (record.value or b""):
            continue
        command = command_decoder.decode(record.value)
        if not isinstance(command, FireDeadline):
            continue
        sent[command.command_id] += 1
        key = (command.case_id, command.deadline_id, command.kind)
        fired.add(key)
        if key not in first and record.timestamp / 1000 < killed_at:
            first[key] = record.timestamp - command.due.timestamp() * 1000
    # each card's records by seq: two seqs for one deadline and kind would be a second
    # card; the same (case_id, seq) again is the same card written again after the
    # kill (at least once), which every consumer drops by (case_id, seq)
    cards: dict[tuple[str, str, str | int | None], Counter[int]] = {}  # by the struct's tag
    for record in await _records(stage, stage.topic(registry.CASE_EVENTS)):
        if b"_card" in (record.value or b""):
            event = event_decoder.decode(record.value)
            if isinstance(event, YellowCard | RedCard):
                card = (event.case_id, event.deadline_id, type(event).__struct_config__.tag)
                cards.setdefault(card, Counter())[event.seq] += 1
    burst = [ms for key, ms in first.items() if key in seeded.burst]
    # A spread deadline due while the burst is being fired waits behind it (the earliest
    # due goes first): it is counted apart, with the burst's firing, not with the spread.
    assert seeded.burst_at is not None
    firing = timedelta(milliseconds=max(burst, default=0.0))
    behind = {key for key in seeded.spread
              if seeded.burst_at <= seeded.due[key] <= seeded.burst_at + firing}
    spread = [ms for key, ms in first.items() if key in seeded.spread and key not in behind]
    waited = [ms for key, ms in first.items() if key in behind]
    latest = sorted(((ms, (seeded.due[key] - seeded.burst_at).total_seconds())
                     for key, ms in first.items() if key in seeded.spread), reverse=True)
    return {
        "lateness_ms": {**percentiles(list(first.values()), (50, 99)), "count": len(first)},
        "spread_lateness_ms": {**percentiles(spread, (50, 99)), "count": len(spread)},
        "spread_behind_burst_ms": {**percentiles(waited, (50,)), "count": len(waited)},
        "burst_lateness_ms": {**percentiles(burst, (50, 99)), "count": len(burst)},
        # the latest spread fires: lateness (ms) and when each fell due, seconds after
        # the burst's instant (negative: before it)
        "spread_latest": [[round(ms, 1), round(after, 3)] for ms, after in latest[:15]],
        "window_deadlines": len(seeded.burst | seeded.spread),
        "window_deadlines_fired_before_the_kill": len((seeded.burst | seeded.spread)
                                                      & first.keys()),
        "window_deadlines_unfired": len((seeded.burst | seeded.spread) - fired),
        "fire_commands_sent_again": sum(n - 1 for n in sent.values() if n > 1),
        "cards_recorded_twice": sum(1 for seqs in cards.values() if len(seqs) > 1),
        "card_records_repeated": sum(n - 1 for seqs in cards.values() for n in seqs.values()),
    }


async def scale(run: Run, *, open_cases: int, rate: float, say: Callable[[str], None],
                window: float = WINDOW_SECONDS) -> dict[str, Any]:
    stage = run.stage("scale", GRIDLINK_LOG_LEVEL="info")  # the rebuild is logged at info
    burst = min(BURST, max(1, open_cases // 5))
    spread = min(SPREAD, max(1, open_cases // 100))
    traffic = corpus(int(rate * (window + RECOVERY_TRAFFIC_SECONDS + 10)),
                     seed=run.seed + 1)

    # 1. the baseline: a worker with no cases
    baseline_worker = run.start_worker(stage, label="baseline", args=("--agents", AGENTS))
    baseline_worker.wait_ready()
    await asyncio.sleep(2)
    baseline = rss_bytes(baseline_worker.pid)
    baseline_worker.stop()

    # 2. the open cases, due after the worker has had time to load them
    # seconds until the window: seeding, the worker's start, its fold of the log into
    # its store and the index rebuild
    lead = 30 + open_cases / 2_000
    start = datetime.now().astimezone() + timedelta(seconds=lead)
    say(f"scale      seeding {open_cases:,} open cases ({burst:,} deadlines due at once, "
        f"{spread:,} spread over {window:.0f} s, from {lead:.0f} s after now) …")
    seeded_at = time.monotonic()
    seeded = await _seed(run, stage, open_cases, start=start, window=window, spread=spread,
                         burst=burst, say=say)
    say(f"  seeded in {time.monotonic() - seeded_at:.0f} s "
        f"({seeded.log_bytes / open_cases:.0f} bytes of case log a case)")

    # 3. the worker loads them
    launched = time.monotonic()
    worker = run.start_worker(stage, label="worker", args=("--agents", AGENTS))
    rebuilt_first = await _wait_for(worker, REBUILT)
    indexed = int(rebuilt_first.group(1))
    index_seconds = time.monotonic() - launched
    await asyncio.sleep(1)
    resident = rss_bytes(worker.pid)
    say(f"  worker up with {indexed:,} cases indexed {index_seconds:.1f} s after its start; "
        f"{(resident - baseline) / open_cases:,.0f} resident bytes a case")
    if datetime.now().astimezone() > start:
        say("  (the window began before the index was rebuilt: its first fires are late)")

    # 4. the window, with the pipeline at half rate
    window_end = start + timedelta(seconds=window + 2)
    seconds_left = max((window_end - datetime.now().astimezone()).total_seconds(), 1.0)
    count = min(len(traffic) // 2, int(rate * seconds_left))
    await produce(stage, traffic[:count], rate=count / seconds_left)
    worker.check()

    # 5. kill -9 and a replacement, while traffic keeps coming
    async with OffsetWatch(stage.settings, [stage.topic(registry.CASE_EVENTS)]) as admitted:
        sending = asyncio.create_task(produce(stage, traffic[count:], rate=rate))
        await asyncio.sleep(2)
        worker.kill()
        killed, killed_at = time.monotonic(), time.time()
        replacement = run.start_worker(stage, label="replacement", args=("--agents", AGENTS))
        await asyncio.sleep(0.5)  # what the dead worker had sent is counted by now
        level = await admitted.total()
        processing = None
        while processing is None and time.monotonic() - killed < 600:
            if await admitted.total() > level:
                processing = time.monotonic() - killed
            replacement.check()
            await asyncio.sleep(0.05)
        rebuilt_again = await _wait_for(replacement, REBUILT)
        rebuilt = time.monotonic() - killed
        sending.cancel()
    say(f"  recovery after kill -9: processing again in {processing or float('nan'):.1f} s, "
        f"deadline index rebuilt in {rebuilt:.1f} s")
    await asyncio.sleep(5)  # fires the replacement sends for what fell due meanwhile
    fires = await _fires(run, stage, seeded, killed_at=killed_at)
    burst_ms = fires["burst_lateness_ms"]
    behind = fires["spread_behind_burst_ms"]
    say(f"  lateness p50 {fires['lateness_ms'].get('p50', 0):.0f} ms, p99 "
        f"{fires['lateness_ms'].get('p99', 0):.0f} ms; spread p99 "
        f"{fires['spread_lateness_ms'].get('p99', 0):.0f} ms ({behind['count']} more due while "
        f"the burst was fired: max {behind.get('max', 0):.0f} ms); burst p50 "
        f"{burst_ms.get('p50', 0):.0f} ms, max {burst_ms.get('max', 0):.0f} ms; unfired "
        f"{fires['window_deadlines_unfired']} of "
        f"{fires['window_deadlines']}; carded twice {fires['cards_recorded_twice']} (the same "
        f"card written again: {fires['card_records_repeated']})")
    return {
        "open_cases": open_cases,
        "log_bytes_per_case": round(seeded.log_bytes / open_cases),
        "baseline_resident_bytes": baseline,
        "resident_bytes": resident,
        "resident_bytes_per_case": round((resident - baseline) / open_cases),
        "index_rebuilt_seconds_after_start": round(index_seconds, 1),
        "index_rebuild_seconds": float(rebuilt_first.group(2)),  # the rebuild alone
        "rate": round(rate, 1),
        **fires,
        "recovery_seconds_to_processing": None if processing is None else round(processing, 1),
        "recovery_seconds_to_index": round(rebuilt, 1),
        "recovery_index_cases": int(rebuilt_again.group(1)),
        "recovery_index_rebuild_seconds": float(rebuilt_again.group(2)),
    }
