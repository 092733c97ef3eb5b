"""Prototype benchmark of the two designs for a case writer's atomic write (issue 16).

It simulates only the writer of a case engine, with plain aiokafka: an input topic
of P partitions holds N inputs; one process (the writer, a consumer-group member
committing by hand) reads them in windows and, for each input, writes 3 case events
to the ``events`` partition equal to the input's, 2 department messages to
single-partition topics chosen among 10, and for the 10 % of inputs flagged P1 one
alert. Two candidates write that:

``log``  "the log is the state": an idempotent producer (acks=all); per window, each
         input partition's events go out as ONE record batch (appended whole or not
         at all); once they are acknowledged the fan-out goes out (one batch per
         topic-partition), and once that is acknowledged the input offsets are
         committed.
``txn``  Kafka transactions: one transactional producer per input partition
         (``<prefix>-writer-<p>``; aiokafka has no group metadata in transactions);
         per window and partition: begin, the events and fan-out, the input offsets
         (send_offsets_to_transaction), commit.

For each it measures (a) how fast a backlog drains, (b) the writer's CPU
(``time.process_time``) and the broker JVMs' (``/proc/<pid>/stat``) per input over
that drain, (c) the latency from an input's produce to each of its department
messages read by a separate consumer, read_uncommitted and read_committed, at a
paced rate and at 58 inputs/s (p50, p99, p99.9, and p99 of the P1 inputs), and
then (d) that every input's events are in the log exactly once, in its partition,
and every department message and alert is there (read_committed).

    python -m benchmarks.atomic_write --out atomic-write.json

starts one broker, then a three-node cluster, and runs each candidate on each: once
small and unrecorded to warm the brokers up, then ``--runs`` times, alternating
(log, txn, txn, log, …); ``--bootstrap`` uses a running cluster instead. It prints
two tables and writes every figure, with the load average around each run (the
machine may be shared), to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shlex
import sys
import tempfile
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

MODES = ("log", "txn")
DEPARTMENTS = 10
INPUT_BYTES, EVENT_BYTES, DEPARTMENT_BYTES, ALERT_BYTES = 600, 700, 400, 400
EVENTS_PER_INPUT, DEPARTMENTS_PER_INPUT = 3, 2
P1_EVERY = 10  # one input in ten is P1, and raises an alert
MAX_BATCH_BYTES = 1_000_000  # one window's events of one partition fit one record batch
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"[atomic-write] {message}", file=sys.stderr, flush=True)


# ---- the simulated records -------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    prefix: str
    partitions: int

    @property
    def inputs(self) -> str:
        return f"{self.prefix}inputs"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    def department(self, index: int) -> str:
        return f"{self.prefix}dept.{index}"

    @property
    def departments(self) -> list[str]:
        return [self.department(i) for i in range(DEPARTMENTS)]


def _padded(head: bytes, size: int) -> bytes:
    return head + b"." * max(0, size - len(head))


def input_id(phase: str, index: int) -> bytes:
    return f"{phase}-{index}".encode()


def input_value(ident: bytes, p1: bool) -> bytes:
    return _padded(b'{"input":"%s","p1":%d,"body":"' % (ident, p1), INPUT_BYTES - 2) + b'"}'


def departments_of(ident: bytes) -> tuple[int, int]:
    """The two distinct departments an input concerns (a fixed function of its id)."""
    h = zlib.crc32(ident)
    first = h % DEPARTMENTS
    second = (first + 1 + (h // DEPARTMENTS) % (DEPARTMENTS - 1)) % DEPARTMENTS
    return first, second


@dataclass(frozen=True)
class Outputs:
    """What the writer derives from one input: its events, and the fan-out."""

    events: list[bytes]
    fan_out: list[tuple[int | None, bytes]]  # (department index, or None: the alert)


def decide(ident: bytes, partition: int, p1: bool) -> Outputs:
    """The simulated case engine: deterministic outputs of one input."""
    events = [_padded(b"%s|%d|%d|event" % (ident, seq, partition), EVENT_BYTES)
              for seq in range(1, EVENTS_PER_INPUT + 1)]
    fan_out: list[tuple[int | None, bytes]] = [
        (dept, _padded(b"%s|%d|assignment" % (ident, dept), DEPARTMENT_BYTES))
        for dept in departments_of(ident)
    ]
    if p1:
        fan_out.append((None, _padded(b"%s|alert" % ident, ALERT_BYTES)))
    return Outputs(events, fan_out)


def _header(headers, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


# ---- the writer (its own process) ------------------------------------------------


@dataclass(frozen=True)
class WriterJob:
    mode: str
    bootstrap: str
    topics: Topics
    group: str
    expected: int  # inputs to commit before it stops
    window_max: int


class Stages:
    """Seconds spent waiting in each stage of a write, summed, and how many writes (one
    instance per sequence of writes: the transactions of one producer, say)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.writes = 0
        self._at = 0.0

    def start(self) -> None:
        self._at = time.monotonic()
        self.writes += 1

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.seconds[stage] += now - self._at
        self._at = now

    @staticmethod
    def figures(all_stages: list[Stages]) -> dict[str, Any]:
        """Milliseconds per write in each stage, over ``all_stages``."""
        writes = sum(stages.writes for stages in all_stages)
        seconds: dict[str, float] = defaultdict(float)
        for stages in all_stages:
            for stage, spent in stages.seconds.items():
                seconds[stage] += spent
        return {"writes": writes, **{f"{stage}_ms": round(spent / max(1, writes) * 1e3, 2)
                                     for stage, spent in seconds.items()}}


