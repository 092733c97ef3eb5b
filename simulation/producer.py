"""Send simulated traffic to Kafka, paced, and write the outcome file (模拟发送).

``run(...)`` generates traffic (or replays a JSONL file), produces it with
kafka-python (``acks=all``, a little linger for throughput, record keys as the
contract says: report_id / alert_id / referral_id) to the ingest topics under
``topic_prefix``, paced to ``rate`` messages per second, and writes one JSON
line per message, in sending order, to ``out``:

.. code-block:: json

    {"seq": 17, "sent_offset_s": 0.17, "topic": "ingest.camera-alerts",
     "key": "CAM-37150200011320000003-20261126T101500-a1b2c317",
     "value": "{\\"alert_id\\": …}",            (or "value_b64" when not UTF-8)
     "expected": {"source": "camera", "outcome": "case", "category": "03.05", …},
     "kafka_topic": "ingest.camera-alerts", "partition": 2, "offset": 1234,
     "timestamp_ms": 1795661700000}             (or "delivery_error": "…")

``expected`` is :class:`simulation.outcome.Expected` (see its docstring). A
dry run writes the same lines without the delivery fields and sends nothing.

Replay reads lines with ``topic``, optional ``key`` and ``value`` (text) or
``value_b64`` / ``raw_hex`` (bytes) — an outcome file is such a file — and
sends them as they are; their ``expected`` objects, if any, are carried over.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import msgspec
from kafka.errors import KafkaError, MessageSizeTooLargeError

from clock import wall_clock
from simulation.generator import Generator, Message, Mix, Options
from simulation.outcome import Expected

if TYPE_CHECKING:
    from settings import Settings

LINGER_MS = 20
BATCH_BYTES = 256 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # lets over-limit test messages reach the broker
ISOLATE_BYTES = 900 * 1024
"""Messages larger than this go through a producer of their own: when the broker refuses
one (MESSAGE_TOO_LARGE), kafka-python fails every later record of the producer that sent it."""
PROGRESS_EVERY_S = 0.5
NOMINAL_RATE = 1000.0  # event-time spacing of generated traffic sent as fast as possible

_encoder = msgspec.json.Encoder()


class ReplayError(ValueError):
    """A replay file line that cannot be sent."""


class Producer(Protocol):
    """What ``run`` needs of a Kafka producer (kafka-python's ``KafkaProducer``)."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


@dataclass(frozen=True)
class Progress:
    sent: int
    delivered: int
    failed: int
    total: int | None  # expected number of messages, when known
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class Summary:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    by_topic: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # case / dead_letter / duplicate
    out: Path | None = None
    errors: list[str] = field(default_factory=list)  # the first delivery errors

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


# --------------------------------------------------------------------------- replay


def read_replay(path: Path) -> Iterator[Message]:
    """The messages of a JSONL file: ``topic``, ``key``, ``value`` | ``value_b64`` |
    ``raw_hex``, and optionally ``sent_offset_s``, ``seq`` and ``expected``."""
    with path.open(encoding="utf-8") as lines:
        n = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            yield message_from_line(line, where=f"{path.name}, line {number}", seq=n)
            n += 1


def message_from_line(line: str, *, where: str = "line", seq: int = 0) -> Message:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{where}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ReplayError(f"{where}: must be a JSON object")
    topic = obj.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ReplayError(f"{where}: needs a topic (e.g. ingest.grid-reports)")
    if isinstance(obj.get("value"), str):
        value = obj["value"].encode("utf-8")
    elif isinstance(obj.get("value_b64"), str):
        value = base64.b64decode(obj["value_b64"], validate=True)
    elif isinstance(obj.get("raw_hex"), str):
        value = bytes.fromhex(obj["raw_hex"])
    elif isinstance(obj.get("raw"), str):
        value = obj["raw"].encode("utf-8")
    else:
        raise ReplayError(f"{where}: needs value, value_b64 or raw_hex")
    key = obj.get("key")
    expected = None
    if isinstance(obj.get("expected"), dict):
        try:
            expected = msgspec.convert(obj["expected"], Expected)
        except msgspec.ValidationError as exc:
            raise ReplayError(f"{where}: expected: {exc}") from None
    return Message(
        topic=topic,
        key=key.encode("utf-8") if isinstance(key, str) else b"",
        value=value,
        sent_offset_s=float(obj.get("sent_offset_s") or 0.0),
        # a generated message always has its outcome; a replayed line may not, and run() skips
        # a None (typing Message.expected optional would make every generated use check it)
        expected=expected,  # type: ignore[arg-type]  # None for a replayed line without one
        seq=int(obj.get("seq", seq)),
    )


# --------------------------------------------------------------------------- run


def run(
    *,
    bootstrap: str,
    topic_prefix: str = "",
    rate: float | None = 100.0,
    duration: float | None = None,
    count: int | None = None,
    mix: Mix | str | None = None,
    seed: int = 0,
    malformed: float = 0.02,
    out: Path | None = None,
    replay_file: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    reference_dir: Path | None = None,
    rules_dir: Path | None = None,
    start: datetime | None = None,
    duplicates: float = 0.0,
    oversize: bool = True,
    dry_run: bool = False,
    producer: Producer | None = None,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Generate (or replay ``replay_file``) and send; see the module docstring.

    ``rate`` is messages per second; ``0`` sends as fast as possible; ``None``
    (replay only) keeps the file's ``sent_offset_s``. Generated traffic stops
    after ``count`` messages or ``duration`` seconds of sending (60 s when
    neither is given). ``start`` is the event time of the first message
    (default: now). ``producer`` replaces the Kafka producer (tests); ``settings``
    give the connection's security (default: the environment's).
    """
    if replay_file is not None:
        if out is not None and _same_file(out, replay_file):
            raise ValueError("out must not be the replay file")
        messages: Iterable[Message] = _limited(read_replay(replay_file), count, duration)
        total = count if count is not None else _count_lines(replay_file)
        pace = "recorded" if rate is None else ("none" if rate <= 0 else "uniform")
    else:
        if count is None and duration is None:
            duration = 60.0
        nominal = rate if rate and rate > 0 else NOMINAL_RATE
        generator = _generator(
            reference_dir=reference_dir,
            rules_dir=rules_dir,
            options=Options(
                start=start or wall_clock(),
                seed=seed,
                rate=nominal,
                mix=Mix.parse(mix) if isinstance(mix, str) else (mix or Mix()),
                malformed=malformed,
                duplicates=duplicates,
                oversize=oversize,
            ),
        )
        messages = generator.take(count=count, duration=duration)
        total = count if count is not None else math.ceil((duration or 0.0) * nominal)
        pace = "recorded" if rate and rate > 0 else "none"
    if dry_run:
        pace = "none"
    own_producer = producer is None and not dry_run
    if own_producer:
        producer = kafka_producer(bootstrap, settings=settings)
    large = _Lazy(
        lambda: kafka_producer(bootstrap, linger_ms=0, settings=settings) if own_producer
        else producer, producer
    )
    summary = Summary(out=out)
    writer = _open(out)
    try:
        _send_all(
            messages,
            producer=None if dry_run else producer,
            large=large,
            prefix=topic_prefix,
            pace=pace,
            rate=rate or 0.0,
            total=total,
            summary=summary,
            writer=writer,
            progress=progress,
            clock=clock,
            sleep=sleep,
        )
    finally:
        if writer is not None:
            writer.close()
        if own_producer and producer is not None:
            producer.close(timeout=10)
            large.discard()
    return summary


class _Lazy:
    """The producer for large messages, made on first use."""

    def __init__(self, make: Callable[[], Producer | None], main: Producer | None) -> None:
        self._make = make
        self._main = main
        self.made: Producer | None = None

    def get(self) -> Producer | None:
        if self.made is None:
            self.made = self._make()
        return self.made

    def discard(self) -> None:
        """Close the one made (if it is not the main producer) and make a new one next time."""
        made, self.made = self.made, None
        if made is not None and made is not self._main:
            made.close(timeout=10)


def kafka_producer(bootstrap: str, *, linger_ms: int = LINGER_MS,
                   settings: Settings | None = None) -> Producer:
    """kafka-python producer (from the one client factory, with the security of
    ``settings``, default the environment's): acks=all, a little linger, room for
    over-limit test messages."""
    from settings import load_settings
    from topics import clients

    return clients.producer(
        settings or load_settings(),
        bootstrap=bootstrap,
        acks="all",
        linger_ms=linger_ms,
        batch_size=BATCH_BYTES,
        max_request_size=MAX_REQUEST_BYTES,
        client_id="gridlink-simulate",
    )


def _generator(
    *, reference_dir: Path | None, rules_dir: Path | None, options: Options
) -> Generator:
    from settings import SHIPPED_REFERENCE_DIR, SHIPPED_RULES_DIR
    from streams.reference import load_city
    from streams.triage_rules import load_triage_rules

    city = load_city(reference_dir or SHIPPED_REFERENCE_DIR)
    rules = load_triage_rules(rules_dir or SHIPPED_RULES_DIR, departments=list(city.departments))
    return Generator(city, rules, options)


def _limited(
    messages: Iterable[Message], count: int | None, duration: float | None
) -> Iterator[Message]:
    for n, message in enumerate(messages):
        if count is not None and n >= count:
            return
        if duration is not None and message.sent_offset_s >= duration:
            return
        yield message


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _open(out: Path | None) -> IO[bytes] | None:
    if out is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.open("wb")


def _send_all(
    messages: Iterable[Message],
    *,
    producer: Producer | None,
    large: _Lazy,
    prefix: str,
    pace: str,
    rate: float,
    total: int | None,
    summary: Summary,
    writer: IO[bytes] | None,
    progress: Callable[[Progress], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    began = clock()
    next_report = began + PROGRESS_EVERY_S
    in_flight: deque[tuple[Message, str, Any]] = deque()

    def report() -> None:
        if progress is not None:
            progress(
                Progress(summary.sent, summary.delivered, summary.failed, total, clock() - began)
            )

    for n, message in enumerate(messages):
        if pace != "none":
            offset = message.sent_offset_s if pace == "recorded" else n / rate
            delay = began + offset - clock()
            if delay > 0.001:
                sleep(delay)
        topic = _physical(prefix, message.topic)
        future = None
        if producer is not None:
            sender = large.get() if len(message.value) > ISOLATE_BYTES else producer
            assert sender is not None
            try:
                future = sender.send(topic, value=message.value, key=message.key or None)
            except MessageSizeTooLargeError as exc:  # refused by the client: record, go on
                future = _Failed(exc)
            if sender is not producer:
                sender.flush()
                if not future.succeeded():  # a refused sender fails all it sends later
                    large.discard()
        in_flight.append((message, topic, future))
        summary.sent += 1
        summary.by_topic[message.topic] = summary.by_topic.get(message.topic, 0) + 1
        if message.expected is not None:
            outcome = message.expected.outcome
            summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
        _drain(in_flight, summary, writer, wait=False)
        if clock() >= next_report:
            next_report = clock() + PROGRESS_EVERY_S
            report()
    if producer is not None:
        producer.flush()
    _drain(in_flight, summary, writer, wait=True)
    summary.elapsed_s = clock() - began
    report()


class _Failed:
    """A send that failed at once, shaped like a kafka-python future."""

    is_done = True

    def __init__(self, exc: Exception) -> None:
        self.exception = exc

    def succeeded(self) -> bool:
        return False


def _physical(prefix: str, topic: str) -> str:
    return topic if not prefix or topic.startswith(prefix) else prefix + topic


def _drain(
    in_flight: deque[tuple[Message, str, Any]],
    summary: Summary,
    writer: IO[bytes] | None,
    *,
    wait: bool,
) -> None:
    """Write the lines of the oldest messages whose delivery is settled, in order."""
    while in_flight:
        message, topic, future = in_flight[0]
        if future is not None and not future.is_done:
            if not wait:
                return
            with contextlib.suppress(KafkaError):  # the outcome is read from the future below
                future.get(timeout=30)
        in_flight.popleft()
        record = message.record() if writer is not None else None
        if future is not None:
            if future.succeeded():
                summary.delivered += 1
                if record is not None:
                    meta = future.value
                    record.update(
                        kafka_topic=topic,
                        partition=meta.partition,
                        offset=meta.offset,
                        timestamp_ms=meta.timestamp,
                    )
            else:
                summary.failed += 1
                error = f"{type(future.exception).__name__}: {future.exception}"
                if len(summary.errors) < 10:
                    summary.errors.append(f"{message.topic} {message.key!r}: {error}")
                if record is not None:
                    record.update(kafka_topic=topic, delivery_error=error)
        if writer is not None:
            writer.write(_encoder.encode(record))
            writer.write(b"\n")


__all__ = [
    "Progress",
    "ReplayError",
    "Summary",
    "kafka_producer",
    "message_from_line",
    "read_replay",
    "run",
]
