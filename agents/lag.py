"""Consumer lag of this worker, per topic and partition, as a gauge.

Every few seconds: for each partition of an agent's source topic assigned to this
worker (table changelogs are left out: they are read by recovery, never
committed), the end offset minus the committed offset (or, before the first
commit, minus the partition's earliest offset: everything is still to read).
"""

from __future__ import annotations

import logging

import faust
from faust.types import TP

from observability import metrics

log = logging.getLogger(__name__)

LAG_SECONDS = 5.0


def source_topics(app: faust.App) -> set[str]:
    """The topics the app's agents read."""
    return {name for agent in app.agents.values()
            for name in getattr(agent.channel, "topics", ())}


def _offset(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


async def consumer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """(topic, partition) → messages not committed yet, of this worker's partitions."""
    sources = source_topics(app)
    consumer = app.consumer
    tps = sorted(tp for tp in consumer.assignment() if tp.topic in sources)
    if not tps:
        return {}
    ends = await consumer.highwaters(*tps)
    # Faust keeps what it committed (and what it found committed when assigned)
    committed = {tp: _offset(consumer._committed_offset.get(tp)) for tp in tps}
    unknown = [tp for tp in tps if committed[tp] is None]
    earliest: dict[TP, int] = dict(await consumer.earliest_offsets(*unknown)) if unknown else {}
    lags = {}
    for tp in tps:
        end = ends.get(tp)
        position = committed[tp] if committed[tp] is not None else earliest.get(tp)
        if end is not None and position is not None:
            lags[(tp.topic, tp.partition)] = max(end - position, 0)
    return lags


def register(app: faust.App) -> None:
    @app.timer(LAG_SECONDS)
    async def measure_consumer_lag() -> None:
        try:
            metrics.set_consumer_lag(await consumer_lag(app))
        except Exception:  # a rebalance or a broker hiccup: next round
            log.debug("consumer lag not measured", exc_info=True)