def _decide_into(job: WriterJob, tp: TopicPartition, records: list, events: Any,
                 fan_out: Callable[[str, bytes, bytes, Any], None]) -> None:
    """Decide each of one partition's inputs, as either candidate does: its events go
    into the record batch ``events``, each fan-out record to ``fan_out`` with its topic
    (the candidates differ only in when they send those)."""
    for record in records:
        p1 = _header(record.headers, "p1") == b"1"
        outputs = decide(record.key, tp.partition, p1)
        for event in outputs.events:
            _append(events, record.key, event, record.headers)
        for dept, value in outputs.fan_out:
            topic = job.topics.alerts if dept is None else job.topics.department(dept)
            fan_out(topic, record.key, value, record.headers)


async def _write_log(job: WriterJob, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer,
                     window: dict[TopicPartition, list], stages: Stages) -> None:
    """One window, "the log is the state": events, then fan-out, then offsets."""
    stages.start()
    sends = []
    fan_out: dict[str, list] = defaultdict(list)
    for tp, records in window.items():
        batch = producer.create_batch()
        _decide_into(job, tp, records, batch,
                     lambda topic, *record: fan_out[topic].append(record))
        sends.append(await producer.send_batch(batch, job.topics.events, partition=tp.partition))
    await asyncio.gather(*sends)  # the events are in the log: the input is decided
    stages.lap("events")
    sends = []
    for topic, records in fan_out.items():
        batch = producer.create_batch()
        for key, value, headers in records:
            _append(batch, key, value, headers)
        sends.append(await producer.send_batch(batch, topic, partition=0))
    await asyncio.gather(*sends)
    stages.lap("fan_out")
    await consumer.commit({tp: records[-1].offset + 1 for tp, records in window.items()})
    stages.lap("commit")


async def _write_txn(job: WriterJob, producer: AIOKafkaProducer, tp: TopicPartition,
                     records: list, stages: Stages) -> None:
    """One partition's share of a window in one transaction, its offsets with it."""
    stages.start()
    await producer.begin_transaction()
    try:
        sends = []
        events = producer.create_batch()
        fan_out: dict[str, Any] = {}

        def batched(topic: str, key: bytes, value: bytes, headers: Any) -> None:
            if topic not in fan_out:
                fan_out[topic] = producer.create_batch()
            _append(fan_out[topic], key, value, headers)

        _decide_into(job, tp, records, events, batched)
        sends.append(await producer.send_batch(events, job.topics.events, partition=tp.partition))
        for topic, batch in fan_out.items():
            sends.append(await producer.send_batch(batch, topic, partition=0))
        await asyncio.gather(*sends)  # partitions added to the transaction, records acked
        stages.lap("sends")
        await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, job.group)
        stages.lap("offsets")
    except BaseException:
        await producer.abort_transaction()
        raise
    await producer.commit_transaction()
    stages.lap("commit")


