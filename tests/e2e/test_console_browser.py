"""One grid report through the six steps of the closed loop (六步闭环), clicked in the
console by two people in Chromium: the 东昌府区 operator and the desk of 新区街道 — with
a return and a re-route, and an action the engine refuses — while the desk of another
township (古楼街道) finds the case neither in its lists, nor by typing its address, nor
by posting an action to it.

Everything runs as in production: the real broker, ``gridlink worker`` and
``gridlink api`` processes; the report enters on ``ingest.grid-reports``. Each page
is saved under ``artifacts/console-*.png`` at 1366×768 (a command center's screen).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import ARTIFACTS
from tests.integration.kafka_client import KafkaTestClient
from topics import registry

pytestmark = pytest.mark.integration

GRID = "371502004002003"  # 新区街道 北关社区第3网格
SCREEN = {"width": 1366, "height": 768}
WAIT_MS = 30_000
# Nothing in it to classify by (tests/unit/test_verification.py holds that it waits for
# 核实); "居民反映" would make it 社情民意 with confidence.
VAGUE = "北关社区3号楼前有情况，具体不明，请中心核实。"


class Person:
    """One signed-in browser (its own cookies) and the pages it saved."""

    def __init__(self, browser: Browser, base: str, name: str, key: str) -> None:
        self.base, self.name = base, name
        self.context: BrowserContext = browser.new_context(viewport=SCREEN, locale="zh-CN")
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(f"{base}/console")  # no session: the sign-in page
        expect(self.page.locator("#login")).to_be_visible()
        self.page.fill("input[name=name]", name)
        self.page.fill("input[name=secret]", key)
        self.page.click("#login button[type=submit]")
        self.page.wait_for_url(re.compile(r"/console/(verify|desk)"))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)

    def open(self, path: str) -> None:
        self.page.goto(f"{self.base}{path}")

    def submit(self, scope: str, action: str, fields: dict[str, str] | None = None) -> None:
        """Open the action's folded form within ``scope`` (if folded), fill, send."""
        box = self.page.locator(f'{scope} [data-action="{action}"]').first
        if box.evaluate("node => node.tagName === 'DETAILS' && !node.open"):
            box.locator("summary").click()
        for name, value in (fields or {}).items():
            field = box.locator(f'[name="{name}"]').last
            tag = field.evaluate("node => node.tagName")
            if tag == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        box.locator("button[type=submit]").first.click()
        self.page.wait_for_load_state("domcontentloaded")


@pytest.fixture
def people(browser: Browser, api_url: str, users) -> Iterator[dict[str, Person]]:
    _, keys = users
    crowd = {name: Person(browser, api_url, name, keys[name])
             for name in ("op-dongchangfu", "township-371502004-desk", "township-371502001-desk")}
    yield crowd
    for person in crowd.values():
        person.context.close()


def _report(kafka: KafkaTestClient) -> str:
    """Step 1 (信息上报): a grid worker's report too vague to classify: it waits for an
    operator's verification (待核实)."""
    report_id = f"GR-E2E-{uuid.uuid4().hex[:10]}"
    report = {"report_id": report_id, "grid_code": GRID,
              "reported_at": "2026-11-26T10:02:00+08:00", "reporter": {"staff_id": "WGY-0231"},
              "description": VAGUE,
              "location": {"lon": 115.9871, "lat": 36.4622}}
    kafka.produce(registry.GRID_REPORTS, json.dumps(report, ensure_ascii=False).encode(),
                  key=report_id.encode())
    return report_id


def _status(person: Person) -> str:
    return person.page.locator("#case-status").get_attribute("data-status") or ""


