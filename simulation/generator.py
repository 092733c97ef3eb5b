"""A seeded generator of realistic inbound traffic (模拟流量) over a reference city.

Pure: every random choice comes from ``random.Random(options.seed)``, time from
``options.start``; nothing reads a clock, the network or the environment. The
same city, rules, vocabulary and options give byte-identical messages.

What it produces, message by message (``Message``: topic, key, value,
``sent_offset_s`` — when to send it, seconds after the start — and the
``Expected`` outcome):

- grid reports (网格员上报), camera alerts (雪亮: JSON, or GB/T 28181 XML in
  UTF-8, GB2312 or GBK) and 110 referrals (110社会联动) in the configured mix,
  texts from templates and vocabularies per category (``simulation/data``);
- repeated camera alarms from one device (``repeat_of``);
- 110 calls naming an earlier call in ``gljjdbh`` (``linked_to``);
- correlated incidents: one incident seen by a camera, called in to 110 and
  reported by the grid worker within minutes, in one grid (``incident``);
- hot spots: the same grid and category recurring — settled on the spot twice
  by the grid worker (已化解), then back again (``hot_spot``, ``hot_spot_id``);
- redelivered copies (``duplicate``), if asked for;
- broken messages at the configured share (``dead_letter`` with the error).

Follow-ups of an incident, a repeat series or a linked call happen minutes
later in event time, but are sent ``incident_time_scale`` times sooner (a
minute of event time per second of sending by default), so short runs
contain whole incidents. Event times may thus run a few minutes ahead of the
send time; correlation windows are measured on event time.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from simulation import malformed as broken
from simulation.formats import JSON_STYLES, alarm_elements, encode_xml, json_bytes, xml_document
from simulation.outcome import (
    CLOSED_AT_GRID,
    FOLLOW_UP,
    Expected,
    own_priority,
    raised,
    routing_of,
)
from simulation.vocabulary import (
    CategoryVocabulary,
    IncidentPlan,
    IncidentStep,
    Vocabulary,
    VocabularyError,
    load_vocabulary,
    render,
)
from streams.records import Source
from streams.reference import Camera, City, Grid
from streams.triage_rules import CodeRule, TriageRules
from streams.zone import UTC_PLUS_8
from topics.registry import CAMERA_ALERTS, GRID_REPORTS, POLICE_110

TOPICS: Mapping[Source, str] = {
    Source.GRID: GRID_REPORTS,
    Source.CAMERA: CAMERA_ALERTS,
    Source.POLICE: POLICE_110,
}
SOURCE_OF_TOPIC: Mapping[str, Source] = {topic: source for source, topic in TOPICS.items()}
_SOURCE_NAMES = {
    "grid": Source.GRID,
    "grids": Source.GRID,
    "camera": Source.CAMERA,
    "cameras": Source.CAMERA,
    "video": Source.CAMERA,
    "police": Source.POLICE,
    "110": Source.POLICE,
}
_AI_ALARM_TYPES = {"crowd_gathering": 10, "banner": 10, "fence_climb": 5, "intrusion": 6}
_PLACE_SLOTS = (
    "place",
    "home",
    "estate",
    "village",
    "road",
    "road2",
    "crossing",
    "market",
    "shop",
    "gate",
    "n",
    "m",
)
_CN_DIGITS = "零一二三四五六七八九"
_RECENT = 200  # messages a duplicate may copy, per source


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Mix:
    """Shares of the three sources (normalised; need not sum to 1)."""

    grid: float = 0.4
    camera: float = 0.4
    police: float = 0.2

    def __post_init__(self) -> None:
        values = (self.grid, self.camera, self.police)
        if any(not (v >= 0) or math.isinf(v) for v in values) or sum(values) <= 0:
            raise ValueError("mix shares must be >= 0 and not all 0")

    @classmethod
    def parse(cls, text: str) -> Mix:
        """``"grid=0.4,camera=0.4,police=0.2"`` (``110`` for police); a source left out gets 0."""
        shares = {"grid": 0.0, "camera": 0.0, "police": 0.0}
        for part in text.split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            source = _SOURCE_NAMES.get(name.strip().lower())
            if source is None or not sep:
                raise ValueError(f"mix: {part.strip()!r} is not grid=…, camera=… or police=…")
            try:
                shares[source.value] = float(value)
            except ValueError:
                raise ValueError(f"mix: {value.strip()!r} is not a number") from None
        return cls(**shares)

    def shares(self) -> dict[Source, float]:
        total = self.grid + self.camera + self.police
        return {
            Source.GRID: self.grid / total,
            Source.CAMERA: self.camera / total,
            Source.POLICE: self.police / total,
        }

    def __str__(self) -> str:
        return f"grid={self.grid:g},camera={self.camera:g},police={self.police:g}"


@dataclass(frozen=True)
class Options:
    start: datetime  # event time of the first message (aware); inject the clock here
    seed: int = 0
    rate: float = 100.0  # messages per second of sending (spaces sent_offset_s and event times)
    mix: Mix = field(default_factory=Mix)
    malformed: float = 0.02  # share of broken messages
    incidents: float = 0.03  # share of fresh messages that start a correlated incident
    repeats: float = 0.15  # share of camera alarms followed by repeats from the same device
    links: float = 0.06  # share of 110 calls followed by a call naming them in gljjdbh
    hot_spots: int = 6  # hot spots (grid + category) recurring at any time
    hot_spot_share: float = 0.03  # share of fresh messages that are a hot spot's next occurrence
    duplicates: float = 0.0  # share of redelivered copies of earlier messages
    xml_share: float = 0.25  # camera alerts sent as GB/T 28181 XML (where the category has one)
    oversize: bool = True  # include messages over the 1 MiB limit among the broken ones
    incident_time_scale: float = 60.0  # seconds of event time per second of sending, follow-ups

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not self.rate > 0:
            raise ValueError("rate must be > 0")
        for name in (
            "malformed",
            "incidents",
            "repeats",
            "links",
            "hot_spot_share",
            "duplicates",
            "xml_share",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.hot_spots < 0 or not self.incident_time_scale > 0:
            raise ValueError("hot_spots must be >= 0 and incident_time_scale > 0")


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Message:
    topic: str  # the contract topic name (without any prefix)
    key: bytes
    value: bytes
    sent_offset_s: float  # when to send it, in seconds after the start
    expected: Expected
    seq: int = 0

    def record(self) -> dict[str, Any]:
        """The message as one line of the outcome file (see ``simulation.producer``)."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "sent_offset_s": round(self.sent_offset_s, 6),
            "topic": self.topic,
            "key": self.key.decode("utf-8", "replace"),
        }
        try:
            out["value"] = self.value.decode("utf-8")
        except UnicodeDecodeError:
            out["value_b64"] = base64.b64encode(self.value).decode("ascii")
        out["expected"] = msgspec.to_builtins(self.expected)
        return out


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _GridInfo:
    grid: Grid
    community: str  # its community's name as registered
    estate: str
    base: str  # short name for markets: 北关, 化机, 东关村
    village: str | None  # the village's name, if the community is a village
    roads: tuple[str, ...]
    cameras: Mapping[str, tuple[Camera, ...]]  # "security" | "city" → cameras
    worker: Mapping[str, str]
    weight: float

    @property
    def code(self) -> str:
        return self.grid.code


