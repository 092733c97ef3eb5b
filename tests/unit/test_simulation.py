"""The traffic generator (``gridlink simulate``): determinism, validity, and that the
pipeline's pure core makes of every message what the generator expects.

The core is run as the agents run it: parse → locate → triage with one
correlation state per township, ``now`` = the start plus the send offset.
"""

from __future__ import annotations

import ast
import collections
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from simulation import Expected, Generator, Message, Mix, Options, generate, load_vocabulary
from simulation.cli import simulate
from simulation.generator import SOURCE_OF_TOPIC, TOPICS, chinese
from simulation.producer import ReplayError, message_from_line, read_replay, run
from simulation.vocabulary import VocabularyError
from streams.correlate import TownshipState, state_key
from streams.errors import GridLinkError, InvalidEvent, UnroutableEvent
from streams.locate import locate
from streams.parse import PARSERS, parse_camera_alert, parse_grid_report, parse_police_referral
from streams.priority import chinese_number
from streams.records import PROVISIONAL, Event, Location, Priority, Source
from streams.reference import load_city
from streams.triage import TriageDecision, triage
from streams.triage_rules import load_triage_rules
from tests.conftest import PROJECT_DIR

CST = timezone(timedelta(hours=8))
START = datetime(2026, 11, 26, 9, 0, tzinfo=CST)
CITY = load_city(PROJECT_DIR / "reference" / "demo_city")
RULES = load_triage_rules(PROJECT_DIR / "rules", departments=list(CITY.departments))
VOCABULARY = load_vocabulary(RULES)
MAX_DISTANCE_M = 500.0
PARSER_OF = {
    "ingest.grid-reports": parse_grid_report,
    "ingest.camera-alerts": parse_camera_alert,
    "ingest.police-110": parse_police_referral,
}


def make(count: int, *, seed: int = 1, **options: object) -> list[Message]:
    opts = Options(start=START, seed=seed, **options)  # type: ignore[arg-type]
    return list(generate(CITY, RULES, opts, vocabulary=VOCABULARY, count=count))


@dataclass
class Outcome:
    message: Message
    event: Event | None = None
    location: Location | None = None
    decision: TriageDecision | None = None
    error: GridLinkError | None = None


def pipeline(messages: Iterable[Message]) -> list[Outcome]:
    """Parse, locate and triage each message as the agents would."""
    states: dict[str, TownshipState] = {}
    outcomes = []
    for message in messages:
        outcome = Outcome(message)
        outcomes.append(outcome)
        try:
            outcome.event = PARSER_OF[message.topic](message.value)
            outcome.location = locate(outcome.event, CITY, max_distance_m=MAX_DISTANCE_M)
        except GridLinkError as error:
            outcome.error = error
            continue
        key = state_key(outcome.location)
        now = START + timedelta(seconds=message.sent_offset_s)
        outcome.decision, states[key] = triage(
            outcome.event, outcome.location, states.get(key, TownshipState()), RULES, now
        )
    return outcomes


@cache
def busy_run() -> tuple[Outcome, ...]:
    """A dense sample: 6000 messages at 20/s, 5 % broken, 1 % redelivered."""
    return tuple(pipeline(make(6000, seed=11, rate=20.0, malformed=0.05, duplicates=0.01)))


@cache
def calm_run() -> tuple[Outcome, ...]:
    """A sparser sample (0.5 message/s): incidents rarely meet other open cases."""
    return tuple(pipeline(make(3000, seed=12, rate=0.5, incidents=0.06, malformed=0.0)))


def cases(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.message.expected.outcome == "case"]


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_traffic_other_seed_other_traffic():
    def fingerprint(messages: list[Message]) -> list[tuple[object, ...]]:
        return [(m.topic, m.key, m.value, m.sent_offset_s, m.expected, m.seq) for m in messages]

    first = fingerprint(make(2500, seed=3, malformed=0.05, duplicates=0.02))
    again = fingerprint(make(2500, seed=3, malformed=0.05, duplicates=0.02))
    other = fingerprint(make(2500, seed=4, malformed=0.05, duplicates=0.02))
    assert first == again
    assert first != other
    assert {m[1] for m in first}.isdisjoint({m[1] for m in other})  # ids carry a run tag


