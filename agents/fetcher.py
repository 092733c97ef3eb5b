"""Faust's fetcher, handing a record straight to its streams when nothing can hold it.

For every record it fetches, Faust's consumer (``Consumer._drain_messages``) races
the delivery to the streams' buffers against "the flow was stopped" (a rebalance
begins) and "the consumer stops": four tasks and an ``asyncio.wait`` per record,
about 85 µs. That race matters only when the delivery can wait, on a full stream
buffer or a suspended flow; otherwise the delivery finishes without ever yielding,
and the race is pure cost: 8 % of a worker's CPU in the pipeline benchmark.

``install()`` replaces the fetch loop with the same loop that delivers directly when
the record's partition can take it now (flow active, no subscription change under
way, the producer's buffer below its limit, every stream buffer of the partition
with room) and races exactly as Faust does otherwise. Everything else — read
offsets, gaps, commits, yields every hundred records — is Faust's loop as it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING, Consumer

YIELD_EVERY = 100  # records handed over between yields to the event loop, as in Faust


def deliverable_now(consumer: Any, tp: Any) -> bool:
    """True if delivering a record of ``tp`` cannot wait: every step of Faust's
    delivery (flow control, the producer's buffer, each stream buffer) has room."""
    app = consumer.app
    if consumer.suspend_flow.is_set() or not app.flow_control.is_active():
        return False
    conductor = app.topics
    if conductor._tp_to_callback_lock.locked():
        return False
    buffer = app.producer.buffer
    if buffer.size > buffer.max_messages:
        return False
    channels = conductor._tp_index.get(tp)
    return bool(channels) and not any(channel.queue.full() for channel in channels)


async def _drain_messages(self: Any, fetcher: Any) -> None:
    """Faust's ``Consumer._drain_messages`` (faust-streaming 0.15), but for the race."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            records = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    read_offset = get_read_offset(tp)
                    if read_offset is None or offset >= read_offset:
                        gap = offset - (read_offset or 0)
                        if gap > 1 and read_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, read_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if deliverable_now(self, tp):
                            await callback(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    # else: a record before the read offset, fetched again; Faust drops it
            unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception:
        self.log.exception("Drain messages raised")
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


def install() -> None:
    """Use :func:`_drain_messages` as every Faust consumer's fetch loop (idempotent)."""
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
