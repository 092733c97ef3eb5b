"""Broken messages (异常报文), each with the error the pipeline must give it.

A broken message starts from a valid one and breaks it the way real producers
do: cut off in transit, not JSON at all, the wrong JSON shape, a contract
violation, the wrong encoding, over the size limit; for GB/T 28181, a
keep-alive or catalog message on the alarm topic, XML that is not well-formed,
with a DTD, or in an encoding other than declared. The error codes are those of
``streams.parse`` (``InvalidEvent.code``); ``field`` is the first offending
field when the message has exactly one violation.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulation.formats import encode_xml, json_bytes, xml_document
from streams.parse import MAX_MESSAGE_BYTES
from streams.records import Source

INVALID = "invalid"
UNROUTABLE = "unroutable"

REQUIRED = {
    Source.GRID: ("report_id", "grid_code", "reported_at", "reporter", "description"),
    Source.CAMERA: ("alert_id", "device_id", "alarm_time", "alarm_priority", "alarm_method"),
    Source.POLICE: (
        "referral_id",
        "jjdbh",
        "xzqhbh",
        "bjsj",
        "referred_at",
        "sfdz",
        "bjnr",
        "bjlx",
    ),
}

# (field path reported, mutation) — each makes exactly one contract violation
Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(payload: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = payload
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value

    return mutate


def _cut(name: str, length: int) -> Mutation:
    def mutate(payload: dict[str, Any]) -> None:
        payload[name] = payload[name][:length]

    return mutate


BAD_VALUES: dict[Source, tuple[tuple[str, Mutation], ...]] = {
    Source.GRID: (
        ("grid_code", _cut("grid_code", 11)),
        ("grid_code", lambda p: p.__setitem__("grid_code", int(p["grid_code"]))),
        ("reported_at", _set("reported_at", "昨天下午")),
        ("reported_at", _set("reported_at", "2026/11/26 09:41")),
        ("description", _set("description", "")),
        ("reporter.staff_id", lambda p: p.__setitem__("reporter", {"name": "网格员"})),
        ("severity_hint", _set("severity_hint", "紧急")),
        ("involved_persons", _set("involved_persons", "5")),
        ("involved_persons", _set("involved_persons", -1)),
        ("category.code", _set("category", {"code": "5.1"})),
        ("location.lon", _set("location", {"lon": 200.0, "lat": 36.45})),
    ),
    Source.CAMERA: (
        ("device_id", _cut("device_id", 13)),
        ("alarm_priority", _set("alarm_priority", 9)),
        ("alarm_priority", _set("alarm_priority", "2")),
        ("alarm_method", _set("alarm_method", 0)),
        ("alarm_time", _set("alarm_time", "2026-11-26 10:15")),
        ("confidence", _set("confidence", 1.5)),
        ("grid_code", _set("grid_code", "3715020040010")),
    ),
    Source.POLICE: (
        ("xzqhbh", _set("xzqhbh", "37150")),
        ("bjlx", _set("bjlx", "60060")),
        ("bjsj", _set("bjsj", "2026年11月26日10时")),
        ("referred_at", _set("referred_at", "now")),
        ("jqjb", _set("jqjb", "5")),
        ("jqjb", _set("jqjb", 1)),
        ("sfdz", _set("sfdz", "")),
        ("bjnr", _set("bjnr", "")),
        ("caller.gender", _set("caller", {"gender": "男"})),
    ),
}

TEXT_FIELD = {Source.GRID: "description", Source.CAMERA: "description", Source.POLICE: "bjnr"}


@dataclass(frozen=True)
class Broken:
    value: bytes
    error: str  # the InvalidEvent code (or the UnroutableEvent code)
    field: str | None = None
    error_class: str = INVALID


def break_json(rng: random.Random, source: Source, kind: str, payload: dict[str, Any]) -> Broken:
    """``payload`` (a valid message) broken as ``kind`` says (vocabulary.toml [malformed])."""
    payload = copy.deepcopy(payload)
    if kind == "truncated_json":
        text = json_bytes(payload).decode("utf-8")
        cut = rng.randint(1, len(text) - 2)  # at a character boundary: still valid UTF-8
        return Broken(text[:cut].encode("utf-8"), "not_json")
    if kind == "not_json":
        return Broken(_not_json(rng, source, payload), "not_json")
    if kind == "wrong_shape":
        forms: list[Any] = [[payload], json.dumps(payload, ensure_ascii=False), None, 0, True]
        return Broken(json_bytes(rng.choice(forms)), "wrong_shape")
    if kind == "missing_field":
        name = rng.choice(REQUIRED[source])
        del payload[name]
        return Broken(json_bytes(payload), "schema", name)
    if kind == "bad_value":
        name, mutate = rng.choice(BAD_VALUES[source])
        mutate(payload)
        return Broken(json_bytes(payload), "schema", name)
    if kind == "bad_encoding":
        return Broken(_not_utf8(rng, payload), "bad_encoding")
    if kind == "too_large":
        return Broken(too_large(rng, source, payload), "too_large")
    raise ValueError(f"unknown malformed kind {kind!r} for JSON")


def _not_json(rng: random.Random, source: Source, payload: dict[str, Any]) -> bytes:
    text = json_bytes(payload).decode("utf-8")
    first_key = next(iter(payload))
    forms = [
        repr(payload),  # a Python dict printed instead of serialised
        text[:-1] + ",}",  # trailing comma
        text + text,  # two messages glued together
        "{" + ", ".join(f"{k}: {v}" for k, v in payload.items() if not isinstance(v, dict)) + "}",
        "&".join(f"{k}={v}" for k, v in payload.items() if isinstance(v, str)),  # form-encoded
        "",  # an empty value
        f"{first_key}={payload[first_key]}",
    ]
    if source is not Source.CAMERA:  # on the camera topic "<" means XML
        forms.append("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
    return rng.choice(forms).encode("utf-8")


def _not_utf8(rng: random.Random, payload: dict[str, Any]) -> bytes:
    text = json_bytes(payload).decode("utf-8")
    choice = rng.randrange(3)
    if choice == 0:
        raw = text.encode("gb18030")  # a GBK system that never switched to UTF-8
    elif choice == 1:
        raw = b"\xff\xfe" + text.encode("utf-16-le")  # UTF-16 with a byte-order mark
    else:
        raw = text.encode("utf-8")
        at = rng.randrange(1, len(raw))
        raw = raw[:at] + b"\xff" + raw[at:]  # a stray byte
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    return b"\xff" + raw  # the text had nothing outside ASCII


def too_large(rng: random.Random, source: Source, payload: dict[str, Any]) -> bytes:
    """Over ``MAX_MESSAGE_BYTES``: a photo pasted inline as a data URL, or a transcript."""
    size = MAX_MESSAGE_BYTES + rng.randint(64, 4096)
    filler = base64.b64encode(rng.randbytes(size * 3 // 4 + 3)).decode("ascii")[:size]
    if source is Source.GRID:
        payload["attachments"] = [{"type": "image", "url": "data:image/jpeg;base64," + filler}]
    elif source is Source.CAMERA:
        payload["snapshot_url"] = "data:image/jpeg;base64," + filler
    else:
        payload["bjnr"] = payload["bjnr"] + "【录音转写】" + filler
    return json_bytes(payload)


# --------------------------------------------------------------------------- GB/T 28181


def break_xml(rng: random.Random, kind: str, elements: dict[str, Any], declared: str) -> Broken:
    """A broken GB/T 28181 body from the elements of a valid alarm ``<Notify>``."""
    elements = copy.deepcopy(elements)
    if kind == "not_alarm":
        return Broken(_not_alarm(rng, elements, declared), "not_alarm", "CmdType")
    if kind == "malformed_xml":
        return Broken(_malformed_xml(rng, elements, declared), "malformed_xml")
    if kind == "unsafe_xml":
        elements["AlarmDescription"] = "\x00ENTITY\x00"
        text = xml_document(
            "Notify",
            elements,
            declared=declared,
            doctype='<!DOCTYPE Notify [<!ENTITY desc "alarm">]>\n',
        ).replace("\x00ENTITY\x00", "&desc;")
        return Broken(encode_xml(text, declared), "unsafe_xml")
    if kind == "xml_bad_encoding":
        if rng.random() < 0.5:
            declared_wrong = rng.choice(["Big5", "ISO-8859-1", "Shift_JIS", "UTF-16"])
            text = xml_document("Notify", elements, declared=declared_wrong)
            return Broken(text.encode("utf-8"), "bad_encoding", "encoding")
        text = xml_document("Notify", elements, declared="UTF-8")
        raw = text.encode("gbk")  # declares UTF-8, sends GBK
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return Broken(raw, "bad_encoding", "encoding")
        return Broken(raw.replace(b"<Notify>", b"<Notify>\xff", 1), "bad_encoding", "encoding")
    if kind == "xml_schema":
        name, value = rng.choice(
            [
                ("AlarmPriority", "0"),
                ("AlarmMethod", "9"),
                ("DeviceID", str(elements["DeviceID"])[:12]),
                ("AlarmTime", "20261126214705"),
                ("SN", None),
                ("SN", "A-17"),
            ]
        )
        elements[name] = value
        return Broken(
            encode_xml(xml_document("Notify", elements, declared=declared), declared),
            "schema",
            name,
        )
    raise ValueError(f"unknown malformed kind {kind!r} for GB/T 28181")


def _not_alarm(rng: random.Random, elements: dict[str, Any], declared: str) -> bytes:
    device, sn = elements["DeviceID"], elements.get("SN") or "1"
    root, body = rng.choice(
        [
            ("Notify", {"CmdType": "Keepalive", "SN": sn, "DeviceID": device, "Status": "OK"}),
            (
                "Notify",
                {"CmdType": "MediaStatus", "SN": sn, "DeviceID": device, "NotifyType": "121"},
            ),
            (
                "Response",
                {
                    "CmdType": "Catalog",
                    "SN": sn,
                    "DeviceID": device,
                    "SumNum": "1",
                    "DeviceList": {
                        "Item": {"DeviceID": device, "Name": "Camera 01", "Status": "ON"}
                    },
                },
            ),
            (
                "Response",
                {
                    "CmdType": "DeviceStatus",
                    "SN": sn,
                    "DeviceID": device,
                    "Result": "OK",
                    "Online": "ONLINE",
                    "Status": "OK",
                },
            ),
            ("Response", {"CmdType": "Alarm", "SN": sn, "DeviceID": device, "Result": "OK"}),
        ]
    )
    return encode_xml(xml_document(root, body, declared=declared), declared)


def _malformed_xml(rng: random.Random, elements: dict[str, Any], declared: str) -> bytes:
    text = xml_document("Notify", elements, declared=declared)
    choice = rng.randrange(3)
    if choice == 0:  # cut off in transit, after the root opened
        start = text.index("<Notify>") + len("<Notify>")
        text = text[: rng.randint(start, len(text) - len("</Notify>") - 2)]
    elif choice == 1:  # a mismatched end tag
        text = text.replace("</AlarmMethod>", "</AlarmMethd>", 1)
    else:  # an unescaped ampersand in free text
        text = text.replace("<AlarmDescription>", "<AlarmDescription>R&D ", 1)
        if "R&D" not in text:
            text = text.replace("<CmdType>", "<CmdType>&", 1)
    return encode_xml(text, declared)
