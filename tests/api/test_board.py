"""The live board on a real worker and broker: the page, the snapshot from the store,
and server-sent events that show a new case within seconds of its report.

The API runs under uvicorn on a free port (server-sent events are an endless
response, so the in-process test client cannot read them as they come)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from api.app import create_app
from settings import Settings
from tests.api.conftest import eventually, sign_in
from topics.local_kafka import free_port

pytestmark = pytest.mark.integration

DONGCHANGFU_GRID = "371502004001003"  # op-dongchangfu's jurisdiction (371502)
CHIPING_GRID = "371503001001002"  # op-chiping's jurisdiction (371503)
CASE_WITHIN_SECONDS = 15.0


@pytest.fixture(scope="module")
def base_url(api_worker, api_settings: Settings, keys: dict[str, str]) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(api_settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="board api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def _report(sample: str, grid_code: str) -> dict:
    report = json.loads(sample)
    report.pop("location", None)
    report.update(report_id=f"GR-BOARD-{uuid.uuid4().hex[:12]}", grid_code=grid_code)
    return report


def _post_report(http: httpx.Client, key: str, sample: str, grid_code: str) -> None:
    answer = http.post("/intake/grid-reports", json=_report(sample, grid_code),
                       headers={"X-API-Key": key})
    assert answer.status_code == 202, answer.text


class EventStream:
    """Reads one server-sent-events response, event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self) -> tuple[str, dict]:
        kind, data = "message", []
        for line in self._lines:
            if line.startswith("event:"):
                kind = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").strip())
            elif not line and data:
                return kind, json.loads("\n".join(data))
        raise AssertionError("the event stream ended")

    def first(self, kind: str, match, within: float) -> dict:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got, data = self.next()
            if got == kind and match(data):
                return data
        raise AssertionError(f"no {kind} event within {within} s")


def _open_stream(http: httpx.Client, key: str):
    return http.stream("GET", "/board/events", headers={"X-API-Key": key},
                       timeout=httpx.Timeout(30, read=CASE_WITHIN_SECONDS + 5))


def test_a_new_case_arrives_on_the_event_stream_within_seconds(http, keys, grid_report_sample):
    with _open_stream(http, keys["admin"]) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = EventStream(response)
        assert events.next() == ("ready", {"user": "administrator:admin"})

        started = time.monotonic()
        _post_report(http, keys["op-dongchangfu"], grid_report_sample, DONGCHANGFU_GRID)
        case = events.first("case", lambda c: c["grid"] == DONGCHANGFU_GRID,
                            within=CASE_WITHIN_SECONDS)
        assert time.monotonic() - started < CASE_WITHIN_SECONDS
        assert case["department"] == "chengguan"
        assert case["category"] == "05.03" and case["priority"] in (1, 2, 3, 4)
        assert case["title"] and case["region"] == DONGCHANGFU_GRID
        assert case["lon"] and case["lat"]

        dispatched = events.first("status", lambda u: u["case_id"] == case["case_id"]
                                  and u["event"] == "assignment_dispatched", within=10)
        assert dispatched["department"] == "chengguan"
        assert dispatched["status"] == "dispatched"


def test_the_snapshot_shows_open_cases_per_grid_and_department_queues(http, keys,
                                                                     grid_report_sample):
    admin = {"X-API-Key": keys["admin"]}
    _post_report(http, keys["op-dongchangfu"], grid_report_sample, "371502004001004")

    def grid_with_case() -> dict | None:
        snapshot = http.get("/board/snapshot", headers=admin).json()
        grid = next(g for g in snapshot["grids"] if g["code"] == "371502004001004")
        return snapshot if any(c["department"] for c in grid["open_cases"]) else None

    snapshot = eventually(grid_with_case, what="the dispatched case in the board snapshot")
    grid = next(g for g in snapshot["grids"] if g["code"] == "371502004001004")
    assert grid["name"] and grid["lon"] and grid["lat"]
    [case] = grid["open_cases"]
    assert case["department"] == "chengguan" and case["category"] == "05.03"
    assert {"case_id", "title", "priority", "status", "overdue"} <= set(case)
    departments = {d["code"]: d for d in snapshot["departments"]}
    assert departments["chengguan"]["open"] >= 1
    assert departments["chengguan"]["name_zh"] and departments["chengguan"]["name_en"]
    assert all(d["overdue"] <= d["open"] for d in departments.values())
    assert {c["code"] for c in snapshot["counties"]} >= {"371502", "371503"}

    chiping = http.get("/board/snapshot", headers={"X-API-Key": keys["op-chiping"]}).json()
    assert chiping["grids"] and all(g["code"].startswith("371503") for g in chiping["grids"])
    assert [c["code"] for c in chiping["counties"]] == ["371503"]


