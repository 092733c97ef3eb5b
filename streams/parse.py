"""Parse the three inbound formats into ``Event`` records (信息上报 → 事件).

One function per source, each taking the Kafka value as bytes::

    parse_grid_report(raw)      grid-management platform JSON (网格员上报)
    parse_camera_alert(raw)     video platform JSON, or a raw GB/T 28181 alarm <Notify> XML body
    parse_police_referral(raw)  110 social-linkage referral JSON (110社会联动, 接警单)

``PARSERS`` maps each ``Source`` to its parser. Every failure is an
``InvalidEvent`` whose ``code`` says what kind of failure it is and whose
``reason`` tells a person what to fix:

==================  =========================================================
code                meaning
==================  =========================================================
``too_large``       the message is over ``MAX_MESSAGE_BYTES`` (checked first)
``bad_encoding``    JSON that is not UTF-8; XML not decodable in its declared
                    encoding, or declaring one other than UTF-8/GB2312/GBK/GB18030
``not_json``        not parseable as JSON (and, for cameras, not XML either)
``wrong_shape``     JSON, but not an object
``malformed_xml``   XML that is not well-formed
``unsafe_xml``      XML with a DTD, entity declarations or external references
``not_alarm``       a GB/T 28181 message that is not ``<Notify>`` with CmdType Alarm
``schema``          a contract violation; ``field`` is the dotted path of the first
                    error, ``reason`` lists them all
``control_char``    a text holding a control character (NUL, or any other C0 or
                    C1 code but tab, line feed and carriage return): no system
                    downstream can be trusted to store it (PostgreSQL refuses NUL)
==================  =========================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _xml_fromstring
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from streams.errors import InvalidEvent
from streams.records import Event, Source
from streams.schemas import (
    CUSTOM_ERROR_PREFIX,
    CameraAlert,
    GridReport,
    PoliceReferral,
    show,
)

MAX_MESSAGE_BYTES = 1 << 20
"""1 MiB: larger messages are rejected before any parsing."""

MAX_LISTED_ERRORS = 8

Parser = Callable[[bytes], Event]
_M = TypeVar("_M", bound=BaseModel)

_UTF8_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


# --- public parsers ----------------------------------------------------------------------


def parse_grid_report(raw: bytes) -> Event:
    """A grid worker's report (网格员上报) as an ``Event`` entering at its grid."""
    report = _validate_json(raw, GridReport)
    category, place, handled = report.category, report.location, report.self_handled
    labels = (category.src_domain, category.src_type) if category else ()
    return Event(
        event_id=f"{Source.GRID}:{report.report_id}",
        source=Source.GRID,
        source_id=report.report_id,
        occurred_at=report.happened_at or report.reported_at,
        reported_at=report.reported_at,
        title=report.title or "",
        text=report.description,
        grid_code=report.grid_code,
        lon=place.lon if place else None,
        lat=place.lat if place else None,
        address=place.address if place else None,
        reporter=report.reporter.staff_id,
        source_category=category.code if category else None,
        source_labels=tuple(label for label in labels if label),
        persons=report.involved_persons,
        risk_flags=tuple(report.risk_flags or ()),
        severity_hint=report.severity_hint,
        self_resolved=handled is not None and handled.result == "已化解",
        media=tuple(attachment.url for attachment in report.attachments or () if attachment.url),
    )


def parse_camera_alert(raw: bytes) -> Event:
    """A video alert (雪亮 / video AI): JSON, or a GB/T 28181 alarm ``<Notify>`` body.

    The two are told apart by the first non-blank byte: ``<`` means XML.
    """
    _check_size(raw)
    if _lead_trimmed(raw)[:1] == b"<":
        alert = _alert_from_gb28181(raw)
        _refuse_control_characters(alert)  # XML refuses C0 codes itself, not C1 ones
    else:
        alert = _validate_json(raw, CameraAlert)
    place = alert.location
    return Event(
        event_id=f"{Source.CAMERA}:{alert.alert_id}",
        source=Source.CAMERA,
        source_id=alert.alert_id,
        occurred_at=alert.alarm_time,
        reported_at=alert.alarm_time,
        text=alert.description or "",
        grid_code=alert.grid_code,
        lon=place.lon if place else None,
        lat=place.lat if place else None,
        device_id=alert.device_id,
        source_code=alert.ai_event_code,
        alarm_method=alert.alarm_method,
        alarm_type=alert.alarm_type,
        source_priority=alert.alarm_priority,
        ai_confidence=alert.confidence,
        media=tuple(url for url in (alert.snapshot_url, alert.clip_url) if url),
    )


