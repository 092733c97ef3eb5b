"""The API under abuse, on a real worker, broker and database: bodies too large or too
deep, unknown keys, floods, reports outside the caller's jurisdiction, departments that
do not exist and control characters — each a problem a person can act on (4xx), never
a 500, and nothing half done."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from settings import Settings
from tests.api.conftest import Api, eventually
from tests.api.test_api import OPERATOR, _open_case, _problem, _report
from tests.integration.kafka_client import KafkaTestClient
from topics import registry

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def strict(api_worker, api_settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    """The same API with small limits: 64 KiB bodies, 3 changes at once, then 1 a second."""
    settings = api_settings.model_copy(update={"api_max_body_bytes": LIMIT,
                                               "api_rate_burst": 3,
                                               "api_rate_per_minute": 60.0})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    """A body without Content-Length: it streams in, chunk by chunk."""
    sent = 0
    while sent < total:
        sent += size
        yield b" " * size


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(strict, keys, grid_report_sample):
    headers = {"X-API-Key": keys["admin"], "content-type": "application/json"}
    declared = strict.post("/intake/grid-reports", content=b" " * (LIMIT + 1), headers=headers)
    assert _problem(declared, 413)["code"] == "body_too_large"
    streamed = strict.post("/cases/C-371502004-20261126-0001/reroute",
                           content=_chunks(4 * LIMIT), headers=headers)
    assert _problem(streamed, 413)["code"] == "body_too_large"
    assert "GRIDLINK_API_MAX_BODY_BYTES" in streamed.json()["detail"]


def test_an_unknown_key_is_refused_before_its_body_is_read(strict):
    # A body no parser could take and over the limit: the key is what is answered.
    answer = strict.post("/cases/C-371502004-20261126-0001/reroute", content=b"[" * (2 * LIMIT),
                         headers={"X-API-Key": "not-a-key", "content-type": "application/json"})
    assert _problem(answer, 401)["detail"] == "unknown API key"
    nobody = strict.post("/cases/C-371502004-20261126-0001/reroute", json={})
    assert _problem(nobody, 401)["code"] == "not_authenticated"


def test_json_nested_too_deeply_is_a_422(api: Api):
    deep = b"[" * 50_000 + b"]" * 50_000
    for path in ("/cases/C-371502004-20261126-0001/reroute", "/intake/grid-reports"):
        answer = api.as_("admin").post(path, content=deep,
                                       headers={"content-type": "application/json"})
        body = _problem(answer, 422)
        assert "deep" in body["detail"] or "recursion" in body["detail"], body


def test_a_flood_of_changes_is_a_429_with_retry_after_and_reads_go_on(strict, keys):
    headers = {"X-API-Key": keys["op-chiping"]}
    answers = [strict.post("/cases/C-371503-none/reject", json={"reason": "测试"},
                           headers=headers) for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [404, 404, 404]  # the burst: answered
    limited = answers[3]
    assert _problem(limited, 429)["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert strict.get("/cases", headers=headers).status_code == 200  # reading is not limited
    other = strict.post("/cases/C-371503-none/reject", json={"reason": "测试"},
                        headers={"X-API-Key": keys["op-dongchangfu"]})
    assert other.status_code == 404  # another user's bucket is its own


def test_a_report_outside_the_operators_jurisdiction_is_refused(api: Api, grid_report_sample):
    # op-chiping serves 茌平区 (371503); the grid is in 东昌府区 (371502)
    report = _report(grid_report_sample, "371502004001002")
    body = _problem(api.as_("op-chiping").post("/intake/grid-reports", json=report), 403)
    assert "outside op-chiping's jurisdiction" in body["detail"] or "371503" in body["detail"]
    unplaced = _report(grid_report_sample, "371599999999999")  # no such grid
    _problem(api.as_(OPERATOR).post("/intake/grid-reports", json=unplaced), 422)


def test_a_reroute_to_a_department_that_does_not_exist_is_a_422(api: Api, grid_report_sample):
    case = _open_case(api, grid_report_sample, "371502004001004")
    answer = api.as_(OPERATOR).post(f"/cases/{case['case_id']}/reroute",
                                    json={"lead": "no-such-dept", "reason": "测试改派"})
    body = _problem(answer, 422)
    assert body["field"] == "lead" and "no-such-dept" in body["detail"]
    supports = api.as_(OPERATOR).post(f"/cases/{case['case_id']}/reroute",
                                      json={"lead": "chengguan", "supports": ["x" * 30],
                                            "reason": "测试改派"})
    assert _problem(supports, 422)["field"] == "supports"


def test_control_characters_are_refused_at_intake_over_http_and_on_kafka(
        api: Api, api_settings: Settings, grid_report_sample):
    report = _report(grid_report_sample, "371502004001005")
    report["description"] = "垃圾桶满溢\u0000无人清运"
    body = _problem(api.as_(OPERATOR).post("/intake/grid-reports", json=report), 422)
    assert body["code"] == "control_char" and body["field"] == "description", body
    assert "U+0000" in body["detail"]

    report["report_id"] = f"GR-NUL-{uuid.uuid4().hex[:10]}"
    raw = json.dumps(report, ensure_ascii=True).encode()
    kafka = KafkaTestClient(api_settings)
    try:
        kafka.produce(registry.GRID_REPORTS, raw, key=report["report_id"].encode())

        def dead_lettered() -> list[dict]:
            return [letter for letter in (json.loads(r.value) for r in
                                          kafka.read(registry.DEAD_LETTER))
                    if letter["key"] == report["report_id"]]

        letter = eventually(dead_lettered, what="the report dead-lettered")[0]
    finally:
        kafka.close()
    assert letter["error"]["code"] == "control_char", letter
    assert letter["error"]["field"] == "description"
    assert letter["raw_text"] == raw.decode()
