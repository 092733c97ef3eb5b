"""Open311 GeoReport v2 (JSON only) over the case store: services are the taxonomy's
categories; a posted request becomes a grid report on ``ingest.grid-reports``, produced
through the same gateway as :mod:`api.intake`; a request reads back as the case its report
opened or joined.

- ``service_code`` = category code (``05.03``), ``service_name`` its Chinese name,
  ``group`` its family (矛盾纠纷 …), ``keywords`` the words of its keyword rules.
- ``service_request_id`` = the inbound report's id (a posted request's own id; a listed
  case's first report). Once the stream has opened or linked the report,
  ``GET requests/{id}.json`` answers; a case id answers too.
- A posted request needs a grid: ``attribute[grid_code]``, or ``lat``/``long`` within
  ``GRIDLINK_LOCATE_MAX_DISTANCE_M`` of a grid's centroid (there is no geocoder for
  ``address_string`` alone).
- Errors are the API's RFC 9457 problems, not Open311's error arrays.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError, field_validator

from api.auth import CommandCenterUser, CurrentUser, Role, User, require_region
from api.commands import Gateway
from api.deps import Db, require_readable, scope_of, triage_reference
from api.errors import InvalidRequest, NotFound, problem_responses
from api.idempotency import HEADER, MAX_KEY_CHARS, checked_key, command_id_for
from api.schemas import (
    Open311Attribute,
    Open311Created,
    Open311Request,
    Open311Service,
    Open311ServiceDefinition,
)
from clock import wall_clock
from settings import Settings
from store import queries
from store.models import Case
from store.records import CaseFacts
from streams.cases import CaseStatus
from streams.locate import nearest_grid
from streams.parse import PARSERS
from streams.reference import City
from streams.triage_rules import TriageRules
from streams.zone import TZ
from topics import registry

router = APIRouter(prefix="/open311/v2", tags=["open311"])
ServiceCode = Annotated[str, Path(max_length=32, examples=["05.03"])]
RequestId = Annotated[str, Path(max_length=96, examples=["O311-20261126-3f9a1c2b7d"])]
CLOSED = frozenset({CaseStatus.CLOSED, CaseStatus.EVALUATED, CaseStatus.REJECTED,
                    CaseStatus.MERGED})
STATUS_NOTES = {
    CaseStatus.REPORTED: "已上报", CaseStatus.VERIFYING: "待核实", CaseStatus.REGISTERED: "已立案",
    CaseStatus.REJECTED: "不予立案", CaseStatus.DISPATCHED: "已交办",
    CaseStatus.ACCEPTED: "已签收", CaseStatus.RETURNED: "已退单，待重新交办",
    CaseStatus.IN_PROGRESS: "处置中", CaseStatus.HANDLED: "已办结，待核查",
    CaseStatus.CHECKING: "核查中", CaseStatus.REWORK: "返工", CaseStatus.CLOSED: "已结案",
    CaseStatus.REOPENED: "重办", CaseStatus.EVALUATED: "已评价", CaseStatus.MERGED: "已合并",
}
GRID_ATTRIBUTE = Open311Attribute(
    code="grid_code", datatype="string", required=False,
    datatype_description="15 digits: 12-digit community + 3-digit grid sequence",
    description="网格编码 (grid code); without it, lat/long place the request")


# -- reference data, loaded once per app ----------------------------------------------------


def _reference(request: Request) -> tuple[TriageRules, City]:
    return triage_reference(request)


def _services(rules: TriageRules) -> list[Open311Service]:
    words: dict[str, list[str]] = {}
    for rule in rules.keywords:
        for word in rule.words:
            if word not in words.setdefault(rule.category, []):
                words[rule.category].append(word)
    return [Open311Service(service_code=c.code, service_name=c.name_zh, description=c.name_en,
                           metadata=True, type="realtime", keywords=",".join(words.get(c.code, [])),
                           group=rules.families.get(c.family, c.family))
            for c in sorted(rules.categories.values(), key=lambda c: c.code)]


# -- services ---------------------------------------------------------------------------------


@router.get("/services.json", response_model=list[Open311Service],
            responses=problem_responses(401))
def services(request: Request, user: CurrentUser) -> list[Open311Service]:
    """Every category of the taxonomy (事件分类) as an Open311 service."""
    return _services(_reference(request)[0])


@router.get("/services/{service_code}.json", response_model=Open311ServiceDefinition,
            responses=problem_responses(401, 404))
def service_definition(request: Request, user: CurrentUser,
                       service_code: ServiceCode) -> Open311ServiceDefinition:
    """The attributes a request of this service may carry: ``attribute[grid_code]``."""
    if service_code not in _reference(request)[0].categories:
        raise NotFound(f"no service {service_code}")
    return Open311ServiceDefinition(service_code=service_code, attributes=[GRID_ATTRIBUTE])


# -- posting a request ----------------------------------------------------------------------


class RequestBody(BaseModel):
    """The fields of an Open311 POST this API uses (others are ignored)."""

    service_code: str = Field(max_length=32, examples=["05.03"])
    description: str = Field(min_length=1, max_length=4000,
                             examples=["小区门口垃圾桶满溢，无人清运。"])
    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, examples=[36.456])
    long: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False,
                               examples=[115.9915])
    address_string: str | None = Field(None, max_length=200, examples=["化机小区3号楼前"])
    account_id: str | None = Field(None, max_length=32, description="the reporter's id "
                                   "(default: open311:<user>)")
    first_name: str | None = Field(None, max_length=16)
    last_name: str | None = Field(None, max_length=16)
    phone: str | None = Field(None, max_length=20)
    media_url: str | None = Field(None, max_length=1000)
    attribute: dict[str, str] = Field(default_factory=dict,
                                      examples=[{"grid_code": "371502004001002"}])

    @field_validator("lat", "long", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


def _fields(raw: bytes, content_type: str) -> dict[str, Any]:
    """A form-encoded (the standard's) or JSON body as one dict; ``attribute[x]=v`` pairs
    gather under ``attribute``."""
    if content_type.startswith("application/json"):
        try:
            document = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("the body is not JSON", field="body") from None
        if not isinstance(document, dict):
            raise InvalidRequest("the body must be a JSON object", field="body")
        pairs: list[tuple[str, Any]] = list(document.items())
    else:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise InvalidRequest("the form is not UTF-8", field="body") from None
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in pairs:
        if key.startswith("attribute[") and key.endswith("]"):
            attributes[key[10:-1]] = value
        elif key == "attribute" and isinstance(value, Mapping):
            attributes.update(value)
        else:
            fields[key] = value
    fields["attribute"] = {str(k): str(v) for k, v in attributes.items()}
    return fields


def _parse(fields: dict[str, Any]) -> RequestBody:
    try:
        return RequestBody.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{field}: {first['msg']}", field=field) from None


def _grid(body: RequestBody, city: City, settings: Settings) -> str:
    if body.attribute.get("grid_code"):
        return body.attribute["grid_code"]
    if body.lat is not None and body.long is not None:
        found = nearest_grid(city, body.long, body.lat,
                             max_distance_m=settings.locate_max_distance_m)
        if found is not None:
            return found[0].code
        raise InvalidRequest(f"lat/long lie farther than {settings.locate_max_distance_m:.0f} m "
                             "from every grid", field="lat")
    raise InvalidRequest("give attribute[grid_code], or lat and long (an address alone "
                         "cannot be placed)", field="attribute[grid_code]")


def _grid_report(body: RequestBody, grid_code: str, user: User,
                 report_id: str | None) -> dict[str, Any]:
    now = wall_clock()
    reporter: dict[str, str] = {"staff_id": body.account_id or f"open311:{user.name}"[:32]}
    name = "".join(part for part in (body.last_name, body.first_name) if part)
    if name:
        reporter["name"] = name[:32]
    if body.phone:
        reporter["phone"] = body.phone
    report: dict[str, Any] = {
        "report_id": report_id or f"O311-{now:%Y%m%d}-{uuid.uuid4().hex[:10]}",
        "grid_code": grid_code,
        "reported_at": now.isoformat(), "reporter": reporter,
        "category": {"code": body.service_code}, "description": body.description,
    }
    location = {key: value for key, value in (("lon", body.long), ("lat", body.lat),
                                              ("address", body.address_string)) if value}
    if location:
        report["location"] = location
    if body.media_url:
        report["attachments"] = [{"url": body.media_url}]
    return report


@router.post("/requests.json", status_code=202, response_model=list[Open311Created],
             responses=problem_responses(401, 403, 422), openapi_extra={"requestBody": {
                 "required": True, "content": {
                     "application/x-www-form-urlencoded": {"schema": {"type": "object"}, "example":
                         "service_code=05.03&description=垃圾桶满溢&lat=36.456&long=115.9915"},
                     "application/json": {"schema": RequestBody.model_json_schema(),
                                          "example": {"service_code": "05.03",
                                                      "description": "垃圾桶满溢，无人清运。",
                                                      "attribute": {"grid_code":
                                                                    "371502004001002"}}}}}})
async def post_request(request: Request, user: CommandCenterUser, gateway: Gateway,
                       idempotency_key: Annotated[str | None, Header(
                           alias=HEADER, max_length=MAX_KEY_CHARS, description="sent again "
                           "with the same key, the request makes the same report, which the "
                           "stream takes once")] = None) -> list[Open311Created]:
    """A citizen's or grid worker's request (诉求上报), form-encoded as the standard has it
    or JSON. It becomes a grid report produced to ``ingest.grid-reports``; the answer's
    ``service_request_id`` reads back once the case is open (usually within seconds).
    With an ``Idempotency-Key`` the report's id derives from it, so a retry repeats the
    same report (the stream recognises a repeated report) and gets the same id."""
    key = checked_key(idempotency_key)
    report_id = (None if key is None else
                 "O311-" + command_id_for(user.actor, request.url.path, key)[5:21])
    body = _parse(_fields(await request.body(), request.headers.get("content-type", "")))
    rules, city = _reference(request)
    if body.service_code not in rules.categories:
        raise InvalidRequest(f"unknown service_code {body.service_code!r}: see services.json",
                             field="service_code")
    grid_code = _grid(body, city, request.app.state.settings)
    raw = json.dumps(_grid_report(body, grid_code, user, report_id), ensure_ascii=False).encode()
    event = PARSERS[registry.INGEST_SOURCES[registry.GRID_REPORTS]](raw)  # 422 if refused
    if user.role is Role.OPERATOR:
        require_region(user, grid_code, "the request's grid")
    await gateway.publish(registry.GRID_REPORTS, key=event.source_id.encode(), value=raw)
    return [Open311Created(service_request_id=event.source_id, account_id=body.account_id,
                           service_notice="已受理：正在分类、分拨 (accepted; the case opens "
                           "within seconds)")]


# -- reading requests -----------------------------------------------------------------------


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(TZ) if moment is not None else None


def _aware(moment: datetime | None) -> datetime | None:
    """A date without an offset is Beijing time (北京时间)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=TZ)


