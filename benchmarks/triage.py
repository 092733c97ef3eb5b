"""Triage rate: events/s of the pure core, from an inbound message to a routed case.

Inputs are made from the contract samples (``tests/data/contract/samples``: the
grid reports, camera alerts and 110 referrals of ``*.valid.jsonl`` and the
GB/T 28181 ``<Notify>`` body), varied so that every message is a new event:
ids, grids, cameras and regions of the demo city, coordinates near the grid,
event times advancing through the days, and texts. Correlation therefore does
real work (joins, repeated alarms, recurrences) and de-duplication never
short-circuits.

Figures (events/s, best of ``--repeat`` runs after a warm-up):

- ``classify+route`` — ``classify`` and ``route`` of a located event;
- ``triage+state``   — ``streams.triage.triage`` with the correlation state kept
  per township in a dict of msgpack bytes, unpacked and packed per event, the
  whole stream from empty states;
- ``triage+state, 2nd half`` — the same over the second half of the stream,
  starting from the states the first half left (townships holding a day or two
  of open cases, recurrence history and seen ids: the steady state);
- ``writer body`` — the whole stream through the township writer's pure core, as
  ``agents/writer.py`` takes a located event but for Kafka and the store: decode the
  ``LocatedEvent`` JSON, ``streams.handlers.handle_event`` (triage, the case engine,
  the township's fold, what departments and the command center must see), encode
  the case events and the messages;
- ``parse+locate``   — ``PARSERS[source](raw)`` and ``locate`` (the intake agent),
  over the mix and per source.

Usage, from the repository root::

    .venv/bin/python benchmarks/triage.py
    .venv/bin/python benchmarks/triage.py --events 50000 --repeat 7 --json triage.json
    .venv/bin/python benchmarks/triage.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from streams.calendar import load_calendar
from streams.cases import CaseState, load_case_policy
from streams.classify import classify
from streams.correlate import TownshipState
from streams.handlers import Rules, handle_event
from streams.locate import locate
from streams.parse import PARSERS
from streams.records import LocatedEvent, Source
from streams.reference import City, load_city
from streams.route import route
from streams.triage import triage
from streams.triage_rules import TriageRules, load_triage_rules
from topics import codecs

SAMPLES = ROOT / "tests" / "data" / "contract" / "samples"
RULES_DIR = ROOT / "rules"
CITY_DIR = ROOT / "reference" / "demo_city"
MAX_DISTANCE_M = 500.0  # the default GRIDLINK_LOCATE_MAX_DISTANCE_M
EMPTY_STATE = TownshipState()

START = datetime.fromisoformat("2026-11-02T07:30:00+08:00")
# share of each inbound kind in the mix
MIX = (("grid", 0.50), ("camera", 0.18), ("gb28181", 0.07), ("police", 0.25))

# Texts added to the samples' own (grid reports without a category: keywords decide).
GRID_TEXTS = (
    "小区{n}号楼前垃圾桶满溢，垃圾散落路面，无人清运。",
    "路灯损坏{n}盏，夜间道路漆黑，居民出行不便。",
    "人行道井盖缺失，存在安全隐患，已设置临时警示。",
    "流动摊贩{n}处占道经营，影响行人通行。",
    "夜间施工噪音扰民，居民无法休息，已持续{n}天。",
    "小区消防通道被{n}辆车长期堵塞。",
    "宅基地边界纠纷，两户争执不下，情绪激动。",
    "暴雨后道路积水严重，约{n}0厘米深，车辆无法通行。",
    "居民反映有情况，请核实。",
    "沿街商户店外经营，桌椅摆放到人行道上。",
    "独居老人{n}天未出门，邻居担心其身体状况。",
    "物业与业主因停车费发生纠纷，约{n}名业主聚集在物业办公室。",
)
CAMERA_EVENTS = (
    ("crowd_gathering", "人员聚集，约{n}0人", 2),
    ("street_vending", "占道经营", 4),
    ("smoke", "烟雾", 1),
    ("garbage_overflow", "垃圾满溢", 4),
    ("illegal_parking", "违章停车", 4),
    ("fight", "疑似打架，{n}人", 2),
    ("fire_lane_blocked", "消防通道占用", 3),
    ("road_flooding", "道路积水", 3),
    ("construction_dust", "工地扬尘", 4),
)
GB28181_ALARMS = (
    ("6", "入侵检测：人员翻越围栏(河道护栏)"),
    ("5", "绊线检测：人员越线"),
    ("10", "人员密度超限，约{n}0人"),
    ("9", "客流统计超阈值"),
)
POLICE_CALLS = (
    ("200200", "纠纷", "邻居因装修噪音争吵，双方情绪激动，请求处理。", "3"),
    ("600200", "市政设施", "路面塌陷约{n}平方米，有车辆险些掉入。", "2"),
    ("601300", "水电气暖", "小区停水{n}天了，物业不管。", "3"),
    ("700300", "聚集滋事", "广场上聚集了约{n}0人，有人拉横幅，情绪激动。", "2"),
    ("600300", "劳动保障", "{n}0余名工人讨要拖欠工资，堵在公司门口。", "2"),
    ("600600", "城管执法", "楼下烧烤摊深夜噪音大、油烟重，影响休息，要求处理。", "4"),
    ("400100", "火灾", "居民楼{n}楼冒烟，疑似起火。", "1"),
)


@dataclass(frozen=True)
class Message:
    """One inbound message as the ingest topic holds it."""

    source: Source
    kind: str  # "grid" | "camera" | "gb28181" | "police"
    raw: bytes


@cache
def world() -> tuple[City, TriageRules]:
    """The demo city and the shipped triage rules."""
    city = load_city(CITY_DIR)
    return city, load_triage_rules(RULES_DIR, departments=city.departments)


def _jsonl(name: str) -> list[dict]:
    with open(SAMPLES / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class MessageMaker:
    """Varied inbound messages, made from the contract samples (seeded)."""

    def __init__(self, city: City, *, seed: int = 7, start: datetime = START,
                 gap_seconds: float = 20.0) -> None:
        self.rng = random.Random(seed)
        self.city = city
        self.grids = sorted(city.grids.values(), key=lambda g: g.code)
        self.cameras = sorted(city.cameras.values(), key=lambda c: c.device_id)
        self.now = start
        self.gap_seconds = gap_seconds
        self.n = 0
        self.grid_reports = _jsonl("grid-reports.valid.jsonl")
        self.camera_alerts = _jsonl("camera-alerts.valid.jsonl")
        self.referrals = _jsonl("police-110.valid.jsonl")
        self.notify = (SAMPLES / "camera-alert.gb28181.xml").read_text(encoding="utf-8")
        self.calls: list[str] = []  # recent jjdbh, for linked calls (gljjdbh)
        self.kinds = [kind for kind, _ in MIX]
        self.weights = [weight for _, weight in MIX]

    def messages(self, count: int) -> list[Message]:
        return [self.next() for _ in range(count)]

    def next(self) -> Message:
        self.n += 1
        self.now += timedelta(seconds=self.rng.expovariate(1 / self.gap_seconds))
        kind = self.rng.choices(self.kinds, self.weights)[0]
        make: Callable[[], tuple[Source, bytes]] = getattr(self, f"_{kind}")
        source, raw = make()
        return Message(source, kind, raw)

    # -- one maker per kind

    def _grid(self) -> tuple[Source, bytes]:
        rng, grid = self.rng, self.rng.choice(self.grids)
        report = copy.deepcopy(rng.choice(self.grid_reports))
        if rng.random() < 0.5:  # the sample's own text and category, varied
            text = f"{grid.name}{rng.randint(1, 30)}号楼附近，{report['description']}"
        else:  # a text of our own, no category: keywords decide
            report.pop("category", None)
            report.pop("title", None)
            report.pop("severity_hint", None)
            text = rng.choice(GRID_TEXTS).format(n=rng.randint(2, 9))
        report["description"] = text
        if "title" in report:
            report["title"] = text[:14]
        report["report_id"] = f"GR-{self.now:%Y%m%d}-{self.n:07d}"
        report["grid_code"] = grid.code
        report["reported_at"] = self.now.isoformat()
        if rng.random() < 0.3:
            report["happened_at"] = (self.now - timedelta(minutes=rng.randint(1, 40))).isoformat()
        report["reporter"] = {"staff_id": f"WGY-{rng.randint(1, 2000):04d}"}
        if rng.random() < 0.7:
            report["location"] = {"address": f"{grid.name}{rng.randint(1, 30)}号楼",
                                  **self._near(grid.lon, grid.lat)}
        else:
            report.pop("location", None)
        return Source.GRID, _dumps(report)

    def _camera(self) -> tuple[Source, bytes]:
        rng, camera = self.rng, self.rng.choice(self.cameras)
        alert = copy.deepcopy(rng.choice(self.camera_alerts))
        code, text, priority = rng.choice(CAMERA_EVENTS)
        alert.update(
            alert_id=f"CAM-{camera.device_id}-{self.now:%Y%m%dT%H%M%S}-{self.n}",
            device_id=camera.device_id,
            alarm_time=self.now.isoformat(),
            ai_event_code=code,
            description=text.format(n=rng.randint(2, 9)),
            alarm_priority=priority,
            confidence=round(rng.uniform(0.55, 0.99), 2),
        )
        return Source.CAMERA, _dumps(alert)

    def _gb28181(self) -> tuple[Source, bytes]:
        rng, camera = self.rng, self.rng.choice(self.cameras)
        alarm_type, text = rng.choice(GB28181_ALARMS)
        lon, lat = (camera.lon, camera.lat) if camera.lon is not None else (0.0, 0.0)
        fields = {
            "SN": str(self.n),
            "DeviceID": camera.device_id,
            "AlarmTime": f"{self.now:%Y-%m-%dT%H:%M:%S}",  # local time, no offset (GB/T 28181)
            "AlarmDescription": text.format(n=rng.randint(2, 9)),
            "Longitude": f"{lon:.6f}",
            "Latitude": f"{lat:.6f}",
            "AlarmType": alarm_type,
        }
        xml = self.notify
        for tag, value in fields.items():
            xml = re.sub(f"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", xml, count=1)
        return Source.CAMERA, xml.encode("utf-8")

    def _police(self) -> tuple[Source, bytes]:
        rng, grid = self.rng, self.rng.choice(self.grids)
        referral = copy.deepcopy(rng.choice(self.referrals))
        bjlx, name, text, jqjb = rng.choice(POLICE_CALLS)
        county = grid.code[:6]
        jjdbh = f"{county}{self.now:%Y%m%d}{self.n:05d}"[-19:]
        referral.update(
            referral_id=f"110LD-{county}-{self.now:%Y%m%d}-{self.n:06d}",
            jjdbh=jjdbh,
            xzqhbh=rng.choice((county, grid.code[:9], grid.code[:9])),
            bjsj=self.now.isoformat(),
            referred_at=(self.now + timedelta(minutes=rng.randint(2, 8))).isoformat(),
            bjnr=text.format(n=rng.randint(2, 9)),
            bjlx=bjlx,
            bjlx_name=name,
            jqjb=jqjb,
            sfdz=f"{grid.name}{rng.randint(1, 30)}号楼",
        )
        referral.pop("jjsj", None)
        if rng.random() < 0.8:
            referral["location"] = self._near(grid.lon, grid.lat)
        else:
            referral.pop("location", None)
        if self.calls and rng.random() < 0.05:  # a second call about an earlier one
            referral["gljjdbh"] = rng.choice(self.calls[-50:])
        self.calls.append(jjdbh)
        return Source.POLICE, _dumps(referral)

    def _near(self, lon: float, lat: float) -> dict[str, float]:
        """A point within ≈ 150 m of (lon, lat)."""
        return {"lon": round(lon + self.rng.uniform(-0.0015, 0.0015), 6),
                "lat": round(lat + self.rng.uniform(-0.0012, 0.0012), 6)}


def _dumps(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def admit(messages: Sequence[Message], city: City) -> list[LocatedEvent]:
    """Parse and locate every message, as the intake agent does; ingested 1 s after."""
    out = []
    for message in messages:
        event = PARSERS[message.source](message.raw)
        location = locate(event, city, max_distance_m=MAX_DISTANCE_M)
        out.append(LocatedEvent(event=event, location=location,
                                ingested_at=event.reported_at + timedelta(seconds=1)))
    return out


def located_events(count: int, *, seed: int = 7, gap_seconds: float = 20.0) -> list[LocatedEvent]:
    """``count`` varied, located events in event-time order (for other benchmarks)."""
    city, _ = world()
    return admit(MessageMaker(city, seed=seed, gap_seconds=gap_seconds).messages(count), city)


# -- what is timed --------------------------------------------------------------------------


def run_classify_route(located: Sequence[LocatedEvent], rules: TriageRules) -> int:
    for item in located:
        classification = classify(item.event, rules)
        route(classification, item.event, item.location, rules)
    return len(located)


def run_triage_state(located: Sequence[LocatedEvent], rules: TriageRules,
                     states: dict[bytes, bytes] | None = None) -> Counter[str]:
    """The triage agent's state handling and decision, without Kafka (fresh state)."""
    states = {} if states is None else states
    actions: Counter[str] = Counter()
    for item in located:
        key = item.partition_key.encode()
        stored = states.get(key)
        state = codecs.unpack(stored, TownshipState) if stored else EMPTY_STATE
        now = item.ingested_at
        event_time = min(now, item.event.occurred_at)
        decision, new_state = triage(item.event, item.location, state, rules, event_time)
        if new_state is not state:
            states[key] = codecs.pack(new_state)
        actions[decision.action] += 1
    return actions


