"""What every stage of ``gridlink bench`` shares: one broker, fresh topics per
stage, worker processes, a corpus of inbound messages, offset watching and
percentiles.

Each stage gets its own topic prefix, Faust app id and SQLite database, so no
stage sees another's records or state; all of them run on the one broker of
the run, so their figures compare.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka.errors import CoordinatorNotAvailableError
from prometheus_client.parser import text_string_to_metric_families

from settings import Settings
from simulation.generator import Generator, Message, Mix, Options
from streams.reference import load_city
from streams.triage_rules import load_triage_rules
from topics import clients, registry
from topics.admin import create_topics
from topics.local_kafka import free_port


def percentiles(values: Sequence[float], points: Iterable[float] = (50, 99, 99.9)
                ) -> dict[str, float]:
    """Nearest-rank percentiles of ``values`` (and the max), keyed ``p50``, ``p99``…"""
    ordered = sorted(values)
    if not ordered:
        return {}
    out = {}
    for p in points:
        rank = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
        out[f"p{p:g}"] = ordered[rank]
    out["max"] = ordered[-1]
    return out


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stage:
    """The settings of one stage: its own prefix, app id and database."""

    name: str
    settings: Settings
    env: dict[str, str]

    def topic(self, name: str) -> str:
        return self.settings.topic(name)


@dataclass
class Run:
    """One benchmark run: the broker's address, a work directory, the corpus maker."""

    bootstrap: str
    workdir: Path
    seed: int = 7
    table_store: str = field(default_factory=lambda: Settings().table_store)  # of every worker
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    broker_pid: int | None = None  # of the broker the bench started (its CPU is reported)
    own_broker: bool = False  # the bench started it: plaintext, whatever the environment says
    processes: list[Worker] = field(default_factory=list)

    def stage(self, name: str, *, partitions: int = 4, **extra: str) -> Stage:
        """Settings and environment of a fresh stage; its topics are created."""
        prefix = f"bench{self.run_id}-{name}."
        directory = self.workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        env = {
            "GRIDLINK_KAFKA_BOOTSTRAP": self.bootstrap,
            "GRIDLINK_TOPIC_PREFIX": prefix,
            "GRIDLINK_APP_ID": f"gridlink-bench-{self.run_id}-{name}",
            "GRIDLINK_DATABASE_URL": f"sqlite:///{directory / 'gridlink.db'}",
            "GRIDLINK_PARTITIONS": str(partitions),
            "GRIDLINK_TABLE_STORE": self.table_store,
            # each worker of the stage takes its own directory under it, and a worker
            # started after one was killed takes over the dead one's
            "GRIDLINK_STATE_DIR": str(directory / "state"),
            "GRIDLINK_LOG_LEVEL": "warning",
            "GRIDLINK_WORKER_METRICS_PORT": "0",
            **({"GRIDLINK_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"} if self.own_broker else {}),
            **extra,
        }
        # strings, as the worker's environment gives them: pydantic parses each into its type
        fields: dict[str, Any] = {k.removeprefix("GRIDLINK_").lower(): v for k, v in env.items()}
        settings = Settings(**fields)
        city = load_city(settings.reference_dir)
        create_topics(settings, registry.city_topics(settings, city))
        return Stage(name, settings, env)

    def start_worker(self, stage: Stage, *, label: str = "worker", module: str | None = None,
                     args: Sequence[str] = (), metrics: bool = False) -> Worker:
        """``gridlink worker args…`` of ``stage`` (or ``python -m module``), logging to a
        file; with ``metrics``, serving its Prometheus metrics on a free port."""
        worker = Worker.start(stage, self.workdir / stage.name / f"{label}.log", module=module,
                              args=args, metrics_port=free_port() if metrics else 0)
        self.processes.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.processes:
            worker.stop()
        self.processes.clear()