def test_an_operator_s_stream_shows_its_jurisdiction_only(http, keys, grid_report_sample):
    with _open_stream(http, keys["op-chiping"]) as response:
        events = EventStream(response)
        assert events.next()[0] == "ready"
        _post_report(http, keys["admin"], grid_report_sample, "371502004001001")  # not theirs
        time.sleep(1.0)
        _post_report(http, keys["admin"], grid_report_sample, CHIPING_GRID)
        case = events.first("case", lambda c: True, within=CASE_WITHIN_SECONDS)
        assert case["grid"] == CHIPING_GRID  # the 371502 case, earlier, was not sent


def test_a_township_desk_s_stream_shows_its_own_township_only(http, keys, grid_report_sample):
    """Overflowing bins: 城管 leads, the township of the grid supports. The desk of
    another township hears nothing of it; the grid's township desk hears its dispatch."""
    with _open_stream(http, keys["township-371502001-desk"]) as other, \
            _open_stream(http, keys["township-371502004-desk"]) as own:
        theirs, ours = EventStream(other), EventStream(own)
        assert theirs.next()[0] == "ready" and ours.next()[0] == "ready"
        _post_report(http, keys["admin"], grid_report_sample, "371502004003001")  # 新区街道
        # the desk follows the cases its township serves: 城管's dispatch may come first
        dispatched = ours.first("status", lambda u: u.get("event") == "assignment_dispatched"
                                and u.get("department") == "township",
                                within=CASE_WITHIN_SECONDS)
        assert dispatched["unit_region"] == "371502004"
        _post_report(http, keys["admin"], grid_report_sample, "371502001001003")  # 古楼街道
        first = theirs.first("status", lambda u: u.get("event") == "assignment_dispatched",
                             within=CASE_WITHIN_SECONDS)
        assert first["unit_region"] == "371502001"  # the 新区街道 case never reached it
        assert first["case_id"] != dispatched["case_id"]


def test_the_board_takes_a_key_header_or_a_session_never_a_key_in_the_url(http, keys):
    assert http.get("/board/snapshot").status_code == 401
    assert http.get("/board/snapshot", headers={"X-API-Key": "wrong"}).status_code == 401
    assert http.get("/board/snapshot", params={"key": keys["admin"]}).status_code == 401
    assert http.get("/board/snapshot",
                    headers={"X-API-Key": keys["op-dongchangfu"]}).status_code == 200
    wall = http.get("/board/snapshot", headers={"X-API-Key": keys["wall"]})
    assert wall.status_code == 200 and wall.json()["grids"]
    assert http.get("/board", follow_redirects=False).headers["location"] == \
        "/login?next=/board"


def test_the_page_is_self_contained(base_url, keys):
    with httpx.Client(base_url=base_url, timeout=30) as browser:
        assert sign_in(browser, "wall", keys["wall"]) == "/board"  # a display's home
        page = browser.get("/board")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "?key=" not in html
    assert "综治中心" in html and "Live Board" in html
    assert "/board/events" in html and "/board/snapshot" in html
    # no CDN, no map tiles: nothing is fetched from another origin
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"""(fetch|EventSource|url)\(\s*["'](https?:)?//""", html)