def run_writer_body(values: Sequence[bytes], rules: Rules) -> int:
    """Everything the township writer does per located event but Kafka I/O and its store."""
    cases: dict[str, CaseState] = {}
    townships: dict[str, TownshipState] = {}
    written = 0
    for value in values:
        located = codecs.decode(value, LocatedEvent)
        township = located.partition_key
        outcome = handle_event(located, located.ingested_at,
                               townships.get(township, EMPTY_STATE), cases.get, rules)
        if outcome.case is not None:
            cases[outcome.case.case_id] = outcome.case
        if outcome.township is not None:
            townships[township] = outcome.township
        for event in outcome.events:
            codecs.encode(event)
            written += 1
        for _, payload in outcome.departments:
            codecs.encode(payload)
        for payload in outcome.alerts:
            codecs.encode(payload)
    return written


def run_parse_locate(messages: Sequence[Message], city: City) -> int:
    for message in messages:
        event = PARSERS[message.source](message.raw)
        locate(event, city, max_distance_m=MAX_DISTANCE_M)
    return len(messages)


def best_rate(work: Callable[[], object], count: int, *, repeat: int,
              warmup: Callable[[], object] | None = None) -> tuple[float, list[float]]:
    """Best events/s over ``repeat`` timed runs of ``work`` (each handling ``count`` events)."""
    (warmup or work)()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return count / min(seconds), seconds


