"""Throughput and latency stages of ``gridlink bench``: L_pipe, F_base, the
GridLink pipeline with one and two workers, and ingest → department latency.

Every throughput stage reads the same corpus and is timed from its first output
to its last: a backlog drained as fast as the stage can, without group-join or
start-up time. L_pipe and F_base find the corpus in their ingest topics when they
start; GridLink's workers get it once all of them have joined their group (it is
sent far faster than they drain it).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from agents.worker import AGENTS
from benchmarks.harness import (
    OffsetWatch,
    Run,
    Stage,
    cpu_seconds,
    percentiles,
    produce,
    wait_for_group,
)
from settings import Settings
from simulation.generator import Message
from streams.classify import classify
from streams.errors import GridLinkError
from streams.locate import locate
from streams.parse import PARSERS
from streams.reference import load_city
from streams.triage_rules import load_triage_rules
from topics import clients, codecs, registry

SETTLE_SECONDS = 3.0  # latency: no more department messages this long after the last send
STORE_WAIT_SECONDS = 15.0  # every other hop done, the store unchanged this long: report it
POLL_SECONDS = 0.05  # L_pipe and F_base drain in seconds: watched closely
PIPELINE_POLL_SECONDS = 0.2  # the pipeline's stages take tens of seconds; polling every
#                              50 ms cost 0.14 of a core, taken from what is measured


# -- L_pipe: raw aiokafka -----------------------------------------------------------------


async def lpipe(run: Run, messages: Sequence[Message]) -> dict[str, Any]:
    """Consume → decode → classify → encode → produce with aiokafka and no framework:
    the ceiling of any Python pipeline on this machine."""
    stage = run.stage("lpipe")
    await produce(stage, messages)
    settings = stage.settings
    city = load_city(settings.reference_dir)
    rules = load_triage_rules(settings.rules_dir, departments=city.departments)
    sources = {stage.topic(name): source for name, source in registry.INGEST_SOURCES.items()}
    out_topic = stage.topic(registry.CASE_COMMANDS)
    consumer = clients.aio_consumer(settings, *sources,
                                    group_id=f"lpipe-{run.run_id}", auto_offset_reset="earliest",
                                    enable_auto_commit=False, max_poll_records=2000)
    producer = clients.aio_producer(settings, linger_ms=5, acks="all")
    await consumer.start()
    await producer.start()
    done = 0
    started: float | None = None
    cpu_started = 0.0
    try:
        while done < len(messages):
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if started is None and batches:
                started, cpu_started = time.perf_counter(), time.process_time()
            sends = []
            for records in batches.values():
                for record in records:
                    value = record.value or b""
                    try:
                        event = PARSERS[sources[record.topic]](value)
                        location = locate(event, city,
                                          max_distance_m=settings.locate_max_distance_m)
                        out = codecs.encode({"event": event, "location": location,
                                             "category": classify(event, rules).category})
                    except GridLinkError as error:
                        out = json.dumps({"error": error.code}).encode()
                    sends.append(await producer.send(out_topic, value=out, key=record.key))
                    done += 1
            await asyncio.gather(*sends)
            await consumer.commit()
        assert started is not None
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started  # the bench's own process: L_pipe runs in it
    finally:
        await consumer.stop()
        await producer.stop()
    return {"events": done, "seconds": seconds, "events_per_second": done / seconds,
            "cpu_ms_per_event": {"lpipe": round(cpu * 1000 / done, 3)}}


# -- F_base: bare Faust -------------------------------------------------------------------


async def fbase(run: Run, messages: Sequence[Message]) -> dict[str, Any]:
    """A bare Faust agent decoding and forwarding the same messages."""
    stage = run.stage("fbase")
    await produce(stage, messages)
    worker = run.start_worker(stage, label="fbase", module="benchmarks.fbase")
    try:
        async with OffsetWatch(stage.settings, [stage.topic(registry.CASE_COMMANDS)]) as out:
            first, last, count, cpu = await _drain(out, len(messages), worker=worker)
    finally:
        worker.stop()
    return {"events": count, "seconds": last - first,
            "events_per_second": count / (last - first),
            "cpu_ms_per_event": {"fbase": round(cpu * 1000 / count, 3)}}


async def _drain(watch: OffsetWatch, expected: int, *, worker: Any,
                 timeout: float = 900.0) -> tuple[float, float, int, float]:
    """(time of the first output, time the outputs reached ``expected``, count, the
    worker's CPU seconds in between)."""
    first: float | None = None
    cpu_first = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = await watch.total()
        now = time.perf_counter()
        if total and first is None:
            first, cpu_first = now, cpu_seconds(worker.pid)
        if total >= expected:
            assert first is not None
            return first, now, total, cpu_seconds(worker.pid) - cpu_first
        worker.check()
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"only {await watch.total()} of {expected} outputs within {timeout} s")