def parse_police_referral(raw: bytes) -> Event:
    """A 110 social-linkage referral (110社会联动) as an ``Event``; pinyin fields of the 接警单
    become ``call_no`` (jjdbh), ``region_code`` (xzqhbh), ``text`` (bjnr) and so on."""
    referral = _validate_json(raw, PoliceReferral)
    place, caller = referral.location, referral.caller
    return Event(
        event_id=f"{Source.POLICE}:{referral.referral_id}",
        source=Source.POLICE,
        source_id=referral.referral_id,
        occurred_at=referral.bjsj,
        reported_at=referral.referred_at,
        text=referral.bjnr,
        grid_code=referral.grid_code,
        region_code=referral.xzqhbh,
        lon=place.lon if place else None,
        lat=place.lat if place else None,
        address=referral.sfdz,
        reporter=caller.phone if caller and caller.phone else None,
        source_labels=(referral.bjlx_name,) if referral.bjlx_name else (),
        source_code=referral.bjlx,
        source_priority=int(referral.jqjb) if referral.jqjb else None,
        risk_flags=_hazard_flags(referral),
        call_no=referral.jjdbh,
        linked_call_no=referral.gljjdbh or None,
    )


PARSERS: Mapping[Source, Parser] = MappingProxyType(
    {
        Source.GRID: parse_grid_report,
        Source.CAMERA: parse_camera_alert,
        Source.POLICE: parse_police_referral,
    }
)


def _hazard_flags(referral: PoliceReferral) -> tuple[str, ...]:
    """110 ``hazards`` as risk flags: ``dangerous_goods``, ``explosion_leak``, ``trapped``,
    ``injured:<n>``, ``dead:<n>`` (only those present and true / above zero)."""
    hazards = referral.hazards
    if hazards is None:
        return ()
    flags = [
        name
        for name, present in (
            ("dangerous_goods", hazards.dangerous_goods),
            ("explosion_leak", hazards.explosion_leak),
            ("trapped", hazards.trapped),
        )
        if present
    ]
    counts = (("injured", hazards.injured), ("dead", hazards.dead))
    flags += [f"{name}:{count}" for name, count in counts if count]
    return tuple(flags)


# --- JSON ---------------------------------------------------------------------------------


def _check_size(raw: bytes) -> None:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (1 MiB)",
            code="too_large",
        )


def _lead_trimmed(raw: bytes) -> bytes:
    """The message without a UTF-8 byte-order mark and leading blanks."""
    return raw.removeprefix(_UTF8_BOM).lstrip(_WHITESPACE)


def _validate_json(raw: bytes, model: type[_M]) -> _M:
    """Size, UTF-8, JSON, object, contract — in that order."""
    _check_size(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            f"message is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "JSON messages must be UTF-8",
            code="bad_encoding",
        ) from None
    try:
        parsed = model.model_validate_json(text.removeprefix("\ufeff"))
    except ValidationError as exc:
        raise _json_failure(exc, model) from None
    if _CONTROL.search(text) or _CONTROL_ESCAPE.search(text):  # else no value can hold one
        _refuse_control_characters(parsed)
    return parsed


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: a JSON escape that may stand for one of those (``\\u0007``, ``\\u009F`` …)
_CONTROL_ESCAPE = re.compile(r"\\u00(?:[01][0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])")