def _as_request(case: Case, facts: CaseFacts, request_id: str | None) -> Open311Request:
    report, place = facts.first_report, facts.location
    status = CaseStatus(case.status)
    return Open311Request(
        service_request_id=request_id or report.get("source_id") or case.case_id,
        case_id=case.case_id, status="closed" if status in CLOSED else "open",
        status_notes=f"{STATUS_NOTES.get(status, status)} ({status})",
        service_name=case.category_name, service_code=case.category,
        description=case.summary or report.get("text") or case.title,
        agency_responsible=facts.lead_department_name,
        requested_datetime=_local(case.opened_at), updated_datetime=_local(case.updated_at),
        expected_datetime=_local(facts.lead_resolve_due_at), address=report.get("address"),
        lat=place.get("lat", report.get("lat")), long=place.get("lon", report.get("lon")),
        media_url=next(iter(report.get("media") or ()), None))


def _case_of(db: Db, request_id: str) -> Case | None:
    return queries.case_of_report(db, request_id) or queries.find_case(db, request_id)


@router.get("/requests/{service_request_id}.json", response_model=list[Open311Request],
            responses=problem_responses(401, 403, 404))
def get_request(user: CurrentUser, db: Db, service_request_id: RequestId) -> list[Open311Request]:
    """One request, by the report id POST answered (or any report or case id): the case
    it opened or joined. 404 until the stream has opened or linked it."""
    case = _case_of(db, service_request_id)
    if case is None:
        raise NotFound(f"no case holds request {service_request_id} (yet)")
    require_readable(user, case, db)
    facts = queries.case_facts(db, [case])[case.case_id]
    return [_as_request(case, facts, service_request_id)]


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@router.get("/requests.json", response_model=list[Open311Request],
            responses=problem_responses(401, 403, 422))
