"""A Faust app of one agent that reads a topic in ``agents.batches.windows`` and
notes every event it is handed (``tests/integration/test_windows.py`` runs it).

Environment: ``WINDOWS_BROKER``, ``WINDOWS_TOPIC``, ``WINDOWS_GROUP``,
``WINDOWS_SEEN`` (the file each event's value is appended to; Faust's data directory
goes beside it) and ``WINDOWS_FAIL_AT`` (the value at which the agent raises, inside a
window; empty: never).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import faust

from agents.batches import windows

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


@app.agent(topic)
async def note(stream: faust.StreamT) -> None:
    async for window in windows(stream, 4, 0.05):
        async for event in window:
            with seen.open("a") as out:  # noqa: ASYNC230 (a line per event, in a test app)
                out.write(event.value.decode() + "\n")
            if event.value.decode() == fail_at:
                raise RuntimeError(f"failing at {fail_at}, as asked")


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", os.environ.get("WINDOWS_LOG", "warn")]
    app.main()