def test_another_start_gives_other_ids():
    a = make(200, seed=3)
    b = list(generate(CITY, RULES, Options(start=START + timedelta(days=1), seed=3), count=200))
    assert {m.key for m in a}.isdisjoint({m.key for m in b})


def test_ids_are_unique_except_redeliveries():
    messages = make(5000, seed=5, duplicates=0.02)
    keys = collections.Counter(
        (m.topic, m.key) for m in messages if m.expected.outcome != "duplicate"
    )
    assert max(keys.values()) == 1


PURE_MODULES = ("generator", "vocabulary", "outcome", "malformed", "formats")


@pytest.mark.parametrize("module", PURE_MODULES)
def test_generator_modules_read_no_clock_and_no_network(module: str):
    path = PROJECT_DIR / "simulation" / f"{module}.py"
    text = path.read_text(encoding="utf-8")
    for call in (
        "datetime.now(",
        "datetime.utcnow(",
        "time.time(",
        "date.today(",
        "time.monotonic(",
    ):
        assert call not in text, f"{path.name} calls {call}"
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"kafka", "aiokafka", "faust", "os", "socket", "time"}, imported


def test_take_needs_a_bound_and_stops_at_duration():
    generator = Generator(CITY, RULES, Options(start=START, rate=50.0), VOCABULARY)
    with pytest.raises(ValueError):
        next(generator.take())
    messages = list(generator.take(duration=2.0))
    assert len(messages) == 100
    assert messages[-1].sent_offset_s < 2.0


# --------------------------------------------------------------------------- validity


def test_every_valid_message_parses_and_is_located_where_expected():
    for o in cases(busy_run()):
        expected = o.message.expected
        assert o.error is None, (expected, o.error)
        assert o.event is not None and o.location is not None
        assert o.event.source_id == expected.source_id
        assert o.event.event_id == expected.event_id
        assert o.location.grid_code == expected.grid, expected
        assert o.location.region_code == expected.region, expected
        assert o.event.occurred_at.isoformat() == expected.event_time


def test_every_broken_message_fails_with_the_expected_code():
    broken = [o for o in busy_run() if o.message.expected.outcome == "dead_letter"]
    assert len(broken) > 200
    for o in broken:
        expected = o.message.expected
        assert o.error is not None, (expected, o.message.value[:200])
        kind = InvalidEvent if expected.error_class == "invalid" else UnroutableEvent
        assert isinstance(o.error, kind), (expected, o.error)
        assert o.error.code == expected.error, (expected, o.error.reason)
        if expected.field is not None:
            assert o.error.field == expected.field, (expected, o.error.reason)


def test_every_kind_of_broken_message_is_made():
    messages = make(3000, seed=6, malformed=1.0, duplicates=0.0)
    assert all(m.expected.outcome == "dead_letter" for m in messages)
    made = collections.Counter((m.expected.source, m.expected.variant) for m in messages)
    for source, kinds in VOCABULARY.malformed.items():
        for kind, weight in kinds.items():
            if weight >= 1:
                assert made[(source.value, kind)] > 0, (source, kind)
    codes = {m.expected.error for m in messages}
    assert codes >= {
        "not_json",
        "wrong_shape",
        "schema",
        "bad_encoding",
        "not_alarm",
        "malformed_xml",
        "unsafe_xml",
        "unknown_grid",
        "unknown_device",
        "unknown_region",
    }
    for m in messages:
        parser = PARSER_OF[m.topic]
        try:
            event = parser(m.value)
            locate(event, CITY, max_distance_m=MAX_DISTANCE_M)
        except GridLinkError as error:
            assert error.code == m.expected.error, (m.expected, error.reason)
        else:
            pytest.fail(f"accepted: {m.expected}")


