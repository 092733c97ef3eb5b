"""Consumer lag of this worker, per topic and partition, as a gauge.

Every few seconds, for each partition this worker reads — the writer's
``cases.commands`` through Faust's consumer, and the ingest topics and
``cases.events`` through the intake and projection loops — the end offset
minus the committed offset (or, before the first commit, minus the partition's
earliest offset: everything is still to read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import faust
from aiokafka import TopicPartition

from agents.loops import ConsumerLoop
from observability import metrics

log = logging.getLogger(__name__)

LAG_SECONDS = 5.0


def _offset(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


async def writer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """(topic, partition) → records not committed yet, of the writer's partitions."""
    sources = {name for agent in app.agents.values()
               for name in getattr(agent.channel, "topics", ())}
    consumer = app.consumer
    tps = sorted(tp for tp in consumer.assignment() if tp.topic in sources)
    if not tps:
        return {}
    ends = await consumer.highwaters(*tps)
    # Faust keeps what it committed (and what it found committed when assigned)
    kept = consumer._committed_offset  # type: ignore[attr-defined]  # not in faust's ConsumerT
    committed = {tp: _offset(kept.get(tp)) for tp in tps}
    unknown = [tp for tp in tps if committed[tp] is None]
    earliest = dict(await consumer.earliest_offsets(*unknown)) if unknown else {}
    lags = {}
    for tp in tps:
        end = ends.get(tp)
        position = committed[tp] if committed[tp] is not None else earliest.get(tp)
        if end is not None and position is not None:
            lags[(tp.topic, tp.partition)] = max(end - position, 0)
    return lags


async def loop_lag(loop: ConsumerLoop) -> dict[tuple[str, int], int]:
    """(topic, partition) → records not committed yet, of a consumer loop's partitions."""
    consumer = loop.consumer
    if consumer is None:
        return {}
    tps: list[TopicPartition] = sorted(consumer.assignment())
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    lags = {}
    for tp in tps:
        committed = _offset(await consumer.committed(tp))
        if committed is None:
            committed = (await consumer.beginning_offsets([tp]))[tp]
        lags[(tp.topic, tp.partition)] = max(ends[tp] - committed, 0)
    return lags


def register(app: faust.App, loops: Sequence[ConsumerLoop],
             measured: Callable[[], None] | None = None) -> None:
    """Measure the lag every ``LAG_SECONDS``; ``measured`` is told each time it was."""

    @app.timer(LAG_SECONDS)
    async def measure_consumer_lag() -> None:
        lags: dict[tuple[str, int], int] = {}
        try:
            lags.update(await writer_lag(app))
            for loop in loops:
                lags.update(await loop_lag(loop))
        except Exception:  # a rebalance or a broker hiccup: next round
            log.debug("consumer lag not measured", exc_info=True)
            return
        metrics.set_consumer_lag(lags)
        if measured is not None:
            measured()