def _append(batch, key: bytes, value: bytes, headers) -> None:
    if batch.append(timestamp=None, key=key, value=value, headers=list(headers)) is None:
        raise RuntimeError("a window's records of one partition exceed one record batch "
                           f"({MAX_BATCH_BYTES} bytes): lower --window-max")


async def _writer(job: WriterJob, conn) -> None:
    common = {"bootstrap_servers": job.bootstrap, "acks": "all", "linger_ms": 0,
              "max_batch_size": MAX_BATCH_BYTES, "request_timeout_ms": 30_000}
    producers: dict[int | None, AIOKafkaProducer]  # log: one, keyed None; txn: one per partition
    if job.mode == "log":
        producers = {None: AIOKafkaProducer(enable_idempotence=True, **common)}
    else:
        producers = {p: AIOKafkaProducer(transactional_id=f"{job.group}-writer-{p}", **common)
                     for p in range(job.topics.partitions)}
    consumer = AIOKafkaConsumer(job.topics.inputs, bootstrap_servers=job.bootstrap,
                                group_id=job.group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await asyncio.gather(*(p.start() for p in producers.values()), consumer.start())
    try:
        while len(consumer.assignment()) < job.topics.partitions:
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"
        cpu_started = time.process_time()
        done, windows, first_at = 0, 0, None
        stages = {p: Stages() for p in producers}  # log: one for all; txn: one per producer
        while done < job.expected:
            window = await consumer.getmany(timeout_ms=200, max_records=job.window_max)
            window = {tp: records for tp, records in window.items() if records}
            if not window:
                continue
            first_at = first_at or time.monotonic()
            if job.mode == "log":
                await _write_log(job, producers[None], consumer, window, stages[None])
            else:
                await asyncio.gather(*(_write_txn(job, producers[tp.partition], tp, records,
                                                  stages[tp.partition])
                                       for tp, records in window.items()))
            done += sum(len(records) for records in window.values())
            windows += 1
        finished_at = time.monotonic()
        conn.send({"inputs": done, "windows": windows,
                   "seconds": finished_at - (first_at or finished_at),
                   "cpu_seconds": time.process_time() - cpu_started,
                   "stages": Stages.figures(list(stages.values()))})
    finally:
        await asyncio.gather(*(p.stop() for p in producers.values()), consumer.stop())


def _writer_process(job: WriterJob, conn) -> None:
    try:
        asyncio.run(_writer(job, conn))
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


class Writer:
    """The writer in its own process (its CPU is its own): ``ready`` → ``go`` → result."""

    def __init__(self, job: WriterJob) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_writer_process, args=(job, child), daemon=True)
        self.process.start()

    def _receive(self, timeout: float):
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the writer said nothing for {timeout:.0f} s "
                               f"(alive: {self.process.is_alive()})")
        message = self._conn.recv()
        if isinstance(message, dict) and "error" in message:
            raise RuntimeError(f"the writer failed: {message['error']}")
        return message

    async def ready(self, timeout: float = 120.0) -> None:
        message = await asyncio.to_thread(self._receive, timeout)
        if message != "ready":
            raise RuntimeError(f"the writer said {message!r} instead of ready")

    def go(self) -> None:
        self._conn.send("go")

    async def result(self, timeout: float) -> dict[str, Any]:
        result = await asyncio.to_thread(self._receive, timeout)
        self.process.join(30)
        return result

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# ---- the measuring side ----------------------------------------------------------


def broker_cpu_seconds(pids: list[int]) -> float | None:
    """utime + stime of the broker JVMs, or None without their pids."""
    if not pids:
        return None
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def percentiles(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"count": 0, "p50": None, "p99": None, "p99.9": None, "max": None}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"count": len(ordered), "p50": at(0.50), "p99": at(0.99), "p99.9": at(0.999),
            "max": round(ordered[-1], 1)}


