"""Jurisdiction, idempotency and the console's pages, on a real worker, broker and store.

Two townships of 东昌府区 (新区街道 371502004, 古楼街道 371502001) and the 城管 desks of
two counties (东昌府区 371502, 茌平区 371503) prove that a desk sees and acts on its
own unit's assignments only — in its queue, on a case, with an action, on the board,
in statistics and Open311 — over the REST API and in the console. The browser walk
of the whole closed loop is ``tests/e2e``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from api.errors import PROBLEM_JSON
from tests.api.conftest import Api, eventually, sign_in

pytestmark = pytest.mark.integration

XINQU, GULOU = "371502004", "371502001"  # two townships of 东昌府区
XINQU_GRID, GULOU_GRID = "371502004002003", "371502001002002"
CHIPING_GRID = "371503002001001"  # 茌平区 信发街道


def _report(sample: str, grid_code: str) -> dict:
    report = json.loads(sample)
    report.pop("location", None)
    report.update(report_id=f"GR-CONSOLE-{uuid.uuid4().hex[:12]}", grid_code=grid_code)
    return report


def _open_case(api: Api, sample: str, grid_code: str) -> dict:
    answer = api.as_("admin").post("/intake/grid-reports", json=_report(sample, grid_code))
    assert answer.status_code == 202, answer.text
    report_id = answer.json()["id"]

    def dispatched() -> dict | None:
        found = api.as_("admin").get("/cases", params={"region": grid_code}).json()["items"]
        for item in found:
            case = api.as_("admin").get(f"/cases/{item['case_id']}").json()
            opened = case["timeline"][0]["detail"].get("event", {})
            if opened.get("source_id") == report_id and case["assignments"]:
                return case
        return None

    return eventually(dispatched, what=f"the case of report {report_id}")


def _assignment(case: dict, department: str) -> dict:
    return next(a for a in case["assignments"] if a["department"] == department)


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    return response.json()


@pytest.fixture(scope="module")
def cases(api: Api, grid_report_sample: str) -> dict[str, dict]:
    """One overflowing-bins case (城管 leads, the township supports) in each of 新区街道,
    古楼街道 and 茌平区."""
    return {"xinqu": _open_case(api, grid_report_sample, XINQU_GRID),
            "gulou": _open_case(api, grid_report_sample, GULOU_GRID),
            "chiping": _open_case(api, grid_report_sample, CHIPING_GRID)}


def _queue(api: Api, user: str, department: str) -> set[str]:
    page = api.as_(user).get(f"/departments/{department}/queue")
    assert page.status_code == 200, page.text
    return {item["case_id"] for item in page.json()["items"]}


def test_two_townships_see_and_act_only_on_their_own_assignments(api: Api, cases):
    xinqu, gulou = cases["xinqu"], cases["gulou"]
    assert _assignment(xinqu, "township")["region"] == XINQU
    mine, theirs = "township-371502004-desk", "township-371502001-desk"

    assert xinqu["case_id"] in _queue(api, mine, "township")
    assert xinqu["case_id"] not in _queue(api, theirs, "township")
    assert gulou["case_id"] in _queue(api, theirs, "township")
    assert gulou["case_id"] not in _queue(api, mine, "township")
    assert xinqu["case_id"] in _queue(api, "township-desk", "township")  # city-wide desk

    problem = _problem(api.as_(theirs).get(f"/cases/{xinqu['case_id']}"), 403)
    assert "within 371502001" in problem["detail"]
    assert api.as_(mine).get(f"/cases/{xinqu['case_id']}").status_code == 200
    listed = api.as_(theirs).get("/cases", params={"limit": 200}).json()["items"]
    assert xinqu["case_id"] not in {c["case_id"] for c in listed}
    assert gulou["case_id"] in {c["case_id"] for c in listed}

    claim = f"/cases/{xinqu['case_id']}/assignments/" \
            f"{_assignment(xinqu, 'township')['assignment_id']}/claim"
    problem = _problem(api.as_(theirs).post(claim), 403)
    assert "outside" in problem["detail"] and "371502001" in problem["detail"]
    assert api.as_(mine).post(claim).status_code == 200

    request_id = xinqu["timeline"][0]["detail"]["event"]["source_id"]
    assert api.as_(theirs).get(f"/open311/v2/requests/{request_id}.json").status_code == 403
    assert api.as_(mine).get(f"/open311/v2/requests/{request_id}.json").status_code == 200


def test_two_counties_city_management_desks_are_apart(api: Api, cases):
    xinqu, chiping = cases["xinqu"], cases["chiping"]
    dongchangfu, chiping_desk = "chengguan-371502-desk", "chengguan-371503-desk"
    assert xinqu["case_id"] in _queue(api, dongchangfu, "chengguan")
    assert chiping["case_id"] not in _queue(api, dongchangfu, "chengguan")
    assert chiping["case_id"] in _queue(api, chiping_desk, "chengguan")
    assert xinqu["case_id"] not in _queue(api, chiping_desk, "chengguan")

    _problem(api.as_(chiping_desk).get(f"/cases/{xinqu['case_id']}"), 403)
    lead = _assignment(xinqu, "chengguan")["assignment_id"]
    _problem(api.as_(chiping_desk).post(
        f"/cases/{xinqu['case_id']}/assignments/{lead}/on-site", json={"note": "x"}), 403)

    stats = api.as_(chiping_desk).get("/statistics", params={"group_by": "region"})
    assert stats.status_code == 200, stats.text
    assert stats.json()["region"] == "371503" and stats.json()["department"] == "chengguan"
    assert all(g["group"].startswith("371503") for g in stats.json()["groups"])
    _problem(api.as_(chiping_desk).get("/statistics", params={"region": "371502"}), 403)

    board = api.as_(chiping_desk).get("/board/snapshot").json()
    shown = {c["case_id"] for g in board["grids"] for c in g["open_cases"]}
    assert chiping["case_id"] in shown and xinqu["case_id"] not in shown
    assert [d["code"] for d in board["departments"]] == ["chengguan"]
    assert all(g["code"].startswith("371503") for g in board["grids"])


def test_a_repeated_idempotency_key_applies_once_and_answers_the_same(api: Api, cases,
                                                                     client: TestClient):
    gulou = cases["gulou"]
    lead = _assignment(gulou, "chengguan")["assignment_id"]
    url = f"/cases/{gulou['case_id']}/assignments/{lead}/claim"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.as_("chengguan-desk").post(url, headers=key)
    assert first.status_code == 200, first.text
    again = api.as_("chengguan-desk").post(url, headers=key)
    assert again.status_code == 200 and again.json() == first.json()

    client.app.state.answers._entries.clear()  # as another API process would: no memory
    from_log = api.as_("chengguan-desk").post(url, headers=key)
    assert from_log.status_code == 200 and from_log.json() == first.json()

    case = api.as_("admin").get(f"/cases/{gulou['case_id']}").json()
    claims = [t for t in case["timeline"] if t["type"] == "assignment_claimed"
              and t["detail"]["assignment_id"] == lead]
    assert len(claims) == 1 and claims[0]["command_id"] == first.json()["command_id"]

    fresh = api.as_("chengguan-desk").post(url, headers={"Idempotency-Key": "another"})
    assert _problem(fresh, 409)["detail"] == f"assignment {lead} is already claimed by chengguan"
    _problem(api.as_("chengguan-desk").post(url, headers={"Idempotency-Key": "x" * 129}), 422)


# -- the console over HTTP ----------------------------------------------------------------------


def _client(client: TestClient) -> TestClient:
    """A client with cookies of its own, on the running app's event loop (its gateway's)."""
    browser = TestClient(client.app, raise_server_exceptions=False)
    browser.portal = client.portal
    return browser


def _browser(client: TestClient, name: str, key: str) -> tuple[TestClient, str]:
    """A client of its own signed in as ``name``; and the page it lands on."""
    browser = _client(client)
    return browser, sign_in(browser, name, key)


def _form(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action`` on a page."""
    start = html.index(f'action="{action}"')
    form = html[start:html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def test_signing_in_and_out_with_csrf_on_every_form(client: TestClient, keys):
    browser = _client(client)
    form = browser.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    signed = browser.post("/login", data={"login_token": token, "name": "op-dongchangfu",
                                          "secret": keys["op-dongchangfu"], "next": ""},
                          follow_redirects=False)
    assert signed.headers["location"] == "/console/verify"
    cookie = next(c for c in signed.headers.get_list("set-cookie")
                  if c.startswith("gridlink_session="))
    assert {"HttpOnly", "SameSite=strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    assert "Max-Age=43200" in cookie  # a shift: GRIDLINK_SESSION_HOURS
    page = browser.get("/console/cases")
    assert page.status_code == 200 and "案件" in page.text
    bad = browser.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False)
    assert bad.status_code == 403 and "CSRF" in bad.text
    # a session cookie alone does not change anything over the REST API either
    api_post = browser.post("/cases/C-NONE/check")
    assert "X-CSRF-Token" in _problem(api_post, 403)["detail"]
    out = browser.post("/logout", data=_form(page.text, "/logout"), follow_redirects=False)
    assert out.status_code == 303
    assert browser.get("/console/cases", follow_redirects=False).headers["location"] == \
        "/login?next=/console/cases"

    wrong = _client(client)
    form = wrong.get("/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)
    refused = wrong.post("/login", data={"login_token": token, "name": "op-dongchangfu",
                                         "secret": "guess"})
    assert refused.status_code == 401 and "用户名或口令" in refused.text
    stale = wrong.post("/login", data={"login_token": "other", "name": "admin",
                                       "secret": keys["admin"]})
    assert stale.status_code == 403


def test_a_desk_of_another_township_cannot_see_or_act_in_the_console(client: TestClient, keys,
                                                                      cases):
    xinqu = cases["xinqu"]
    case_url = f"/console/cases/{xinqu['case_id']}"
    mine, _ = _browser(client, "township-371502004-desk", keys["township-371502004-desk"])
    theirs, home = _browser(client, "township-371502001-desk", keys["township-371502001-desk"])
    assert home == "/console/desk"
    assert xinqu["case_id"] not in theirs.get("/console/desk").text
    assert xinqu["case_id"] not in theirs.get("/console/cases").text
    typed = theirs.get(case_url)
    assert typed.status_code == 403 and "cannot see it" in typed.text
    assert xinqu["case_id"] in mine.get("/console/desk").text

    desk = theirs.get("/console/desk").text
    township = _assignment(xinqu, "township")["assignment_id"]
    posted = theirs.post(f"/console/desk/{xinqu['case_id']}/{township}/progress",
                         data={**_form(desk, "/logout"), "idempotency_key": "k1",
                               "note": "不是我们的"})
    assert posted.status_code == 403 and "outside" in posted.text

    wall, _ = _browser(client, "wall", keys["wall"])
    assert wall.get(case_url).status_code == 200  # a display reads its region …
    acted = wall.post(f"{case_url}/act/supervise",
                      data={**_form(wall.get(case_url).text, "/logout"),
                            "idempotency_key": "k2"})
    assert acted.status_code == 403 and "read-only" in acted.text  # … and acts on nothing


def test_a_double_click_in_the_console_applies_once(client: TestClient, keys, cases):
    chiping = cases["chiping"]
    desk, _ = _browser(client, "chengguan-371503-desk", keys["chengguan-371503-desk"])
    page = desk.get("/console/desk").text
    lead = _assignment(chiping, "chengguan")["assignment_id"]
    action = f"/console/desk/{chiping['case_id']}/{lead}/claim"
    fields = _form(page, action)
    assert set(fields) == {"csrf_token", "idempotency_key", "back"}
    first = desk.post(action, data=fields, follow_redirects=False)
    second = desk.post(action, data=fields, follow_redirects=False)
    assert first.status_code == second.status_code == 303, second.text
    assert first.headers["location"] == second.headers["location"]
    assert "已签收" in desk.get(first.headers["location"]).text
    detail = desk.get(f"/console/cases/{chiping['case_id']}").text
    assert detail.count('data-type="assignment_claimed"') == 1


def test_a_refused_action_shows_the_engines_reason(client: TestClient, keys, cases):
    xinqu = cases["xinqu"]
    operator, _ = _browser(client, "op-dongchangfu", keys["op-dongchangfu"])
    case_url = f"/console/cases/{xinqu['case_id']}"
    page = operator.get(case_url)
    assert page.status_code == 200
    assert '<svg class="map"' in page.text and 'class="here"' in page.text
    assert 'data-action="reroute"' in page.text and 'data-action="close"' not in page.text
    fields = _form(page.text, f"{case_url}/act/deescalate")
    refused = operator.post(f"{case_url}/act/deescalate",
                            data={**fields, "level": "5", "reason": "小事不出网格"})
    assert refused.status_code == 409
    assert "data-problem" in refused.text and "回退 de-escalate" in refused.text
    chiping = operator.get(f"/console/cases/{cases['chiping']['case_id']}")
    assert chiping.status_code == 403  # 茌平区 is not 东昌府区's


def test_reports_page_and_period_downloads(client: TestClient, keys, cases):
    operator, _ = _browser(client, "op-dongchangfu", keys["op-dongchangfu"])
    page = operator.get("/console/reports", params={"days": 7})
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 2 and "办结率" in page.text
    printable = operator.get("/console/reports/period", params={"kind": "weekly"})
    assert printable.status_code == 200 and "周报" in printable.text

    xlsx = operator.get("/console/reports/period.xlsx", params={"kind": "daily"})
    assert xlsx.status_code == 200
    assert "attachment" in xlsx.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as book:
        workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
        names = [s.get("name") for s in workbook.iter(
            "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}sheet")]
        assert names == ["概况 summary", "按部门 by department", "按区域 by region",
                         "超期在办 overdue open"]
        regions = book.read("xl/worksheets/sheet3.xml").decode()
        assert "371502004" in regions and "371503" not in regions  # its jurisdiction only

    text = operator.get("/console/reports/period.csv", params={"kind": "monthly"}).content
    assert text.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(text.decode("utf-8-sig"))))
    assert ["# 按部门 by department"] in rows and any(r[:1] == ["chengguan"] for r in rows)


def test_api_docs_are_served_without_a_cdn(client: TestClient):
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert "/static/vendor/" in html
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html), path
        for asset in re.findall(r"""["'](/static/vendor/[^"']+)["']""", html):
            assert client.get(asset).status_code == 200, asset