def test_oversize_messages_exceed_the_limit_and_can_be_left_out():
    messages = make(1500, seed=8, malformed=1.0)
    large = [m for m in messages if m.expected.error == "too_large"]
    assert large and all(len(m.value) > 1 << 20 for m in large)
    for m in large[:3]:
        with pytest.raises(InvalidEvent) as caught:
            PARSER_OF[m.topic](m.value)
        assert caught.value.code == "too_large"
    without = make(1500, seed=8, malformed=1.0, oversize=False)
    assert not [m for m in without if m.expected.error == "too_large"]


def test_redelivered_copies_are_duplicates_to_triage():
    duplicates = [o for o in busy_run() if o.message.expected.outcome == "duplicate"]
    assert len(duplicates) > 20
    for o in duplicates:
        assert o.decision is not None and o.decision.action == "duplicate"


# --------------------------------------------------------------------------- classification


def test_classification_agrees_with_the_intended_category():
    valid = [o for o in cases(busy_run()) if o.decision is not None]
    agree = [o for o in valid if o.decision.classification.category == o.message.expected.category]
    assert len(agree) / len(valid) >= 0.97, len(agree) / len(valid)
    for source in Source:
        of_source = [o for o in valid if o.message.expected.source == source.value]
        share = sum(o in agree for o in of_source) / len(of_source)
        assert share >= 0.95, (source, share)


def test_categories_from_source_codes_agree_exactly():
    exact = [o for o in cases(busy_run()) if o.message.expected.exact]
    assert len(exact) > 1500
    for o in exact:
        assert o.decision is not None
        assert o.decision.classification.category == o.message.expected.category, (
            o.message.expected,
            o.decision.classification,
        )


def test_texts_alone_classify_to_their_category():
    """Grid reports without the app's labels: the shipped keyword rules must find the
    category in the generated words (11.00 by falling through to the fallback)."""
    valid = [
        o
        for o in cases(busy_run())
        if o.message.expected.source == "grid" and o.message.expected.rule is None
    ]
    assert len(valid) > 500
    agree = sum(o.decision.classification.category == o.message.expected.category for o in valid)
    assert agree / len(valid) >= 0.97


def test_lead_and_disposition_of_opened_cases_agree():
    opened = [
        o
        for o in cases(busy_run())
        if o.decision is not None
        and o.decision.action == "open"
        and o.decision.classification.category == o.message.expected.category
    ]
    assert len(opened) > 1000
    for o in opened:
        assert o.decision.routing is not None
        if o.decision.routing.disposition == PROVISIONAL:
            # a P1 sent to verification (a camera alarm of low confidence) goes at once
            # to the fallback lead while it is verified; the generator cannot know that
            assert o.decision.needs_verification and o.decision.priority.priority is Priority.P1
            assert o.decision.lead == "zhongzhi"
            continue
        assert o.decision.lead == o.message.expected.lead, o.message.expected
        assert o.decision.routing.disposition == o.message.expected.disposition
    dispositions = {o.message.expected.disposition for o in opened}
    assert dispositions >= {"dispatch", "closed_at_grid", "police_only", "follow_up"}


def test_priorities_agree():
    valid = [
        o
        for o in cases(busy_run())
        if o.decision is not None
        and o.decision.classification.category == o.message.expected.category
    ]
    wrong = []
    for o in valid:
        expected, got = o.message.expected, o.decision.priority.priority
        if expected.hot_spot is None:  # may have recurred by chance: one step more is right too
            ok = got.label == expected.priority or got.value == int(expected.priority[1]) - 1
        else:
            ok = got.label == expected.priority and o.decision.hot_spot == expected.hot_spot
        if not ok:
            wrong.append((expected, o.decision.priority))
    assert len(wrong) <= len(valid) * 0.005, wrong[:5]
    assert {o.message.expected.priority for o in valid} == {"P1", "P2", "P3", "P4"}


# --------------------------------------------------------------------------- scenarios


def incidents(outcomes: Iterable[Outcome], kinds: Iterable[str] | None = None):
    groups: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in cases(outcomes):
        incident = o.message.expected.incident
        if incident and (kinds is None or kind_of(incident) in kinds):
            groups[incident].append(o)
    return groups