async def create_topics(bootstrap: str, topics: Topics, replication: int,
                        min_insync: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"min.insync.replicas": str(min_insync)}
        await admin.create_topics(
            [NewTopic(topics.inputs, topics.partitions, replication, topic_configs=configs),
             NewTopic(topics.events, topics.partitions, replication, topic_configs=configs),
             NewTopic(topics.alerts, 1, replication, topic_configs=configs)]
            + [NewTopic(name, 1, replication, topic_configs=configs)
               for name in topics.departments])
    finally:
        await admin.close()
    await _wait_served(bootstrap, topics)


async def _wait_served(bootstrap: str, topics: Topics, timeout: float = 60.0) -> None:
    """Wait until every partition of the new topics answers at its leader, so the first
    records sent are not refused while their leaders settle."""
    tps = ([TopicPartition(name, p) for name in (topics.inputs, topics.events)
            for p in range(topics.partitions)]
           + [TopicPartition(name, 0) for name in (topics.alerts, *topics.departments)])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    consumer.assign(tps)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                await consumer.end_offsets(tps)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


async def cluster_brokers(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


def _input_producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms,
                            enable_idempotence=True)


def _input_record(phase: str, index: int) -> tuple[bytes, bytes, list[tuple[str, bytes]], bool]:
    ident = input_id(phase, index)
    p1 = index % P1_EVERY == 0
    headers = [("p1", b"1" if p1 else b"0"), ("sent_ns", str(time.monotonic_ns()).encode())]
    return ident, input_value(ident, p1), headers, p1


async def preload(bootstrap: str, topics: Topics, phase: str, count: int) -> list[bytes]:
    """``count`` inputs spread over the input partitions, as fast as they go."""
    producer = _input_producer(bootstrap, linger_ms=5)
    await producer.start()
    try:
        sends = []
        for index in range(count):
            ident, value, headers, _ = _input_record(phase, index)
            sends.append(await producer.send(topics.inputs, value, key=ident, headers=headers,
                                             partition=index % topics.partitions))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return [input_id(phase, i) for i in range(count)]


class DepartmentReader:
    """A department system: reads every department topic from its end and notes how
    long after its input's produce each message arrived."""

    def __init__(self, bootstrap: str, topics: Topics, isolation_level: str) -> None:
        self.isolation_level = isolation_level
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                         isolation_level=isolation_level)
        self.tps = [TopicPartition(name, 0) for name in topics.departments]
        self.latencies_ms: list[float] = []
        self.p1_latencies_ms: list[float] = []
        self.received = 0
        self.measure_after_ns = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_end(*self.tps)
        for tp in self.tps:
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.monotonic_ns()
            for records in batches.values():
                for record in records:
                    self.received += 1
                    sent_ns = _header(record.headers, "sent_ns")
                    if sent_ns is None:
                        raise RuntimeError(f"a department message without sent_ns: {record}")
                    sent = int(sent_ns)
                    if sent < self.measure_after_ns:
                        continue  # sent during the warm-up
                    latency = (now - sent) / 1e6
                    self.latencies_ms.append(latency)
                    if _header(record.headers, "p1") == b"1":
                        self.p1_latencies_ms.append(latency)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    def figures(self) -> dict[str, Any]:
        return {**percentiles(self.latencies_ms),
                "p1_p99": percentiles(self.p1_latencies_ms)["p99"],
                "p1_count": len(self.p1_latencies_ms)}


async def paced_inputs(bootstrap: str, topics: Topics, phase: str, rate: float,
                       count: int) -> float:
    """Produce ``count`` inputs at ``rate`` a second; returns the rate achieved."""
    producer = _input_producer(bootstrap, linger_ms=0)
    await producer.start()
    try:
        sends = []
        started = time.monotonic()
        for index in range(count):
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            ident, value, headers, _ = _input_record(phase, index)
            sends.append(await producer.send(topics.inputs, value, key=ident, headers=headers,
                                             partition=index % topics.partitions))
        seconds = time.monotonic() - started
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return count / seconds if seconds > 0 else float(count)


