"""Wire forms of generated messages: JSON in the styles real producers use, and GB/T 28181
alarm notifications (``<Notify>`` with CmdType Alarm) in UTF-8, GB2312 or GBK."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

import msgspec

JSON_STYLES = ("json", "json-ascii", "json-spaced")
XML_ENCODINGS = ("UTF-8", "GB2312", "GBK")

_encoder = msgspec.json.Encoder()


def json_bytes(payload: Any, style: str = "json") -> bytes:
    """``json``: compact UTF-8; ``json-ascii``: non-ASCII escaped (\\uXXXX), as Java
    and older Python producers write; ``json-spaced``: ``", "`` and ``": "`` separators."""
    if style == "json":
        return _encoder.encode(payload)
    if style == "json-ascii":
        return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    if style == "json-spaced":
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")
    raise ValueError(f"unknown JSON style {style!r}")


def codec_of(declared: str) -> str:
    """The Python codec to write an XML body declared in ``declared``."""
    return {"utf-8": "utf-8", "gb2312": "gb2312", "gbk": "gbk"}.get(declared.lower(), "utf-8")


def encode_xml(text: str, declared: str) -> bytes:
    """``text`` in the declared encoding; characters outside GB2312 fall back to GB18030
    bytes, which a GB2312 device would send as GBK (the parser decodes either)."""
    codec = codec_of(declared)
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        return text.encode("gb18030")


def xml_document(
    root: str,
    elements: Mapping[str, Any],
    *,
    declared: str | None = "UTF-8",
    newline: str = "\n",
    doctype: str = "",
) -> str:
    """A GB/T 28181 SIP MESSAGE body: ``<?xml …?>`` and one root with child elements.
    A mapping value becomes a nested element; None leaves the element out."""
    head = f'<?xml version="1.0" encoding="{declared}"?>{newline}' if declared else ""
    return f"{head}{doctype}<{root}>{newline}{_children(elements, newline)}</{root}>{newline}"


def _children(elements: Mapping[str, Any], newline: str) -> str:
    parts = []
    for name, value in elements.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            parts.append(f"<{name}>{newline}{_children(value, newline)}</{name}>{newline}")
        else:
            parts.append(f"<{name}>{escape(str(value))}</{name}>{newline}")
    return "".join(parts)


def alarm_elements(
    *,
    sn: str | None,
    device_id: str,
    priority: int | str,
    method: int | str,
    alarm_time: str,
    description: str | None,
    lon: float | None,
    lat: float | None,
    alarm_type: int | str | None,
) -> dict[str, Any]:
    """The elements of an alarm ``<Notify>`` in the order GB/T 28181-2016 §A.2.5 lists."""
    return {
        "CmdType": "Alarm",
        "SN": sn,
        "DeviceID": device_id,
        "AlarmPriority": priority,
        "AlarmMethod": method,
        "AlarmTime": alarm_time,
        "AlarmDescription": description,
        "Longitude": None if lon is None else f"{lon:.6f}",
        "Latitude": None if lat is None else f"{lat:.6f}",
        "Info": None
        if alarm_type is None
        else {"AlarmType": alarm_type, "AlarmTypeParam": {"EventType": 1}},
    }