# -- the pipeline ---------------------------------------------------------------------------


def _stored_events(stage: Stage) -> int:
    path = stage.settings.database_url.removeprefix("sqlite:///")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM case_events").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


async def pipeline(run: Run, messages: Sequence[Message], *, workers: int = 1,
                   partitions: int = 4, name: str = "pipeline", apart: Sequence[str] = ()
                   ) -> tuple[dict[str, Any], Stage]:
    """GridLink's sustained rate: ingest → triage and case → department queue → SQL,
    timed from the first message read to the moment every stage is done:

    - intake: every message sent was read (validated, or dead-lettered);
    - cases: the workers' triage decisions equal the validated events;
    - the store holds every case event of ``cases.events``.

    Each stage named in ``apart`` (``intake``, ``projection``) runs in one process of its
    own (``gridlink worker --agents <stage>``), and the workers run the rest.

    Where the time goes: when each hop was done (seconds after the first validated
    event; under a backlog the hops mostly drain one after another), and the CPU
    the workers and the broker used meanwhile, in cores.

    Returns the figures and the stage, whose workers keep running (for latency)."""
    stage = run.stage(name, partitions=partitions)
    rest = [agent for agent in AGENTS if agent not in apart]
    agents = ["--agents", ",".join(rest)] if apart else []
    started = [run.start_worker(stage, label=f"worker{i + 1}", args=agents, metrics=True)
               for i in range(workers)]
    started_all = [*started, *(run.start_worker(stage, label=agent, args=["--agents", agent],
                                                metrics=True)
                               for agent in apart)]
    # The corpus goes in once every worker has its partitions: a worker joining later
    # would stop them all for a rebalance in the middle of the drain.
    await asyncio.to_thread(wait_for_group, stage.settings, stage.settings.app_id,
                            len(started_all))
    await produce(stage, messages)

    labels = [w.log_path.stem for w in started_all]  # worker1, worker2…, projection

    def cpu() -> dict[str, float]:
        """CPU seconds of each of the stage's processes, and of the broker (if ours)."""
        used = {label: cpu_seconds(w.pid) for label, w in zip(labels, started_all, strict=True)}
        if run.broker_pid:
            used["broker"] = cpu_seconds(run.broker_pid)
        return used

    first: float | None = None
    cpu_first: dict[str, float] = {}
    cpu_moved: dict[str, float] = {}
    changed: list[float] = []  # when each count of ``progress`` last changed
    deadline = time.monotonic() + 120 + len(messages) / 20  # 20 events/s: something is wrong
    progress: tuple[int, ...] = ()
    moved = time.perf_counter()
    topic = stage.topic
    async with OffsetWatch(stage.settings, [topic(registry.DEAD_LETTER)]) as rejected, \
            OffsetWatch(stage.settings, [topic(registry.CASE_EVENTS)]) as logged:
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the pipeline did not drain: (read, dead letters, triage decisions, case "
                    f"events, stored) = {progress}")
            now = time.perf_counter()
            inbound = int(sum(w.metric("gridlink_events_in_total") for w in started_all))
            if inbound and first is None:
                first, cpu_first = now, cpu()
            decided = int(sum(w.metric("gridlink_triage_decisions_total") for w in started))
            state = (inbound, await rejected.total(), decided, await logged.total(),
                     _stored_events(stage))
            if state != progress:
                changed = ([now if new != old else at
                            for new, old, at in zip(state, progress, changed, strict=True)]
                           if progress else [now] * len(state))
                progress, moved, cpu_moved = state, now, cpu()
            inbound, dead, decided, events, stored = state
            drained = inbound >= len(messages) and decided >= inbound - dead
            if drained and stored >= events:
                break
            if drained and now - moved > STORE_WAIT_SECONDS:
                break  # the store will not catch up: reported below, not waited for
            for worker in started_all:
                worker.check()
            await asyncio.sleep(PIPELINE_POLL_SECONDS)
    assert first is not None
    seconds = max(moved - first, PIPELINE_POLL_SECONDS)  # a drain within one poll: one poll
    used = {label: cpu_moved[label] - cpu_first[label] for label in cpu_moved}
    gridlink = sum(used[label] for label in labels)
    done = dict(zip(("intake", "rejected", "cases", "logged", "store"),
                    (round(at - first, 2) for at in changed), strict=True))
    return {"workers": workers, "apart": list(apart), "partitions": partitions,
            "events": len(messages), "triage_decisions": decided,
            "case_events_logged": events, "case_events_stored": stored,
            "seconds": seconds, "events_per_second": len(messages) / seconds,
            "hops_done_seconds": {hop: done[hop] for hop in ("intake", "cases", "store")},
            "worker_cores": round(gridlink / seconds, 2),
            "broker_cores": round(used["broker"] / seconds, 2) if "broker" in used else None,
            # CPU milliseconds per inbound message: each process, all of GridLink's, the broker
            "cpu_ms_per_event": {**{label: round(used[label] * 1000 / len(messages), 3)
                                    for label in used},
                                 "gridlink": round(gridlink * 1000 / len(messages), 3)}}, stage