async def check_log(bootstrap: str, topics: Topics, inputs: list[bytes]) -> dict[str, int]:
    """Read back, read_committed, everything the writer wrote: every input's events
    once each in its partition, its department messages, and the P1 inputs' alerts."""
    expected = set(inputs)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tps = ([TopicPartition(topics.events, p) for p in range(topics.partitions)]
               + [TopicPartition(name, 0) for name in [*topics.departments, topics.alerts]])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)  # the last stable offsets, read_committed
        seqs: dict[bytes, list[int]] = defaultdict(list)
        fan_out: dict[bytes, int] = defaultdict(int)
        misplaced = 0
        deadline = time.monotonic() + 300
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError("reading the log back took over 300 s")
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    if tp.topic == topics.events:
                        ident, seq, partition, _ = record.value.split(b"|", 3)
                        seqs[ident].append(int(seq))
                        misplaced += int(partition) != tp.partition
                    else:
                        fan_out[record.key] += 1
    finally:
        await consumer.stop()
    whole = set(range(1, EVENTS_PER_INPUT + 1))
    wanted_fan_out = {ident: DEPARTMENTS_PER_INPUT + ident_is_p1(ident) for ident in expected}
    return {
        "inputs": len(expected),
        "inputs_lost": sum(1 for ident in expected if set(seqs.get(ident, ())) != whole),
        "events_duplicated": sum(len(found) - len(set(found)) for found in seqs.values()),
        "events_misplaced": misplaced,
        "events_unexpected": sum(1 for ident in seqs if ident not in expected),
        "fan_out_missing": sum(max(0, want - fan_out.get(ident, 0))
                               for ident, want in wanted_fan_out.items()),
        "fan_out_extra": sum(max(0, fan_out.get(ident, 0) - want)
                             for ident, want in wanted_fan_out.items()),
    }


def ident_is_p1(ident: bytes) -> bool:
    return int(ident.rsplit(b"-", 1)[1]) % P1_EVERY == 0


# ---- one run ---------------------------------------------------------------------


@dataclass
class Options:
    inputs: int = 20_000
    partitions: int = 4
    rate: float = 600.0
    slow_rate: float = 58.0
    latency_seconds: float = 30.0
    warmup_seconds: float = 2.0
    window_max: int = 300


@dataclass
class Shape:
    label: str
    bootstrap: str
    brokers: int
    pids: list[int] = field(default_factory=list)


async def one_run(mode: str, shape: Shape, options: Options, run: int) -> dict[str, Any]:
    from topics.registry import replication_for

    replication = replication_for(shape.brokers)
    tag = uuid.uuid4().hex[:6]
    topics = Topics(prefix=f"aw{tag}.", partitions=options.partitions)
    group = f"aw{tag}"
    await create_topics(shape.bootstrap, topics, replication.factor, replication.min_insync)
    result: dict[str, Any] = {"mode": mode, "shape": shape.label, "brokers": shape.brokers,
                              "run": run, "topic_prefix": topics.prefix,
                              "replication": replication.factor,
                              "min_insync": replication.min_insync,
                              "load_average": os.getloadavg()[0]}

    inputs = await preload(shape.bootstrap, topics, "drain", options.inputs)
    job = WriterJob(mode, shape.bootstrap, topics, group, options.inputs, options.window_max)
    writer = Writer(job)
    try:
        await writer.ready()
        broker_before = broker_cpu_seconds(shape.pids)
        writer.go()
        drained = await writer.result(timeout=600)
        broker_after = broker_cpu_seconds(shape.pids)
    finally:
        writer.stop()
    events = drained["inputs"] * EVENTS_PER_INPUT
    broker_cpu = (None if broker_before is None or broker_after is None
                  else broker_after - broker_before)
    result["drain"] = {
        "inputs": drained["inputs"], "events": events, "windows": drained["windows"],
        "seconds": round(drained["seconds"], 2),
        "inputs_per_second": round(drained["inputs"] / drained["seconds"]),
        "events_per_second": round(events / drained["seconds"]),
        "writer_cpu_seconds": round(drained["cpu_seconds"], 2),
        "writer_cpu_us_per_input": round(drained["cpu_seconds"] / drained["inputs"] * 1e6),
        "writer_cpu_us_per_event": round(drained["cpu_seconds"] / events * 1e6, 1),
        "broker_cpu_seconds": None if broker_cpu is None else round(broker_cpu, 2),
        "broker_cpu_us_per_input": None if broker_cpu is None
        else round(broker_cpu / drained["inputs"] * 1e6),
        "write_stages": drained["stages"],
    }
    say(f"{mode} on {shape.label}, run {run}: drained {drained['inputs']} inputs in "
        f"{drained['seconds']:.1f} s ({result['drain']['events_per_second']} events/s)")

    result["latency"] = {}
    for name, rate in (("rate", options.rate), ("slow", options.slow_rate)):
        count = max(1, int(rate * (options.latency_seconds + options.warmup_seconds)))
        phase = f"{name}{int(rate)}"
        result["latency"][name] = await _latency_phase(mode, shape, topics, group, options,
                                                       phase, rate, count)
        inputs += [input_id(phase, i) for i in range(count)]
        figures = result["latency"][name]
        say(f"{mode} on {shape.label}, run {run}: at {rate:g}/s p99 "
            f"{figures['read_uncommitted']['p99']} ms uncommitted, "
            f"{figures['read_committed']['p99']} ms committed")

    result["check"] = await check_log(shape.bootstrap, topics, inputs)
    result["load_average_end"] = os.getloadavg()[0]
    return result