@dataclass
class _Ctx:
    """What one message's text has said so far (slots keep their first value)."""

    gi: _GridInfo
    cat: CategoryVocabulary | None
    values: dict[str, str] = field(default_factory=dict)
    crowd: tuple[int, int] | None = None
    crowd_n: int | None = None
    counts: list[int] = field(default_factory=list)


@dataclass
class _Draft:
    source: Source
    category: str
    t: datetime  # occurred_at as the parser will read it
    source_id: str
    value: bytes = b""
    gi: _GridInfo | None = None  # where it is located (None: only a region)
    region: str = ""
    has_township: bool = True
    payload: dict[str, Any] | None = None
    elements: dict[str, Any] | None = None  # GB/T 28181
    declared: str = "UTF-8"
    text: str = ""
    persons: int | None = None
    flags: tuple[str, ...] = ()
    hint: str | None = None
    source_priority: int | None = None
    police_rule: CodeRule | None = None
    rule: str | None = None
    exact: bool = False
    self_resolved: bool = False
    variant: str = "json"
    alarm_key: str | None = None
    incident: str | None = None
    repeat_of: str | None = None
    linked_to: str | None = None
    hot_spot_id: str | None = None
    error: broken.Broken | None = None
    duplicate: Message | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # builder data follow-ups reuse


@dataclass
class _HotSpot:
    id: str
    gi: _GridInfo
    category: str
    limit: int
    done: int = 0
    next_slot: int = 0


def _stable(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC_PLUS_8).isoformat(timespec="seconds")


def _local(t: datetime) -> str:
    return t.astimezone(UTC_PLUS_8).replace(tzinfo=None).isoformat(timespec="seconds")


def chinese(n: int) -> str:
    """1..99 in Chinese numerals (十五, 四十, 三十五)."""
    if not 0 < n < 100:
        return str(n)
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _CN_DIGITS[ones]
    head = "" if tens == 1 else _CN_DIGITS[tens]
    return f"{head}十{_CN_DIGITS[ones] if ones else ''}"


# --------------------------------------------------------------------------- generator


