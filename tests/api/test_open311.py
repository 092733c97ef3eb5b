"""Open311 GeoReport v2 on a real worker: the taxonomy as services, a posted request
becoming a case through ingest.grid-reports, and reading it back by its id."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.api.conftest import Api, eventually
from tests.api.test_api import LEAD, OPERATOR, OTHER_OPERATOR, _problem

pytestmark = pytest.mark.integration

V2 = "/open311/v2"
BINS = "05.03"  # 垃圾暴露/满溢, led by chengguan


def _request_once_open(api: Api, request_id: str) -> dict:
    def found() -> dict | None:
        answer = api.as_(OPERATOR).get(f"{V2}/requests/{request_id}.json")
        return answer.json()[0] if answer.status_code == 200 else None

    return eventually(found, what=f"the case of request {request_id}")


def test_services_are_the_taxonomy(api: Api):
    answer = api.as_(f"{LEAD}-desk").get(f"{V2}/services.json")
    assert answer.status_code == 200, answer.text
    services = {s["service_code"]: s for s in answer.json()}
    bins = services[BINS]
    assert bins["service_name"] == "垃圾暴露/满溢" and bins["group"] == "城市管理"
    assert bins["type"] == "realtime" and bins["metadata"] is True
    assert "垃圾" in bins["keywords"].split(",")
    assert services["01.02"]["group"] == "矛盾纠纷" and "11.00" in services
    definition = api.as_(OPERATOR).get(f"{V2}/services/{BINS}.json").json()
    assert [a["code"] for a in definition["attributes"]] == ["grid_code"]
    _problem(api.as_(OPERATOR).get(f"{V2}/services/99.99.json"), 404)


def test_a_posted_request_becomes_a_case_and_reads_back(api: Api):
    grid = "371502004001002"
    form = {"service_code": BINS, "description": "小区门口垃圾桶满溢，垃圾散落路面，无人清运。",
            "address_string": "化机小区3号楼前", "attribute[grid_code]": grid,
            "first_name": "明", "last_name": "王"}
    answer = api.as_(OPERATOR).post(f"{V2}/requests.json", data=form)
    assert answer.status_code == 202, answer.text
    [created] = answer.json()
    request_id = created["service_request_id"]
    assert request_id.startswith("O311-") and created["service_notice"]

    request = _request_once_open(api, request_id)
    assert request["service_request_id"] == request_id and request["status"] == "open"
    assert request["service_code"] == BINS and request["service_name"] == "垃圾暴露/满溢"
    assert request["description"] == form["description"]
    assert request["address"] == "化机小区3号楼前"
    assert request["agency_responsible"] == "城管/综合执法"
    opened = datetime.fromisoformat(request["requested_datetime"])
    assert opened.utcoffset().total_seconds() == 8 * 3600  # Beijing time
    case = api.as_(OPERATOR).get(f"/cases/{request['case_id']}").json()
    assert case["grid_code"] == grid and case["lead_department"] == LEAD

    def expected() -> dict | None:  # the resolve clock starts when the lead claims
        again = _request_once_open(api, request_id)
        return again if again["expected_datetime"] else None

    lead = next(a for a in case["assignments"] if a["role"] == "lead")
    claim = f"/cases/{case['case_id']}/assignments/{lead['assignment_id']}/claim"
    assert api.as_(f"{LEAD}-desk").post(claim).status_code == 200
    assert datetime.fromisoformat(eventually(expected, what="the resolve deadline")
                                  ["expected_datetime"]) > opened

    # the list: by id, by service code and status, and the case id answers too
    listed = api.as_(OPERATOR).get(f"{V2}/requests.json",
                                   params={"service_request_id": f"{request_id},O311-none"})
    assert [r["service_request_id"] for r in listed.json()] == [request_id]
    open_bins = api.as_(OPERATOR).get(f"{V2}/requests.json",
                                      params={"service_code": BINS, "status": "open"}).json()
    assert request_id in [r["service_request_id"] for r in open_bins]
    closed = api.as_(OPERATOR).get(f"{V2}/requests.json", params={"status": "closed"}).json()
    assert request_id not in [r["service_request_id"] for r in closed]
    later = api.as_(OPERATOR).get(f"{V2}/requests.json",
                                  params={"start_date": "2099-01-01T00:00:00"}).json()
    assert later == []
    by_case = api.as_(OPERATOR).get(f"{V2}/requests/{request['case_id']}.json").json()
    assert by_case[0]["case_id"] == request["case_id"]

    # scope: another county's operator and an uninvolved department see nothing
    _problem(api.as_(OTHER_OPERATOR).get(f"{V2}/requests/{request_id}.json"), 403)
    _problem(api.as_("jiaoyu-desk").get(f"{V2}/requests/{request_id}.json"), 403)
    assert request_id not in [r["service_request_id"] for r in api.as_(OTHER_OPERATOR).get(
        f"{V2}/requests.json").json()]


def test_a_json_request_is_placed_by_its_coordinates(api: Api):
    body = {"service_code": BINS, "description": "幸福社区路口垃圾满溢。",
            "lat": 36.5281, "long": 116.0714}  # by grid 371502101001002's centroid
    answer = api.as_("admin").post(f"{V2}/requests.json", json=body)
    assert answer.status_code == 202, answer.text
    request = _request_once_open(api, answer.json()[0]["service_request_id"])
    case = api.as_("admin").get(f"/cases/{request['case_id']}").json()
    assert case["grid_code"] == "371502101001002"
    assert request["lat"] == pytest.approx(36.5281) and request["long"] == pytest.approx(116.0714)


def test_a_request_sent_twice_with_one_idempotency_key_is_one_report(api: Api):
    body = {"service_code": BINS, "description": "沙镇幸福社区东口垃圾满溢。",
            "attribute": {"grid_code": "371502101001003"}}
    key = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}
    first = api.as_("admin").post(f"{V2}/requests.json", json=body, headers=key)
    again = api.as_("admin").post(f"{V2}/requests.json", json=body, headers=key)
    assert first.status_code == again.status_code == 202, again.text
    request_id = first.json()[0]["service_request_id"]
    assert again.json()[0]["service_request_id"] == request_id
    request = _request_once_open(api, request_id)
    case = api.as_("admin").get(f"/cases/{request['case_id']}").json()
    assert case["event_count"] == 1  # the repeat was recognised, not linked as a second report
    other = api.as_("admin").post(f"{V2}/requests.json", json=body,
                                  headers={"Idempotency-Key": f"other-{uuid.uuid4().hex}"})
    assert other.json()[0]["service_request_id"] != request_id


def test_requests_that_cannot_become_reports_are_problems(api: Api):
    post = api.as_(OPERATOR).post
    grid = {"attribute[grid_code]": "371502001001001"}
    unknown = post(f"{V2}/requests.json", data={"service_code": "99.99", "description": "x",
                                                 **grid})
    assert _problem(unknown, 422)["field"] == "service_code"
    nowhere = post(f"{V2}/requests.json", data={"service_code": BINS, "description": "垃圾",
                                                 "address_string": "某小区"})
    assert _problem(nowhere, 422)["field"] == "attribute[grid_code]"
    far = post(f"{V2}/requests.json", json={"service_code": BINS, "description": "垃圾",
                                            "lat": 30.0, "long": 120.0})
    assert _problem(far, 422)["field"] == "lat"
    blank = post(f"{V2}/requests.json", data={"service_code": BINS, **grid})
    assert _problem(blank, 422)["field"] == "description"
    bad_grid = post(f"{V2}/requests.json", data={"service_code": BINS, "description": "垃圾",
                                                  "attribute[grid_code]": "3715"})
    assert _problem(bad_grid, 422)["field"] == "grid_code"
    outside = post(f"{V2}/requests.json", data={"service_code": BINS, "description": "垃圾",
                                                 "attribute[grid_code]": "371503001001001"})
    _problem(outside, 403)
    _problem(api.as_(f"{LEAD}-desk").post(f"{V2}/requests.json", data={
        "service_code": BINS, "description": "垃圾", **grid}), 403)
    _problem(api.as_(OPERATOR).get(f"{V2}/requests/O311-none.json"), 404)
    assert _problem(api.as_(OPERATOR).get(f"{V2}/requests.json", params={"status": "lost"}),
                    422)["field"] == "status"
