"""The fault suite's harness: simulated traffic, department desks that act, SLA clocks
short enough to fire, and every invariant of the case log checked afterwards.

Everything here talks to the real broker(s) with ordinary clients (kafka-python),
as outside systems do; the worker under test is a real ``gridlink worker``
process, killed and restarted for real.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from kafka import TopicPartition
from kafka.errors import KafkaError

from agents.store import CASE_PREFIX, RocksStore
from settings import Settings
from simulation import Message, Options, generate, load_vocabulary
from streams.cases import (
    CaseEvent,
    CaseState,
    Claim,
    Handle,
    ReportOnSite,
    apply,
    event_decoder,
    pending_deadlines,
)
from streams.cases import events as ev
from streams.reference import load_city
from streams.triage_rules import load_triage_rules
from tests.conftest import PROJECT_DIR
from tests.store.rows import TABLES, projection_rows
from topics import clients, codecs, registry
from topics.placement import case_partition

SHANGHAI_OFFSET = timedelta(hours=8)
FAST_SLA = """\
# SLA budgets for the fault suite: seconds and minutes, so that cards fire during a run.
yellow_at = 0.8

[clock_start]
on_site = "dispatch"
first_control = "dispatch"
resolve = "dispatch"

[extension]
max_times = 1
max = "10wd"
at_most_original = true

[priority.P1]
accept = "0.4m"
on_site = "0.8m"
on_site_rural = "1m"
first_control = "1.5m"
resolve = "3m"
progress_every = "1m"
return_window = "0.5m"

[priority.P2]
accept = "0.5m"
on_site = "1m"
resolve = "3m"
progress_every = "2m"
return_window = "0.5m"

[priority.P3]
accept = "0.6m"
on_site = "1.2m"
resolve = "3m"
feedback = "1m"
return_window = "1m"

[priority.P4]
accept = "0.7m"
on_site = "1.5m"
resolve = "4m"
progress_every = "2m"
return_window = "1m"
"""
CARDS = (ev.YellowCard, ev.RedCard)


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a process started with ``env`` reads."""
    return Settings(**{key.removeprefix("GRIDLINK_").lower(): value
                       for key, value in env.items()})


def fast_rules(directory: Path) -> Path:
    """A copy of the shipped rules with the fault suite's short SLA budgets."""
    import shutil

    target = directory / "rules"
    shutil.copytree(PROJECT_DIR / "rules", target)
    (target / "sla.toml").write_text(FAST_SLA, encoding="utf-8")
    return target


def simulated(count: int, *, seed: int, rate: float, start: datetime) -> list[Message]:
    """``count`` messages of simulated traffic (3 % redelivered, 2 % broken)."""
    settings = Settings()
    city = load_city(settings.reference_dir)
    rules = load_triage_rules(settings.rules_dir, departments=city.departments)
    options = Options(start=start, seed=seed, rate=rate, duplicates=0.03, malformed=0.02,
                      oversize=False)
    return list(generate(city, rules, options, vocabulary=load_vocabulary(rules), count=count))


class Traffic(threading.Thread):
    """Sends the messages at their pace (``sent_offset_s``), retrying through faults."""

    def __init__(self, settings: Settings, messages: Sequence[Message]) -> None:
        super().__init__(daemon=True, name="traffic")
        self.settings, self.messages = settings, messages
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = clients.producer(self.settings,
                                        acks="all", retries=1_000, linger_ms=5,
                                     max_block_ms=120_000, request_timeout_ms=30_000,
                                     max_request_size=8 * 2**20)
            started = time.monotonic()
            for message in self.messages:
                wait = started + message.sent_offset_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                producer.send(self.settings.topic(message.topic), key=message.key,
                              value=message.value)
                self.sent += 1
            producer.flush(timeout=300)
            producer.close()
        except BaseException as error:  # noqa: BLE001 — reported by the test
            self.error = error


