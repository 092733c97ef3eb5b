"""Pydantic models of the three inbound JSON formats (the contract, 接口规范).

Each model enforces its JSON Schema in ``contract/``: required fields, string
patterns and lengths, numeric ranges, enums and date-times. The models are
strict — a JSON string is not an integer, ``1.0`` is not an integer, ``null``
is accepted only where the schema says so (``gljjdbh``) — and forward
compatible: unknown fields are ignored.

Date-times are RFC 3339 (``2026-11-26T09:41:22+08:00``); one without an offset
is local time in China (Asia/Shanghai, +08:00, no daylight saving). Every
validated date-time is timezone-aware.

Messages of our own checks name the value and what was expected, e.g.
``'37150300100' must be 15 digits (12-digit community + 3-digit sequence)``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from streams.zone import UTC_PLUS_8

CUSTOM_ERROR_PREFIX = "contract_"
"""Error types raised by our own checks; their messages already show the value."""

_T = TypeVar("_T")


# --- values -------------------------------------------------------------------------------


def show(value: object, limit: int = 48) -> str:
    """A short, safe rendering of an offending value for an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…'"


_TIMESTAMP = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?"
    r"(?P<tz>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 date-time as an aware datetime; no offset means +08:00 (北京时间).

    Up to 9 fractional digits; beyond microseconds they are truncated. Raises ``ValueError``.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    tz = match["tz"]
    zone = UTC_PLUS_8 if tz is None else _zone(tz)  # no offset: local time
    fraction = (match["f"] or "").ljust(6, "0")[:6]
    return datetime(
        int(match["y"]), int(match["mo"]), int(match["d"]),
        int(match["h"]), int(match["mi"]), int(match["s"]), int(fraction),
        tzinfo=zone,
    )  # fmt: skip


@lru_cache(maxsize=64)
def _zone(offset: str) -> tzinfo:
    """The zone of an RFC 3339 offset (``Z``, ``+08:00`` …), made once per offset."""
    if offset in "Zz":
        return UTC
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset out of range: {offset!r}")
    sign = -1 if offset[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _timestamp_field(value: object) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "contract_datetime", "must be a date-time string (got {got})", {"got": show(value)}
        )
    try:
        return parse_timestamp(value)
    except ValueError:
        raise PydanticCustomError(
            "contract_datetime",
            "{got} is not an RFC 3339 date-time (expected e.g. 2026-11-26T09:41:22+08:00)",
            {"got": show(value)},
        ) from None


def _not_null(value: object) -> object:
    if value is None:
        raise PydanticCustomError("contract_null", "must not be null (leave the field out instead)")
    return value


def _pattern(regex: str, expected: str) -> BeforeValidator:
    compiled = re.compile(regex)

    def check(value: object) -> object:
        if isinstance(value, str) and compiled.fullmatch(value) is None:
            raise PydanticCustomError("contract_pattern", "{got} " + expected, {"got": show(value)})
        return value  # a non-string is reported by the str type that follows

    return BeforeValidator(check)


Timestamp = Annotated[datetime, PlainValidator(_timestamp_field)]
Opt = Annotated[_T | None, BeforeValidator(_not_null)]
"""An optional field that, as in the JSON Schema, may be left out but is not nullable."""

GridCode = Annotated[
    str, _pattern("[0-9]{15}", "must be 15 digits (12-digit community + 3-digit sequence)")
]
DeviceCode = Annotated[str, _pattern("[0-9]{20}", "must be a 20-digit GB/T 28181 device code")]
RegionCode = Annotated[
    str, _pattern("[0-9]{6}(?:[0-9]{3}(?:[0-9]{3})?)?", "must be a 6, 9 or 12-digit 行政区划 code")
]
CallTypeCode = Annotated[str, _pattern("[0-9]{6}", "must be a 6-digit 报警类型 code")]
CategoryCode = Annotated[
    str, _pattern(r"[0-9]{2}\.[0-9]{2}", "must be a taxonomy code like '05.03'")
]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Text32 = Annotated[str, Field(max_length=32)]