def test_a_grid_report_walks_the_closed_loop_in_the_console(people, kafka, api_url, users):
    operator, desk, stranger = (people["op-dongchangfu"], people["township-371502004-desk"],
                                people["township-371502001-desk"])
    desk.open("/console/desk")  # open before anything is dispatched: it must update live
    expect(desk.page.locator("#live.on")).to_be_visible(timeout=WAIT_MS)
    stranger.open("/console/desk")

    # 1 信息上报 → 2 核实立案: the operator registers it, correcting category and routing
    _report(kafka)
    verify = operator.page
    for _ in range(60):
        operator.open("/console/verify")
        if verify.locator("section[data-case-id]").count():
            break
        verify.wait_for_timeout(500)
    section = verify.locator("section[data-case-id]").first
    case_id = section.get_attribute("data-case-id")
    assert case_id and "11.00" in section.inner_text()
    operator.shot("1-verification-queue")
    operator.submit(f'section[data-case-id="{case_id}"]', "register",
                    {"category": "05.03", "priority": "3", "lead": "township",
                     "note": "现场核实：垃圾堆放，属地街道处置"})
    expect(verify.locator(".flash.ok")).to_contain_text("核实立案", timeout=WAIT_MS)

    # 3 分流交办: the assignment appears on the desk without a reload
    row = desk.page.locator(f'tr[data-case-id="{case_id}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row).to_have_class(re.compile("fresh"))
    assert desk.page.locator(f'tr[data-case-id="{case_id}"] .clock[data-due]').count() >= 1
    desk.shot("2-desk-new-assignment")
    assert case_id not in stranger.page.locator("#desk-rows").inner_text()

    # 4 跟踪处理: the desk returns it (退单, with a reason code) …
    desk.submit(f'tr[data-case-id="{case_id}"]', "return",
                {"reason_code": "insufficient_info", "note": "地址不全，无法定位具体楼栋"})
    expect(desk.page.locator(".flash.ok")).to_contain_text("退单", timeout=WAIT_MS)
    desk.shot("3-desk-returned")
    # … the operator re-routes it (改派) with what was missing
    operator.open(f"/console/cases/{case_id}")
    assert _status(operator) == "returned"
    operator.shot("4-case-returned")
    operator.submit("#center-actions", "reroute",
                    {"lead": "township", "reason": "已补充：北关社区3号楼东侧，请属地处置"})
    expect(operator.page.locator(".flash.ok")).to_contain_text("改派", timeout=WAIT_MS)
    assert _status(operator) == "dispatched"

    # the desk claims the new assignment, reports on site and progress
    fresh = desk.page.locator(f'tr[data-case-id="{case_id}"][data-status="dispatched"]')
    expect(fresh).to_be_visible(timeout=WAIT_MS)  # live again: the re-routed assignment
    row_id = fresh.get_attribute("data-row")
    scope = f'tr[data-row="{row_id}"]'
    desk.submit(scope, "claim")
    expect(desk.page.locator(".flash.ok")).to_contain_text("签收", timeout=WAIT_MS)
    desk.submit(scope, "on-site")
    expect(desk.page.locator(".flash.ok")).to_contain_text("到场", timeout=WAIT_MS)
    desk.submit(scope, "progress", {"note": "已联系物业，安排清运"})
    expect(desk.page.locator(".flash.ok")).to_contain_text("进展", timeout=WAIT_MS)

    # a refused action: 60 days is more than the engine allows an extension (延期)
    desk.submit(scope, "extension", {"days": "60", "reason": "等待物业维修基金审批"})
    refused = desk.page.locator(".flash.bad[data-problem]")
    expect(refused).to_contain_text("exceeds the limit", timeout=WAIT_MS)
    desk.shot("5-desk-refused-extension")

    # the other township: not in its lists, not by its address, not by posting to it
    stranger.open("/console/desk")
    assert case_id not in stranger.page.locator("#desk-rows").inner_text()
    stranger.open("/console/cases")
    assert case_id not in stranger.page.locator("#cases").inner_text()
    stranger.open(f"/console/cases/{case_id}")
    expect(stranger.page.locator("[data-problem]")).to_contain_text("cannot see it")
    stranger.shot("6-other-township-refused")
    csrf = stranger.page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assignment = row_id.split("/")[1]
    posted = stranger.page.request.post(
        f"{api_url}/console/desk/{case_id}/{assignment}/handle",
        form={"csrf_token": csrf or "", "idempotency_key": uuid.uuid4().hex,
              "outcome": "冒名办结"})
    assert posted.status == 403 and "outside" in posted.text()

    # 5 事件反馈: the desk handles it with the outcome
    desk.open("/console/desk")
    desk.submit(scope, "handle", {"outcome": "垃圾已清运，路面已冲洗，物业承诺每日巡查"})
    expect(desk.page.locator(".flash.ok")).to_contain_text("办结", timeout=WAIT_MS)
    desk.open(f"/console/cases/{case_id}")
    desk.shot("7-case-as-the-desk-sees-it")

    # 6 考核评价: the operator checks, closes and records the callback
    operator.open(f"/console/cases/{case_id}")
    assert _status(operator) == "handled"
    for action, fields, word in (("check", {"note": "核查属实"}, "核查"),
                                 ("close", {"note": "现场复核通过"}, "结案"),
                                 ("evaluate", {"result": "satisfied", "note": "居民表示满意"},
                                  "回访评价")):
        operator.submit("#center-actions", action, fields)
        expect(operator.page.locator(".flash.ok")).to_contain_text(word, timeout=WAIT_MS)
    assert _status(operator) == "evaluated"
    timeline = operator.page.locator("#timeline").inner_text()
    for step in ("核实立案", "退单", "交办", "签收", "到场", "办结", "结案", "回访评价"):
        assert step in timeline, step
    assert operator.page.locator("svg.map rect.here").count() == 1
    assert operator.page.locator("svg.map circle[data-case-position]").count() == 1
    operator.shot("8-case-evaluated")

    operator.open(f"/console/cases?text={case_id}")
    expect(operator.page.locator(f'#cases tr[data-case-id="{case_id}"]')).to_be_visible()
    operator.shot("9-case-list")
    operator.open("/console/reports?days=7")
    expect(operator.page.locator("#rates-chart svg")).to_be_visible()
    operator.shot("10-reports")
    operator.open("/console/reports/period?kind=daily")
    expect(operator.page.locator("#summary")).to_be_visible()
    operator.shot("11-daily-report")
    operator.open("/docs")
    expect(operator.page.locator(".swagger-ui .info")).to_be_visible(timeout=WAIT_MS)
    operator.shot("12-api-docs")

    for person in (operator, desk, stranger):
        assert not person.errors, (person.name, person.errors)