async def _latency_phase(mode: str, shape: Shape, topics: Topics, group: str, options: Options,
                         phase: str, rate: float, count: int) -> dict[str, Any]:
    writer = Writer(WriterJob(mode, shape.bootstrap, topics, group, count, options.window_max))
    readers = [DepartmentReader(shape.bootstrap, topics, level)
               for level in ("read_uncommitted", "read_committed")]
    try:
        await writer.ready()
        for reader in readers:
            await reader.start()
            reader.measure_after_ns = time.monotonic_ns() + int(options.warmup_seconds * 1e9)
        broker_before = broker_cpu_seconds(shape.pids)
        writer.go()
        achieved = await paced_inputs(shape.bootstrap, topics, phase, rate, count)
        written = await writer.result(timeout=300)
        broker_after = broker_cpu_seconds(shape.pids)
        wanted = count * DEPARTMENTS_PER_INPUT
        deadline = time.monotonic() + 60
        while any(r.received < wanted for r in readers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        writer.stop()
        for reader in readers:
            await reader.stop()
    return {"rate": rate, "achieved_rate": round(achieved, 1), "inputs": count,
            "windows": written["windows"], "write_stages": written["stages"],
            "writer_cpu_us_per_input": round(written["cpu_seconds"] / count * 1e6),
            # the brokers' CPU over the phase: the inputs' produce and the readers' fetches
            # included, alike for both candidates
            "broker_cpu_us_per_input": None if broker_before is None or broker_after is None
            else round((broker_after - broker_before) / count * 1e6),
            "department_messages_missing": {r.isolation_level: wanted - r.received
                                            for r in readers},
            **{r.isolation_level: r.figures() for r in readers}}


# ---- shapes, the table, main -----------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    from topics.local_kafka import KAFKA_VERSION

    return {"cores": os.cpu_count(), "cpu_model": model, "memory_gb": memory_gb,
            "python": platform.python_version(), "aiokafka": aiokafka.__version__,
            "kafka": KAFKA_VERSION, "system": platform.platform()}


def _span(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    low, high = min(values), max(values)
    fmt = (lambda v: f"{v:,.0f}") if high >= 100 else (lambda v: f"{v:g}")
    return fmt(low) if low == high else f"{fmt(low)}–{fmt(high)}"


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per candidate and cluster shape: the runs' figures side by side (min–max)."""
    rows = []
    keys = sorted({(r["mode"], r["shape"]) for r in runs}, key=lambda k: (k[1], k[0]))
    for mode, shape in keys:
        mine = [r for r in runs if r["mode"] == mode and r["shape"] == shape]
        row: dict[str, Any] = {"mode": mode, "shape": shape, "runs": len(mine)}
        for key in ("events_per_second", "writer_cpu_us_per_event", "writer_cpu_us_per_input",
                    "broker_cpu_us_per_input"):
            row[key] = [r["drain"][key] for r in mine]
        for phase in ("rate", "slow"):
            for key in ("writer_cpu_us_per_input", "broker_cpu_us_per_input"):
                row[f"{phase}_{key}"] = [r["latency"][phase][key] for r in mine]
            for level in ("read_uncommitted", "read_committed"):
                for stat in ("p50", "p99", "p99.9", "p1_p99"):
                    row[f"{phase}_{level}_{stat}"] = [r["latency"][phase][level][stat]
                                                      for r in mine]
        row["inputs_lost"] = sum(r["check"]["inputs_lost"] for r in mine)
        row["events_duplicated"] = sum(r["check"]["events_duplicated"] for r in mine)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], options: Options) -> str:
    lines = ["drain of a backlog (min–max over the runs)",
             f"{'candidate':10} {'cluster':11} {'runs':>4} {'events/s':>14} "
             f"{'writer µs/event':>16} {'writer µs/input':>16} {'broker µs/input':>16} "
             f"{'lost':>5} {'dup':>4}"]
    for row in rows:
        lines.append(f"{row['mode']:10} {row['shape']:11} {row['runs']:>4} "
                     f"{_span(row['events_per_second']):>14} "
                     f"{_span(row['writer_cpu_us_per_event']):>16} "
                     f"{_span(row['writer_cpu_us_per_input']):>16} "
                     f"{_span(row['broker_cpu_us_per_input']):>16} "
                     f"{row['inputs_lost']:>5} {row['events_duplicated']:>4}")
    lines += ["", "CPU per input while paced, µs (brokers': with the inputs' produce and the "
              "readers' fetches)",
              f"{'candidate':10} {'cluster':11} "
              f"{'writer @' + format(options.rate, 'g'):>16} "
              f"{'brokers @' + format(options.rate, 'g'):>16} "
              f"{'writer @' + format(options.slow_rate, 'g'):>16} "
              f"{'brokers @' + format(options.slow_rate, 'g'):>16}"]
    for row in rows:
        cells = [_span(row[f"{phase}_{key}"]) for phase in ("rate", "slow")
                 for key in ("writer_cpu_us_per_input", "broker_cpu_us_per_input")]
        lines.append(f"{row['mode']:10} {row['shape']:11} "
                     + " ".join(f"{cell:>16}" for cell in cells))
    for phase, rate in (("rate", options.rate), ("slow", options.slow_rate)):
        lines += ["", f"input produced → department message read, ms, at {rate:g} inputs/s "
                  "(min–max over the runs)",
                  f"{'candidate':10} {'cluster':11} {'reader':17} {'p50':>11} {'p99':>11} "
                  f"{'p99.9':>11} {'P1 p99':>11}"]
        for row in rows:
            for level in ("read_uncommitted", "read_committed"):
                cells = [_span(row[f"{phase}_{level}_{stat}"])
                         for stat in ("p50", "p99", "p99.9", "p1_p99")]
                lines.append(f"{row['mode']:10} {row['shape']:11} {level:17} "
                             + " ".join(f"{cell:>11}" for cell in cells))
    return "\n".join(lines)