class _Contract(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Coordinates(_Contract):
    lon: Opt[Longitude] = None
    lat: Opt[Latitude] = None


# --- grid report 网格员上报 ------------------------------------------------------------------


class Reporter(_Contract):
    staff_id: Annotated[str, Field(min_length=1, max_length=32)]
    name: Opt[Text32] = None
    phone: Opt[Annotated[str, Field(max_length=20)]] = None  # usually masked, 139****2745


class GridCategory(_Contract):
    src_domain: Opt[Text32] = None  # 矛盾劝解, 治安隐患 …
    src_type: Opt[Text32] = None  # 邻里纠纷 …
    code: Opt[CategoryCode] = None


class GridLocation(Coordinates):
    address: Opt[Annotated[str, Field(max_length=200)]] = None


class SelfHandled(_Contract):
    """就地化解: the worker tried to settle it on the spot."""

    attempted: Opt[bool] = None
    result: Opt[Literal["已化解", "未化解"]] = None
    note: Opt[Annotated[str, Field(max_length=1000)]] = None


class Attachment(_Contract):
    type: Opt[Literal["image", "video", "audio", "file"]] = None
    url: Annotated[str, Field(max_length=1000)]


class GridReport(_Contract):
    """``ingest.grid-reports``, key ``report_id`` (grid-report.schema.json)."""

    report_id: Annotated[str, Field(min_length=1, max_length=64)]
    grid_code: GridCode
    reported_at: Timestamp
    happened_at: Opt[Timestamp] = None
    reporter: Reporter
    category: Opt[GridCategory] = None
    title: Opt[Annotated[str, Field(max_length=100)]] = None
    description: Annotated[str, Field(min_length=1, max_length=4000)]
    location: Opt[GridLocation] = None
    involved_persons: Opt[Annotated[int, Field(ge=0, le=100_000)]] = None
    risk_flags: Opt[Annotated[list[Text32], Field(max_length=16)]] = None  # 可能激化, 涉稳 …
    self_handled: Opt[SelfHandled] = None
    severity_hint: Opt[Literal["P1", "P2", "P3", "P4"]] = None
    attachments: Opt[Annotated[list[Attachment], Field(max_length=20)]] = None


# --- camera alert 雪亮 / video AI ------------------------------------------------------------


class CameraAlert(_Contract):
    """``ingest.camera-alerts``, key ``alert_id`` (camera-alert.schema.json, JSON form)."""

    alert_id: Annotated[str, Field(min_length=1, max_length=96)]
    device_id: DeviceCode
    channel_id: Opt[DeviceCode] = None
    alarm_time: Timestamp
    alarm_priority: Annotated[int, Field(ge=1, le=4)]  # 1 = 一级 (most serious)
    alarm_method: Annotated[int, Field(ge=1, le=7)]  # 5 = video analysis
    alarm_type: Opt[Annotated[int, Field(ge=0, le=999)]] = None
    ai_event_code: Opt[Annotated[str, Field(max_length=48)]] = None
    description: Opt[Annotated[str, Field(max_length=500)]] = None
    confidence: Opt[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] = None
    grid_code: Opt[GridCode] = None
    location: Opt[Coordinates] = None
    snapshot_url: Opt[Annotated[str, Field(max_length=1000)]] = None
    clip_url: Opt[Annotated[str, Field(max_length=1000)]] = None


# --- 110 referral 110社会联动 -----------------------------------------------------------------


class Caller(_Contract):
    name: Opt[Text32] = None
    gender: Opt[Literal["M", "F", "U"]] = None
    phone: Opt[Annotated[str, Field(max_length=20)]] = None


class Hazards(_Contract):
    dangerous_goods: Opt[bool] = None  # 危险品
    explosion_leak: Opt[bool] = None  # 爆炸/泄漏
    trapped: Opt[bool] = None  # 被困
    injured: Opt[Annotated[int, Field(ge=0)]] = None
    dead: Opt[Annotated[int, Field(ge=0)]] = None


class PoliceAction(_Contract):
    dispatched: Opt[bool] = None
    first_response: Opt[Annotated[str, Field(max_length=500)]] = None


class PoliceReferral(_Contract):
    """``ingest.police-110``, key ``referral_id`` (police-110.schema.json; 接警单 pinyin names)."""

    referral_id: Annotated[str, Field(min_length=1, max_length=64)]
    jjdbh: Annotated[str, Field(min_length=1, max_length=32)]  # 接警单编号
    gljjdbh: Text32 | None = None  # 关联接警单编号; nullable in the schema
    xzqhbh: RegionCode  # 行政区划编号
    jjdwbh: Opt[Text32] = None  # 接警单位
    bjsj: Timestamp  # 报警时间
    jjsj: Opt[Timestamp] = None  # 接警时间
    referred_at: Timestamp
    caller: Opt[Caller] = None
    sfdz: Annotated[str, Field(min_length=1, max_length=200)]  # 事发地址
    location: Opt[Coordinates] = None
    grid_code: Opt[GridCode] = None
    bjnr: Annotated[str, Field(min_length=1, max_length=2000)]  # 报警内容
    bjlx: CallTypeCode  # 报警类型
    bjlx_name: Opt[Text32] = None
    jqjb: Opt[Literal["1", "2", "3", "4"]] = None  # 警情级别
    hazards: Opt[Hazards] = None
    police_action: Opt[PoliceAction] = None