class Generator:
    """An endless, deterministic stream of ``Message``; see the module docstring."""

    def __init__(
        self,
        city: City,
        rules: TriageRules,
        options: Options,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.city, self.rules, self.o = city, rules, options
        self.v = vocabulary if vocabulary is not None else load_vocabulary(rules)
        self.rng = random.Random(options.seed)
        digest = hashlib.sha1(f"{options.seed}|{options.start.isoformat()}".encode()).hexdigest()
        self.tag = digest[:6]  # run tag in ids: another start or seed gives other ids
        self.tagnum = int(digest[6:10], 16) % 10000
        self._start = options.start.astimezone(UTC_PLUS_8).replace(microsecond=0)
        self._shares = options.mix.shares()
        self._grids = self._grid_infos()
        if not self._grids:
            raise VocabularyError("the reference city has no grids")
        self._grid_cum = list(itertools.accumulate(g.weight for g in self._grids))
        self._camera_grids = [g for g in self._grids if any(g.cameras.values())]
        self._camera_grid_cum = list(itertools.accumulate(g.weight for g in self._camera_grids))
        self._cats = {
            s: (codes, list(itertools.accumulate(weights)))
            for s in Source
            for codes, weights in [self.v.categories_for(s)]
        }
        self._hot_cats = [c for c, v in self.v.categories.items() if v.hot_spot]
        self._threshold = rules.correlation.recurrence_threshold
        self._repeat_window = rules.correlation.repeat_alarm_window_seconds
        self._slot = 0
        self._pending: list[tuple[int, int, Callable[[], _Draft]]] = []
        self._order = itertools.count()
        self._ids = {s: itertools.count(1) for s in Source}
        self._incident_no = itertools.count(1)
        self._acc = dict(self._shares)
        self._malformed_acc = options.malformed
        self._duplicate_acc = options.duplicates
        self._recent: dict[Source, deque[Message]] = {s: deque(maxlen=_RECENT) for s in Source}
        self._certain: dict[tuple[str, str], int] = {}
        self._possible: dict[tuple[str, str], int] = {}
        self._alarms: dict[str, list[Any]] = {}  # alarm key → [head source id, last epoch]
        self._last_event: dict[tuple[str, str], int] = {}  # (grid, family) → latest event time
        self._families: dict[str, tuple[str, ...]] = {}  # incident plan → relevant families
        self._hot: list[_HotSpot] = []
        self._hot_no = itertools.count(1)
        kinds = {s: dict(w) for s, w in self.v.malformed.items()}
        if not options.oversize:
            for weights in kinds.values():
                weights.pop("too_large", None)
        self._malformed_kinds = {s: (list(w), list(w.values())) for s, w in kinds.items()}

    # ----------------------------------------------------------------- public

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        slot = self._slot
        self._slot += 1
        offset = slot / self.o.rate
        if self._pending and self._pending[0][0] <= slot:
            draft = heapq.heappop(self._pending)[2]()
        else:
            draft = self._fresh(slot, offset)
        return self._emit(draft, slot, offset)

    def take(self, count: int | None = None, duration: float | None = None) -> Iterator[Message]:
        """Messages until ``count`` are made or ``sent_offset_s`` reaches ``duration``."""
        if count is None and duration is None:
            raise ValueError("give a count or a duration (the generator never ends)")
        made = 0
        while count is None or made < count:
            if duration is not None and self._slot / self.o.rate >= duration:
                return
            yield next(self)
            made += 1

    # ----------------------------------------------------------------- city

    def _grid_infos(self) -> list[_GridInfo]:
        roads = self.v.places.roads
        by_grid: dict[str, list[Camera]] = {}
        for camera in self.city.cameras.values():
            by_grid.setdefault(camera.grid_code, []).append(camera)
        infos = []
        for code in sorted(self.city.grids):
            grid = self.city.grids[code]
            region = self.city.regions.get(grid.community)
            community = region.name if region is not None else grid.name
            h = _stable(grid.community)
            if community.endswith("村"):
                village, base, estate = community, community, community
            else:
                base = community.removesuffix("社区")
                village = None
                suffixes = [x for x in self.v.places.estate_suffixes if x not in base]
                estate = base if base.endswith("小区") else base + suffixes[h % len(suffixes)]
                base = base.removesuffix("小区")
            picked = [roads[(h >> (4 * i)) % len(roads)] for i in range(6)]
            own_roads = tuple(dict.fromkeys(picked))[:3]
            if len(own_roads) < 2:
                own_roads = (roads[h % len(roads)], roads[(h + 1) % len(roads)])
            cameras = sorted(by_grid.get(code, ()), key=lambda c: c.device_id)
            kinds = {
                "security": tuple(c for c in cameras if c.device_id[8:10] != "08"),
                "city": tuple(c for c in cameras if c.device_id[8:10] == "08"),
            }
            g = _stable(code)
            given = self.v.given_names
            surnames = self.v.slots.get("surname", ("王",))
            worker = {
                "staff_id": f"WGY-{g % 9000 + 1000}",
                "name": surnames[g % len(surnames)] + given[(g >> 8) % len(given)],
                "phone": f"1{3 + (g >> 16) % 7}{(g >> 20) % 10}****{(g >> 24) % 10000:04d}",
            }
            infos.append(
                _GridInfo(
                    grid=grid,
                    community=community,
                    estate=estate,
                    base=base,
                    village=village,
                    roads=own_roads,
                    cameras=kinds,
                    worker=worker,
                    weight=1.0 if village else 2.5,
                )
            )
        return infos

    def _pick_grid(self, *, camera: bool = False) -> _GridInfo:
        if camera:
            return self.rng.choices(self._camera_grids, cum_weights=self._camera_grid_cum)[0]
        return self.rng.choices(self._grids, cum_weights=self._grid_cum)[0]

    def _camera_of(self, gi: _GridInfo, kind: str) -> Camera:
        cameras = gi.cameras.get(kind) or tuple(itertools.chain(*gi.cameras.values()))
        return self.rng.choice(cameras)

    def _near(self, grid: Grid) -> tuple[float, float]:
        """A point a hundred metres or so from the grid's centroid (nearest to it)."""
        return (
            round(grid.lon + self.rng.uniform(-0.0012, 0.0012), 6),
            round(grid.lat + self.rng.uniform(-0.0012, 0.0012), 6),
        )

    # ----------------------------------------------------------------- texts

    def _ctx(
        self,
        gi: _GridInfo,
        cat: CategoryVocabulary | None,
        *,
        values: Mapping[str, str] | None = None,
        crowd_n: int | None = None,
    ) -> _Ctx:
        ctx = _Ctx(gi=gi, cat=cat, values=dict(values or {}))
        ctx.crowd = cat.crowd if cat is not None else None
        ctx.crowd_n = crowd_n
        return ctx

    def _say(self, ctx: _Ctx, template: str) -> str:
        return render(template, lambda name: self._slot_value(ctx, name))

    def _slot_value(self, ctx: _Ctx, name: str) -> str:
        value = ctx.values.get(name)
        if value is None:
            value = self._compute(ctx, name)
            ctx.values[name] = value
        return value

    def _compute(self, ctx: _Ctx, name: str) -> str:
        rng, gi, places = self.rng, ctx.gi, self.v.places
        if ctx.cat is not None and name in ctx.cat.slots:
            return self._say(ctx, rng.choice(ctx.cat.slots[name]))
        if name in self.v.slots:
            return self._say(ctx, rng.choice(self.v.slots[name]))
        if name == "place":
            forms = (
                places.village_forms + ("{crossing}", "{market}", "{shop}门口", "{road}沿线")
                if gi.village
                else places.place_forms
            )
            return self._say(ctx, rng.choice(forms))
        if name == "home":
            if gi.village:
                return f"{gi.village}{rng.randint(1, 9)}组{rng.randint(1, 80)}号"
            return (
                f"{gi.estate}{rng.randint(1, 28)}号楼{rng.randint(1, 4)}单元"
                f"{rng.randint(1, 18)}0{rng.randint(1, 4)}室"
            )
        if name == "estate":
            return gi.estate
        if name == "village":
            return gi.village or self._say(ctx, rng.choice(places.urban_village_forms))
        if name == "community":
            return gi.community
        if name == "grid":
            return gi.grid.name
        if name == "road":
            return rng.choice(gi.roads)
        if name == "road2":
            first = self._slot_value(ctx, "road")
            others = [r for r in gi.roads if r != first] or list(places.roads)
            return rng.choice(others)
        if name == "crossing":
            return self._say(ctx, "{road}与{road2}交叉口")
        if name == "market":
            return gi.base + rng.choice(places.markets)
        if name == "shop":
            return self._say(ctx, "{road}一家") + rng.choice(places.shops)
        if name == "gate":
            return gi.estate + rng.choice(places.gates)
        if name == "n":
            return str(rng.randint(1, 28))
        if name == "m":
            return str(rng.randint(1, 120))
        if name in ("crowd", "crowdn"):
            return self._crowd(ctx, noun=name == "crowdn")
        if name == "few":
            n = rng.randint(2, 4)
            ctx.counts.append(n)
            return rng.choice([f"{n}名", {2: "两名", 3: "三名", 4: "四名"}[n]])
        if name == "caller":
            return self._say(ctx, rng.choice(self.v.caller_forms))
        raise VocabularyError(f"unknown slot {{{name}}}")

    def _crowd(self, ctx: _Ctx, *, noun: bool) -> str:
        """A head count: 约40人, 四十多人, 40余名 (…名 is followed by a noun)."""
        rng = self.rng
        if ctx.crowd_n is None:
            low, high = ctx.crowd or (5, 30)
            ctx.crowd_n = rng.randint(low, high)
        n = ctx.crowd_n
        unit = "名" if noun else "人"
        forms = [(f"{n}{unit}", n), (f"约{n}{unit}", n)]
        if not noun:
            forms.append((f"近{n}人", n))
        if n == 2:
            forms = [(f"两{unit}", 2), (f"2{unit}", 2)]
        if n >= 10:
            r = n // 10 * 10
            forms += [
                (f"{r}余{unit}", r),
                (f"{chinese(r)}多{unit}", r),
                (f"{chinese(r)}余{unit}", r),
            ]
        text, count = rng.choice(forms)
        ctx.counts.append(count)
        return text

    # ----------------------------------------------------------------- fresh messages

    def _fresh(self, slot: int, offset: float) -> _Draft:
        rng, o = self.rng, self.o
        source = self._pick_source()
        if rng.random() < min(1.0, max(0.0, self._malformed_acc)):
            return self._broken(source, offset)
        recent = self._recent[source]
        if recent and rng.random() < min(1.0, max(0.0, self._duplicate_acc)):
            original = rng.choice(recent)
            return _Draft(
                source=source,
                category=original.expected.category,
                t=self._start,
                source_id=original.expected.source_id,
                duplicate=original,
            )
        r = rng.random()
        if r < o.incidents:
            plan = self._pick_incident(source)
            if plan is not None:
                return self._start_incident(plan, slot, offset)
        elif r < o.incidents + o.hot_spot_share:
            spot = self._pick_hot_spot(source, slot)
            if spot is not None:
                return self._hot_occurrence(spot, source, slot, offset)
        return self._plain(source, slot, offset)

    def _pick_source(self) -> Source:
        positive = [(s, a) for s, a in self._acc.items() if a > 0 and self._shares[s] > 0]
        if not positive:
            positive = [(s, w) for s, w in self._shares.items() if w > 0]
        sources, weights = zip(*positive, strict=True)
        return self.rng.choices(sources, weights)[0]

    def _now(self, offset: float) -> datetime:
        return self._start + timedelta(seconds=int(offset))

    def _plain(self, source: Source, slot: int, offset: float) -> _Draft:
        rng = self.rng
        codes, cum = self._cats[source]
        code = rng.choices(codes, cum_weights=cum)[0]
        cat = self.v.categories[code]
        t = self._now(offset)
        if source is Source.GRID:
            resolved = rng.random() < cat.self_resolve
            happened = t - timedelta(seconds=rng.randint(120, 2400)) if rng.random() < 0.4 else None
            return self._grid_draft(
                code, self._pick_grid(), t, happened=happened, self_resolved=resolved
            )
        if source is Source.CAMERA:
            head = self._camera_draft(code, self._pick_grid(camera=True), t)
            if rng.random() < self.o.repeats:
                self._plan_repeats(head, slot)
            return head
        draft = self._police_draft(
            code, self._pick_grid(), t - timedelta(seconds=rng.randint(60, 480))
        )
        rule = draft.police_rule
        if rng.random() < self.o.links and not (rule is not None and rule.police_only):
            self._plan_recall(draft, slot)
        return draft

    def _schedule(self, slot: int, event_seconds: float, build: Callable[[], _Draft]) -> None:
        delay = max(1, math.ceil(event_seconds / self.o.incident_time_scale * self.o.rate))
        heapq.heappush(self._pending, (slot + delay, next(self._order), build))

    def _incident_id(self, name: str) -> str:
        return f"{self.tag}-{name}-{next(self._incident_no):05d}"

    # ----------------------------------------------------------------- grid reports

    def _grid_draft(
        self,
        code: str,
        gi: _GridInfo,
        reported: datetime,
        *,
        happened: datetime | None = None,
        self_resolved: bool = False,
        labels: str | None = None,
        flags: tuple[str, ...] = (),
        ctx: _Ctx | None = None,
    ) -> _Draft:
        rng, cat = self.rng, self.v.categories[code]
        profile = cat.grid
        assert profile is not None
        ctx = ctx or self._ctx(gi, cat)
        wrappers = self.v.wrappers
        body = self._say(ctx, rng.choice(cat.bodies + profile.bodies))
        intro = self._say(ctx, rng.choice(wrappers["grid_intro"]))
        tail = self._say(
            ctx, rng.choice(wrappers["grid_resolved_tail" if self_resolved else "grid_tail"])
        )
        description = intro + body + tail
        report_id = f"GR-{reported:%Y%m%d}-{self.tag}-{next(self._ids[Source.GRID]):06d}"
        payload: dict[str, Any] = {
            "report_id": report_id,
            "grid_code": gi.code,
            "reported_at": _iso(reported),
        }
        if happened is not None:
            payload["happened_at"] = _iso(happened)
        reporter = {"staff_id": gi.worker["staff_id"]}
        if rng.random() < 0.7:
            reporter["name"] = gi.worker["name"]
        if rng.random() < 0.5:
            reporter["phone"] = gi.worker["phone"]
        payload["reporter"] = reporter
        mode = (
            labels
            or rng.choices(["none", "domain", "type", "code"], cum_weights=(35, 60, 90, 100))[0]
        )
        category: dict[str, str] = {}
        if mode == "type" and profile.types:
            if profile.domains and rng.random() < 0.8:
                category["src_domain"] = rng.choice(profile.domains)
            category["src_type"] = rng.choice(profile.types)
        elif mode in ("domain", "type") and profile.domains:
            category["src_domain"] = rng.choice(profile.domains)
        elif mode == "code":
            if profile.domains and rng.random() < 0.5:
                category["src_domain"] = rng.choice(profile.domains)
            category["code"] = code
        if category:
            payload["category"] = category
        title = rng.choice(cat.titles) if cat.titles and rng.random() < 0.35 else None
        if title:
            payload["title"] = title
        payload["description"] = description
        if rng.random() < 0.5:
            location: dict[str, Any] = {"address": self._slot_value(ctx, "place")}
            if rng.random() < 0.8:
                location["lon"], location["lat"] = self._near(gi.grid)
            payload["location"] = location
        involved = None
        if ctx.counts and rng.random() < 0.6:
            involved = max(ctx.counts)
        elif code.startswith("01") and rng.random() < 0.5:
            involved = rng.randint(2, 4)
        if involved is not None:
            payload["involved_persons"] = involved
        risk = list(flags) + [f for f in profile.flags if rng.random() < 0.2 and f not in flags]
        if self.v.neutral_flags and rng.random() < 0.05:
            risk.append(rng.choice(self.v.neutral_flags))
        if risk:
            payload["risk_flags"] = risk
        if self_resolved:
            payload["self_handled"] = {
                "attempted": True,
                "result": "已化解",
                "note": "现场处置完毕",
            }
        elif rng.random() < 0.1:
            payload["self_handled"] = {"attempted": True, "result": "未化解"}
        hint = None
        if profile.hints and rng.random() < 0.3:
            hint = rng.choice(profile.hints)
        elif rng.random() < 0.05:
            hint = "P3"
        if hint:
            payload["severity_hint"] = hint
        if rng.random() < 0.4:
            payload["attachments"] = [
                {"type": "image", "url": f"https://grid.example/att/{report_id}-{i}.jpg"}
                for i in range(1, rng.randint(2, 4))
            ]
        rule, exact = self._grid_rule(category)
        persons = [*ctx.counts, *([involved] if involved is not None else [])]
        return _Draft(
            source=Source.GRID,
            category=code,
            t=happened or reported,
            source_id=report_id,
            gi=gi,
            region=gi.code,
            payload=payload,
            variant=rng.choices(JSON_STYLES, cum_weights=(80, 90, 100))[0],
            text=f"{title}\n{description}" if title else description,
            persons=max(persons) if persons else None,
            flags=tuple(risk),
            hint=hint,
            rule=rule,
            exact=exact,
            self_resolved=self_resolved,
            extra={"ctx": ctx},
        )

    def _grid_rule(self, category: Mapping[str, str]) -> tuple[str | None, bool]:
        if "code" in category:
            return f"grid_category:{category['code']}", True
        if "src_type" in category:
            return f"grid_label:{category['src_type']}", True
        domain = category.get("src_domain")
        if domain is not None and domain in self.rules.grid_labels:
            return f"grid_label:{domain}", False
        return None, False

    # ----------------------------------------------------------------- camera alerts

    def _camera_draft(
        self,
        code: str,
        gi: _GridInfo,
        t: datetime,
        *,
        ai: str | None = None,
        xml: bool | None = None,
        device: Camera | None = None,
        pair: tuple[int, int] | None = None,
        priority: int | None = None,
        ctx: _Ctx | None = None,
    ) -> _Draft:
        rng, cat = self.rng, self.v.categories[code]
        profile = cat.camera
        assert profile is not None
        ctx = ctx or self._ctx(gi, cat)
        camera = device or self._camera_of(gi, profile.kind)
        description = self._say(ctx, rng.choice(profile.texts))
        if rng.random() < 0.4:  # platforms often name the camera's point first
            description = f"{camera.name}：{description}"
        level = priority if priority is not None else rng.choice(profile.priority)
        if xml is None:
            xml = bool(profile.xml) and ai is None and rng.random() < self.o.xml_share
        seq = next(self._ids[Source.CAMERA])
        persons = max(ctx.counts) if ctx.counts else None
        common: dict[str, Any] = {
            "source": Source.CAMERA,
            "category": code,
            "t": t,
            "gi": gi,
            "region": gi.code,
            "text": description,
            "persons": persons,
            "source_priority": level,
            "extra": {"ctx": ctx, "device": camera, "priority": level},
        }
        if not xml:
            ai = ai or rng.choice(profile.ai)
            alert_id = f"CAM-{camera.device_id}-{t:%Y%m%dT%H%M%S}-{self.tag}{seq}"
            payload: dict[str, Any] = {
                "alert_id": alert_id,
                "device_id": camera.device_id,
                "alarm_time": _iso(t) if rng.random() < 0.7 else _local(t),
                "alarm_priority": level,
                "alarm_method": 5,
            }
            if ai in _AI_ALARM_TYPES:
                payload["alarm_type"] = _AI_ALARM_TYPES[ai]
            payload["ai_event_code"] = ai
            payload["description"] = description
            payload["confidence"] = round(rng.uniform(0.55, 0.99), 2)
            if rng.random() < 0.3:
                payload["channel_id"] = camera.device_id[:10] + "132" + camera.device_id[13:]
            if rng.random() < 0.1:
                payload["grid_code"] = camera.grid_code
            if rng.random() < 0.5 and camera.lon is not None and camera.lat is not None:
                payload["location"] = {"lon": camera.lon, "lat": camera.lat}
            if rng.random() < 0.8:
                payload["snapshot_url"] = f"https://video.example/snap/{alert_id}.jpg"
            if rng.random() < 0.2:
                payload["clip_url"] = f"https://video.example/clip/{alert_id}.mp4"
            common["extra"]["ai"] = ai
            return _Draft(
                **common,
                source_id=alert_id,
                payload=payload,
                variant=rng.choices(JSON_STYLES, cum_weights=(80, 90, 100))[0],
                rule=f"ai_event:{ai}",
                exact=True,
                alarm_key=f"{camera.device_id}|{ai}",
            )
        method, alarm_type = pair or (rng.choice(profile.xml) if profile.xml else (5, 2))
        sn = f"{self.tagnum:04d}{seq:07d}"
        alarm_time = _local(t)
        with_point = rng.random() < 0.6 and camera.lon is not None
        elements = alarm_elements(
            sn=sn,
            device_id=camera.device_id,
            priority=level,
            method=method,
            alarm_time=alarm_time,
            description=description,
            lon=camera.lon if with_point else None,
            lat=camera.lat if with_point else None,
            alarm_type=alarm_type,
        )
        declared = rng.choices(["UTF-8", "GB2312", "GBK"], cum_weights=(50, 85, 100))[0]
        common["extra"]["pair"] = (method, alarm_type)
        mapped = self.rules.gb28181.get(f"{method}/{alarm_type}")
        return _Draft(
            **common,
            source_id=f"{camera.device_id}|{alarm_time}|{sn}",
            elements=elements,
            declared=declared,
            variant=f"xml-{declared.lower()}",
            rule=f"gb28181:{method}/{alarm_type}",
            exact=mapped is not None,
            alarm_key=f"{camera.device_id}|{method}/{alarm_type}",
        )

    def _plan_repeats(self, head: _Draft, slot: int) -> None:
        iid = self._incident_id("repeat")
        head.incident = iid
        gap = 0.0
        for _ in range(self.rng.randint(1, 4)):
            gap += self.rng.uniform(20, 600)
            t = head.t + timedelta(seconds=int(gap))
            self._schedule(slot, gap, self._repeat_builder(head, t, iid))

    def _repeat_builder(self, head: _Draft, t: datetime, iid: str) -> Callable[[], _Draft]:
        def build() -> _Draft:
            extra = head.extra
            assert head.gi is not None
            draft = self._camera_draft(
                head.category,
                head.gi,
                t,
                ai=extra.get("ai"),
                xml="pair" in extra,
                device=extra["device"],
                pair=extra.get("pair"),
                priority=extra["priority"],
                ctx=self._ctx(
                    head.gi, self.v.categories[head.category], crowd_n=extra["ctx"].crowd_n
                ),
            )
            draft.incident, draft.repeat_of = iid, head.source_id
            return draft

        return build

    # ----------------------------------------------------------------- 110 referrals

    def _police_draft(
        self,
        code: str,
        gi: _GridInfo,
        t: datetime,
        *,
        bjlx: str | None = None,
        mode: str | None = None,
        ctx: _Ctx | None = None,
        recall_of: _Draft | None = None,
    ) -> _Draft:
        rng, cat = self.rng, self.v.categories[code]
        profile = cat.police
        assert profile is not None
        ctx = ctx or self._ctx(gi, cat)
        wrappers = self.v.wrappers
        if recall_of is not None:
            prior = recall_of.extra
            bjlx, mode = prior["bjlx"], prior["mode"]
            ctx.counts = list(prior["ctx"].counts)  # the same words, the same head count
            body = prior["body"]
            text = (
                self._say(ctx, rng.choice(wrappers["police_recall"]))
                + body
                + self._say(ctx, rng.choice(wrappers["police_recall_tail"]))
            )
        else:
            bjlx = bjlx or rng.choice(profile.bjlx)
            mode = (
                mode
                or rng.choices(
                    ["grid", "coords", "township", "county"], cum_weights=(20, 70, 85, 100)
                )[0]
            )
            body = self._say(ctx, rng.choice(cat.bodies + profile.bodies)).rstrip("。")
            text = (
                self._say(ctx, rng.choice(wrappers["police_intro"]))
                + body
                + self._say(ctx, rng.choice(wrappers["police_tail"]))
            )
        seq = next(self._ids[Source.POLICE])
        county, township = gi.code[:6], gi.code[:9]
        referral_id = f"110LD-{county}-{t:%Y%m%d}-{self.tagnum:04d}{seq:05d}"
        jjdbh = f"{county}{t:%Y%m%d}{self.tagnum:04d}{seq:05d}"
        if recall_of is not None:
            xzqhbh = recall_of.extra["xzqhbh"]
            point = recall_of.extra["point"]
        else:
            xzqhbh = {"township": township, "county": county}.get(mode) or rng.choice(
                [county, township]
            )
            point = self._near(gi.grid) if mode == "coords" or rng.random() < 0.3 else None
            if mode in ("township", "county"):
                point = None
        payload: dict[str, Any] = {"referral_id": referral_id, "jjdbh": jjdbh}
        if recall_of is not None:
            payload["gljjdbh"] = recall_of.extra["jjdbh"]
        elif rng.random() < 0.1:
            payload["gljjdbh"] = None
        payload["xzqhbh"] = xzqhbh
        if rng.random() < 0.5:
            payload["jjdwbh"] = f"{county}000000"
        payload["bjsj"] = _iso(t)
        if rng.random() < 0.6:
            payload["jjsj"] = _iso(t + timedelta(seconds=rng.randint(5, 40)))
        payload["referred_at"] = _iso(t + timedelta(seconds=rng.randint(60, 360)))
        caller = self._slot_value(ctx, "caller")
        if rng.random() < 0.7:
            payload["caller"] = {
                "name": caller,
                "gender": rng.choice("MFU"),
                "phone": f"1{rng.randint(3, 9)}{rng.randint(0, 9)}****{rng.randint(0, 9999):04d}",
            }
        payload["sfdz"] = self._slot_value(ctx, "place")
        if point is not None:
            payload["location"] = {"lon": point[0], "lat": point[1]}
        if mode == "grid":
            payload["grid_code"] = gi.code
        payload["bjnr"] = text
        payload["bjlx"] = bjlx
        name = self.v.bjlx_names.get(bjlx)
        if name and rng.random() < 0.6:
            payload["bjlx_name"] = name
        jqjb = rng.choice(profile.jqjb) if profile.jqjb and rng.random() < 0.9 else None
        if jqjb:
            payload["jqjb"] = jqjb
        flags: list[str] = []
        if profile.hazards and rng.random() < 0.5:
            hazards: dict[str, Any] = {
                "trapped": rng.random() < 0.2,
                "injured": rng.choice([0, 0, 1, 2]),
            }
            if code.startswith("06"):
                hazards = {"explosion_leak": True}
            payload["hazards"] = hazards
            flags = [k for k in ("dangerous_goods", "explosion_leak", "trapped") if hazards.get(k)]
            flags += [f"{k}:{hazards[k]}" for k in ("injured", "dead") if hazards.get(k)]
        if rng.random() < 0.5:
            payload["police_action"] = {
                "dispatched": rng.random() < 0.5,
                "first_response": rng.choice(
                    [
                        "电话安抚，告知转相关部门处理",
                        "已派员到场",
                        "已联系社区网格员",
                        "告知报警人等待联系",
                    ]
                ),
            }
        rule = self.rules.police_code(bjlx)
        located = mode in ("grid", "coords")
        return _Draft(
            source=Source.POLICE,
            category=code,
            t=t,
            source_id=referral_id,
            gi=gi if located else None,
            region=gi.code if located else xzqhbh,
            has_township=located or len(xzqhbh) >= 9,
            payload=payload,
            variant=rng.choices(JSON_STYLES, cum_weights=(85, 95, 100))[0],
            text=text,
            persons=max(ctx.counts) if ctx.counts else None,
            flags=tuple(flags),
            source_priority=int(jqjb) if jqjb else None,
            police_rule=rule,
            rule=f"bjlx:{bjlx}",
            exact=rule is not None and rule.refine_within is None,
            extra={
                "ctx": ctx,
                "bjlx": bjlx,
                "mode": mode,
                "body": body,
                "jjdbh": jjdbh,
                "xzqhbh": xzqhbh,
                "point": point,
                "grid": gi,
            },
        )

    def _plan_recall(self, original: _Draft, slot: int) -> None:
        iid = self._incident_id("linked")
        original.incident = iid
        gap = self.rng.uniform(5, 20) * 60
        t = original.t + timedelta(seconds=int(gap))

        said = original.extra["ctx"].values
        same = {k: v for k, v in said.items() if k in _PLACE_SLOTS or k == "caller"}

        def build() -> _Draft:
            gi = original.extra["grid"]
            draft = self._police_draft(
                original.category,
                gi,
                t,
                ctx=self._ctx(gi, self.v.categories[original.category], values=same),
                recall_of=original,
            )
            draft.incident, draft.linked_to = iid, original.source_id
            return draft

        self._schedule(slot, gap, build)

    # ----------------------------------------------------------------- incidents

    def _pick_incident(self, source: Source) -> IncidentPlan | None:
        plans = [
            p
            for p in self.v.incidents
            if p.steps[0].source is source
            and p.weight > 0
            and sum(self._shares[step.source] > 0 for step in p.steps) >= 2
        ]
        if not plans:
            return None
        return self.rng.choices(plans, [p.weight for p in plans])[0]

    def _incident_grid(self, plan: IncidentPlan, t0: datetime) -> _GridInfo:
        """A quiet grid: the least recently active of a few, whose cameras would not
        repeat an alarm still open (a repeat folds into the older case)."""
        needs_camera = any(step.source is Source.CAMERA for step in plan.steps)
        grids = self._camera_grids if needs_camera else self._grids
        now = int(t0.timestamp())
        alarms = [
            (self.v.categories[step.category].camera, step.ai)
            for step in plan.steps
            if step.source is Source.CAMERA
        ]

        def alarm_free(gi: _GridInfo) -> bool:
            for profile, ai in alarms:
                kind = profile.kind if profile is not None else "security"
                for camera in gi.cameras.get(kind) or ():
                    seen = self._alarms.get(f"{camera.device_id}|{ai}")
                    if seen is not None and now - seen[1] <= self._repeat_window:
                        return False
            return True

        families = self._relevant_families(plan)
        quiet = sorted(
            (max(self._last_event.get((gi.code, f), 0) for f in families), self.rng.random(), gi)
            for gi in grids
            if alarm_free(gi)
        )
        if not quiet:
            return self._pick_grid(camera=needs_camera)
        return self.rng.choice(quiet[:3])[2]

    def _relevant_families(self, plan: IncidentPlan) -> tuple[str, ...]:
        """Families of the categories an incident's steps could join (or be joined by)."""
        found = self._families.get(plan.name)
        if found is None:
            compatible = self.rules.correlation.compatible_categories
            found = tuple(
                sorted(
                    {
                        code[:2]
                        for code in self.rules.categories
                        for step in plan.steps
                        if compatible(step.category, code)
                    }
                )
            )
            self._families[plan.name] = found
        return found

    def _start_incident(self, plan: IncidentPlan, slot: int, offset: float) -> _Draft:
        rng = self.rng
        t0 = self._now(offset)
        gi = self._incident_grid(plan, t0)
        iid = self._incident_id(plan.name)
        crowd_n = rng.randint(*plan.crowd) if plan.crowd else None
        first = plan.steps[0]
        ctx = self._ctx(gi, self.v.categories[first.category], crowd_n=crowd_n)
        self._slot_value(ctx, "place")
        shared = {k: v for k, v in ctx.values.items() if k in _PLACE_SLOTS}
        mode = rng.choice(["grid", "coords"])
        draft = self._step(first, gi, t0, ctx, mode)
        draft.incident = iid
        for step in plan.steps[1:]:
            if self._shares[step.source] == 0:  # the mix leaves this source out
                continue
            minutes = rng.uniform(*step.at)
            t = t0 + timedelta(seconds=int(minutes * 60))
            self._schedule(
                slot, minutes * 60, self._step_builder(step, gi, t, shared, crowd_n, mode, iid)
            )
        return draft

    def _step_builder(
        self,
        step: IncidentStep,
        gi: _GridInfo,
        t: datetime,
        shared: Mapping[str, str],
        crowd_n: int | None,
        mode: str,
        iid: str,
    ) -> Callable[[], _Draft]:
        def build() -> _Draft:
            ctx = self._ctx(gi, self.v.categories[step.category], values=shared, crowd_n=crowd_n)
            draft = self._step(step, gi, t, ctx, mode)
            draft.incident = iid
            return draft

        return build

    def _step(self, step: IncidentStep, gi: _GridInfo, t: datetime, ctx: _Ctx, mode: str) -> _Draft:
        if step.source is Source.CAMERA:
            return self._camera_draft(step.category, gi, t, ai=step.ai, xml=False, ctx=ctx)
        if step.source is Source.POLICE:
            return self._police_draft(step.category, gi, t, bjlx=step.bjlx, mode=mode, ctx=ctx)
        reported = t + timedelta(seconds=self.rng.randint(0, 90))
        happened = t if self.rng.random() < 0.5 else None
        return self._grid_draft(
            step.category, gi, reported, happened=happened, flags=step.flags, ctx=ctx
        )

    # ----------------------------------------------------------------- hot spots

    def _refill_hot_spots(self, slot: int) -> None:
        if not self._hot_cats:
            return
        taken = {(h.gi.code, h.category) for h in self._hot}
        for _ in range(100):
            if len(self._hot) >= self.o.hot_spots:
                return
            code = self.rng.choice(self._hot_cats)
            gi = self._pick_grid(camera=True)
            if (gi.code, code) in taken:
                continue
            taken.add((gi.code, code))
            self._hot.append(
                _HotSpot(
                    id=f"{self.tag}-hot-{next(self._hot_no):04d}",
                    gi=gi,
                    category=code,
                    limit=self._threshold + self.rng.randint(1, 4),
                    next_slot=slot,
                )
            )

    def _pick_hot_spot(self, source: Source, slot: int) -> _HotSpot | None:
        self._refill_hot_spots(slot)
        ready = [
            h
            for h in self._hot
            if h.next_slot <= slot
            and self.v.categories[h.category].profile(source) is not None
            and (source is Source.GRID or h.done >= self._threshold - 1)
        ]
        return self.rng.choice(ready) if ready else None

    def _hot_occurrence(self, spot: _HotSpot, source: Source, slot: int, offset: float) -> _Draft:
        t = self._now(offset)
        settling = spot.done < self._threshold - 1
        if source is Source.CAMERA:
            draft = self._camera_draft(spot.category, spot.gi, t, xml=False)
        elif source is Source.POLICE:
            mode = self.rng.choice(["grid", "coords"])
            draft = self._police_draft(spot.category, spot.gi, t, mode=mode)
        else:
            labels = "type" if settling or self.rng.random() < 0.5 else None
            draft = self._grid_draft(
                spot.category, spot.gi, t, self_resolved=settling, labels=labels
            )
        draft.hot_spot_id = spot.id
        spot.done += 1
        spot.next_slot = slot + max(1, math.ceil(self.o.rate))
        if spot.done >= spot.limit:
            self._hot.remove(spot)
        return draft

    # ----------------------------------------------------------------- broken messages

    def _broken(self, source: Source, offset: float) -> _Draft:
        rng = self.rng
        kinds, weights = self._malformed_kinds[source]
        kind = rng.choices(kinds, weights)[0]
        t = self._now(offset)
        codes, cum = self._cats[source]
        code = rng.choices(codes, cum_weights=cum)[0]
        if source is Source.GRID:
            draft = self._grid_draft(code, self._pick_grid(), t)
        elif source is Source.CAMERA:
            xml_kind = kind in (
                "not_alarm",
                "malformed_xml",
                "unsafe_xml",
                "xml_bad_encoding",
                "xml_schema",
            )
            draft = self._camera_draft(code, self._pick_grid(camera=True), t, xml=xml_kind)
        else:
            draft = self._police_draft(code, self._pick_grid(), t, mode="township")
        draft.variant = kind
        if draft.elements is not None:
            draft.error = broken.break_xml(rng, kind, draft.elements, draft.declared)
        elif kind.startswith("unroutable_"):
            draft.error = self._unroutable(draft, kind)
        else:
            assert draft.payload is not None
            draft.error = broken.break_json(rng, source, kind, draft.payload)
        return draft

    def _unroutable(self, draft: _Draft, kind: str) -> broken.Broken:
        payload = dict(draft.payload or {})
        payload.pop("location", None)
        payload.pop("grid_code", None)
        if kind == "unroutable_grid":
            assert draft.gi is not None
            payload["grid_code"] = f"{draft.gi.grid.community}{self.rng.randint(100, 999)}"
            error, name = "unknown_grid", "grid_code"
        elif kind == "unroutable_device":
            county = str(payload["device_id"])[:6]
            while True:  # registered serials are small; network digit 9 is unused
                device = f"{county}00011329{self.rng.randint(0, 999999):06d}"
                if device not in self.city.cameras:
                    break
            payload["device_id"] = device
            error, name = "unknown_device", "device_id"
        else:
            region = self.rng.choice(["110105", "310104", "440305", "370102", "130102"])
            payload["xzqhbh"] = region if region not in self.city.regions else "999999"
            error, name = "unknown_region", "region_code"
        return broken.Broken(json_bytes(payload), error, name, broken.UNROUTABLE)

    # ----------------------------------------------------------------- emit

    def _emit(self, draft: _Draft, slot: int, offset: float) -> Message:
        source = draft.source
        if draft.duplicate is not None:
            original = draft.duplicate
            expected = msgspec.structs.replace(
                original.expected, outcome="duplicate", duplicate_of=original.seq
            )
            message = Message(original.topic, original.key, original.value, offset, expected, slot)
        elif draft.error is not None:
            error = draft.error
            expected = Expected(
                source=source.value,
                source_id=draft.source_id,
                event_id=None,
                outcome="dead_letter",
                category="dead_letter",
                event_time=_iso(draft.t),
                error=error.error,
                error_class=error.error_class,
                field=error.field,
                variant=draft.variant,
            )
            key = draft.source_id.encode("utf-8")
            message = Message(TOPICS[source], key, error.value, offset, expected, slot)
        else:
            message = Message(
                TOPICS[source],
                draft.source_id.encode("utf-8"),
                self._encode(draft),
                offset,
                self._expect(draft),
                slot,
            )
            self._recent[source].append(message)
        self._account(
            source, malformed=draft.error is not None, duplicate=draft.duplicate is not None
        )
        return message

    def _encode(self, draft: _Draft) -> bytes:
        if draft.elements is not None:
            text = xml_document(
                "Notify",
                draft.elements,
                declared=draft.declared,
                newline=self.rng.choice(["\n", "\n", "\r\n"]),
            )
            return encode_xml(text, draft.declared)
        return json_bytes(draft.payload, draft.variant)

    def _expect(self, draft: _Draft) -> Expected:
        rules = self.rules
        lead, disposition = routing_of(
            rules,
            draft.category,
            self_resolved=draft.self_resolved,
            police_rule=draft.police_rule,
            has_township=draft.has_township,
        )
        own = own_priority(
            rules,
            draft.category,
            source=draft.source,
            text=draft.text,
            source_priority=draft.source_priority,
            persons=draft.persons,
            flags=draft.flags,
            hint=draft.hint,
            police_rule=draft.police_rule,
        )
        grid = draft.gi.code if draft.gi is not None else None
        hot: bool | None = False
        if grid is not None:
            family = (grid, draft.category[:2])
            self._last_event[family] = max(
                self._last_event.get(family, 0), int(draft.t.timestamp())
            )
            key = (grid, draft.category)
            certain, possible = self._certain.get(key, 0), self._possible.get(key, 0)
            if certain >= self._threshold - 1:
                hot = True
            elif possible >= self._threshold - 1:
                hot = None
            self._possible[key] = possible + 1
            if disposition == CLOSED_AT_GRID and draft.exact:
                self._certain[key] = certain + 1
        priority = raised(own) if hot and disposition != FOLLOW_UP else own
        repeat_of = draft.repeat_of
        if draft.alarm_key is not None:
            epoch = int(draft.t.timestamp())
            seen = self._alarms.get(draft.alarm_key)
            if seen is not None and abs(epoch - seen[1]) <= self._repeat_window:
                repeat_of = seen[0]
                seen[1] = max(seen[1], epoch)
            else:
                self._alarms[draft.alarm_key] = [draft.source_id, epoch]
        return Expected(
            source=draft.source.value,
            source_id=draft.source_id,
            event_id=f"{draft.source.value}:{draft.source_id}",
            outcome="case",
            category=draft.category,
            exact=draft.exact,
            rule=draft.rule,
            lead=lead,
            disposition=disposition,
            priority=priority.label,
            hot_spot=hot,
            hot_spot_id=draft.hot_spot_id,
            grid=grid,
            region=draft.region,
            event_time=_iso(draft.t),
            incident=draft.incident,
            repeat_of=repeat_of,
            linked_to=draft.linked_to,
            variant=draft.variant,
        )

    def _account(self, source: Source, *, malformed: bool, duplicate: bool) -> None:
        for s, share in self._shares.items():
            self._acc[s] += share
        self._acc[source] -= 1
        self._malformed_acc += self.o.malformed - (1 if malformed else 0)
        self._duplicate_acc += self.o.duplicates - (1 if duplicate else 0)


def generate(
    city: City,
    rules: TriageRules,
    options: Options,
    *,
    vocabulary: Vocabulary | None = None,
    count: int | None = None,
    duration: float | None = None,
) -> Iterator[Message]:
    """``count`` messages, or those of the first ``duration`` seconds of sending."""
    return Generator(city, rules, options, vocabulary).take(count=count, duration=duration)