def kind_of(incident: str) -> str:
    """``<run tag>-<kind>-<number>`` → kind (fight, crowd, repeat, linked …)."""
    return incident.split("-", 1)[1].rsplit("-", 1)[0]


CORRELATED = {plan.name for plan in VOCABULARY.incidents}


def test_correlated_incidents_share_grid_and_fall_within_minutes():
    groups = incidents(busy_run(), CORRELATED)
    complete = {i: g for i, g in groups.items() if len(g) >= 2}
    assert len(complete) > 50
    names = collections.Counter(kind_of(i) for i in complete)
    assert set(names) == CORRELATED
    for members in complete.values():
        grids = {o.location.grid_code for o in members}
        assert len(grids) == 1 and None not in grids
        times = sorted(o.event.occurred_at for o in members)
        assert times[-1] - times[0] <= timedelta(minutes=30)
        assert len({o.message.expected.source for o in members}) == len(members)
    fights = [g for i, g in complete.items() if "-fight-" in i and len(g) == 3]
    assert fights
    assert {o.message.expected.source for o in fights[0]} == {"camera", "police", "grid"}


def test_incidents_end_in_one_case():
    groups = incidents(calm_run(), CORRELATED)
    whole = [g for g in groups.values() if len({o.decision.case_id for o in g}) == 1]
    assert len(groups) > 50
    assert len(whole) / len(groups) >= 0.97, len(whole) / len(groups)


def test_incident_follow_ups_are_sent_after_the_first_step():
    for members in incidents(busy_run(), CORRELATED).values():
        first = min(members, key=lambda o: o.event.occurred_at)
        assert first.message.seq == min(o.message.seq for o in members)


def test_repeated_alarms_share_device_and_type_and_fold_into_the_first():
    outcomes = cases(busy_run())
    by_id = {o.message.expected.source_id: o for o in outcomes}
    repeats = [o for o in outcomes if o.message.expected.repeat_of]
    assert len(repeats) > 100
    for o in repeats:
        head = by_id[o.message.expected.repeat_of]
        assert o.event.device_id == head.event.device_id
        assert (o.event.source_code, o.event.alarm_method, o.event.alarm_type) == (
            head.event.source_code,
            head.event.alarm_method,
            head.event.alarm_type,
        )
        assert abs(o.event.occurred_at - head.event.occurred_at) <= timedelta(hours=1)
        assert o.decision.action == "repeat"
        assert o.decision.case_id == head.decision.case_id


def test_linked_110_calls_name_the_earlier_call_and_join_its_case():
    outcomes = cases(busy_run())
    by_id = {o.message.expected.source_id: o for o in outcomes}
    linked = [o for o in outcomes if o.message.expected.linked_to]
    assert len(linked) > 20
    for o in linked:
        earlier = by_id[o.message.expected.linked_to]
        assert o.event.linked_call_no == earlier.event.call_no
        assert o.event.occurred_at > earlier.event.occurred_at
        assert o.decision.case_id == earlier.decision.case_id
        assert o.message.expected.incident == earlier.message.expected.incident


def test_hot_spots_recur_and_are_flagged():
    spots: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in cases(busy_run()):
        if o.message.expected.hot_spot_id:
            spots[o.message.expected.hot_spot_id].append(o)
    threshold = RULES.correlation.recurrence_threshold
    recurring = {k: v for k, v in spots.items() if len(v) >= threshold}
    assert len(recurring) >= 3
    for members in recurring.values():
        assert len({(o.location.grid_code, o.message.expected.category) for o in members}) == 1
        settled, rest = members[: threshold - 1], members[threshold - 1 :]
        assert all(o.message.expected.disposition == "closed_at_grid" for o in settled)
        for o in rest:
            assert o.message.expected.hot_spot is True
            assert o.decision.hot_spot, o.message.expected
    sources = {o.message.expected.source for v in recurring.values() for o in v[threshold - 1 :]}
    assert len(sources) >= 2