class Desks(threading.Thread):
    """Every department desk at once: each new assignment is claimed a little later,
    and some are reported on site and handled, with commands on ``cases.commands``
    as a department system sends them (their ids name the step, so a repeat is one)."""

    def __init__(self, settings: Settings, *, seed: int) -> None:
        super().__init__(daemon=True, name="desks")
        self.settings = settings
        self.random = random.Random(seed)
        self.stop = threading.Event()
        self.seen: set[tuple[str, int, str]] = set()
        self.commands = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # noqa: BLE001 — reported by the test
            self.error = error

    def _run(self) -> None:
        city = load_city(self.settings.reference_dir)
        topics = [self.settings.topic(registry.department_topic(code))
                  for code in city.departments]
        consumer = clients.consumer(self.settings,
                                    group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", consumer_timeout_ms=500)
        consumer.assign([TopicPartition(topic, 0) for topic in topics])
        consumer.seek_to_beginning()
        producer = clients.producer(self.settings, acks="all",
                                    retries=1_000, linger_ms=5, max_block_ms=120_000)
        due: list[tuple[float, Any]] = []
        partitions = self.settings.partitions
        while not self.stop.is_set():
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    self._plan(json.loads(record.value), due)
            now = time.monotonic()
            ready = [command for at, command in due if at <= now]
            due = [(at, command) for at, command in due if at > now]
            for command in ready:
                producer.send(self.settings.topic(registry.CASE_COMMANDS),
                              key=command.case_id.encode(), value=codecs.encode(command),
                              partition=case_partition(command.case_id, partitions))
                self.commands += 1
        producer.flush(timeout=120)
        producer.close()
        consumer.close()

    def _plan(self, message: dict[str, Any], due: list[tuple[float, Any]]) -> None:
        if message.get("kind") != "assignment":
            return
        case_id, assignment = message["case_id"], message["assignment_id"]
        department = message["department"]
        step = (case_id, int(message["seq"]), department)
        if step in self.seen:  # the same message again (at least once): the same step
            return
        self.seen.add(step)
        later = time.monotonic() + self.random.uniform(2, 20)
        ids = f"desk:{case_id}:{assignment}"
        at = _now()
        fields = {"case_id": case_id, "actor": f"department:{department}", "at": at,
                  "assignment_id": assignment, "department": department}
        due.append((later, Claim(command_id=f"{ids}:claim", **fields)))
        roll = self.random.random()
        if roll < 0.5 and message.get("role") == "lead":
            due.append((later + 5, ReportOnSite(command_id=f"{ids}:on-site", **fields)))
        if roll < 0.25 and message.get("role") == "lead":
            due.append((later + 10, Handle(command_id=f"{ids}:handle", outcome="已处置完毕",
                                           **fields)))


def _now() -> datetime:
    from clock import wall_clock

    return wall_clock()


# -- reading what happened ---------------------------------------------------------------


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of a contract topic, up to its end offsets now."""
    name = settings.topic(topic)
    consumer = clients.consumer(settings, group_id=None,
                                enable_auto_commit=False, max_poll_records=5_000,
                                fetch_max_bytes=64 * 2**20, max_partition_fetch_bytes=16 * 2**20)
    try:
        partitions = consumer.partitions_for_topic(name) or set()
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                out += [r for r in records if r.offset < ends[tp]]
        return out
    finally:
        consumer.close()


def group_lag(settings: Settings, group: str, topics: Iterable[str]) -> int:
    """Records of ``topics`` the consumer group ``group`` has not committed yet."""
    consumer = clients.consumer(settings, group_id=group, enable_auto_commit=False)
    try:
        lag = 0
        for topic in topics:
            name = settings.topic(topic)
            tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name)
                                                            or ())]
            ends = consumer.end_offsets(tps)
            for tp in tps:
                committed = consumer.committed(tp)
                lag += ends[tp] - (committed or 0)
        return lag
    finally:
        consumer.close()


def wait_drained(settings: Settings, *, timeout: float,
                 stages: Sequence[str] = ("intake", "cases", "projection"),
                 check: Callable[[], None] = lambda: None) -> float:
    """Wait until the consumer groups of ``stages`` have committed everything (twice in a
    row, a second apart); returns the seconds waited."""
    groups = {
        "intake": (f"{settings.app_id}-intake", registry.INGEST_TOPICS),
        "cases": (settings.app_id, (registry.CASE_COMMANDS,)),
        "projection": (f"{settings.app_id}-projection", (registry.CASE_EVENTS,)),
    }
    started = time.monotonic()
    clean = 0
    while time.monotonic() - started < timeout:
        check()
        try:
            lag: int | None = sum(group_lag(settings, *groups[stage]) for stage in stages)
        except KafkaError:  # the test's own client, on metadata from before a broker's return
            lag = None
        clean = clean + 1 if lag == 0 else 0
        if clean >= 2:
            return time.monotonic() - started
        time.sleep(1.0)
    raise AssertionError(f"{', '.join(stages)} not drained within {timeout:.0f} s")


def read_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """A topic's end offsets (asked again while a broker is down: a client may first try
    the dead one)."""
    name = settings.topic(topic)
    for attempt in range(20):
        consumer = clients.consumer(settings, group_id=None)
        try:
            tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name)
                                                            or ())]
            return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
        except KafkaError:
            if attempt == 19:
                raise
            time.sleep(0.5)
        finally:
            consumer.close()
    raise AssertionError("unreachable")


# -- the invariants -------------------------------------------------------------------------


@dataclass
class Report:
    """One row of the fault table, and what failed."""

    fault: str
    events: int = 0  # valid inbound events sent
    cases: int = 0
    lost: int = 0  # valid events in no case
    holes: int = 0  # missing seqs in case logs
    different: int = 0  # (case, seq) with two different events
    twice: int = 0  # valid events in two cases
    cards: int = 0  # yellow and red cards in the log (the timers ran)
    foreign: int = 0  # records of cases.events that are not case events
    recovery_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        if len(self.failures) < 40:
            self.failures.append(what)

    def row(self) -> str:
        recovery = (f"{max(self.recovery_seconds):.1f} (median "
                    f"{sorted(self.recovery_seconds)[len(self.recovery_seconds) // 2]:.1f})"
                    if self.recovery_seconds else "—")
        return (f"| {self.fault} | {self.events:,} | {self.cases:,} | {self.lost} | "
                f"{self.holes} | {self.different} | {recovery} |")


def valid_ids(messages: Sequence[Message]) -> set[str]:
    """The event ids of the valid messages among ``messages`` (redelivered copies too)."""
    return {m.expected.event_id for m in messages
            if m.expected.outcome in ("case", "duplicate") and m.expected.event_id}


def check_log(report: Report, settings: Settings, valid: set[str], *,
              stopped_at: datetime) -> dict[str, CaseState]:
    """The case log: seqs without holes, no two different events under one seq, every
    valid inbound event in exactly one case, every deadline due before ``stopped_at``
    fired once; every department message, alert and reply sent again identical."""
    by_seq: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    first: dict[str, dict[int, CaseEvent]] = defaultdict(dict)
    for record in read_topic(settings, registry.CASE_EVENTS):
        try:
            event = event_decoder.decode(record.value)
        except msgspec.DecodeError:  # garbage a test put there: not the writers'
            report.foreign += 1
            continue
        by_seq[(event.case_id, event.seq)].add(record.value)
        first[event.case_id].setdefault(event.seq, event)
        if case_partition(event.case_id, settings.partitions) != record.partition:
            report.fail(f"{event.case_id} seq {event.seq} in partition {record.partition}")
    for (case_id, seq), values in by_seq.items():
        if len(values) > 1:
            report.different += 1
            report.fail(f"{case_id} seq {seq}: {len(values)} different events")
    states: dict[str, CaseState] = {}
    recorded: Counter[str] = Counter()
    cards: Counter[tuple[str, str, str]] = Counter()
    for case_id, events in first.items():
        seqs = sorted(events)
        missing = set(range(1, seqs[-1] + 1)) - set(seqs)
        if missing:
            report.holes += len(missing)
            report.fail(f"{case_id}: seqs {sorted(missing)[:5]} missing of {seqs[-1]}")
            continue
        state = None
        for seq in seqs:
            event = events[seq]
            state = apply(state, event)
            if isinstance(event, ev.CaseOpened | ev.EventLinked | ev.AlarmRepeated):
                recorded[event.event.event_id] += 1
            if isinstance(event, CARDS):
                cards[(case_id, event.deadline_id, type(event).__name__)] += 1
                report.cards += 1
        assert state is not None
        states[case_id] = state
    report.events, report.cases = len(valid), len(states)
    report.lost = len(valid - set(recorded))
    for event_id in sorted(valid - set(recorded))[:10]:
        report.fail(f"event {event_id} is in no case")
    report.twice = sum(1 for n in recorded.values() if n > 1)
    for event_id, n in recorded.items():
        if n > 1:
            report.fail(f"event {event_id} is in {n} cases")
    for key, n in cards.items():
        if n > 1:
            report.fail(f"{key[0]}: {key[2]} of {key[1]} written under {n} seqs")
    grace = stopped_at - timedelta(seconds=10)
    for state in states.values():
        for deadline in pending_deadlines(state):
            if deadline.due < grace:
                report.fail(f"{state.case_id}: {deadline.kind} of {deadline.deadline_id} due "
                            f"{deadline.due:%H:%M:%S} never fired")
    told: set[tuple[Any, ...]] = set()
    for topic in (*[registry.department_topic(c) for c in
                    load_city(settings.reference_dir).departments],
                  registry.COMMAND_ALERTS, registry.CASE_REPLIES):
        told |= _sent_again_identical(report, settings, topic)
    for case_id, events in first.items():  # what the log says was sent, was sent
        for event in events.values():
            if isinstance(event, ev.AssignmentDispatched):
                what = ("assignment", case_id, event.seq, event.assignment.department)
            elif isinstance(event, ev.RedCard):
                what = ("red_card", case_id, event.seq, None)
            else:
                continue
            if what not in told:
                report.fail(f"{case_id} seq {event.seq}: no {what[0]} message was sent")
    return states


def _sent_again_identical(report: Report, settings: Settings, topic: str
                          ) -> set[tuple[Any, ...]]:
    """A message sent again is the same message (grouped by what names it); returns what
    was sent, as (kind, case, seq, department)."""
    seen: dict[tuple[Any, ...], bytes] = {}
    sent: set[tuple[Any, ...]] = set()
    for record in read_topic(settings, topic):
        payload = json.loads(record.value)
        name = (payload.get("case_id"), payload.get("seq"), payload.get("kind"),
                payload.get("assignment_id"), payload.get("department"),
                payload.get("command_id"), payload.get("deadline_id"))
        if seen.setdefault(name, record.value) != record.value:
            report.fail(f"{topic}: {name} sent twice with different content")
        sent.add((payload.get("kind"), payload.get("case_id"), payload.get("seq"),
                  payload.get("department") if payload.get("kind") == "assignment" else None))
    return sent


def check_stores(report: Report, settings: Settings, states: dict[str, CaseState]) -> None:
    """After a clean stop, each partition's store holds the log's fold up to its end."""
    ends = read_offsets(settings, registry.CASE_EVENTS)
    base = Path(settings.state_dir) / settings.app_id
    for number, end in ends.items():
        stores = sorted(base.glob(f"*/partition-{number}"))
        if not stores:
            report.fail(f"no store of partition {number}")
            continue
        newest = max(stores, key=lambda path: path.stat().st_mtime)
        store = RocksStore(newest)
        try:
            if store.position.log != end:
                report.fail(f"store of partition {number} at log offset {store.position.log}, "
                            f"the log ends at {end}")
                continue
            for key, raw in store.items(CASE_PREFIX):
                case_id = key[len(CASE_PREFIX):].decode()
                if codecs.unpack(raw, CaseState) != states.get(case_id):
                    report.fail(f"store of partition {number}: {case_id} differs from the "
                                "fold of its log")
        finally:
            store.close()


def check_projection(report: Report, settings: Settings, env: dict[str, str],
                     workdir: Path) -> None:
    """The SQL projection equals a replay of the log into an empty database."""
    live = projection_rows(settings.database_url)
    replay_url = f"sqlite:///{workdir / 'replayed.db'}"
    result = subprocess.run([sys.executable, "-m", "cli.main", "replay"],
                            env={**env, "GRIDLINK_DATABASE_URL": replay_url,
                                 "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR)
    if result.returncode != 0:
        report.fail(f"replay failed: {result.stderr[-500:]}")
        return
    replayed = projection_rows(replay_url)
    for table in TABLES:
        if live[table] != replayed[table]:
            report.fail(f"the projection's {table} differ from a replay of the log "
                        f"({len(live[table])} rows live, {len(replayed[table])} replayed)")


def alive(process: Any) -> Callable[[], None]:
    """A check that raises once the worker ``process`` has exited."""
    def check() -> None:
        if process.proc.poll() is not None:
            raise AssertionError(f"the worker exited ({process.proc.returncode}):\n"
                                 + process.log()[-3000:])
    return check


def until_appending(settings: Settings, since: dict[int, int], *, timeout: float,
                    check: Callable[[], None]) -> float:
    """Seconds until ``cases.events`` grows past ``since`` (the replacement is at work)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        check()
        now = read_offsets(settings, registry.CASE_EVENTS)
        if sum(now.values()) > sum(since.values()):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"the replacement appended nothing within {timeout:.0f} s")