async def _shape_runs(shape: Shape, modes: list[str], runs: int, options: Options,
                      results: list[dict[str, Any]], warmup_inputs: int) -> None:
    """Each candidate once, small and not recorded, so the brokers' JIT and caches are
    warm for every measured run; then the runs, alternating the candidates and
    reversing their order every other run (log, txn, txn, log, …) so neither is
    always the first after the other."""
    if warmup_inputs:
        warmup = replace(options, inputs=warmup_inputs, latency_seconds=3.0,
                         warmup_seconds=1.0)
        for mode in modes:
            say(f"warming the brokers up with {mode}")
            await one_run(mode, shape, warmup, 0)
    for run in range(1, runs + 1):
        for mode in (modes if run % 2 else modes[::-1]):
            results.append(await one_run(mode, shape, options, run))


def _start_shape(brokers: int, workdir: Path):
    from topics.local_kafka import LocalCluster, LocalKafka, free_ports

    cache = Path(os.environ.get("GRIDLINK_KAFKA_CACHE_DIR", Path.home() / ".cache" / "gridlink"))
    ports = free_ports(2 * brokers)
    if brokers == 1:
        local = LocalKafka(data_dir=workdir / "kafka-1", cache_dir=cache, port=ports[0],
                           controller_port=ports[1], heap="1g")
        local.up(timeout_seconds=180, echo=say)
        return local, Shape("1 broker", local.bootstrap, 1, _running([local.pid()]))
    cluster = LocalCluster.on_ports(data_dir=workdir / f"kafka-{brokers}", cache_dir=cache,
                                    ports=list(zip(ports[::2], ports[1::2], strict=True)),
                                    heap="512m")
    cluster.up(timeout_seconds=240, echo=say)
    return cluster, Shape(f"{brokers} brokers", cluster.bootstrap, brokers,
                          _running([node.pid() for node in cluster.nodes]))