# -- main -----------------------------------------------------------------------------------


def measure(events: int, *, repeat: int, seed: int, gap_seconds: float) -> dict:
    city, rules = world()
    started = time.perf_counter()
    messages = MessageMaker(city, seed=seed, gap_seconds=gap_seconds).messages(events)
    located = admit(messages, city)
    made_s = time.perf_counter() - started
    values = [codecs.encode(item) for item in located]
    warm = max(1, min(2000, events // 10))

    # the decisions and the states they leave, once, for the description
    states: dict[bytes, bytes] = {}
    actions = run_triage_state(located, rules, states)
    span = located[-1].event.occurred_at - located[0].event.occurred_at

    rows: dict[str, dict] = {}

    def row(name: str, work: Callable[[], object], count: int,
            warmup: Callable[[], object] | None = None) -> None:
        rate, seconds = best_rate(work, count, repeat=repeat, warmup=warmup)
        rows[name] = {"events": count, "events_per_s": rate, "us_per_event": 1e6 / rate,
                      "runs_s": seconds}

    row("classify+route", lambda: run_classify_route(located, rules), events,
        lambda: run_classify_route(located[:warm], rules))
    row("triage+state (msgpack per event)", lambda: run_triage_state(located, rules), events,
        lambda: run_triage_state(located[:warm], rules))
    half = events // 2
    prefilled: dict[bytes, bytes] = {}
    run_triage_state(located[:half], rules, prefilled)
    row("triage+state, 2nd half on warm states", lambda: run_triage_state(
        located[half:], rules, dict(prefilled)), events - half)
    writer_rules = Rules(triage=rules, policy=load_case_policy(RULES_DIR),
                         calendar=load_calendar(RULES_DIR))
    row("writer body (decode+triage+case+messages)",
        lambda: run_writer_body(values, writer_rules), events,
        lambda: run_writer_body(values[:warm], writer_rules))
    row("parse+locate (mix)", lambda: run_parse_locate(messages, city), events,
        lambda: run_parse_locate(messages[:warm], city))
    for kind, _ in MIX:
        subset = [m for m in messages if m.kind == kind]
        if subset:
            row(f"parse+locate ({kind})", partial(run_parse_locate, subset, city), len(subset))

    sizes = sorted(len(v) for v in states.values())
    return {
        "events": events,
        "repeat": repeat,
        "seed": seed,
        "gap_seconds": gap_seconds,
        "event_time_span_hours": span.total_seconds() / 3600,
        "inputs_made_s": made_s,
        "kinds": dict(Counter(m.kind for m in messages)),
        "locate_methods": dict(Counter(item.location.method for item in located)),
        "actions": dict(actions),
        "townships": len(states),
        "state_bytes": {"mean": sum(sizes) / len(sizes), "max": sizes[-1]} if sizes else {},
        "rows": rows,
    }


def report(result: dict) -> None:
    print(f"inputs: {result['events']:,} messages over {result['event_time_span_hours']:.1f} h "
          f"of event time (mean gap {result['gap_seconds']:g} s), made in "
          f"{result['inputs_made_s']:.1f} s")
    print(f"  kinds   {_counts(result['kinds'])}")
    print(f"  located {_counts(result['locate_methods'])}")
    print(f"  triage  {_counts(result['actions'])}")
    if result["state_bytes"]:
        print(f"  state   {result['townships']} townships, msgpack state mean "
              f"{result['state_bytes']['mean']:,.0f} B, max {result['state_bytes']['max']:,} B "
              "at the end")
    print()
    width = max(len(name) for name in result["rows"]) + 2
    print(f"{'stage':<{width}}{'events':>9}{'events/s':>12}{'µs/event':>10}   "
          f"(best of {result['repeat']})")
    for name, r in result["rows"].items():
        print(f"{name:<{width}}{r['events']:>9,}{r['events_per_s']:>12,.0f}"
              f"{r['us_per_event']:>10.1f}")


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000,
                        help="messages in the input (default 10000: about 2.3 days of a "
                             "20 s gap, past the 24 h + 24 h an open case is kept)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gap-seconds", type=float, default=20.0,
                        help="mean event-time gap between messages, city-wide (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2000 messages, 2 runs (a few seconds)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat = min(args.events, 2000), min(args.repeat, 2)

    result = measure(args.events, repeat=args.repeat, seed=args.seed, gap_seconds=args.gap_seconds)
    result["python"] = platform.python_version()
    result["cpus"] = os.cpu_count()
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
