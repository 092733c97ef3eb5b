"""A Faust app of one agent that reads a topic in ``agents.batches.windows`` and
notes every event it is handed (``tests/integration/test_windows.py`` runs it).

Environment: ``WINDOWS_BROKER``, ``WINDOWS_TOPIC``, ``WINDOWS_GROUP``,
``WINDOWS_SEEN`` (the file each event's value is appended to; Faust's data directory
goes beside it), ``WINDOWS_FAIL_AT`` (the value at which the agent raises, inside a
window; empty: never) and ``WINDOWS_ACK_LATE`` (``1``: a window is acked half a second
later, by a task of its own, while the agent takes the next one — as the township writer
acks a window once its sends are acknowledged).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import faust

from agents.batches import Window, windows

seen = Path(os.environ["WINDOWS_SEEN"])
app = faust.App(
    os.environ["WINDOWS_GROUP"],
    datadir=str(seen.parent / "faust-data"),
    broker=f"kafka://{os.environ['WINDOWS_BROKER']}",
    store="memory://",
    web_enabled=False,
    topic_partitions=1,
    broker_commit_interval=0.2,  # commit often: an uncommitted offset is then no accident
)
topic = app.topic(os.environ["WINDOWS_TOPIC"], key_type=bytes, value_type=bytes,
                  value_serializer="raw")
fail_at = os.environ.get("WINDOWS_FAIL_AT", "")
ack_late = os.environ.get("WINDOWS_ACK_LATE") == "1"


@app.agent(topic)
async def note(stream: faust.StreamT) -> None:
    acking: asyncio.Future[None] | None = None
    try:
        async for window in windows(stream, 4, 0.05):
            async for event in window:
                with seen.open("a") as out:  # noqa: ASYNC230 (a line per event, a test app)
                    out.write(event.value.decode() + "\n")
                if event.value.decode() == fail_at:
                    raise RuntimeError(f"failing at {fail_at}, as asked")
            if not ack_late:
                await window.ack()
                continue
            if acking is not None:
                await acking
            acking = asyncio.ensure_future(ack_after(window, 0.5))
    finally:
        if acking is not None and not acking.done():
            acking.cancel()


async def ack_after(window: Window, seconds: float) -> None:
    """The window's writes, awaited while the agent takes the next one."""
    await asyncio.sleep(seconds)
    await window.ack()


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", os.environ.get("WINDOWS_LOG", "warn")]
    app.main()