@pytest.mark.parametrize(
    "mix", ["grid=0.4,camera=0.4,police=0.2", "grid=0.7,camera=0.1,police=0.2", "police=1"]
)
def test_mix_and_broken_shares_are_respected(mix: str):
    messages = make(4000, seed=9, mix=Mix.parse(mix), malformed=0.05, duplicates=0.02)
    shares = Mix.parse(mix).shares()
    sources = collections.Counter(SOURCE_OF_TOPIC[m.topic] for m in messages)
    for source, share in shares.items():
        assert abs(sources[source] / len(messages) - share) <= 0.02, (source, sources)
    outcomes = collections.Counter(m.expected.outcome for m in messages)
    assert abs(outcomes["dead_letter"] / len(messages) - 0.05) <= 0.01
    assert abs(outcomes["duplicate"] / len(messages) - 0.02) <= 0.01


def test_mix_parsing():
    assert Mix.parse("grid=1, 110=1").shares() == {
        Source.GRID: 0.5,
        Source.CAMERA: 0.0,
        Source.POLICE: 0.5,
    }
    assert str(Mix.parse("camera=2")) == "grid=0,camera=2,police=0"
    for bad in ("grid=x", "trains=1", "grid=0", "grid"):
        with pytest.raises(ValueError):
            Mix.parse(bad)


def test_variety():
    messages = [m for m in make(6000, seed=10) if m.expected.outcome == "case"]
    texts: dict[str, set[str]] = collections.defaultdict(set)
    alarms: dict[str, set[str]] = collections.defaultdict(set)
    counts: collections.Counter[str] = collections.Counter()
    alarm_counts: collections.Counter[str] = collections.Counter()
    for m in messages:
        event = PARSER_OF[m.topic](m.value)
        if m.expected.source == "camera":  # short AI labels, often with the camera's point
            alarms[m.expected.category].add(event.text)
            alarm_counts[m.expected.category] += 1
        else:
            texts[m.expected.category].add(event.text)
            counts[m.expected.category] += 1
    assert set(texts) | set(alarms) == set(VOCABULARY.categories)
    common = [c for c, n in counts.items() if n >= 50]
    assert len(common) > 10
    for category in common:  # people's words: hardly a text twice
        assert len(texts[category]) >= 0.9 * counts[category], category
    for category, n in alarm_counts.items():
        if n >= 50:
            assert len(alarms[category]) >= 0.2 * n, category
    variants = collections.Counter(m.expected.variant for m in messages)
    assert {"json", "json-ascii", "json-spaced", "xml-utf-8", "xml-gb2312", "xml-gbk"} <= set(
        variants
    )
    gb = [m for m in messages if m.expected.variant == "xml-gb2312"]
    assert any(_not_utf8(m.value) for m in gb)
    cameras = [m for m in messages if m.topic == TOPICS[Source.CAMERA]]
    assert 0.1 <= sum(m.expected.variant.startswith("xml") for m in cameras) / len(cameras) < 0.5
    codes = {m.expected.rule for m in messages if m.expected.source == "police"}
    assert len(codes) >= 15
    assert any(b'"gljjdbh":"' in m.value or b'"gljjdbh": "' in m.value for m in messages)


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_chinese_numerals_are_what_the_core_reads():
    for n in range(1, 100):
        assert chinese_number(chinese(n)) == n


# --------------------------------------------------------------------------- vocabulary


def test_vocabulary_rejects_data_that_contradicts_the_rules(tmp_path: Path):
    data = PROJECT_DIR / "simulation" / "data"
    for name in ("vocabulary.toml", "categories.toml", "incidents.toml"):
        shutil.copy(data / name, tmp_path / name)
    assert load_vocabulary(RULES, tmp_path).categories.keys() == VOCABULARY.categories.keys()
    text = (data / "categories.toml").read_text(encoding="utf-8")
    for broken, message in [
        (text.replace('bjlx = ["600600"]', 'bjlx = ["700300"]', 1), "bjlx 700300"),
        (text.replace('type = ["邻里纠纷"]', 'type = ["占道经营"]', 1), "占道经营"),
        (text.replace('ai = ["street_vending"]', 'ai = ["fight"]', 1), "fight"),
        (text.replace('[categories."11.00"]', '[categories."12.00"]', 1), "12.00"),
    ]:
        (tmp_path / "categories.toml").write_text(broken, encoding="utf-8")
        with pytest.raises(VocabularyError, match=message):
            load_vocabulary(RULES, tmp_path)


