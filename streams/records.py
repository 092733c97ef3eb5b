"""Typed records shared across the core.

Records are ``msgspec.Struct``s: immutable, typed, and encoded to JSON on the
Kafka hot path without a second schema. Times are timezone-aware datetimes.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum

import msgspec


class Source(StrEnum):
    """The three outside systems that report events (信息上报)."""

    GRID = "grid"  # 网格员上报, grid-management platform
    CAMERA = "camera"  # 雪亮工程 video-AI alarms
    POLICE = "police"  # 110 社会联动 referrals


class Priority(IntEnum):
    """P1 特急 … P4 复杂 (docs/domain.md §4). Lower number = more urgent."""

    P1 = 1
    P2 = 2
    P3 = 3
    P4 = 4

    @property
    def label(self) -> str:
        return f"P{self.value}"

    @classmethod
    def parse(cls, text: str) -> Priority:
        return cls(int(text.strip().upper().removeprefix("P")))


class Level(IntEnum):
    """The five levels of jurisdiction: city 市 → county 县(区) → township 乡镇(街道)
    → community 社区(村) → grid 网格."""

    CITY = 1
    COUNTY = 2
    TOWNSHIP = 3
    COMMUNITY = 4
    GRID = 5


class Role(StrEnum):
    """An assignment's role in a joint case: one lead (牵头), any number of supports (配合)."""

    LEAD = "lead"
    SUPPORT = "support"


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One validated inbound message, normalised across the three sources (事件).

    ``event_id`` is ``"<source>:<source_id>"`` and is what de-duplication keys on.
    """

    event_id: str
    source: Source
    source_id: str
    occurred_at: datetime  # when it happened (or the alarm / call time)
    reported_at: datetime  # when the source reported or referred it
    title: str = ""
    text: str = ""
    grid_code: str | None = None  # 15 digits, if the message names one
    region_code: str | None = None  # 110 xzqhbh (6, 9 or 12 digits)
    lon: float | None = None
    lat: float | None = None
    address: str | None = None
    device_id: str | None = None  # GB/T 28181 20-digit camera code
    reporter: str | None = None  # grid staff id or (masked) caller phone
    source_category: str | None = None  # taxonomy code the source mapped, "05.03"
    source_labels: tuple[str, ...] = ()  # the source's own words: 矛盾劝解 / 邻里纠纷
    source_code: str | None = None  # 110 bjlx or the camera's ai_event_code
    alarm_method: int | None = None  # GB/T 28181 AlarmMethod
    alarm_type: int | None = None  # GB/T 28181 AlarmType
    source_priority: int | None = None  # GB/T 28181 priority or 110 jqjb, 1 = most serious
    ai_confidence: float | None = None
    persons: int | None = None
    risk_flags: tuple[str, ...] = ()
    severity_hint: str | None = None  # "P1".."P4" from the reporter
    self_resolved: bool = False  # settled on the spot (就地化解, 已化解)
    call_no: str | None = None  # 110 jjdbh
    linked_call_no: str | None = None  # 110 gljjdbh: an earlier call about the same incident
    media: tuple[str, ...] = ()  # snapshot / clip / attachment URLs


class Location(msgspec.Struct, frozen=True, kw_only=True):
    """Where an event is, and how we know (定位)."""

    method: str  # "grid_code" | "camera_registry" | "nearest_grid" | "region_code"
    region_code: str  # the deepest jurisdiction code known (grid code when there is one)
    level: Level  # the level of region_code
    grid_code: str | None = None
    lon: float | None = None
    lat: float | None = None
    distance_m: float | None = None  # for "nearest_grid": distance to the centroid


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """Which category an event is (分类), with the rule that decided it."""

    category: str  # "05.03"
    name: str  # 垃圾暴露/满溢
    confidence: float  # 0..1; below the verification threshold → operator queue (核实)
    rule: str  # e.g. "bjlx:600600", "ai_event:street_vending", "keyword:垃圾", "fallback"
    # what made the decision: the matching keyword rules, or the learned model's
    # strongest features ("w:煤气味", "kw:06.02"); the model's version when it
    # decided or refined; why a source code was overruled by the text
    features: tuple[str, ...] = ()
    model: str = ""
    overruled: str = ""


class PriorityDecision(msgspec.Struct, frozen=True, kw_only=True):
    priority: Priority
    reasons: tuple[str, ...] = ()  # e.g. ("persons>=30", "word:横幅")


#: ``Routing.disposition`` of a case dispatched at once to the fallback lead while an
#: operator verifies it (a P1 whose category is unknown, docs/domain.md §4)
PROVISIONAL = "provisional"


class Routing(msgspec.Struct, frozen=True, kw_only=True):
    """Who handles a case (分流交办): exactly one lead, any number of supports."""

    lead: str  # department code
    supports: tuple[str, ...] = ()
    entry_level: Level = Level.TOWNSHIP
    rule: str = ""  # which routing row applied
    # False: recorded but not sent to any department queue (see ``disposition``)
    dispatch: bool = True
    # "dispatch" | "follow_up" (police attended; e.g. 家暴 → 司法所 mediation) |
    # "police_only" (110 code the police keep) | "closed_at_grid" (自办, 已化解 on the spot) |
    # "provisional" (a P1 of unknown category: dispatched at once while 核实 runs)
    disposition: str = "dispatch"


class LocatedEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type",
                   tag="located_event"):
    """A validated event with its place, on its way to triage (on ``cases.commands``,
    keyed by ``partition_key``, in its township writer's partition)."""

    event: Event
    location: Location
    ingested_at: datetime  # when the message reached GridLink's ingest topic

    @property
    def partition_key(self) -> str:
        """Triage state is partitioned by township: events about one incident
        meet in one partition. A place known only to the county keys by county."""
        return self.location.region_code[:9]
