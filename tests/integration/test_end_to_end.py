"""A grid report from the contract samples reaches a department queue through
a running ``gridlink worker`` on the real broker."""

from __future__ import annotations

import json

from tests.conftest import SAMPLES_DIR
from topics import registry


def test_sample_grid_report_reaches_a_department_queue(worker, kafka):
    line = (SAMPLES_DIR / "grid-reports.valid.jsonl").read_text(encoding="utf-8").splitlines()[0]
    report = json.loads(line)
    kafka.produce(registry.GRID_REPORTS, line.encode(), key=report["report_id"].encode())

    records = kafka.read("dept.zhongzhi", count=1, timeout=30)

    assert len(records) == 1, worker.log()[-3000:]
    message = json.loads(records[0].value)
    assert message["case_id"]
    assert records[0].key.decode() == message["case_id"]
    assert f"grid:{report['report_id']}" in message["source_event_ids"]