# --------------------------------------------------------------------------- producer


class FakeFuture:
    def __init__(self, topic: str, offset: int, error: Exception | None = None) -> None:
        self.is_done = True
        self.exception = error
        self.value = None if error else _Meta(topic, offset)

    def succeeded(self) -> bool:
        return self.exception is None

    def get(self, timeout: float | None = None) -> object:
        return self.value


@dataclass
class _Meta:
    topic: str
    offset: int
    partition: int = 0
    timestamp: int = 1795661700000


class FakeProducer:
    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.fail_every = fail_every
        self.flushed = self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        self.sent.append((topic, key, value))
        n = len(self.sent)
        error = (
            RuntimeError("broker said no") if self.fail_every and n % self.fail_every == 0 else None
        )
        return FakeFuture(topic, n - 1, error)

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_run_sends_paced_keyed_and_writes_the_outcome_file(tmp_path: Path):
    out = tmp_path / "out" / "sent.jsonl"
    producer, clock, seen = FakeProducer(fail_every=50), FakeClock(), []
    summary = run(
        bootstrap="127.0.0.1:9",
        topic_prefix="t1.",
        rate=50.0,
        count=400,
        seed=2,
        start=START,
        out=out,
        producer=producer,
        clock=clock,
        sleep=clock.sleep,
        progress=seen.append,
    )
    assert summary.sent == 400 and len(producer.sent) == 400
    assert summary.failed == 8 and summary.delivered == 392
    assert producer.flushed and not producer.closed  # a given producer is the caller's
    assert 7.9 <= clock.slept <= 8.0  # 400 messages at 50/s
    assert seen and seen[-1].sent == 400
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["seq"] for line in lines] == list(range(400))
    expected = make(400, seed=2, rate=50.0)
    for line, (topic, key, value), message in zip(lines, producer.sent, expected, strict=True):
        assert topic == "t1." + message.topic == line["kafka_topic"]
        assert key == message.key and value == message.value
        assert line["expected"]["source_id"] == key.decode()
        assert msgspec_expected(line) == message.expected
        assert ("delivery_error" in line) == (line["seq"] % 50 == 49)
        if "offset" in line:
            assert line["offset"] == line["seq"]
    keys = {m.topic: json.loads(m.value)[field] for m, field in _json_keyed(expected)}
    assert keys


def _json_keyed(messages: list[Message]):
    fields = {
        "ingest.grid-reports": "report_id",
        "ingest.camera-alerts": "alert_id",
        "ingest.police-110": "referral_id",
    }
    for m in messages:
        if m.expected.outcome == "case" and m.value.startswith(b"{"):
            assert json.loads(m.value)[fields[m.topic]] == m.key.decode()
            yield m, fields[m.topic]


def msgspec_expected(line: dict[str, object]) -> Expected:
    import msgspec

    return msgspec.convert(line["expected"], Expected)


class SizeLimitedProducer(FakeProducer):
    """Refuses what is over 1 MiB, like a broker with the default max.message.bytes."""

    made: ClassVar[list[SizeLimitedProducer]] = []

    def __init__(self, bootstrap: str, *, linger_ms: int = 20, settings: object = None) -> None:
        super().__init__()
        self.linger_ms = linger_ms
        SizeLimitedProducer.made.append(self)

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        self.sent.append((topic, key, value))
        error = RuntimeError("MESSAGE_TOO_LARGE") if value and len(value) > 1 << 20 else None
        return FakeFuture(topic, len(self.sent) - 1, error)