@dataclass
class Load:
    """A fault test's traffic, the department desks and the worker, all running."""

    messages: list[Message]
    desks: Desks
    worker: Any  # the running ``gridlink worker`` process; a test replaces it after a kill
    traffic: Traffic


def under_load(settings: Settings, start_gridlink: Callable[..., Any], *, count: int,
               rate: float, seed: int, ready_timeout: float) -> Load:
    """Every fault test's start: ``count`` simulated messages from now at ``rate`` a
    second, the desks, a worker once it is ready, then the traffic."""
    messages = simulated(count, seed=seed, rate=rate, start=_now())
    desks = Desks(settings, seed=seed)
    desks.start()
    worker = start_gridlink("worker")
    worker.wait_for_log("Worker]: Ready", timeout=ready_timeout)
    traffic = Traffic(settings, messages)
    traffic.start()
    return Load(messages, desks, worker, traffic)


def finish_and_check(load: Load, report: Report, settings: Settings, env: dict[str, str], *,
                     start_gridlink: Callable[..., Any], workdir: Path,
                     fault_table: list[Report]) -> None:
    """Every fault test's end, once its traffic is sent: drained, the desks and the
    worker stopped, the projection caught up in a process of its own; then every
    invariant checked, the row added to the fault table, and nothing lost, no hole,
    nothing different under one seq, nothing recorded twice."""
    worker, desks = load.worker, load.desks
    wait_drained(settings, timeout=300, check=alive(worker))
    desks.stop.set()
    desks.join(timeout=60)
    assert desks.error is None
    time.sleep(3)
    assert worker.stop() == 0
    stopped_at = _now()
    projection = start_gridlink("worker", "--agents", "projection")
    wait_drained(settings, timeout=180, stages=("projection",))
    projection.stop()
    states = check_log(report, settings, valid_ids(load.messages), stopped_at=stopped_at)
    check_stores(report, settings, states)
    check_projection(report, settings, env, workdir)
    fault_table.append(report)
    print(report.row())
    assert report.failures == [], "\n".join(report.failures)
    assert (report.lost, report.holes, report.different, report.twice) == (0, 0, 0, 0)


TABLE_HEAD = ("| fault | events | cases | lost | holes | different under one seq | "
              "recovery s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
