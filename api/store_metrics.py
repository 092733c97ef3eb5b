"""The API's share of the metrics: the gauges read from the SQL projection
(:mod:`store.gauges`), refreshed in the background.

A task reads them every :data:`REFRESH_SECONDS` and publishes one snapshot
(:func:`observability.metrics.publish_store_snapshot`); a scrape of ``/metrics``
only reads that snapshot, never the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from observability import metrics
from store.gauges import read_snapshot
from store.service import Store

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0


class StoreGauges:
    """Refreshes the snapshot in the background while the API runs."""

    def __init__(self, store: Store, *, interval: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        metrics.publish_store_snapshot(None)

    async def _run(self) -> None:
        while True:
            try:
                snapshot = await asyncio.to_thread(read_snapshot, self.store)
                metrics.publish_store_snapshot(snapshot)
            except Exception:  # a busy or migrating database: keep the last snapshot
                log.warning("open cases and rates not read from the store", exc_info=True)
            await asyncio.sleep(self.interval)