# -- latency ------------------------------------------------------------------------------


async def latency(run: Run, stage: Stage, messages: Sequence[Message], *,
                  rate: float) -> dict[str, Any]:
    """Ingest → department queue at ``rate``: for each new assignment, its record's
    time on ``dept.<code>`` minus the send time of the report that opened the case."""
    settings: Settings = stage.settings
    departments = load_city(settings.reference_dir).departments
    topics = [stage.topic(registry.department_topic(code)) for code in departments]
    consumer = clients.aio_consumer(settings, *topics, group_id=None,
                                    auto_offset_reset="latest")
    await consumer.start()
    await consumer.getmany(timeout_ms=500)  # positions resolved before anything is sent
    for tp in consumer.assignment():
        await consumer.position(tp)
    sending = asyncio.create_task(produce(stage, messages, rate=rate))
    seen: list[tuple[int, list[bytes], str]] = []  # (record time ms, report ids, priority)
    sent: dict[bytes, float] | None = None
    quiet_since = time.monotonic()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            if batches:
                quiet_since = time.monotonic()
            for records in batches.values():
                for record in records:
                    payload = json.loads(record.value or b"{}")
                    if payload.get("kind") != "assignment":
                        continue
                    ids = [i.partition(":")[2].encode() for i in payload["source_event_ids"]]
                    seen.append((record.timestamp, ids, payload["priority"]))
            if sending.done():
                sent = sent or sending.result()
                if time.monotonic() - quiet_since > SETTLE_SECONDS:
                    break
    finally:
        await consumer.stop()
    assert sent is not None
    all_ms: list[float] = []
    p1: list[float] = []
    for timestamp, ids, priority in seen:
        sends = [sent[i] for i in ids if i in sent]
        if not sends:
            continue
        ms = timestamp - min(sends) * 1000
        all_ms.append(ms)
        if priority == "P1":
            p1.append(ms)
    return {"rate": rate, "messages": len(messages), "assignments": len(all_ms),
            "latency_ms": percentiles(all_ms), "p1_assignments": len(p1),
            "p1_latency_ms": percentiles(p1)}