def _refuse_control_characters(value: object, path: str = "") -> None:
    """``control_char`` if any text of ``value`` (a parsed message) holds one."""
    if isinstance(value, str):
        found = _CONTROL.search(value)
        if found is not None:
            raise InvalidEvent(
                f"{path or 'the message'} holds the control character "
                f"U+{ord(found.group()):04X} at position {found.start()}; remove it and "
                "send the message again",
                code="control_char", field=path or None)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _refuse_control_characters(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            _refuse_control_characters(item, f"{path}[{n}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_control_characters(key, path)
            _refuse_control_characters(item, f"{path}.{key}" if path else str(key))


def _json_failure(exc: ValidationError, model: type[BaseModel]) -> InvalidEvent:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        detail = first.get("ctx", {}).get("error", first["msg"])
        return InvalidEvent(f"message is not JSON: {detail}", code="not_json")
    if first["type"] == "model_type" and not first["loc"]:
        return InvalidEvent(
            f"message must be a JSON object ({model.__name__}), got {_json_kind(first['input'])}",
            code="wrong_shape",
        )
    return _schema_failure(exc)


def _json_kind(value: object) -> str:
    kinds = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


_SHOULD = re.compile(r"^(?:Input|String|List|Value|Dictionary|Object) should ")


def _schema_failure(
    exc: ValidationError,
    rename: Mapping[str, str] | None = None,
    before: Sequence[tuple[str, str]] = (),
) -> InvalidEvent:
    """One ``schema`` error listing every violation; ``field`` is the first one's path."""
    problems = [*before]
    problems += [
        (_path(error, rename), _describe(error)) for error in exc.errors(include_url=False)
    ]
    lines = [f"{path}: {text}" for path, text in problems]
    if len(lines) > MAX_LISTED_ERRORS:
        lines[MAX_LISTED_ERRORS:] = [f"… and {len(lines) - MAX_LISTED_ERRORS} more"]
    return InvalidEvent("; ".join(lines), code="schema", field=problems[0][0])


def _path(error: ErrorDetails, rename: Mapping[str, str] | None) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "(message)"
    return rename.get(path, path) if rename else path


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind.startswith(CUSTOM_ERROR_PREFIX):
        return error["msg"]
    message = _SHOULD.sub("must ", error["msg"])
    value = error.get("input")
    if kind == "string_too_long" and isinstance(value, str):
        return f"{message} (got {len(value)})"
    if kind == "too_long" and isinstance(value, list):
        return message.split(" after validation")[0] + f" (got {len(value)})"
    return f"{message} (got {show(value)})"


# --- GB/T 28181 XML -----------------------------------------------------------------------

_DECLARED_ENCODING = re.compile(
    rb"""<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]{0,39})["']"""
)
_CODECS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    # GB2312 devices routinely send GBK characters: GB18030 decodes both (a superset).
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "gb18030": "gb18030",
}
_SN = re.compile(r"[0-9]{1,20}")

_XML_NAMES = {
    "device_id": "DeviceID",
    "alarm_time": "AlarmTime",
    "alarm_priority": "AlarmPriority",
    "alarm_method": "AlarmMethod",
    "alarm_type": "Info.AlarmType",
    "description": "AlarmDescription",
    "location.lon": "Longitude",
    "location.lat": "Latitude",
}
"""Contract field → GB/T 28181 element, so errors name what the device sent."""


def _alert_from_gb28181(raw: bytes) -> CameraAlert:
    """A GB/T 28181 ``<Notify><CmdType>Alarm</CmdType>…`` body as a ``CameraAlert``.

    The alert id is ``DeviceID|AlarmTime|SN`` as sent; AlarmTime without an
    offset is local time (+08:00).
    """
    root = _parse_xml(raw)
    tag = _local_name(root.tag)
    command = _child_text(root, "CmdType")
    if tag != "Notify" or command != "Alarm":
        sent = f"<{tag}> with CmdType {command!r}" if command else f"<{tag}> without CmdType"
        raise InvalidEvent(
            f"GB/T 28181 message is {sent}; this topic takes only alarm notifications "
            "(<Notify> with CmdType Alarm)",
            code="not_alarm",
            field="CmdType",
        )
    serial = _child_text(root, "SN")
    problems = _serial_problems(serial)
    device, time = _child_text(root, "DeviceID"), _child_text(root, "AlarmTime")
    info = root.find("Info")
    fields: dict[str, object] = {
        "alert_id": "-",  # replaced below, once its parts are known to be valid
        "device_id": device,
        "alarm_time": time,
        "alarm_priority": _child_text(root, "AlarmPriority"),
        "alarm_method": _child_text(root, "AlarmMethod"),
        "alarm_type": _child_text(info, "AlarmType") if info is not None else None,
        "description": _child_text(root, "AlarmDescription"),
        "location": {"lon": _child_text(root, "Longitude"), "lat": _child_text(root, "Latitude")},
    }
    try:
        alert = CameraAlert.model_validate(_drop_absent(fields), strict=False)  # numbers as text
    except ValidationError as exc:
        raise _schema_failure(exc, _XML_NAMES, problems) from None
    if problems:
        raise InvalidEvent(
            "; ".join(f"{path}: {text}" for path, text in problems),
            code="schema",
            field=problems[0][0],
        )
    return alert.model_copy(update={"alert_id": f"{device}|{time}|{serial}"})


def _parse_xml(raw: bytes) -> Element:
    raw = _lead_trimmed(raw)  # tolerated, though an XML declaration must come first
    declared = _DECLARED_ENCODING.match(raw, 0, 256)
    name = declared.group(1).decode("ascii") if declared else "UTF-8"
    codec = _CODECS.get(name.lower().replace("_", "-"))
    if codec is None:
        raise InvalidEvent(
            f"XML declares encoding {name!r}; expected UTF-8, GB2312, GBK or GB18030",
            code="bad_encoding",
            field="encoding",
        )
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            f"XML is not valid {name} (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            code="bad_encoding",
            field="encoding",
        ) from None
    try:
        root: Element = _xml_fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise InvalidEvent(
            f"XML refused: {type(exc).__name__} ({exc}); DTDs, entity declarations and "
            "external references are not allowed",
            code="unsafe_xml",
        ) from None
    except ParseError as exc:
        raise InvalidEvent(f"XML is malformed: {exc}", code="malformed_xml") from None
    return root


def _serial_problems(serial: str | None) -> list[tuple[str, str]]:
    """SN, the alarm's sequence number, is part of the alert id: 1-20 digits."""
    if serial is None:
        return [("SN", "is required (the alarm's sequence number)")]
    if _SN.fullmatch(serial) is None:
        return [("SN", f"{show(serial)} must be 1-20 digits (the alarm's sequence number)")]
    return []


def _local_name(tag: object) -> str:
    """The element name without a ``{namespace}``; comments and PIs have no str tag."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else "?"


def _child_text(parent: Element, name: str) -> str | None:
    """The stripped text of a direct child, None when absent or blank."""
    child = parent.find(name)
    text = (child.text or "").strip() if child is not None else ""
    return text or None


def _drop_absent(fields: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in fields.items():
        if isinstance(value, dict):
            value = _drop_absent(value) or None
        if value is not None:
            out[key] = value
    return out