def list_requests(
    user: CurrentUser, db: Db,
    service_request_id: Annotated[str | None, Query(max_length=2000, description="request ids, "
                                                    "comma-separated (other filters are then "
                                                    "ignored, as the standard says)")] = None,
    service_code: Annotated[str | None, Query(max_length=500, examples=["05.03,05.05"],
                                              description="service codes, comma-separated")
                            ] = None,
    status: Annotated[str | None, Query(max_length=20, examples=["open"],
                                        description="open, closed or open,closed")] = None,
    start_date: Annotated[datetime | None, Query(description="requests opened at or after")
                          ] = None,
    end_date: Annotated[datetime | None, Query(description="requests opened before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many, newest "
                                "first")] = 200,
) -> list[Open311Request]:
    """Requests within the caller's scope, newest first."""
    scope = scope_of(user)
    if service_request_id is not None:
        wanted: dict[str, str] = {}
        for request_id in _split(service_request_id)[:100]:
            case = _case_of(db, request_id)
            if case is not None:
                wanted.setdefault(case.case_id, request_id)
        cases = queries.list_cases(db, scope=scope, case_ids=list(wanted), limit=limit)
        facts = queries.case_facts(db, cases)
        return [_as_request(c, facts[c.case_id], wanted[c.case_id]) for c in cases]
    statuses = set(_split(status))
    if not statuses <= {"open", "closed"}:
        raise InvalidRequest(f"status must be open, closed or both, not {status!r}",
                             field="status")
    chosen: list[str] = []
    if statuses == {"closed"}:
        chosen = sorted(CLOSED)
    elif statuses == {"open"}:
        chosen = sorted(set(CaseStatus) - CLOSED)
    cases = queries.list_cases(db, scope=scope, categories=_split(service_code),
                               statuses=chosen, opened_from=_aware(start_date),
                               opened_to=_aware(end_date), limit=limit)
    facts = queries.case_facts(db, cases)
    return [_as_request(c, facts[c.case_id], None) for c in cases]
