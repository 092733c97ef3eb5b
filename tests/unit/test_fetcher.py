"""When the fetch loop may hand a record straight to its streams (``agents.fetcher``),
checked on a real Faust app and its real consumer, conductor and buffers (no broker:
nothing here connects)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from faust.types import TP

from agents.app import create_app
from agents.fetcher import deliverable_now
from settings import Settings

TP0 = TP("ingest.grid-reports", 0)


async def _check(tmp_path: Path) -> dict[str, bool]:
    app = create_app(Settings(table_store="memory", state_dir=tmp_path))
    consumer = app.consumer
    seen = {"before the first assignment (flow suspended)": deliverable_now(consumer, TP0)}
    app.flow_control.resume()
    seen["a partition no stream reads"] = deliverable_now(consumer, TP0)
    channel = app.topic(TP0.topic, value_serializer="raw")
    app.topics._tp_index[TP0].add(channel)
    seen["flow active, the stream buffer has room"] = deliverable_now(consumer, TP0)

    consumer.suspend_flow.set()
    seen["the flow was stopped (a rebalance begins)"] = deliverable_now(consumer, TP0)
    consumer.suspend_flow.clear()

    async with app.topics._tp_to_callback_lock:
        seen["subscriptions being changed"] = deliverable_now(consumer, TP0)

    buffer = app.producer.buffer
    for n in range(buffer.max_messages + 1):
        buffer.pending.put_nowait(n)
    seen["the producer's buffer over its limit"] = deliverable_now(consumer, TP0)
    while not buffer.pending.empty():
        buffer.pending.get_nowait()

    for n in range(channel.queue.maxsize):
        channel.queue.put_nowait(n)
    seen["the stream buffer full"] = deliverable_now(consumer, TP0)
    channel.queue.get_nowait()
    seen["room again"] = deliverable_now(consumer, TP0)
    return seen


def test_a_record_is_handed_over_directly_only_when_nothing_can_hold_it(tmp_path: Path
                                                                       ) -> None:
    seen = asyncio.run(_check(tmp_path))
    assert seen == {
        "before the first assignment (flow suspended)": False,
        "a partition no stream reads": False,
        "flow active, the stream buffer has room": True,
        "the flow was stopped (a rebalance begins)": False,
        "subscriptions being changed": False,
        "the producer's buffer over its limit": False,
        "the stream buffer full": False,
        "room again": True,
    }