def _running(pids: list[int | None]) -> list[int]:
    """The pids of the brokers that run (a stopped one has none to read the CPU time of)."""
    return [pid for pid in pids if pid is not None]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.atomic_write",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="log,txn", help="candidates, comma-separated")
    parser.add_argument("--brokers", default="1,3",
                        help="cluster shapes to start, comma-separated broker counts")
    parser.add_argument("--bootstrap", help="use this running cluster instead of starting any")
    parser.add_argument("--broker-pids", default="",
                        help="with --bootstrap: the broker JVMs' pids, for their CPU")
    parser.add_argument("--runs", type=int, default=2, help="runs of each candidate per shape")
    parser.add_argument("--warmup-inputs", type=int, default=5000,
                        help="inputs of the unrecorded warm-up run of each candidate per shape "
                        "(0: none)")
    defaults = Options()
    parser.add_argument("--inputs", type=int, default=defaults.inputs,
                        help="inputs in the backlog the writer drains")
    parser.add_argument("--partitions", type=int, default=defaults.partitions)
    parser.add_argument("--rate", type=float, default=defaults.rate,
                        help="inputs/s of the paced latency phase")
    parser.add_argument("--slow-rate", type=float, default=defaults.slow_rate,
                        help="inputs/s of the second, slow latency phase")
    parser.add_argument("--latency-seconds", type=float, default=defaults.latency_seconds,
                        help="how long each latency phase is measured")
    parser.add_argument("--warmup-seconds", type=float, default=defaults.warmup_seconds,
                        help="inputs sent this long into a latency phase are not measured")
    parser.add_argument("--window-max", type=int, default=defaults.window_max,
                        help="most inputs in one window of the writer")
    parser.add_argument("--out", type=Path, default=Path("atomic-write-results.json"))
    args = parser.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: choose among {', '.join(MODES)}")
    options = Options(inputs=args.inputs, partitions=args.partitions, rate=args.rate,
                      slow_rate=args.slow_rate, latency_seconds=args.latency_seconds,
                      warmup_seconds=args.warmup_seconds, window_max=args.window_max)
    argv_used = sys.argv[1:] if argv is None else argv
    output: dict[str, Any] = {
        "command": "python -m benchmarks.atomic_write " + shlex.join(argv_used),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {**asdict(options), "modes": modes, "runs": args.runs,
                    "warmup_inputs": args.warmup_inputs},
        "runs": [],
    }
    if args.bootstrap:
        brokers = asyncio.run(cluster_brokers(args.bootstrap))
        pids = [int(p) for p in args.broker_pids.split(",") if p.strip()]
        shape = Shape(f"{brokers} broker{'s' if brokers > 1 else ''}", args.bootstrap, brokers,
                      pids)
        asyncio.run(_shape_runs(shape, modes, args.runs, options, output["runs"],
                                args.warmup_inputs))
    else:
        with tempfile.TemporaryDirectory(prefix="gridlink-atomic-") as tmp:
            for count in [int(b) for b in args.brokers.split(",") if b.strip()]:
                local, shape = _start_shape(count, Path(tmp))
                try:
                    asyncio.run(_shape_runs(shape, modes, args.runs, options, output["runs"],
                                            args.warmup_inputs))
                finally:
                    local.down(echo=lambda *_: None)
    output["summary"] = summary(output["runs"])
    output["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.write_text(json.dumps(output, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    machine_line = (f"{output['machine']['cores']} cores, {output['machine']['cpu_model']}, "
                    f"Kafka {output['machine']['kafka']}, aiokafka {output['machine']['aiokafka']}")
    print(f"{output['command']}\n{machine_line}\n\n{table(output['summary'], options)}")
    say(f"written to {args.out}")
    return output


if __name__ == "__main__":
    main()