@dataclass
class Worker:
    """A ``gridlink worker`` process of a stage."""

    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int = 0

    @classmethod
    def start(cls, stage: Stage, log_path: Path, *, module: str | None = None,
              args: Sequence[str] = (), metrics_port: int = 0) -> Worker:
        log = log_path.open("ab")
        command = [sys.executable, "-m", module or "cli.main"]
        if module is None:
            command.append("worker")
        command += args
        env = {**os.environ, **stage.env, "PYTHONUNBUFFERED": "1",
               "GRIDLINK_WORKER_METRICS_PORT": str(metrics_port)}
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=Path(__file__).resolve().parent.parent)
        return cls(process, log_path, metrics_port)

    def metric(self, name: str) -> float:
        """The sum of every sample of metric ``name`` this worker serves (0 if none yet).

        Only that metric is asked for (``?name[]=``): rendering all of them, polled
        every 200 ms, took about 4 % of the worker's samples in a py-spy profile of
        a drain."""
        query = urllib.parse.urlencode({"name[]": name})
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics?{query}",
                                        timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name == name)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0, *, after: int = 0) -> float:
        """Seconds until the worker logs "Ready" (the ``after``-th time + 1)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.log().count("Worker]: Ready") > after:
                return time.monotonic() - started
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited ({self.process.returncode}):\n"
                                   + self.log()[-3000:])
            time.sleep(0.05)
        raise RuntimeError(f"the worker was not ready within {timeout:.0f} s:\n"
                           + self.log()[-3000:])

    def check(self) -> None:
        """Raise if the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.log_path.stem} exited ({self.process.returncode}):\n"
                               + self.log()[-3000:])

    def kill(self) -> None:
        """``kill -9``: no shutdown, no commit, no goodbye to the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


# -- the corpus --------------------------------------------------------------------------


def corpus(count: int, *, seed: int, events_per_second: float = 5.0,
           start: datetime | None = None, malformed: float = 0.02) -> list[Message]:
    """``count`` realistic inbound messages (``gridlink simulate``'s generator), event
    times ``1 / events_per_second`` apart on average and ending about now: a busy
    city's traffic, which the benchmark then sends as fast as it is asked to."""
    settings = Settings()
    city = load_city(settings.reference_dir)
    rules = load_triage_rules(settings.rules_dir, departments=city.departments)
    if start is None:
        start = datetime.now(UTC) - timedelta(seconds=count / events_per_second)
    options = Options(start=start, seed=seed, rate=events_per_second, mix=Mix(),
                      malformed=malformed, oversize=False)
    return list(Generator(city, rules, options).take(count=count))


async def produce(stage: Stage, messages: Sequence[Message], *,
                  rate: float | None = None) -> dict[bytes, float]:
    """Send ``messages`` to their ingest topics, as fast as possible or at ``rate``
    per second; returns each key's send time (epoch seconds), also its record
    timestamp."""
    producer = clients.aio_producer(stage.settings, linger_ms=2, acks="all",
                                    max_request_size=registry.DEAD_LETTER_MAX_BYTES,
                                    client_id="gridlink-bench")
    await producer.start()
    sent: dict[bytes, float] = {}
    try:
        started = time.monotonic()
        pending = []
        for i, message in enumerate(messages):
            if rate is not None:
                wait = started + i / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            now = time.time()
            sent[message.key] = now
            pending.append(await producer.send(stage.topic(message.topic), value=message.value,
                                               key=message.key, timestamp_ms=int(now * 1000)))
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def wait_for_group(settings: Settings, group_id: str, members: int, *,
                   timeout: float = 120.0) -> float:
    """Wait until consumer group ``group_id`` is stable with ``members`` members, each
    with partitions assigned; returns the seconds waited. A stage that times its
    workers from here on leaves their joining, and the rebalance each newcomer
    causes, out of its figures."""
    admin = clients.admin(settings, client_id="gridlink-bench")
    started = time.monotonic()
    group: dict[str, Any] = {}
    try:
        while time.monotonic() - started < timeout:
            try:
                group = admin.describe_groups([group_id])[group_id]
            except CoordinatorNotAvailableError:  # a broker just started: not yet
                time.sleep(0.2)
                continue
            joined = group.get("members") or []
            if (group.get("group_state") == "Stable" and len(joined) == members
                    and all(member.get("member_assignment") for member in joined)):
                return time.monotonic() - started
            time.sleep(0.2)
    finally:
        admin.close()
    raise RuntimeError(f"group {group_id} not stable with {members} members within "
                       f"{timeout:.0f} s: {group.get('group_state')}, "
                       f"{len(group.get('members') or [])} members")


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic``, fetching fresh metadata."""
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


class OffsetWatch:
    """Polls the summed end offsets of some topics; knows when they stopped moving."""

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        self.settings, self.topics = settings, list(topics)
        self.consumer: AIOKafkaConsumer | None = None
        self.tps: list[TopicPartition] = []

    async def __aenter__(self) -> Self:
        self.consumer = clients.aio_consumer(self.settings, group_id=None,
                                             client_id="gridlink-bench")
        await self.consumer.start()
        for topic in self.topics:
            partitions = await partitions_of(self.consumer, topic)
            self.tps += [TopicPartition(topic, p) for p in partitions]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.consumer is not None
        await self.consumer.stop()

    async def total(self) -> int:
        assert self.consumer is not None
        return sum((await self.consumer.end_offsets(self.tps)).values())
