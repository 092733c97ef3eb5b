"""Walking skeleton: a grid report becomes a department message with a case id."""

from __future__ import annotations

import hashlib
import json

import faust

from agents.app import Topics
from settings import Settings
from topics import registry


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    @app.agent(topics(registry.GRID_REPORTS), name="intake-grid-reports")
    async def intake(stream: faust.StreamT) -> None:
        async for event in stream.events():
            report = json.loads(event.value)
            case_id = "C-" + hashlib.sha1(report["report_id"].encode()).hexdigest()[:12]
            message = {"case_id": case_id, "department": "zhongzhi",
                       "source_event_ids": [f"grid:{report['report_id']}"]}
            await topics.department("zhongzhi").send(
                key=case_id.encode(), value=json.dumps(message, ensure_ascii=False).encode())