def test_large_messages_go_through_a_producer_of_their_own(monkeypatch, tmp_path: Path):
    SizeLimitedProducer.made = []
    monkeypatch.setattr("simulation.producer.kafka_producer", SizeLimitedProducer)
    summary = run(
        bootstrap="x:1",
        count=2000,
        seed=8,
        start=START,
        malformed=0.5,
        rate=0,
        out=tmp_path / "o.jsonl",
    )
    main, *large = SizeLimitedProducer.made
    assert main.linger_ms > 0 and all(p.linger_ms == 0 for p in large)
    assert all(len(v or b"") <= 1 << 20 for _, _, v in main.sent)
    too_large = sum(1 for p in large for _, _, v in p.sent if len(v or b"") > 1 << 20)
    assert too_large > 0 and summary.failed == too_large
    assert len(large) == too_large  # a refused producer is replaced, and all are closed
    assert main.closed and all(p.closed for p in large)


def test_replay_sends_the_same_bytes(tmp_path: Path):
    out = tmp_path / "sent.jsonl"
    run(bootstrap="x:1", count=300, seed=4, start=START, malformed=0.2, out=out, dry_run=True)
    original = list(read_replay(out))
    assert any(m.expected.variant == "xml-gb2312" for m in original)  # bytes that are not UTF-8
    producer, again = FakeProducer(), tmp_path / "again.jsonl"
    summary = run(bootstrap="x:1", replay_file=out, rate=0, out=again, producer=producer)
    assert summary.sent == 300 and summary.outcomes["dead_letter"] > 30
    assert [(t, k, v) for t, k, v in producer.sent] == [(m.topic, m.key, m.value) for m in original]
    assert [m.expected for m in read_replay(again)] == [m.expected for m in original]
    with pytest.raises(ValueError, match="replay file"):
        run(bootstrap="x:1", replay_file=out, out=out, producer=FakeProducer())


def test_replay_paces_as_recorded_or_at_a_rate(tmp_path: Path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(
                {
                    "topic": "ingest.police-110",
                    "key": f"k{i}",
                    "value": "{}",
                    "sent_offset_s": i * 0.5,
                }
            )
            for i in range(5)
        ),
        encoding="utf-8",
    )
    for rate, slept in [(None, 2.0), (10.0, 0.4), (0.0, 0.0)]:
        clock = FakeClock()
        run(
            bootstrap="x:1",
            replay_file=path,
            rate=rate,
            producer=FakeProducer(),
            clock=clock,
            sleep=clock.sleep,
        )
        assert clock.slept == pytest.approx(slept)


def test_replay_lines():
    m = message_from_line('{"topic": "ingest.police-110", "key": "k", "raw_hex": "fffe7b"}')
    assert (m.topic, m.key, m.value, m.expected) == ("ingest.police-110", b"k", b"\xff\xfe{", None)
    m = message_from_line('{"topic": "ingest.grid-reports", "value_b64": "e30="}')
    assert (m.key, m.value) == (b"", b"{}")
    for bad in ('{"key": "k", "value": "{}"}', '{"topic": "t"}', "[1]", "nope"):
        with pytest.raises(ReplayError):
            message_from_line(bad)


# --------------------------------------------------------------------------- command


def test_simulate_command_dry_run(tmp_path: Path):
    out = tmp_path / "sim.jsonl"
    args = [
        "--count",
        "250",
        "--dry-run",
        "--out",
        str(out),
        "--seed",
        "5",
        "--start",
        "2026-11-26T09:00:00",
        "--mix",
        "grid=1,camera=1,police=1",
    ]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert "250 messages written" in result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 250
    first = json.loads(lines[0])
    assert first["expected"]["event_time"].startswith("2026-11-26T09:00")
    again = CliRunner().invoke(simulate, [*args[:4], str(tmp_path / "b.jsonl"), *args[5:]])
    assert again.exit_code == 0
    assert (tmp_path / "b.jsonl").read_bytes() == out.read_bytes()


def test_simulate_command_rejects_bad_options(tmp_path: Path):
    for args in (["--mix", "grid=x"], ["--malformed", "2"], ["--start", "tomorrow"]):
        result = CliRunner().invoke(
            simulate, [*args, "--dry-run", "--count", "1", "--out", str(tmp_path / "x.jsonl")]
        )
        assert result.exit_code == 2, (args, result.output)


def test_parsers_are_the_contract_parsers():
    assert {PARSERS[s] for s in Source} == set(PARSER_OF.values())
