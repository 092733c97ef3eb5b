"""Intake over HTTP (信息上报): the three inbound formats, checked by the very parsers
the stream uses and placed by its locator — an operator reports only within its
jurisdiction — then produced unchanged to their ingest topic keyed by their id. The
stream takes it from there, exactly as if the outside system had produced it."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import CommandCenterUser, User, require_region
from api.commands import Gateway
from api.deps import triage_reference
from api.errors import problem_responses
from settings import Settings
from streams.locate import locate
from streams.parse import PARSERS
from topics import registry

router = APIRouter(prefix="/intake", tags=["intake"])
RESPONSES = problem_responses(401, 403, 413, 422, 429)


class Accepted(BaseModel):
    id: str = Field(examples=["GR-20261126-000102"],
                    description="the message's own id: the record key on the ingest topic")
    topic: str = Field(examples=["ingest.grid-reports"])


def _body(example: Mapping[str, object], *types: str) -> dict[str, object]:
    content: dict[str, object] = {"application/json": {"schema": {"type": "object"},
                                                       "example": example}}
    for media_type in types:
        content[media_type] = {"schema": {"type": "string"}}
    return {"requestBody": {"required": True, "content": content}}


async def _admit(request: Request, user: User, gateway: Gateway, topic: str) -> Accepted:
    """Parse as the stream will, place it (an operator reports within its jurisdiction),
    and produce the bytes as they came."""
    raw = await request.body()
    event = PARSERS[registry.INGEST_SOURCES[topic]](raw)  # InvalidEvent → 422 problem
    _, city = triage_reference(request)
    settings: Settings = request.app.state.settings
    location = locate(event, city, max_distance_m=settings.locate_max_distance_m)  # or 422
    require_region(user, location.region_code, "the report")
    await gateway.publish(topic, key=event.source_id.encode(), value=raw)
    return Accepted(id=event.source_id, topic=topic)


GRID_EXAMPLE = {"report_id": "GR-20261126-000102", "grid_code": "371502004001002",
                "reported_at": "2026-11-26T10:02:00+08:00", "reporter": {"staff_id": "WGY-0112"},
                "description": "化机小区3号楼前垃圾桶满溢，垃圾散落路面，无人清运。",
                "location": {"lon": 115.9915, "lat": 36.456}}

CAMERA_EXAMPLE = {"alert_id": "CAM-37150200011320000003-20261126T101500-1",
                  "device_id": "37150200011320000003", "alarm_time": "2026-11-26T10:15:00+08:00",
                  "alarm_priority": 2, "alarm_method": 5, "alarm_type": 10,
                  "ai_event_code": "crowd_gathering", "description": "人员聚集，约40人",
                  "confidence": 0.92}
POLICE_EXAMPLE = {"referral_id": "110LD-371502-20261126-00342", "jjdbh": "3715022026112600342",
                  "xzqhbh": "371502", "bjsj": "2026-11-26T23:12:48+08:00",
                  "referred_at": "2026-11-26T23:16:40+08:00", "sfdz": "新区街道化机小区4栋楼下",
                  "location": {"lon": 115.9852, "lat": 36.4561},
                  "bjnr": "楼下烧烤摊深夜噪音大、油烟重，影响休息，要求处理。", "bjlx": "600600",
                  "bjlx_name": "城管执法", "jqjb": "4"}


@router.post("/grid-reports", status_code=202, responses=RESPONSES,
             openapi_extra=_body(GRID_EXAMPLE))
async def grid_report(request: Request, user: CommandCenterUser,
                     gateway: Gateway) -> Accepted:
    """A grid worker's report (网格员上报), as the grid platform's JSON."""
    return await _admit(request, user, gateway, registry.GRID_REPORTS)


@router.post("/camera-alerts", status_code=202, responses=RESPONSES,
             openapi_extra=_body(CAMERA_EXAMPLE, "application/xml"))
async def camera_alert(request: Request, user: CommandCenterUser,
                      gateway: Gateway) -> Accepted:
    """A video alert (雪亮): the platform's JSON, or a GB/T 28181 alarm ``<Notify>`` body."""
    return await _admit(request, user, gateway, registry.CAMERA_ALERTS)


@router.post("/police-110", status_code=202, responses=RESPONSES,
             openapi_extra=_body(POLICE_EXAMPLE))
async def police_referral(request: Request, user: CommandCenterUser,
                         gateway: Gateway) -> Accepted:
    """A 110 social-linkage referral (110社会联动)."""
    return await _admit(request, user, gateway, registry.POLICE_110)

